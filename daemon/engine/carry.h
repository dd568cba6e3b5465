/* SPDX-License-Identifier: MIT */
/*
 * What a queue carries between batches (queue-internal.h): the start of a
 * partial group and the answers its relay peer has not taken. Both live in
 * the worker's journal carry slots while there are free ones, so that a
 * restarted daemon finds them, and in the queue's own memory otherwise.
 * jw is NULL where there is no journal (tests, benchmarks, a queue not yet
 * given to a worker).
 */
#pragma once

#include "journal.h"
#include "queue-internal.h"

/* The partial group's bytes (q->partial.len of them). */
const uint8_t *iopf_partial_bytes(const struct iopf_queue *q, const struct iopf_jwriter *jw);
/* Keep p[0..len) as the partial group; -ENOMEM when it fits nowhere. */
int iopf_partial_keep(struct iopf_queue *q, struct iopf_jwriter *jw, const uint8_t *p, size_t len,
                      struct iopf_counters *c);
/* The partial group is in the batch being read now (or gone). */
void iopf_partial_drop(struct iopf_queue *q, struct iopf_jwriter *jw);

/* Mirror the backlog into a carry slot (or free the slot once it is empty). */
void iopf_backlog_mirror(struct iopf_queue *q, struct iopf_jwriter *jw, struct iopf_counters *c);

/* A queue reaches a worker: what it carries in its own memory (restored
 * after a restart, or kept while the slots were full) goes into the
 * journal, so that a crash from here on finds it. */
void iopf_carries_journal(struct iopf_queue *q, struct iopf_jwriter *jw, struct iopf_counters *c);
/* The queue goes on in the next daemon: its carries stay in the journal for
 * it, no longer this queue's to free. */
void iopf_carries_hand_on(struct iopf_queue *q, struct iopf_jwriter *jw, struct iopf_counters *c);
/* The queue is let go of: its carry slots are free again. */
void iopf_carries_release(struct iopf_queue *q, struct iopf_jwriter *jw);
