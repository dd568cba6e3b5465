/* SPDX-License-Identifier: MIT */
/*
 * The simulated backend: the books are kept as if windows were pinned and
 * mapped (the quota, the fault-around windows, eviction, the map and unmap
 * counts), but no call reaches the kernel. The policy simulator and the
 * tests of the space's accounting run on it; clients cannot choose it (it
 * has no name). An observer, when set, sees every map and unmap call: the
 * simulator counts what was mapped and never touched with it.
 */
#pragma once

#include <stdint.h>

struct iopf_space;

struct iopf_space_observer {
	/* [iova, iova + len) mapped, or unmapped (evicted, or the space going). */
	void (*map)(void *userdata, uint64_t iova, uint64_t len);
	void (*unmap)(void *userdata, uint64_t iova, uint64_t len);
	void *userdata;
};

/* Watch a simulated space's backend calls (the observer must outlive the
 * space, or be unset with NULL first): 0, or -EINVAL for another backend. */
int iopf_space_observe(struct iopf_space *s, const struct iopf_space_observer *o);
