/* SPDX-License-Identifier: MIT */
/*
 * Address spaces, their regions, and the pages pinned in them: the API the
 * control side uses (the fault path's part is in space-internal.h).
 *
 * An address space (AS) is what a (device, PASID) translates through: a set
 * of regions [iova, iova+length) backed by a memory file, a backend that pins
 * and maps pages, a quota on pinned bytes and a fault-around policy.
 *
 * Threads: everything here is control-plane and must be called from one
 * thread at a time, registered with RCU. Workers fault pages concurrently.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Region permissions; the same bits as the fault records' perm field. */
enum {
	IOPF_PERM_READ = 1u << 0,
	IOPF_PERM_WRITE = 1u << 1,
	IOPF_PERM_EXEC = 1u << 2,
	IOPF_PERM_PRIV = 1u << 3,
	IOPF_PERM_ALL = 0xfu,
};

enum iopf_backend_kind {
	IOPF_BACKEND_NONE,      /* checks only; pins nothing (no quota, no eviction) */
	IOPF_BACKEND_MLOCK,     /* maps the memfd into the daemon and mlocks windows */
	IOPF_BACKEND_IOMMUFD,   /* IOMMU_IOAS_MAP_FILE / IOMMU_IOAS_MAP into an IOAS */
	IOPF_BACKEND_SIMULATED, /* keeps the books as if it pinned, calls nothing: for the
	                         * policy simulator and tests; it has no name, so no
	                         * client can ask for it */
	_IOPF_BACKEND_MAX,
};

const char *iopf_backend_kind_to_string(enum iopf_backend_kind k);
int iopf_backend_kind_from_string(const char *s); /* kind, or -EINVAL */

#define IOPF_QUOTA_UNLIMITED UINT64_MAX

/* How much is mapped around a page that faulted (fault-around.h). */
enum iopf_fault_around {
	IOPF_FAULT_AROUND_DEFAULT, /* the one that measured best (IOPF_FAULT_AROUND_DEFAULT_IS) */
	IOPF_FAULT_AROUND_FIXED,
	IOPF_FAULT_AROUND_ADAPTIVE,
	IOPF_FAULT_AROUND_DENSITY, /* adaptive, and density guesses into free room */
	_IOPF_FAULT_AROUND_MAX,
};

#define IOPF_FAULT_AROUND_DEFAULT_IS IOPF_FAULT_AROUND_ADAPTIVE

/* Which mapped areas go when the quota needs room (evict.h). */
enum iopf_eviction {
	IOPF_EVICTION_DEFAULT, /* the one that measured best (IOPF_EVICTION_DEFAULT_IS) */
	IOPF_EVICTION_CLOCK,
	IOPF_EVICTION_2Q,
	_IOPF_EVICTION_MAX,
};

#define IOPF_EVICTION_DEFAULT_IS IOPF_EVICTION_2Q

const char *iopf_eviction_to_string(enum iopf_eviction e);
int iopf_eviction_from_string(const char *s);

const char *iopf_fault_around_to_string(enum iopf_fault_around f);
int iopf_fault_around_from_string(const char *s);

struct iopf_space_config {
	enum iopf_backend_kind backend;
	uint64_t quota;      /* bytes that may be pinned at once */
	uint32_t page_size;  /* tracking and mapping unit: a power of two >= 4096 */
	uint64_t window_min; /* fault-around: smallest window mapped per fault, bytes */
	uint64_t window_max; /* largest window, bytes (caps the kernel's length hint, and the
	                      * adaptive window; 0 or window_min: 256 KiB for adaptive) */
	enum iopf_fault_around fault_around;
	enum iopf_eviction eviction;
	int iommufd;         /* IOPF_BACKEND_IOMMUFD: the client's iommufd (taken), else -1 */
	uint32_t ioas_id;    /* IOPF_BACKEND_IOMMUFD: the IOAS to map into */
};

struct iopf_region_config {
	uint64_t iova;
	uint64_t length;
	int memfd;       /* taken; -1 only with the none backend */
	uint64_t offset; /* into the memfd */
	uint32_t perm;   /* IOPF_PERM_* */
};

/* What a region is, as the control side sees it. */
struct iopf_region_info {
	uint64_t id;
	uint64_t iova;
	uint64_t length;
	uint64_t offset;
	uint32_t perm;
	int memfd; /* the region's own (borrowed), or -1 */
};

/* Why a region was not added. */
enum iopf_region_refusal {
	IOPF_REGION_ADDED = 0,
	IOPF_REGION_INVALID,      /* sizes, alignment or permissions */
	IOPF_REGION_NOT_MEMFD,    /* not an open, sealable memory file */
	IOPF_REGION_UNSEALED,     /* no F_SEAL_SHRINK: a truncation could fault the daemon */
	IOPF_REGION_OUT_OF_RANGE, /* offset + length lies beyond the end of the memfd */
	IOPF_REGION_OVERLAP,      /* overlaps another region (or its id is taken) */
	IOPF_REGION_BACKEND,      /* the backend refused it (its errno alongside) */
	IOPF_REGION_NO_MEMORY,
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

struct iopf_space;

/*
 * Make an address space; cfg->iommufd is the space's from here on, also
 * when this fails. Errors: -EINVAL (sizes, window, backend), -ENOTTY (the
 * iommufd backend found no iommufd or no such IOAS), -ENOMEM, or the
 * backend's errno.
 */
int iopf_space_new(uint64_t id, const struct iopf_space_config *cfg, struct iopf_space **out);
/* The caller has made the AS unreachable (no bindings left). Waits for a
 * grace period, unmaps everything, frees. */
void iopf_space_destroy(struct iopf_space *s);

uint64_t iopf_space_id(const struct iopf_space *s);
/* Its configuration, the window defaults filled in; iommufd reads -1. */
const struct iopf_space_config *iopf_space_config(const struct iopf_space *s);
/* The fd the backend holds (the iommufd), or -1. */
int iopf_space_backend_fd(const struct iopf_space *s);
void iopf_space_get_stats(struct iopf_space *s, struct iopf_space_stats *out);
size_t iopf_space_region_count(const struct iopf_space *s);
/* Calls fn for each region in iova order (stop early by returning non-zero). */
void iopf_space_foreach_region(const struct iopf_space *s, int (*fn)(const struct iopf_region_info *, void *),
                               void *ud);

/*
 * Add a region; rc->memfd is the region's from here on, also when this
 * fails. id 0 gives the next id; a given id (a region restored after a
 * restart) must be free, and later ids continue above it. On success *out
 * describes the region. On IOPF_REGION_BACKEND, *backend_errno says why.
 */
enum iopf_region_refusal iopf_space_add_region(struct iopf_space *s, const struct iopf_region_config *rc,
                                               uint64_t id, struct iopf_region_info *out, int *backend_errno);
/* Unpublishes the region, waits for a grace period (no worker holds its
 * pages then), unmaps everything pinned in it and frees it. -ENOENT when
 * there is no such region, -ENOMEM. */
int iopf_space_remove_region(struct iopf_space *s, uint64_t region_id);
/* Unmap whatever the backend may still have mapped in a region without this
 * daemon knowing (mappings a crashed daemon made into a kept IOAS). */
void iopf_space_unmap_stale(struct iopf_space *s, uint64_t region_id);
/* Unmap everything pinned (regions stay). Returns bytes released. */
uint64_t iopf_space_evict_all(struct iopf_space *s);
