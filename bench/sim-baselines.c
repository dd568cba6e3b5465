/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "sim-baselines.h"
#include "sim-books.h"

#define NIL SIM_NEVER

/* --- an exact LRU order over the universe (intrusive doubly linked list) --- */

struct lru {
	uint32_t *prev, *next;
	uint32_t head, tail; /* most and least recently used, or NIL */
};

static int lru_init(struct lru *l, size_t n) {
	l->prev = malloc((n ? n : 1) * sizeof(*l->prev));
	l->next = malloc((n ? n : 1) * sizeof(*l->next));
	l->head = l->tail = NIL;
	return l->prev && l->next ? 0 : -ENOMEM;
}

static void lru_fini(struct lru *l) {
	free(l->prev);
	free(l->next);
}

static void lru_unlink(struct lru *l, uint32_t u) {
	if (l->prev[u] != NIL)
		l->next[l->prev[u]] = l->next[u];
	else
		l->head = l->next[u];
	if (l->next[u] != NIL)
		l->prev[l->next[u]] = l->prev[u];
	else
		l->tail = l->prev[u];
}

static void lru_push_front(struct lru *l, uint32_t u) {
	l->prev[u] = NIL;
	l->next[u] = l->head;
	if (l->head != NIL)
		l->prev[l->head] = u;
	else
		l->tail = u;
	l->head = u;
}

static void lru_push_back(struct lru *l, uint32_t u) {
	l->next[u] = NIL;
	l->prev[u] = l->tail;
	if (l->tail != NIL)
		l->next[l->tail] = u;
	else
		l->head = u;
	l->tail = u;
}

static void lru_use(struct lru *l, uint32_t u) {
	if (l->head == u)
		return;
	lru_unlink(l, u);
	lru_push_front(l, u);
}

/* What every baseline reports: the books' figures, one eviction per page. */
static void report_books(const struct sim_books *b, uint64_t evictions, struct sim_counts *c) {
	*c = (struct sim_counts){.maps = b->c.maps, .unmaps = b->c.unmaps, .mapped_bytes = b->c.mapped_bytes,
	                         .pinned_peak = b->c.pinned_peak, .evictions = evictions};
}

/* --- lru ------------------------------------------------------------------- */

struct lru_pager {
	struct sim_books *b;
	uint64_t quota;
	uint64_t evictions;
	struct lru l;
};

static void lru_close(void *pp) {
	struct lru_pager *p = pp;
	lru_fini(&p->l);
	free(p);
}

static int lru_open(const struct sim_pager_args *a, void **out) {
	struct lru_pager *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct lru_pager){.b = a->books, .quota = a->quota_pages};
	if (lru_init(&p->l, a->t->n_pages) < 0) {
		lru_close(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

/* Residency is what the books say: every baseline's state starts with
 * its books pointer. */
static bool books_resident(void *pp, uint32_t u) {
	return sim_books_mapped(*(struct sim_books **)pp, u);
}

static void lru_hit(void *pp, uint32_t u, uint32_t pos) {
	lru_use(&((struct lru_pager *)pp)->l, u);
}

static int lru_resolve(void *pp, const struct sim_fault *f, size_t n) {
	struct lru_pager *p = pp;
	for (size_t i = 0; i < n; i++) {
		while (p->b->pinned >= p->quota) {
			uint32_t v = p->l.tail;
			lru_unlink(&p->l, v);
			sim_books_unmap(p->b, v, 1);
			p->evictions++;
		}
		sim_books_map(p->b, f[i].u, 1);
		lru_push_front(&p->l, f[i].u);
		sim_books_touch(p->b, f[i].u);
	}
	return 0;
}

static int lru_report(void *pp, struct sim_counts *c) {
	struct lru_pager *p = pp;
	report_books(p->b, p->evictions, c);
	return 0;
}

const struct sim_pager_ops sim_pager_lru = {
	.open = lru_open,
	.resident = books_resident,
	.hit = lru_hit,
	.resolve = lru_resolve,
	.report = lru_report,
	.close = lru_close,
};

/* --- min ------------------------------------------------------------------- */

/*
 * Belady's MIN: on a fault with the quota full, evict the resident page
 * whose next use lies furthest ahead (never used again: furthest of all).
 * Each page's next use is known from the trace (sim_trace.next); a max-heap
 * of (next use, page) finds the victim in O(log n). A hit changes a page's
 * next use: rather than find its entry, a new one is pushed and the old
 * one is dropped when it surfaces (its key no longer matches the page's).
 * A batch's pages are keyed from the window's last access to them.
 */
struct min_pager {
	struct sim_books *b;
	const uint32_t *next_use;
	uint64_t quota;
	uint64_t evictions;
	uint32_t *key; /* per page: its next use now */
	uint64_t *heap; /* (next use << 32 | page), largest on top */
	size_t heap_n, heap_cap;
	int err; /* a hit that found no memory for its heap entry */
};

static void min_close(void *pp) {
	struct min_pager *p = pp;
	free(p->key);
	free(p->heap);
	free(p);
}

static int min_open(const struct sim_pager_args *a, void **out) {
	struct min_pager *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct min_pager){.b = a->books, .next_use = a->t->next, .quota = a->quota_pages};
	p->key = malloc((a->t->n_pages ? a->t->n_pages : 1) * sizeof(*p->key));
	p->heap_cap = 1024;
	p->heap = malloc(p->heap_cap * sizeof(*p->heap));
	if (!p->key || !p->heap) {
		min_close(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

static int heap_push(struct min_pager *p, uint64_t e) {
	if (p->heap_n == p->heap_cap) {
		uint64_t *h = realloc(p->heap, 2 * p->heap_cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		p->heap = h;
		p->heap_cap *= 2;
	}
	size_t i = p->heap_n++;
	while (i > 0 && p->heap[(i - 1) / 2] < e) {
		p->heap[i] = p->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	p->heap[i] = e;
	return 0;
}

static uint64_t heap_pop(struct min_pager *p) {
	uint64_t top = p->heap[0], e = p->heap[--p->heap_n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= p->heap_n)
			break;
		if (c + 1 < p->heap_n && p->heap[c + 1] > p->heap[c])
			c++;
		if (p->heap[c] <= e)
			break;
		p->heap[i] = p->heap[c];
		i = c;
	}
	if (p->heap_n)
		p->heap[i] = e;
	return top;
}

static int min_key(struct min_pager *p, uint32_t u, uint32_t pos) {
	p->key[u] = p->next_use[pos];
	return heap_push(p, (uint64_t)p->key[u] << 32 | u);
}

static void min_hit(void *pp, uint32_t u, uint32_t pos) {
	struct min_pager *p = pp;
	if (min_key(p, u, pos) < 0)
		p->err = -ENOMEM;
}

static int min_resolve(void *pp, const struct sim_fault *f, size_t n) {
	struct min_pager *p = pp;
	if (p->err)
		return p->err;
	for (size_t i = 0; i < n; i++) {
		while (p->b->pinned >= p->quota) {
			uint64_t e = heap_pop(p);
			uint32_t v = (uint32_t)e;
			if (!sim_books_mapped(p->b, v) || p->key[v] != (uint32_t)(e >> 32))
				continue; /* stale: evicted since, or used again since */
			sim_books_unmap(p->b, v, 1);
			p->evictions++;
		}
		sim_books_map(p->b, f[i].u, 1);
		sim_books_touch(p->b, f[i].u);
		if (min_key(p, f[i].u, f[i].pos) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int min_report(void *pp, struct sim_counts *c) {
	struct min_pager *p = pp;
	report_books(p->b, p->evictions, c);
	return 0;
}

const struct sim_pager_ops sim_pager_min = {
	.open = min_open,
	.resident = books_resident,
	.hit = min_hit,
	.resolve = min_resolve,
	.report = min_report,
	.close = min_close,
};

/* --- uvm-density ------------------------------------------------------------ */

/*
 * The density prefetcher NVIDIA's open UVM driver describes: each 2 MiB
 * block of pages has a bitmap tree over its pages (leaves are pages, each
 * node covers an aligned power-of-two run of them). The tree counts the
 * pages that are resident or faulting in this batch. For each fault, walk
 * up from the page's leaf; the largest subtree in which more than the
 * threshold of pages are resident or faulting (51 %, the driver's default:
 * "more than half") is fetched whole, in one operation.
 *
 * Two departures, both forced by iopfd's setting:
 * - A subtree larger than the quota cannot be fetched: the walk keeps the
 *   largest qualifying subtree that fits.
 * - Eviction is LRU page by page. UVM evicts whole 2 MiB blocks, which
 *   cannot work at quotas below 2 MiB (and the quotas here are fractions
 *   of traces of a few MiB).
 * The driver's other refinements (growing faults to big GPU pages, its
 * thrashing detector, populating a whole block on first touch) are left
 * out: they concern GPU memory, not a fault-around policy.
 */
#define DENSITY_THRESHOLD 51 /* percent */

struct uvm_pager {
	struct sim_books *b;
	uint64_t quota;
	uint64_t evictions;
	uint32_t block_pages; /* the trace's chunk: an aligned run of indices */
	struct lru l;
	uint64_t *resident; /* bitmaps over the universe */
	uint64_t *faulting; /* this batch's faults */
	uint32_t *aside;    /* LRU victims inside the subtree being fetched */
};

static void uvm_close(void *pp) {
	struct uvm_pager *p = pp;
	lru_fini(&p->l);
	free(p->resident);
	free(p->faulting);
	free(p->aside);
	free(p);
}

static int uvm_open(const struct sim_pager_args *a, void **out) {
	struct uvm_pager *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct uvm_pager){.b = a->books, .quota = a->quota_pages, .block_pages = a->t->chunk_pages};
	size_t words = (a->t->n_pages + 63) / 64 + 1;
	p->resident = calloc(words, sizeof(uint64_t));
	p->faulting = calloc(words, sizeof(uint64_t));
	p->aside = malloc(p->block_pages * sizeof(*p->aside));
	if (lru_init(&p->l, a->t->n_pages) < 0 || !p->resident || !p->faulting || !p->aside) {
		uvm_close(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

static void uvm_hit(void *pp, uint32_t u, uint32_t pos) {
	lru_use(&((struct uvm_pager *)pp)->l, u);
}

static bool bit(const uint64_t *m, uint32_t u) {
	return m[u / 64] >> (u % 64) & 1;
}

/* Set bits of a (| b) in the aligned power-of-two run [lo, lo + n). */
static uint32_t count(const uint64_t *a, const uint64_t *b, uint32_t lo, uint32_t n) {
	if (n < 64) {
		uint64_t m = ((1ull << n) - 1) << (lo % 64);
		return (uint32_t)__builtin_popcountll((a[lo / 64] | (b ? b[lo / 64] : 0)) & m);
	}
	uint32_t c = 0;
	for (uint32_t w = lo / 64; w < (lo + n) / 64; w++)
		c += (uint32_t)__builtin_popcountll(a[w] | (b ? b[w] : 0));
	return c;
}

/* The subtree to fetch for a fault on page u: [*lo, *lo + *n). */
static void density_region(const struct uvm_pager *p, uint32_t u, uint32_t *lo, uint32_t *n) {
	*lo = u;
	*n = 1;
	for (uint32_t size = 2; size <= p->block_pages && size <= p->quota; size *= 2) {
		uint32_t first = u & ~(size - 1);
		if (count(p->resident, p->faulting, first, size) * 100 > size * DENSITY_THRESHOLD) {
			*lo = first;
			*n = size;
		}
	}
}

/* Evict LRU pages outside [lo, lo + n) until `need` more pages fit. */
static void uvm_make_room(struct uvm_pager *p, uint64_t need, uint32_t lo, uint32_t n) {
	size_t aside = 0;
	while (p->b->pinned + need > p->quota && p->l.tail != NIL) {
		uint32_t v = p->l.tail;
		lru_unlink(&p->l, v);
		if (v - lo < n) {
			p->aside[aside++] = v; /* the subtree's own resident pages stay */
			continue;
		}
		sim_books_unmap(p->b, v, 1);
		p->resident[v / 64] &= ~(1ull << (v % 64));
		p->evictions++;
	}
	/* Back where they were: at the cold end, in their order. */
	while (aside > 0)
		lru_push_back(&p->l, p->aside[--aside]);
}

static void uvm_fetch(struct uvm_pager *p, uint32_t u) {
	uint32_t lo, n;
	density_region(p, u, &lo, &n);
	uint32_t missing = n - count(p->resident, NULL, lo, n);
	uvm_make_room(p, missing, lo, n);
	bool first_run = true;
	for (uint32_t i = lo; i < lo + n;) {
		if (bit(p->resident, i)) {
			i++;
			continue;
		}
		uint32_t end = i;
		while (end < lo + n && !bit(p->resident, end)) {
			p->resident[end / 64] |= 1ull << (end % 64);
			if (end != u)
				lru_push_front(&p->l, end);
			end++;
		}
		/* One fetch, however many runs the subtree's holes make. */
		if (first_run)
			sim_books_map(p->b, i, end - i);
		else
			sim_books_map_more(p->b, i, end - i);
		first_run = false;
		i = end;
	}
	lru_push_front(&p->l, u); /* the faulting page last: it is the one used */
}

static int uvm_resolve(void *pp, const struct sim_fault *f, size_t n) {
	struct uvm_pager *p = pp;
	/* The tree counts the whole batch's faults, as the driver's does. */
	for (size_t i = 0; i < n; i++)
		p->faulting[f[i].u / 64] |= 1ull << (f[i].u % 64);
	for (size_t i = 0; i < n; i++) {
		uint32_t u = f[i].u;
		if (bit(p->resident, u))
			lru_use(&p->l, u); /* fetched with an earlier fault's subtree */
		else
			uvm_fetch(p, u);
		sim_books_touch(p->b, u);
	}
	for (size_t i = 0; i < n; i++)
		p->faulting[f[i].u / 64] &= ~(1ull << (f[i].u % 64));
	return 0;
}

static int uvm_report(void *pp, struct sim_counts *c) {
	struct uvm_pager *p = pp;
	report_books(p->b, p->evictions, c);
	return 0;
}

const struct sim_pager_ops sim_pager_uvm_density = {
	.open = uvm_open,
	.resident = books_resident,
	.hit = uvm_hit,
	.resolve = uvm_resolve,
	.report = uvm_report,
	.close = uvm_close,
};
