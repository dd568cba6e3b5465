/* SPDX-License-Identifier: MIT */
/*
 * Backends: how an address space pins and maps a window of a region.
 *
 * Chosen once when the address space is created; the fault path calls
 * through the ops struct only. map/unmap are called under the AS lock with
 * page-aligned offsets into the region; an area mapped by one map call is
 * always unmapped by one unmap call of the same range.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct iopf_space;
struct iopf_region;

struct iopf_backend_ops {
	/* Whether it pins pages: a backend that does not (none) has no quota
	 * to keep, nothing to evict and no pages to hold. */
	bool pins;
	/* Whether it touches the region's memory, which must then be a memfd:
	 * none and simulated only keep books. */
	bool needs_memfd;
	/* Set up the backend's state in s->backend; fd (the iommufd, or -1)
	 * is the backend's, also when this fails. */
	int (*init)(struct iopf_space *s, int fd);
	/* Prepare a new region (e.g. map its memfd into the daemon). */
	int (*attach_region)(struct iopf_space *s, struct iopf_region *r);
	/* Undo attach_region; nothing of the region is mapped any more. */
	void (*detach_region)(struct iopf_space *s, struct iopf_region *r);
	/* Pin and map [off, off+len) of the region; 0 or a negative errno. */
	int (*map)(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len);
	/* Unpin and unmap what one map call mapped. */
	int (*unmap)(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len);
	/* Free s->backend. */
	void (*destroy)(struct iopf_space *s);
	/* The fd the backend keeps (optional): what a restart needs back. */
	int (*fd)(const struct iopf_space *s);
	/* Unmap anything in [off, off+len) of the region, mapped by whoever
	 * (optional; for mappings a crashed daemon left in a kept IOAS). */
	int (*unmap_any)(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len);
};

extern const struct iopf_backend_ops iopf_backend_none;
extern const struct iopf_backend_ops iopf_backend_mlock;
extern const struct iopf_backend_ops iopf_backend_iommufd;
extern const struct iopf_backend_ops iopf_backend_simulated;
