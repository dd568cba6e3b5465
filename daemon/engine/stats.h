/* SPDX-License-Identifier: MIT */
/*
 * Counters and latency histograms.
 *
 * Each worker owns its counters and is their only writer; readers (the
 * control thread) merge them on request. Single-writer counters need no
 * atomic read-modify-write: a relaxed load and store keep the fault path free
 * of locked instructions while readers still see whole values.
 */
#pragma once

#include <stdint.h>

#define IOPF_STAT_ADD(field, n) \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define IOPF_STAT_INC(field) IOPF_STAT_ADD(field, 1)
#define IOPF_STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* How a group was resolved: served (SUCCESS), or why it was answered
 * INVALID. The fault path returns these as values; each INVALID reason has
 * a counter. */
enum iopf_verdict {
	IOPF_SERVED = 0,
	IOPF_INVALID_DEFECT,     /* malformed records (see enum iopf_group_defect) */
	IOPF_INVALID_NO_BINDING, /* unknown (queue, device, PASID) */
	IOPF_INVALID_NO_REGION,  /* address outside every region */
	IOPF_INVALID_PERM,       /* access the region does not allow */
	IOPF_INVALID_QUOTA,      /* over quota with nothing evictable */
	IOPF_INVALID_BACKEND,    /* the backend failed to map */
	IOPF_INVALID_DROPPED,    /* answered INVALID because the queue was dropped */
	_IOPF_VERDICT_MAX,
};

/* "no_binding", "quota", ... as the Statistics name them; NULL for SERVED. */
const char *iopf_verdict_to_string(enum iopf_verdict v);

/* Counters of one worker (or, merged, of the whole engine). */
struct iopf_counters {
	uint64_t groups;          /* groups answered */
	uint64_t faults;          /* fault records in those groups */
	uint64_t success;         /* groups answered SUCCESS */
	uint64_t invalid[_IOPF_VERDICT_MAX]; /* by reason; [IOPF_SERVED] stays 0 */
	uint64_t reads;           /* read()/recv() calls on queues */
	uint64_t empty_reads;     /* reads that found nothing */
	uint64_t writes;          /* write()/send() calls of responses */
	uint64_t epoll_waits;     /* that returned events, or slept */
	uint64_t polls;           /* busy-poll rounds that found nothing */
	uint64_t wakeups;         /* queue events served */
	uint64_t dedup_hits;      /* faults on a page already resolved in the same batch */
	uint64_t write_rejects;   /* responses the kernel refused (a bug if ever non-zero) */
	uint64_t read_errors;     /* failed reads (EIO, ESPIPE, ...) */
	uint64_t write_errors;    /* failed writes other than rejected responses */
	uint64_t protocol_errors; /* relay peers dropped for breaking the protocol */
	uint64_t hangups;         /* relay peers that went away */
	uint64_t carry_overflows; /* partial groups held outside the journal (no free carry slot) */
	uint64_t cut_groups;      /* relay groups taken back half read: their peer never sent the rest */
	uint64_t unsent_responses; /* relay answers never taken: the queue was taken back from a peer
	                            * that had stopped reading */
};

void iopf_counters_merge(struct iopf_counters *into, const struct iopf_counters *from);
uint64_t iopf_counters_invalid_total(const struct iopf_counters *c);

/*
 * Log-linear histogram of nanosecond values: 2^IOPF_HIST_SUB_BITS buckets per
 * power of two, so any value is kept within 1/16 (6.25 %) of itself. Fixed
 * size, no allocation, merged by adding buckets.
 */
#define IOPF_HIST_SUB_BITS 4
#define IOPF_HIST_SUB (1u << IOPF_HIST_SUB_BITS)
#define IOPF_HIST_BUCKETS ((64 - IOPF_HIST_SUB_BITS + 1) * IOPF_HIST_SUB)

struct iopf_hist {
	uint64_t count;
	uint64_t max;
	uint64_t bucket[IOPF_HIST_BUCKETS];
};

void iopf_hist_add(struct iopf_hist *h, uint64_t v);
void iopf_hist_add_n(struct iopf_hist *h, uint64_t v, uint64_t n);
void iopf_hist_merge(struct iopf_hist *into, const struct iopf_hist *from);
/* The value below which a fraction q (0..1) of the samples lie (upper bucket
 * bound, so never an underestimate); 0 for an empty histogram. */
uint64_t iopf_hist_quantile(const struct iopf_hist *h, double q);
