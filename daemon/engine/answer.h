/* SPDX-License-Identifier: MIT */
/*
 * One batch of fault records, from bytes to answers: split into groups,
 * resolve each against the bindings and address spaces, answer them with
 * one write, keep a trailing partial group for the next read. The workers
 * do this for every read; a restarted daemon does it for every batch its
 * predecessor had read and not answered (iopf_engine_recover()).
 */
#pragma once

#include <stdbool.h>

#include "batch.h"
#include "journal.h"
#include "queue-internal.h"
#include "resolve.h"

struct iopf_answerer {
	struct iopf_resolver res;
	struct iopf_counters *c;
	struct iopf_hist *service; /* per group: read -> answered, in ns; optional */
	struct iopf_group *groups;
	iopf_response *resp;
	size_t max_groups;
	uint32_t max_group_faults;
	/* Answer in slices of this many groups, or of this much resolving
	 * time, whichever comes first (0: a whole batch at once). */
	unsigned slice_groups;
	uint64_t slice_ns;
#if IOPFD_TEST_HOOKS
	bool die_answering; /* test hook: SIGKILL between ANSWERING and the write */
#endif
};

/* For batches of up to max_bytes, groups of up to max_group_faults records. */
int iopf_answerer_init(struct iopf_answerer *a, struct iopf_bindings *b, size_t max_bytes, uint32_t max_group_faults,
                       struct iopf_counters *c, struct iopf_hist *service);
void iopf_answerer_fini(struct iopf_answerer *a);

/*
 * Parse, resolve and answer buf[0..len), read from q at t_read (ns) and
 * beginning with the partial group q carried. A trailing partial group is
 * kept for the next read. jw (optional) journals the batch's progress; buf
 * is then its buffer. Sets *answered to the groups answered. Returns
 * IOPF_QUEUE_OPEN, or why the queue must be closed (once everything parsed
 * has been answered).
 */
enum iopf_queue_close iopf_answer_batch(struct iopf_answerer *a, struct iopf_queue *q, struct iopf_jwriter *jw,
                                        uint8_t *buf, size_t len, uint64_t t_read, size_t *answered);
