/* SPDX-License-Identifier: MIT */
/*
 * The fault engine: worker threads, each with its own epoll fd and its own
 * set of queues, resolving fault groups against the binding table and
 * answering each exactly once.
 *
 * The control side talks to a worker only through its command queue (a
 * wait-free queue plus an eventfd), so control-plane changes never block the
 * fault path. Commands are synchronous for the caller.
 *
 * Control functions are called from one thread at a time, which must be
 * registered with RCU (iopf_rcu_register()).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "queue.h"
#include "stats.h"

struct iopf_engine;
struct iopf_bindings;

/* The defaults: a read of 64 KiB (1,638 records) holds any group the
 * engine accepts, of up to 512 records (PCIe's 9-bit group index bounds
 * groups in flight, not their length; 512 pages is a 2 MiB stride). */
#define IOPF_ENGINE_READ_BYTES (64u * 1024)
#define IOPF_ENGINE_MAX_GROUP_FAULTS 512u

struct iopf_engine_config {
	unsigned workers;          /* 0: one per online CPU */
	size_t read_bytes;         /* bytes per read (rounded down to whole records); 0: the default */
	unsigned fairness_reads;   /* reads per queue per wake-up before serving others; 0: 8 */
	unsigned max_group_faults; /* longest group accepted; 0: the default */
	unsigned leave_ms;         /* grace for a relay queue being taken back to get the
	                            * rest of a half-read group and take its answers; 0: 200 */
	/* Answer a batch in slices of this many groups, or of this much
	 * resolving time, whichever comes first, so that the first groups of a
	 * long batch do not wait for the maps of the last (0: whole batches). */
	unsigned slice_groups;
	uint64_t slice_ns;
	/* Busy polling: a worker with nothing to do looks at its queues again
	 * for up to this long before it sleeps (0: it sleeps at once). For
	 * hosts that give fault handling cores of their own. */
	uint64_t busy_poll_ns;
	/* Called on the worker's thread when a worker lets go of a queue by
	 * itself (hang-up, protocol error, I/O error). The queue stays
	 * allocated: the control side still calls iopf_engine_remove_queue(). */
	void (*on_queue_closed)(struct iopf_queue *q, enum iopf_queue_close why, void *userdata);
	void *userdata;
	/* Optional: read batches into this journal (one worker per journal
	 * worker area) so that a restarted daemon can answer what a crashed
	 * one had read. Its shape must hold read_bytes and the longest group. */
	const struct iopf_journal *journal;
};

/* The workers asked for, or one per online CPU for 0. */
unsigned iopf_engine_default_workers(unsigned requested);
/* Starts the workers. */
int iopf_engine_new(const struct iopf_engine_config *cfg, struct iopf_engine **out);
/* Stops the workers (each lets go of its queues first) and frees the engine.
 * Queues, bindings' spaces and the bindings table stay the caller's. */
void iopf_engine_free(struct iopf_engine *e);

struct iopf_bindings *iopf_engine_bindings(struct iopf_engine *e);
unsigned iopf_engine_workers(struct iopf_engine *e);

/* Give a queue to the least loaded worker (or to worker `index` with
 * iopf_engine_add_queue_to). */
int iopf_engine_add_queue(struct iopf_engine *e, struct iopf_queue *q);
int iopf_engine_add_queue_to(struct iopf_engine *e, struct iopf_queue *q, unsigned index);

/* Who has the queue once the engine lets go of it. */
enum iopf_release {
	/* Whoever else holds its fd: the worker stops reading it at once
	 * (between two reads of one wake-up, too); every group it read has
	 * been answered; for a relay, the rest of a group it had read the
	 * start of is read and answered and its unsent answers delivered,
	 * within the grace period (cfg.leave_ms), so that the stream is left
	 * at a group boundary. What was not read stays in the queue. */
	IOPF_RELEASE_TO_HOLDER,
	/* The next daemon (a stop that keeps persistent queues): a relay's
	 * partial group and unsent answers stay in the journal for it. */
	IOPF_RELEASE_TO_NEXT_DAEMON,
};

/* Take a queue back. Its bindings stay: remove them afterwards
 * (iopf_bindings_remove_queue()), so that every group read resolves
 * against them. The caller frees the queue. -ENOENT if no worker has it. */
int iopf_engine_remove_queue(struct iopf_engine *e, struct iopf_queue *q, enum iopf_release release);
/* Stop reading a queue for a while (everything read is answered when this
 * returns), and read it again. For changes that must not meet a group half
 * way, e.g. removing every binding to an address space. */
int iopf_engine_pause_queue(struct iopf_engine *e, struct iopf_queue *q);
int iopf_engine_resume_queue(struct iopf_engine *e, struct iopf_queue *q);
/* Every worker flushes what it has buffered for its queues. */
int iopf_engine_drain(struct iopf_engine *e);

/* What recovering one journal entry did. */
struct iopf_recovery {
	size_t answered;             /* groups (or relay answers) sent */
	size_t refused;              /* answers the kernel refused (it had them already) */
	enum iopf_queue_close closed; /* not OPEN: the queue cannot go on */
};

/* Answer (or carry) what a previous daemon's journal held for q, on the
 * calling thread, before q is given to a worker: answers it had made are
 * sent, batches are resolved and answered, a partial group is kept for
 * q's next read. */
int iopf_engine_recover(struct iopf_engine *e, struct iopf_queue *q, const struct iopf_journal_entry *entry,
                        struct iopf_recovery *out);

/* Liveness: ask every worker to answer, without waiting. Returns how many
 * have not answered the previous request: a worker that stays stuck over
 * two calls is hung (the watchdog takes it from there). */
unsigned iopf_engine_ping(struct iopf_engine *e);

/* Merged counters (read without stopping the workers). */
void iopf_engine_counters(struct iopf_engine *e, struct iopf_counters *out);
/* Merged per-group service time (read to response written), in ns; asks
 * every worker for a copy. */
int iopf_engine_service_time(struct iopf_engine *e, struct iopf_hist *out);
