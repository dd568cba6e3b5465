/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "bindings.h"
#include "shared/time-util.h"
#include "resolve.h"

struct iopf_dedup_slot {
	uint64_t gen;
	const struct iopf_space *space;
	uint64_t page_addr;
	struct iopf_region *region;
};

struct iopf_cookie_slot {
	uint64_t gen;
	uint32_t cookie;
};

struct iopf_miss {
	struct iopf_space *space;
	uint64_t addr;
	uint64_t stream;
};

static size_t pow2_at_least(size_t n) {
	size_t p = 16;
	while (p < n)
		p <<= 1;
	return p;
}

int iopf_resolver_init(struct iopf_resolver *r, struct iopf_bindings *b, size_t max_faults,
                       struct iopf_counters *c) {
	*r = (struct iopf_resolver){.bindings = b, .c = c, .gen = 1, .cookie_gen = 1};
	r->cap_holds = max_faults;
	r->holds = malloc(max_faults * sizeof(*r->holds));
	/* Tables at most half full, so probes stay short. */
	size_t dn = pow2_at_least(2 * max_faults);
	r->dedup = calloc(dn, sizeof(*r->dedup));
	r->dedup_mask = dn - 1;
	r->cookies = calloc(dn, sizeof(*r->cookies));
	r->cookie_mask = dn - 1;
	r->misses = malloc(max_faults * sizeof(*r->misses));
	if (!r->holds || !r->dedup || !r->cookies || !r->misses) {
		iopf_resolver_fini(r);
		return -ENOMEM;
	}
	return 0;
}

void iopf_resolver_fini(struct iopf_resolver *r) {
	free(r->holds);
	free(r->dedup);
	free(r->cookies);
	free(r->misses);
	r->misses = NULL;
	r->holds = NULL;
	r->dedup = NULL;
	r->cookies = NULL;
}

void iopf_resolver_batch(struct iopf_resolver *r, const struct iopf_group *groups, size_t n, size_t span) {
	r->batch = groups;
	r->batch_n = n;
	r->span = span;
	r->coalesce_end = groups;
}

void iopf_resolver_begin(struct iopf_resolver *r) {
	r->batch = NULL;
	r->batch_n = 0;
	r->coalesce_end = NULL;
	r->gen++;
	r->cookie_gen++;
	r->n_holds = 0;
	r->own.gen = 0;
	r->cache = &r->own;
	r->bindings_gen = iopf_bindings_generation(r->bindings);
}

void iopf_resolver_use_cache(struct iopf_resolver *r, struct iopf_binding_cache *cache) {
	r->cache = cache;
}

static void release_from(struct iopf_resolver *r, size_t first) {
	for (size_t i = first; i < r->n_holds; i++)
		iopf_page_release(&r->holds[i]);
	r->n_holds = first;
}

void iopf_resolver_release(struct iopf_resolver *r) {
	release_from(r, 0);
	r->gen++; /* what was held is not known to be mapped any more */
	r->coalesce_end = r->batch; /* the rest of the batch may coalesce again */
}

void iopf_resolver_end(struct iopf_resolver *r) {
	release_from(r, 0);
}

static uint64_t mix(uint64_t x) {
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

bool iopf_resolver_claim_cookie(struct iopf_resolver *r, uint32_t cookie) {
	for (size_t i = mix(cookie) & r->cookie_mask;; i = (i + 1) & r->cookie_mask) {
		struct iopf_cookie_slot *s = &r->cookies[i];
		if (s->gen != r->cookie_gen) {
			s->gen = r->cookie_gen;
			s->cookie = cookie;
			return true;
		}
		if (s->cookie == cookie)
			return false;
	}
}

static struct iopf_dedup_slot *dedup_find(struct iopf_resolver *r, const struct iopf_space *sp,
                                          uint64_t page_addr, bool *found) {
	uint64_t h = mix(page_addr ^ (uintptr_t)sp);
	for (size_t i = h & r->dedup_mask;; i = (i + 1) & r->dedup_mask) {
		struct iopf_dedup_slot *s = &r->dedup[i];
		if (s->gen != r->gen) {
			*found = false;
			return s;
		}
		if (s->space == sp && s->page_addr == page_addr) {
			*found = true;
			return s;
		}
	}
}

static uint32_t invalid(struct iopf_resolver *r, enum iopf_verdict why) {
	IOPF_STAT_INC(r->c->invalid[why]);
	return IOMMUFD_PAGE_RESP_INVALID;
}

/* A cache serves one queue (the per-batch one is reset with each batch),
 * so the key is (device, PASID); it is good while the generation it was
 * filled at is still the table's. The space it names stays alive through
 * this read-side section: a binding is removed (and the generation bumped)
 * before its space can be destroyed after a grace period. */
static struct iopf_space *lookup(struct iopf_resolver *r, uint32_t queue_id, const struct iopf_group *g) {
	struct iopf_binding_cache *c = r->cache;
	if (c->gen == r->bindings_gen && c->dev_id == g->dev_id && c->pasid == g->pasid)
		return c->space;
	struct iopf_binding_key k = {.queue_id = queue_id, .dev_id = g->dev_id, .pasid = g->pasid};
	struct iopf_space *s = iopf_bindings_lookup(r->bindings, &k);
	*c = (struct iopf_binding_cache){.gen = r->bindings_gen, .dev_id = g->dev_id, .pasid = g->pasid, .space = s};
	return s;
}

static uint64_t stream_of(const struct iopf_group *g) {
	return (uint64_t)g->dev_id << 32 | g->pasid;
}

static int miss_cmp(const void *a, const void *b) {
	const struct iopf_miss *x = a, *y = b;
	if (x->space != y->space)
		return (uintptr_t)x->space < (uintptr_t)y->space ? -1 : 1;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/*
 * The first miss of a batch (or of a span): the pages the groups after g
 * (up to the span) will miss, sorted, and each run of adjacent ones mapped
 * with one call. Lone misses are left to their own faults (and
 * fault-around). Runs hold nothing: a page evicted again before its group
 * comes is simply faulted then.
 */
static void coalesce(struct iopf_resolver *r, uint32_t queue_id, const struct iopf_group *g) {
	const struct iopf_group *end = r->batch + r->batch_n;
	if (r->span && (size_t)(end - (g + 1)) > r->span)
		end = g + 1 + r->span;
	r->coalesce_end = end;
	size_t n = 0;
	for (const struct iopf_group *h = g + 1; h < end; h++) {
		if (h->defect != IOPF_GROUP_OK)
			continue;
		struct iopf_space *s = lookup(r, queue_id, h);
		if (!s)
			continue;
		uint64_t page_mask = ~((uint64_t)s->cfg.page_size - 1);
		for (uint32_t i = 0; i < h->n_faults && n < r->cap_holds; i++) {
			uint64_t addr = h->faults[i].addr & page_mask;
			if (!iopf_space_resident(s, addr))
				r->misses[n++] = (struct iopf_miss){.space = s, .addr = addr, .stream = stream_of(h)};
		}
	}
	if (n < 2)
		return;
	qsort(r->misses, n, sizeof(*r->misses), miss_cmp);
	for (size_t i = 0; i < n;) {
		const struct iopf_miss *m = &r->misses[i];
		uint64_t pg = m->space->cfg.page_size, pages = 1;
		size_t j = i + 1;
		for (; j < n && r->misses[j].space == m->space; j++) {
			uint64_t d = r->misses[j].addr - m->addr;
			if (d == (pages - 1) * pg)
				continue; /* the same page again */
			if (d != pages * pg)
				break;
			pages++;
		}
		if (pages > 1)
			iopf_space_map_run(m->space, m->addr, pages, m->stream);
		i = j;
	}
}

/* Hold every page of the group, mapping those that are not: IOPF_SERVED,
 * or why not. */
static enum iopf_verdict hold_pages(struct iopf_resolver *r, uint32_t queue_id, struct iopf_space *s,
                                    const struct iopf_group *g) {
	uint64_t page_mask = ~((uint64_t)s->cfg.page_size - 1);
	for (uint32_t i = 0; i < g->n_faults; i++) {
		const iopf_record *f = &g->faults[i];
		uint32_t perm = f->perm & IOPF_PERM_ALL;
		uint64_t addr = f->addr & page_mask;
		bool found;
		struct iopf_dedup_slot *slot = dedup_find(r, s, addr, &found);
		if (found) {
			/* Mapped and held earlier in this batch; only the
			 * permission may differ. */
			IOPF_STAT_INC(r->c->dedup_hits);
			if (perm & ~slot->region->perm)
				return IOPF_INVALID_PERM;
			continue;
		}
		if (r->n_holds == r->cap_holds)
			return IOPF_INVALID_QUOTA; /* cannot happen: sized for a full batch */
		struct iopf_page_ref *ref = &r->holds[r->n_holds];
		bool mapped;
		enum iopf_verdict v = iopf_space_fault_from(s, addr, perm, f->length, stream_of(g), ref, &mapped);
		if (v != IOPF_SERVED)
			return v;
		if (mapped && r->batch && g >= r->coalesce_end)
			coalesce(r, queue_id, g);
		if (ref->page != IOPF_PAGE_NOT_HELD)
			r->n_holds++;
		*slot = (struct iopf_dedup_slot){.gen = r->gen, .space = s, .page_addr = addr, .region = ref->region};
	}
	return IOPF_SERVED;
}

/* How long a group that fits the quota waits while other workers' batches
 * hold the room. A hold lasts one batch's resolving and write: this is a
 * wait of microseconds, unless the holder's thread is preempted, and a
 * stall is better than failing the device's DMA. */
#define QUOTA_WAIT_NS (100 * 1000 * 1000ull)

static uint32_t resolve(struct iopf_resolver *r, uint32_t queue_id, const struct iopf_group *g) {
	size_t first_hold = r->n_holds;
	if (g->defect != IOPF_GROUP_OK)
		return invalid(r, IOPF_INVALID_DEFECT);
	struct iopf_space *s = lookup(r, queue_id, g);
	if (!s)
		return invalid(r, IOPF_INVALID_NO_BINDING);

	uint64_t deadline = 0;
	for (;;) {
		enum iopf_verdict v = hold_pages(r, queue_id, s, g);
		if (v == IOPF_SERVED)
			break;
		if (v != IOPF_INVALID_QUOTA)
			return invalid(r, v);
		/* No room. A group is refused for quota only when it alone
		 * needs more than the quota: first the room this batch holds
		 * for groups not answered yet, then the room other workers'
		 * batches hold, go. */
		size_t own = r->n_holds - first_hold;
		release_from(r, first_hold);
		if (first_hold > 0)
			return IOPF_RESOLVE_AGAIN;
		r->gen++; /* its pages are not held any more */
		if (!deadline)
			deadline = now_ns() + QUOTA_WAIT_NS;
		if ((own + 1) * s->cfg.page_size > s->cfg.quota || now_ns() > deadline) {
			iopf_space_quota_refused(s);
			return invalid(r, IOPF_INVALID_QUOTA);
		}
		sched_yield();
	}
	IOPF_STAT_INC(r->c->success);
	return IOMMUFD_PAGE_RESP_SUCCESS;
}

uint32_t iopf_resolve_group(struct iopf_resolver *r, uint32_t queue_id, const struct iopf_group *g) {
	uint32_t code = resolve(r, queue_id, g);
	if (code == IOPF_RESOLVE_AGAIN)
		return code;
	/* Counted once resolved, after its outcome: a reader that sees a
	 * group counted sees how it ended. */
	IOPF_STAT_ADD(r->c->faults, g->n_faults);
	IOPF_STAT_INC(r->c->groups);
	return code;
}
