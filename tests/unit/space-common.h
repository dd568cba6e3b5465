/* SPDX-License-Identifier: MIT */
/* What the unit suites that drive an address space directly share. */
#pragma once

#include "engine/rcu.h"
#include "engine/space-internal.h"

/* One fault inside a read-side section; the hold is released at once. */
static inline enum iopf_verdict space_fault(struct iopf_space *s, uint64_t iova, uint32_t perm) {
	struct iopf_page_ref ref;
	iopf_rcu_read_lock();
	enum iopf_verdict r = iopf_space_fault(s, iova, perm, 0, &ref);
	if (r == IOPF_SERVED)
		iopf_page_release(&ref);
	iopf_rcu_read_unlock();
	return r;
}

static inline uint64_t space_pinned(struct iopf_space *s) {
	struct iopf_space_stats st;
	iopf_space_get_stats(s, &st);
	return st.pinned_bytes;
}
