/* SPDX-License-Identifier: MIT */
/*
 * Eviction: which mapped areas go when the quota needs room. Under the
 * space's lock.
 *
 * iopfd sees faults only: a device's access to a mapped page is translated
 * by the IOMMU and never reaches it. So there is no recency to keep, and a
 * clock's referenced bits come from faults alone (it behaves as FIFO).
 * What a fault does tell is that a page came back after it was evicted.
 *
 * clock: one ring, second chance on the referenced bit.
 *
 * 2q: a new area goes to a probation FIFO; one whose faulting page was
 * evicted lately (it is among the ghosts: pages evicted from probation,
 * remembered without their mapping) goes to the main ring, a clock.
 * Probation is evicted first while it holds more than its share of the
 * quota (a quarter at first; it grows when pages evicted from probation
 * come back, and shrinks when pages evicted from the main ring do, as ARC
 * adapts), so a scan or a prefetch that is never used again passes through
 * without pushing out what faults back again and again.
 *
 * A held page is never evicted; an area that cannot be unmapped stays.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct iopf_space;
struct iopf_region;
struct iopf_area;

/* Room to track one more area (so that a mapping is never untracked):
 * 0 or -ENOMEM. */
int iopf_evict_reserve(struct iopf_space *s);
/* A new area (after iopf_evict_reserve()); `hot`: it came back. */
void iopf_evict_track(struct iopf_space *s, struct iopf_area a, bool hot);
/* Whether page p of r was evicted lately; it is forgotten then. */
bool iopf_evict_was_ghost(struct iopf_space *s, const struct iopf_region *r, uint64_t p);
/* Evict until `need` more bytes fit under the quota: false when they
 * cannot (everything left is held). */
bool iopf_evict_for(struct iopf_space *s, uint64_t need);
/* The same for pages nobody faulted yet (fault-around, read ahead): with
 * 2q only probation makes room for them, so that a prefetch never pushes
 * out a page that came back. */
bool iopf_evict_for_prefetch(struct iopf_space *s, uint64_t need);
/* Unmap every area of r (of all regions when r is NULL); takes the lock.
 * With `going`, the regions are about to be freed: an area that cannot be
 * unmapped is forgotten (detach_region() releases what the backend holds).
 * Returns the bytes released. */
uint64_t iopf_evict_unmap(struct iopf_space *s, const struct iopf_region *r, bool going);
void iopf_evict_fini(struct iopf_space *s);
