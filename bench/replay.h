/* SPDX-License-Identifier: MIT */
/*
 * The engine replay: a trace replayed through the real engine (worker
 * threads, relay queues, the space on a simulated or an mlock backend) by
 * emulated devices, one per stream of the trace, each on a relay queue of
 * its own.
 *
 * A device keeps the simulator's model (sim-device.h): it issues its next N
 * accesses; those whose pages are resident complete, and the engine runs in
 * this process, so "resident" is iopf_space_resident() on its space, what
 * an IOMMU's translation would find: a page the engine evicted faults
 * again. The absent pages, each once, go out as one-page groups in one
 * send(), and the device waits for every answer before its next window.
 *
 * In trace order (the default), windows are issued as the simulator issues
 * them, one at a time: the engine then sees the simulator's batches, and
 * with one worker the counts are the simulator's, exactly. Concurrent
 * devices go in rounds: each issues its next window at once, and the round
 * ends when every window is answered. Several windows are then in flight
 * together, and the order in which streams take room from each other is
 * the engine's (and round robin), not the trace's.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "engine/space.h"
#include "sim.h"

struct replay_config {
	const struct sim_trace *t;
	const struct sim_policy *policy; /* iopfd's own (sim_policy_is_iopfd) */
	uint64_t quota_pages;            /* at least 1 */
	unsigned inflight;               /* at least 1 */
	unsigned workers;                /* engine workers; 0: 1 */
	enum iopf_backend_kind backend;  /* IOPF_BACKEND_SIMULATED or IOPF_BACKEND_MLOCK */
	bool concurrent;                 /* devices in rounds rather than in trace order */
	/* Optional, t->n entries: 1 for each access that found its page
	 * absent, as struct sim_run's. */
	uint8_t *faulted;
};

struct replay_result {
	uint64_t accesses;
	uint64_t faults;   /* accesses that stalled, one per distinct page per window: the groups sent */
	uint64_t windows;  /* windows with at least one fault (the simulator's batches) */
	uint64_t groups;   /* answered by the engine */
	uint64_t invalid;  /* of those, answered INVALID (any makes the run fail) */
	uint64_t reads;    /* engine reads that brought records: the batches it resolved */
	uint64_t maps, unmaps, evictions, mapped_bytes, pinned_peak; /* the space's counters */
	double seconds;    /* from the first window issued to the last answer */
};

/*
 * One replay; the calling thread must be registered with RCU. 0, or a
 * negative errno with *why saying what failed: -EINVAL (a baseline policy,
 * another backend), -ENOMEM, -ETIMEDOUT (an answer did not come within
 * 30 s), -EPROTO (an answer for no group in flight), or what setting up
 * the engine, the space or the sockets returned.
 */
int replay_run(const struct replay_config *c, struct replay_result *out, const char **why);
