/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "engine/backend-simulated.h"
#include "engine/bindings.h"
#include "engine/resolve.h"
#include "sim-books.h"
#include "sim-space.h"
#include "sim-trace.h"
#include "trace.h"

#define QUEUE 0 /* every device comes through one queue */

struct iopfd_pager {
	const struct sim_trace *t;
	struct sim_books *books;
	struct iopf_bindings *bindings;
	struct iopf_space *space;
	struct iopf_resolver res;
	bool res_ready;
	struct iopf_counters counters;
	struct iopf_space_observer obs;
	iopf_record *rec;
	struct iopf_group *groups;
	uint64_t bound[TRACE_STREAMS / 64]; /* streams bound as devices so far */
	int err; /* the first backend call the books could not place */
};

static uint64_t iova_of(const struct iopfd_pager *p, uint32_t u) {
	return sim_trace_page(p->t, u) << p->t->page_shift;
}

/* The space's backend calls, as the books see them. */
static int books_range(struct iopfd_pager *p, uint64_t iova, uint64_t len, uint32_t *first, uint32_t *n) {
	int64_t u = sim_trace_index(p->t, iova >> p->t->page_shift);
	*n = (uint32_t)(len >> p->t->page_shift);
	/* Regions are the trace's own chunks, so a window never leaves them. */
	if (u < 0 || (uint64_t)u + *n > p->t->n_pages) {
		if (!p->err)
			p->err = -ERANGE;
		return -ERANGE;
	}
	*first = (uint32_t)u;
	return 0;
}

static void observe_map(void *ud, uint64_t iova, uint64_t len) {
	uint32_t first, n;
	if (books_range(ud, iova, len, &first, &n) == 0)
		sim_books_map(((struct iopfd_pager *)ud)->books, first, n);
}

static void observe_unmap(void *ud, uint64_t iova, uint64_t len) {
	uint32_t first, n;
	if (books_range(ud, iova, len, &first, &n) == 0)
		sim_books_unmap(((struct iopfd_pager *)ud)->books, first, n);
}

/* One region per run of adjacent chunks: what a client whose memory is
 * where the trace touched it would register. */
static int add_regions(struct iopfd_pager *p) {
	size_t at = 0;
	uint32_t first, pages;
	while (sim_trace_next_region(p->t, &at, &first, &pages)) {
		struct iopf_region_config rc = {.iova = iova_of(p, first), .length = (uint64_t)pages << p->t->page_shift,
		                                .memfd = -1, .perm = IOPF_PERM_READ | IOPF_PERM_WRITE};
		enum iopf_region_refusal why = iopf_space_add_region(p->space, &rc, 0, NULL, NULL);
		if (why == IOPF_REGION_NO_MEMORY)
			return -ENOMEM;
		if (why != IOPF_REGION_ADDED)
			return -EINVAL;
	}
	return 0;
}

static void iopfd_close(void *pp) {
	struct iopfd_pager *p = pp;
	if (p->space) {
		/* What the space unmaps as it goes is not the run's. */
		iopf_space_observe(p->space, NULL);
		if (p->bindings)
			iopf_bindings_remove_space(p->bindings, p->space);
		iopf_space_destroy(p->space);
	}
	iopf_bindings_free(p->bindings);
	if (p->res_ready)
		iopf_resolver_fini(&p->res);
	free(p->rec);
	free(p->groups);
	free(p);
}

static int iopfd_open(const struct sim_pager_args *a, void **out) {
	struct iopfd_pager *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->t = a->t;
	p->books = a->books;
	struct iopf_space_config cfg = a->policy->space;
	cfg.backend = IOPF_BACKEND_SIMULATED;
	cfg.page_size = 1u << a->t->page_shift;
	cfg.quota = a->quota_pages << a->t->page_shift;
	cfg.iommufd = -1;
	int r = iopf_bindings_new(&p->bindings);
	if (r == 0)
		r = iopf_space_new(1, &cfg, &p->space);
	if (r == 0)
		r = add_regions(p);
	if (r == 0) {
		p->obs = (struct iopf_space_observer){.map = observe_map, .unmap = observe_unmap, .userdata = p};
		r = iopf_space_observe(p->space, &p->obs);
	}
	if (r == 0) {
		r = iopf_resolver_init(&p->res, p->bindings, a->inflight, &p->counters);
		p->res_ready = r == 0;
	}
	if (r == 0 && (!(p->rec = calloc(a->inflight, sizeof(*p->rec))) ||
	               !(p->groups = calloc(a->inflight, sizeof(*p->groups)))))
		r = -ENOMEM;
	if (r < 0) {
		iopfd_close(p);
		return r;
	}
	*out = p;
	return 0;
}

static bool iopfd_resident(void *pp, uint32_t u) {
	struct iopfd_pager *p = pp;
	iopf_rcu_read_lock();
	bool r = iopf_space_resident(p->space, iova_of(p, u));
	iopf_rcu_read_unlock();
	return r;
}

/* A device access that finds its page mapped never reaches iopfd: the
 * IOMMU translates it. So the clock's referenced bits see faults only. */
static void iopfd_hit(void *p, uint32_t u, uint32_t pos) {
}

static int bind_stream(struct iopfd_pager *p, uint16_t stream) {
	if (p->bound[stream / 64] & (1ull << (stream % 64)))
		return 0;
	struct iopf_binding_key k = {.queue_id = QUEUE, .dev_id = stream, .pasid = IOPF_PASID_NONE};
	int r = iopf_bindings_add(p->bindings, &k, p->space);
	if (r == 0)
		p->bound[stream / 64] |= 1ull << (stream % 64);
	return r;
}

/* The batch as a worker resolves it: each fault a one-page group, the
 * records as the kernel writes them (a PRI request is one page). When the
 * quota is full of what earlier groups of the batch hold, those groups are
 * answered and let go, and the group is resolved again (answer.c). */
static int iopfd_resolve(void *pp, const struct sim_fault *f, size_t n) {
	struct iopfd_pager *p = pp;
	for (size_t i = 0; i < n; i++) {
		int r = bind_stream(p, f[i].stream);
		if (r < 0)
			return r;
		p->rec[i] = (iopf_record){
			.flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE,
			.dev_id = f[i].stream,
			.perm = f[i].write ? IOPF_PERM_WRITE : IOPF_PERM_READ,
			.addr = iova_of(p, f[i].u),
			.length = 1u << p->t->page_shift,
			.cookie = (uint32_t)i,
		};
	}
	int err = 0;
	iopf_rcu_read_lock();
	iopf_resolver_begin(&p->res);
	for (size_t i = 0; i < n; i++)
		p->groups[i] = (struct iopf_group){.faults = &p->rec[i], .n_faults = 1, .cookie = (uint32_t)i,
		                                   .dev_id = f[i].stream, .pasid = IOPF_PASID_NONE};
	iopf_resolver_batch(&p->res, p->groups, n, 0);
	for (size_t i = 0; i < n; i++) {
		uint32_t code = iopf_resolve_group(&p->res, QUEUE, &p->groups[i]);
		if (code == IOPF_RESOLVE_AGAIN) {
			iopf_resolver_release(&p->res);
			code = iopf_resolve_group(&p->res, QUEUE, &p->groups[i]);
		}
		if (code == IOMMUFD_PAGE_RESP_SUCCESS)
			sim_books_touch(p->books, f[i].u); /* held until answered: mapped now */
	}
	iopf_resolver_end(&p->res);
	iopf_rcu_read_unlock();
	/* Quota refusals are counted by the space; anything else is a fault
	 * of the simulation (every page lies in a region that allows it). */
	for (int v = IOPF_INVALID_DEFECT; v < _IOPF_VERDICT_MAX; v++)
		if (v != IOPF_INVALID_QUOTA && p->counters.invalid[v])
			err = -EIO;
	return err ? err : p->err;
}

static int iopfd_report(void *pp, struct sim_counts *c) {
	struct iopfd_pager *p = pp;
	struct iopf_space_stats st;
	iopf_space_get_stats(p->space, &st);
	*c = (struct sim_counts){.maps = st.maps, .unmaps = st.unmaps, .mapped_bytes = st.mapped_bytes,
	                         .pinned_peak = st.pinned_peak, .evictions = st.evictions,
	                         .quota_refusals = st.quota_refusals};
	if (p->err)
		return p->err;
	/* The space's counters and its backend calls must tell one story. */
	const struct sim_counts *b = &p->books->c;
	if (b->maps != st.maps || b->unmaps != st.unmaps || b->mapped_bytes != st.mapped_bytes ||
	    b->pinned_peak != st.pinned_peak || p->books->pinned << p->t->page_shift != st.pinned_bytes)
		return -EPROTO;
	return 0;
}

const struct sim_pager_ops sim_pager_iopfd = {
	.open = iopfd_open,
	.resident = iopfd_resident,
	.hit = iopfd_hit,
	.resolve = iopfd_resolve,
	.report = iopfd_report,
	.close = iopfd_close,
};
