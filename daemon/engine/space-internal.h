/* SPDX-License-Identifier: MIT */
/*
 * The inside of an address space, for the engine: the fault path, the
 * backends, and the tests of both.
 *
 * Regions of an AS are an immutable sorted array behind an RCU pointer,
 * replaced as a whole on change. Each region carries one 16-bit state word per
 * page: pinned, referenced (for the clock), being evicted, and a hold count
 * of the groups being resolved that need the page. The fault path reads the
 * array and takes a hold with one compare-and-swap; only mapping and evicting
 * take the AS's lock, so several workers can share an AS.
 *
 * Threads: iopf_space_fault() and iopf_page_release() run on workers inside
 * an RCU read-side section.
 */
#pragma once

#include <pthread.h>

#include "evict.h"
#include "fault-around.h"
#include "rcu.h"
#include "space.h"
#include "stats.h"

struct iopf_backend_ops;

/* Per-page state word. */
#define IOPF_PAGE_PINNED 0x0001u
#define IOPF_PAGE_REF 0x0002u
#define IOPF_PAGE_EVICTING 0x0004u
#define IOPF_PAGE_HOLD_SHIFT 4
#define IOPF_PAGE_HOLD_ONE (1u << IOPF_PAGE_HOLD_SHIFT)
#define IOPF_PAGE_HOLD_MAX (0xffffu >> IOPF_PAGE_HOLD_SHIFT)

struct iopf_region {
	uint64_t id;
	uint64_t iova;
	uint64_t length;
	uint64_t offset;
	uint32_t perm;
	int memfd;          /* owned; -1 for a region without memory (none backend) */
	uint64_t n_pages;
	uint16_t *page;     /* n_pages state words (lazily backed anonymous memory) */
	void *backend_data; /* e.g. the daemon's mapping of the memfd */
	uint64_t pinned_pages; /* under the AS lock */
	struct rcu_head rcu;
};

struct iopf_region_set {
	size_t n;
	struct rcu_head rcu;
	struct iopf_region *r[]; /* sorted by iova, never overlapping */
};

/* One mapping made by one backend call: evicted and unmapped as a whole
 * (iommufd cannot unmap part of an area). */
struct iopf_area {
	struct iopf_region *region;
	uint64_t first; /* page index in the region */
	uint64_t n;     /* pages */
};

/* Areas in eviction order: head is the next candidate. */
struct iopf_ring {
	struct iopf_area *a;
	size_t cap, head, len;
	uint64_t pages;
};

enum { IOPF_RING_MAIN, IOPF_RING_PROBATION, _IOPF_RINGS };

struct iopf_space {
	uint64_t id;
	struct iopf_space_config cfg;
	uint32_t page_shift;
	const struct iopf_backend_ops *ops;
	void *backend; /* the backend's own state */

	struct iopf_region_set *regions; /* RCU */
	uint64_t next_region_id;         /* control thread only */

	pthread_mutex_t lock; /* mapping, eviction, the area rings */
	struct iopf_ring rings[_IOPF_RINGS]; /* evict.h */
	uint64_t *ghosts;                    /* 2q: pages evicted lately (evict.c) */
	uint64_t ghost_mask;
	uint64_t probation_target; /* 2q: pages probation may hold before it goes first */
	struct iopf_space_stats st;
	uint64_t adaptive_max; /* bytes: the adaptive window's cap */
	struct iopf_stream streams[IOPF_STREAMS]; /* adaptive fault-around, under the lock */
	uint64_t stream_clock;

	struct rcu_head rcu;
};

/* A page a group holds while it is being resolved and answered. */
struct iopf_page_ref {
	struct iopf_region *region;
	uint64_t page; /* IOPF_PAGE_NOT_HELD: served without a hold (nothing pinned) */
};

#define IOPF_PAGE_NOT_HELD UINT64_MAX

/*
 * Fault path, inside an RCU read-side section. Makes the page at iova mapped
 * with at least `perm`, mapping a fault-around window when it was not, and
 * takes a hold on it (released with iopf_page_release() once the group's
 * response has been written). length_hint is the record's length field.
 * Returns IOPF_SERVED, or why the fault cannot be served: NO_REGION, PERM,
 * QUOTA (over quota with nothing evictable, or the page's hold count is
 * saturated; not counted, since the caller may make room and try again)
 * or BACKEND (the backend failed to map; counted in map_errors).
 */
enum iopf_verdict iopf_space_fault(struct iopf_space *s, uint64_t iova, uint32_t perm, uint32_t length_hint,
                                   struct iopf_page_ref *held);
/* The same for a fault of `stream` (dev_id << 32 | pasid: whose accesses
 * adaptive fault-around follows); *mapped tells whether it had to map. */
enum iopf_verdict iopf_space_fault_from(struct iopf_space *s, uint64_t iova, uint32_t perm, uint32_t length_hint,
                                        uint64_t stream, struct iopf_page_ref *held, bool *mapped);
/* Coalescing: map the pages of [iova, iova + n pages) that are not mapped,
 * one call per unpinned stretch, and for an adaptive space what the
 * stream's fault-around maps ahead; what does not fit under the quota is
 * left to the faults. Returns the pages mapped. In an RCU read-side
 * section. */
uint64_t iopf_space_map_run(struct iopf_space *s, uint64_t iova, uint64_t n, uint64_t stream);
void iopf_page_release(const struct iopf_page_ref *ref);
/* Whether the page at iova is mapped now (inside an RCU read-side
 * section): what a device's translation would find. */
bool iopf_space_resident(struct iopf_space *s, uint64_t iova);
/* A group was refused for quota after all (quota_refusals). */
void iopf_space_quota_refused(struct iopf_space *s);

/* Region lookup in a published set; NULL when no region holds iova. */
struct iopf_region *iopf_region_find(const struct iopf_region_set *set, uint64_t iova);
/* The region of that id (control thread), or NULL. */
struct iopf_region *iopf_space_region(struct iopf_space *s, uint64_t region_id);
