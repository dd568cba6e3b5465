/* SPDX-License-Identifier: MIT */
/*
 * The device model: a trace replayed as devices would, against a pager.
 *
 * Each stream of the trace is a device with up to `inflight` accesses in
 * flight. A device issues its next `inflight` accesses (in trace order,
 * the streams interleaved as the trace has them); those whose pages are
 * resident complete at once; those that are not are faults, the device
 * stalls on them, and their distinct pages go to the pager as one batch of
 * one-page groups. Once the batch is answered the window is done and the
 * device issues the next one. With inflight 1 every access is its own
 * window; with 32 the device behaves like a streaming DMA engine.
 */
#pragma once

#include "sim.h"

/* One run: a trace, a policy, a quota, a window. */
struct sim_run {
	const struct sim_trace *t;
	const struct sim_policy *policy;
	uint64_t quota_pages; /* at least 1 */
	unsigned inflight;    /* at least 1 */
	/* Optional, t->n entries: set to 1 for each access that found its page
	 * absent (it stalled), left alone for the others. What a replay of the
	 * same trace elsewhere compares itself with, access by access. */
	uint8_t *faulted;
};

/* 0, or a negative errno: -ENOMEM, the pager's errors, or -EPROTO when the
 * books caught a pager mapping a page twice or answering without mapping. */
int sim_replay(const struct sim_run *run, struct sim_counts *out);
