/* SPDX-License-Identifier: MIT */
/*
 * Address spaces, their regions, and the pages pinned in them.
 *
 * An address space (AS) is what a (device, PASID) translates through: a set
 * of regions [iova, iova+length) backed by a memory file, a backend that pins
 * and maps pages, a quota on pinned bytes and a fault-around policy.
 *
 * Regions of an AS are an immutable sorted array behind an RCU pointer,
 * replaced as a whole on change. Each region carries one 16-bit state word per
 * page: pinned, referenced (for the clock), being evicted, and a hold count
 * of the groups being resolved that need the page. The fault path reads the
 * array and takes a hold with one compare-and-swap; only mapping and evicting
 * take the AS's lock, so several workers can share an AS.
 *
 * Threads: iopf_space_fault() and iopf_page_release() run on workers inside
 * an RCU read-side section. Everything else is control-plane and must be
 * called from one thread at a time.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rcu.h"

struct iopf_backend_ops;

/* Region permissions; the same bits as the fault records' perm field. */
enum {
	IOPF_PERM_READ = 1u << 0,
	IOPF_PERM_WRITE = 1u << 1,
	IOPF_PERM_EXEC = 1u << 2,
	IOPF_PERM_PRIV = 1u << 3,
	IOPF_PERM_ALL = 0xfu,
};

enum iopf_backend_kind {
	IOPF_BACKEND_NONE,    /* checks only; maps nothing */
	IOPF_BACKEND_MLOCK,   /* maps the memfd into the daemon and mlocks windows */
	IOPF_BACKEND_IOMMUFD, /* IOMMU_IOAS_MAP_FILE / IOMMU_IOAS_MAP into an IOAS */
	_IOPF_BACKEND_MAX,
};

const char *iopf_backend_kind_str(enum iopf_backend_kind k);
int iopf_backend_kind_from_str(const char *s); /* kind, or -EINVAL */

#define IOPF_QUOTA_UNLIMITED UINT64_MAX

struct iopf_space_config {
	enum iopf_backend_kind backend;
	uint64_t quota;      /* bytes that may be pinned at once */
	uint32_t page_size;  /* tracking and mapping unit: a power of two >= 4096 */
	uint64_t window_min; /* fault-around: smallest window mapped per fault, bytes */
	uint64_t window_max; /* largest window, bytes (caps the kernel's length hint) */
	int iommufd;         /* IOPF_BACKEND_IOMMUFD: the client's iommufd (borrowed; duplicated) */
	uint32_t ioas_id;    /* IOPF_BACKEND_IOMMUFD: the IOAS to map into */
};

struct iopf_region_config {
	uint64_t iova;
	uint64_t length;
	int memfd;       /* borrowed (duplicated by the region); -1 only with the none backend */
	uint64_t offset; /* into the memfd */
	uint32_t perm;   /* IOPF_PERM_* */
};

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

/* Counters of an AS, shared by workers: updated under the AS lock. */
struct iopf_space_stats {
	uint64_t pinned_bytes;
	uint64_t pinned_peak;
	uint64_t maps;
	uint64_t mapped_bytes;
	uint64_t unmaps;
	uint64_t evictions;
	uint64_t map_errors;
	uint64_t unmap_errors;
	uint64_t quota_refusals;
};

struct iopf_space {
	uint64_t id;
	struct iopf_space_config cfg;
	uint32_t page_shift;
	const struct iopf_backend_ops *ops;
	void *backend; /* the backend's own state */

	struct iopf_region_set *regions; /* RCU */
	uint64_t next_region_id;         /* control thread only */

	pthread_mutex_t lock; /* mapping, eviction, the area ring */
	struct iopf_area *ring; /* clock order: head is the next eviction candidate */
	size_t ring_cap, ring_head, ring_len;
	struct iopf_space_stats st;

	struct rcu_head rcu;
};

/* A page a group holds while it is being resolved and answered. */
struct iopf_page_ref {
	struct iopf_region *region;
	uint64_t page;
};

/*
 * Control plane. Errors:
 *   -EINVAL   bad configuration (sizes, alignment, permissions, window);
 *   -EBADF    not an open file descriptor;
 *   -EBADFD   the memfd is not a sealable memory file (memfd/shmem);
 *   -EPERM    the memfd lacks F_SEAL_SHRINK (a truncation could fault the daemon);
 *   -ERANGE   offset + length lies beyond the end of the memfd;
 *   -EEXIST   the region overlaps another one;
 *   -ENOENT   no such region;
 *   -ENOTTY   the iommufd backend found no usable iommufd/IOAS;
 *   or what the backend or the allocator returned.
 */
int iopf_space_new(uint64_t id, const struct iopf_space_config *cfg, struct iopf_space **out);
int iopf_space_add_region(struct iopf_space *s, const struct iopf_region_config *rc, uint64_t *out_id);
/* The same with the id given (restoring a region after a restart): -EEXIST
 * if a region has that id. Later ids continue above it. */
int iopf_space_add_region_id(struct iopf_space *s, const struct iopf_region_config *rc, uint64_t id);
/* Unmap whatever the backend may still have mapped in a region without this
 * daemon knowing (mappings a crashed daemon made into a kept IOAS). */
void iopf_space_forget_mappings(struct iopf_space *s, uint64_t region_id);
/* The fd the backend holds (the iommufd), or -1. */
int iopf_space_backend_fd(const struct iopf_space *s);
struct iopf_region *iopf_space_region(struct iopf_space *s, uint64_t region_id);
/* Unpublishes the region, waits for a grace period (no worker holds its
 * pages then), unmaps everything pinned in it and frees it. */
int iopf_space_remove_region(struct iopf_space *s, uint64_t region_id);
/* The caller has made the AS unreachable (no bindings left). Waits for a
 * grace period, unmaps everything, frees. */
void iopf_space_destroy(struct iopf_space *s);
/* Unmap everything pinned (regions stay). Returns bytes released. */
uint64_t iopf_space_evict_all(struct iopf_space *s);
void iopf_space_get_stats(struct iopf_space *s, struct iopf_space_stats *out);
size_t iopf_space_region_count(struct iopf_space *s);

/*
 * Fault path, inside an RCU read-side section. Makes the page at iova mapped
 * with at least `perm`, mapping a fault-around window when it was not, and
 * takes a hold on it (released with iopf_page_release() once the group's
 * response has been written). length_hint is the record's length field.
 * Returns 0, -ENOENT (no region), -EACCES (permission), -EDQUOT (over quota
 * with nothing evictable), -EBUSY (the page's hold count is saturated), or
 * the backend's error (-EIO where the backend's own errno is one of those).
 */
int iopf_space_fault(struct iopf_space *s, uint64_t iova, uint32_t perm, uint32_t length_hint,
                     struct iopf_page_ref *held);
void iopf_page_release(const struct iopf_page_ref *ref);

/* Region lookup in a published set; NULL when no region holds iova. */
struct iopf_region *iopf_region_find(const struct iopf_region_set *set, uint64_t iova);
