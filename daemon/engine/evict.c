/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "backend.h"
#include "evict.h"
#include "space-internal.h"

static uint16_t page_load(const uint16_t *w) {
	return __atomic_load_n(w, __ATOMIC_ACQUIRE);
}

/* --- rings of areas ------------------------------------------------------------------------ */

static int ring_grow(struct iopf_ring *q) {
	size_t cap = q->cap ? q->cap * 2 : 64;
	struct iopf_area *n = malloc(cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < q->len; i++)
		n[i] = q->a[(q->head + i) % q->cap];
	free(q->a);
	q->a = n;
	q->cap = cap;
	q->head = 0;
	return 0;
}

/* There is room (the caller reserved it, or it was just popped). */
static void ring_push(struct iopf_ring *q, struct iopf_area a) {
	q->a[(q->head + q->len) % q->cap] = a;
	q->len++;
	q->pages += a.n;
}

static struct iopf_area ring_pop(struct iopf_ring *q) {
	struct iopf_area a = q->a[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	q->pages -= a.n;
	return a;
}

int iopf_evict_reserve(struct iopf_space *s) {
	/* Either ring may take it. */
	for (int i = 0; i < _IOPF_RINGS; i++)
		if (s->rings[i].len == s->rings[i].cap && ring_grow(&s->rings[i]) < 0)
			return -ENOMEM;
	return 0;
}

/* --- ghosts: pages evicted from probation lately ----------------------------------------------- */

/* One slot per key, the newest wins: a lossy set of half as many slots as
 * the quota has pages (at least 64), so it remembers the latest evictions.
 * The low bit of a key says which ring the page was evicted from. */
static uint64_t ghost_key(const struct iopf_region *r, uint64_t p) {
	/* The region's id, not its address: the same run gives the same
	 * ghosts whatever the allocator did. */
	uint64_t k = (r->id * 0x9e3779b97f4a7c15ull) ^ (p * 0xc2b2ae3d27d4eb4full);
	return (k | 2) & ~1ull;
}

static void ghost_add(struct iopf_space *s, const struct iopf_region *r, uint64_t p, bool from_main) {
	if (!s->ghosts)
		return;
	uint64_t k = ghost_key(r, p);
	s->ghosts[(k >> 17) & s->ghost_mask] = k | from_main;
}

/*
 * As ARC does, the share of probation follows where the ghosts come back
 * from: a page evicted from probation that comes back says probation was
 * too small (a working set larger than it, say the next phase of a
 * program); one evicted from the main ring says the main ring was.
 */
bool iopf_evict_was_ghost(struct iopf_space *s, const struct iopf_region *r, uint64_t p) {
	if (!s->ghosts)
		return false;
	uint64_t k = ghost_key(r, p), *slot = &s->ghosts[(k >> 17) & s->ghost_mask];
	if ((*slot & ~1ull) != k)
		return false;
	uint64_t quota_pages = s->cfg.quota >> s->page_shift, step = quota_pages / 64 ? quota_pages / 64 : 1;
	if (*slot & 1)
		s->probation_target = s->probation_target > step ? s->probation_target - step : 0;
	else
		s->probation_target = s->probation_target + step < quota_pages ? s->probation_target + step : quota_pages;
	*slot = 0;
	return true;
}

void iopf_evict_track(struct iopf_space *s, struct iopf_area a, bool hot) {
	bool probation = s->cfg.eviction == IOPF_EVICTION_2Q && !hot;
	ring_push(&s->rings[probation ? IOPF_RING_PROBATION : IOPF_RING_MAIN], a);
}

/* --- evicting ------------------------------------------------------------------------------ */

/* Clear the referenced bits of an area; true if any was set (second chance). */
static bool area_take_ref(struct iopf_area *a) {
	bool ref = false;
	for (uint64_t i = 0; i < a->n; i++) {
		uint16_t *w = &a->region->page[a->first + i];
		if (page_load(w) & IOPF_PAGE_REF)
			ref |= __atomic_fetch_and(w, (uint16_t)~IOPF_PAGE_REF, __ATOMIC_ACQ_REL) & IOPF_PAGE_REF;
	}
	return ref;
}

/* Flip every page of the area from pinned-and-unheld to EVICTING, or none. */
static bool area_mark_evicting(struct iopf_area *a) {
	for (uint64_t i = 0; i < a->n; i++) {
		uint16_t *w = &a->region->page[a->first + i];
		uint16_t st = page_load(w);
		for (;;) {
			if ((st >> IOPF_PAGE_HOLD_SHIFT) != 0) {
				/* Held by a group being resolved: undo and skip. */
				for (uint64_t j = 0; j < i; j++)
					__atomic_fetch_and(&a->region->page[a->first + j],
					                   (uint16_t)~IOPF_PAGE_EVICTING, __ATOMIC_RELEASE);
				return false;
			}
			if (__atomic_compare_exchange_n(w, &st, (uint16_t)(st | IOPF_PAGE_EVICTING), true,
			                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				break;
		}
	}
	return true;
}

/* Unmap an area that is marked EVICTING (or that nobody can reach). */
static int area_unmap(struct iopf_space *s, struct iopf_area *a) {
	uint64_t bytes = a->n << s->page_shift;
	int r = s->ops->unmap(s, a->region, a->first << s->page_shift, bytes);
	if (r < 0) {
		/* Still mapped: keep it accounted as pinned. */
		s->st.unmap_errors++;
		for (uint64_t i = 0; i < a->n; i++)
			__atomic_fetch_and(&a->region->page[a->first + i], (uint16_t)~IOPF_PAGE_EVICTING,
			                   __ATOMIC_RELEASE);
		return r;
	}
	for (uint64_t i = 0; i < a->n; i++)
		__atomic_store_n(&a->region->page[a->first + i], 0, __ATOMIC_RELEASE);
	a->region->pinned_pages -= a->n;
	__atomic_store_n(&s->st.pinned_bytes, s->st.pinned_bytes - bytes, __ATOMIC_RELAXED);
	s->st.unmaps++;
	return 0;
}

/* Take an area off the books without unmapping it. */
static void area_forget(struct iopf_space *s, struct iopf_area *a) {
	a->region->pinned_pages -= a->n;
	__atomic_store_n(&s->st.pinned_bytes, s->st.pinned_bytes - (a->n << s->page_shift), __ATOMIC_RELAXED);
}

static bool fits(const struct iopf_space *s, uint64_t need) {
	return s->cfg.quota - s->st.pinned_bytes >= need;
}

/*
 * One turn of the clock over ring q until `need` fits: each area examined
 * at most `limit` times over; with `second_chance`, a referenced area
 * loses its bit and stays. Evicted pages become ghosts when `ghosts`.
 */
static void clock_turn(struct iopf_space *s, struct iopf_ring *q, uint64_t need, size_t limit, bool second_chance,
                       bool from_main) {
	for (size_t examined = 0; !fits(s, need) && q->len > 0 && examined++ < limit;) {
		struct iopf_area a = ring_pop(q);
		if ((second_chance && area_take_ref(&a)) || !area_mark_evicting(&a) || area_unmap(s, &a) < 0) {
			ring_push(q, a); /* cannot fail: the slot was just freed */
			continue;
		}
		for (uint64_t i = 0; i < a.n; i++)
			ghost_add(s, a.region, a.first + i, from_main);
		s->st.evictions++;
	}
}

/*
 * Two turns of the clock give every area its second chance; but other
 * workers set the referenced bits without the lock, so under load every
 * area may have been referenced again by the time the hand comes back.
 * Then one more turn ignores the bits: a fault is refused only when every
 * area is held (or cannot be unmapped), never because the pages are
 * popular. With 2q, probation goes first while it is over its share (a
 * FIFO: its bits are not looked at), then the main ring as a clock, then
 * whatever is left of probation.
 */
bool iopf_evict_for(struct iopf_space *s, uint64_t need) {
	struct iopf_ring *main = &s->rings[IOPF_RING_MAIN], *prob = &s->rings[IOPF_RING_PROBATION];
	if (s->cfg.eviction == IOPF_EVICTION_2Q) {
		while (!fits(s, need) && prob->pages > s->probation_target) {
			size_t before = prob->len;
			clock_turn(s, prob, need, 1, false, false);
			if (prob->len == before)
				break; /* its head is held: leave the rest to the main ring */
		}
	}
	for (int second_chance = 1; second_chance >= 0 && !fits(s, need); second_chance--)
		clock_turn(s, main, need, second_chance ? 2 * main->len + 1 : main->len, second_chance, true);
	if (!fits(s, need))
		clock_turn(s, prob, need, prob->len, false, false);
	return fits(s, need);
}

bool iopf_evict_for_prefetch(struct iopf_space *s, uint64_t need) {
	if (s->cfg.eviction != IOPF_EVICTION_2Q)
		return iopf_evict_for(s, need);
	struct iopf_ring *prob = &s->rings[IOPF_RING_PROBATION];
	clock_turn(s, prob, need, prob->len, false, false);
	return fits(s, need);
}

uint64_t iopf_evict_unmap(struct iopf_space *s, const struct iopf_region *r, bool going) {
	uint64_t released = 0;
	pthread_mutex_lock(&s->lock);
	for (int k = 0; k < _IOPF_RINGS; k++) {
		struct iopf_ring *q = &s->rings[k];
		for (size_t i = 0, n = q->len; i < n; i++) {
			struct iopf_area a = ring_pop(q);
			if (r && a.region != r) {
				ring_push(q, a);
				continue;
			}
			if (!area_mark_evicting(&a) || area_unmap(s, &a) < 0) {
				if (going)
					area_forget(s, &a);
				else
					ring_push(q, a);
				continue;
			}
			released += a.n << s->page_shift;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return released;
}

void iopf_evict_fini(struct iopf_space *s) {
	for (int k = 0; k < _IOPF_RINGS; k++)
		free(s->rings[k].a);
	free(s->ghosts);
}
