/* SPDX-License-Identifier: MIT */
/*
 * The device emulator: the device side of a relay queue, keeping the
 * kernel's rules. Cookies are allocated lowest-free per queue (the kernel
 * reuses them the same way), a device never has more than `outstanding`
 * groups in flight (like a PRI allocation), groups carry 1..N faults with
 * LAST_PAGE on the last, and every response is checked: a cookie not in
 * flight (unknown or answered twice), a bad code or an unexpected code is a
 * violation; so is a group still unanswered when the run ends. The latency of
 * each group (emitted -> response seen) goes into a histogram.
 *
 * Used by the tests, the benchmarks and the demo. Single-threaded per
 * emu_queue; run many with emu_run().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "iopf_abi.h"
#include "engine/stats.h"

enum emu_pattern {
	EMU_SEQUENTIAL, /* each (device, PASID) walks its range in order */
	EMU_RANDOM,     /* uniform over the range */
	EMU_HOT,        /* 90% of groups in the first 10% of the range */
	EMU_ZIPF,       /* page ranks drawn from a power law (exponent zipf_s),
	                 * ranks scattered over the range */
};

enum emu_sizes {
	EMU_SIZE_UNIFORM,   /* group_min .. group_max, uniform */
	EMU_SIZE_GEOMETRIC, /* group_min + geometric, mean group_mean, clipped at group_max */
};

struct emu_config {
	unsigned devices;     /* devices on this queue */
	uint32_t dev_id_base; /* device ids dev_id_base .. + devices - 1 */
	unsigned pasids;      /* PASIDs per device, 0 for requests without PASID */
	uint32_t pasid_base;
	unsigned outstanding; /* groups in flight per device */
	unsigned group_min, group_max; /* faults per group (see sizes) */
	uint64_t iova_base;   /* each (device, PASID) faults in [base, base + pages * 4096) */
	uint64_t iova_pages;
	enum emu_pattern pattern;
	uint32_t perm;        /* IOMMU_PGFAULT_PERM_* for every fault */
	uint32_t length_hint; /* the record's length field */
	uint64_t seed;
	uint64_t max_groups;  /* stop emitting after this many; 0: until told to stop */
	/* Optional: the code the test expects for a group, or -1 for any. */
	int (*expect)(void *ud, const iopf_record *recs, unsigned n);
	void *expect_ud;
	/* Zero for all of these keeps the defaults: uniform sizes, closed loop. */
	enum emu_sizes sizes;
	double group_mean; /* EMU_SIZE_GEOMETRIC: mean faults per group */
	double zipf_s;     /* EMU_ZIPF: the exponent; 0 means 0.99 */
	/* Open loop: emit `rate` groups/s on a fixed schedule starting phase_ns
	 * after the run starts, whatever the responses do (a group that finds
	 * no free cookie waits for one). Latency is then measured from the
	 * scheduled time, so a handler that falls behind is charged for the
	 * wait. 0: closed loop, every free cookie is used at once. */
	double rate;
	uint64_t phase_ns;
	/* Optional: latency by window of scheduled time as well, windows[i]
	 * taking the groups due in [i, i + 1) * window_ns after the run's
	 * start. The queues of one emulator thread may share the array. */
	struct iopf_hist *windows;
	unsigned n_windows;
	uint64_t window_ns;
};

struct emu_stats {
	uint64_t emitted;        /* groups sent */
	uint64_t faults;         /* records sent */
	uint64_t success;        /* answered SUCCESS */
	uint64_t invalid;        /* answered INVALID */
	uint64_t unknown_cookie; /* violation: response for a cookie never in flight */
	uint64_t duplicate;      /* violation: response for a cookie already answered */
	uint64_t bad_code;       /* violation: neither SUCCESS nor INVALID */
	uint64_t unexpected;     /* violation: not the code expect() asked for */
	uint64_t missing;        /* violation: unanswered at the end */
	uint64_t inflight;       /* groups in flight now */
};

static inline uint64_t emu_violations(const struct emu_stats *s) {
	return s->unknown_cookie + s->duplicate + s->bad_code + s->unexpected + s->missing;
}

struct emu_queue;

/* fd: the device's end of the relay socket (owned by the emu_queue). */
int emu_queue_new(const struct emu_config *cfg, int fd, struct emu_queue **out);
void emu_queue_free(struct emu_queue *q);
int emu_queue_fd(const struct emu_queue *q);
/* Stop emitting new groups (answers are still awaited). */
void emu_queue_stop(struct emu_queue *q);
/* True when it emits no more and has nothing in flight. */
bool emu_queue_done(const struct emu_queue *q);
/* Non-blocking work: take responses, emit what the limits allow, send.
 * Returns 0, or -EPIPE when the daemon side went away. */
int emu_queue_pump(struct emu_queue *q);
/* Whether there are bytes waiting to be sent (poll for POLLOUT). */
bool emu_queue_want_write(const struct emu_queue *q);
/* Count what is still in flight as missing (call at the very end). */
void emu_queue_finish(struct emu_queue *q);
void emu_queue_stats(const struct emu_queue *q, struct emu_stats *out);
/* Start the open-loop schedule at t0 (CLOCK_MONOTONIC ns); emu_run() does
 * this. Without it the schedule starts at the first pump. */
void emu_queue_start(struct emu_queue *q, uint64_t t0);
/* Bytes of records actually sent so far. */
uint64_t emu_queue_bytes_sent(const struct emu_queue *q);
/* Groups still unanswered that lie wholly within the first `offset` bytes
 * sent: a handler that consumed that much has read them and owes answers. */
uint64_t emu_queue_unanswered_before(const struct emu_queue *q, uint64_t offset);
const struct iopf_hist *emu_queue_latency(const struct emu_queue *q);

/*
 * Drive queues from the calling thread until all are done or `timeout_ms`
 * passes (then every queue is stopped and given `grace_ms` more to get its
 * answers). duration_ms > 0: emit for that long, then stop. Returns 0 or a
 * negative errno; per-queue results via emu_queue_stats().
 *
 * The cost per wake-up is proportional to the queues that have something to
 * do, not to all of them: the emulator shares the machine with the handler
 * it measures, and at thousands of queues an O(n) sweep per wake-up would
 * measure the emulator instead.
 */
int emu_run(struct emu_queue **qs, unsigned n, unsigned duration_ms, unsigned timeout_ms, unsigned grace_ms);
/* The same, calling progress(ud, elapsed_ms) about every interval_ms. */
int emu_run_progress(struct emu_queue **qs, unsigned n, unsigned duration_ms, unsigned timeout_ms, unsigned grace_ms,
                     void (*progress)(void *ud, unsigned elapsed_ms), void *ud, unsigned interval_ms);
