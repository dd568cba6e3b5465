/* SPDX-License-Identifier: MIT */
#include "fault-around.h"
#include "space-internal.h"

static uint64_t pow2_ceil(uint64_t n) {
	return n <= 1 ? 1 : 1ull << (64 - __builtin_clzll(n - 1));
}

static uint64_t pages_of(const struct iopf_space *s, uint64_t bytes) {
	uint64_t p = (bytes + s->cfg.page_size - 1) >> s->page_shift;
	return p ? p : 1;
}

/* The stream's entry, or the least recently used one made its. */
static struct iopf_stream *stream_of(struct iopf_space *s, uint64_t key) {
	struct iopf_stream *old = &s->streams[0];
	for (unsigned i = 0; i < IOPF_STREAMS; i++) {
		struct iopf_stream *st = &s->streams[i];
		if (st->key == key + 1) {
			st->used = ++s->stream_clock;
			return st;
		}
		if (st->used < old->used)
			old = st;
	}
	*old = (struct iopf_stream){.key = key + 1, .used = ++s->stream_clock};
	return old;
}

/* The aligned block of w pages (a power of two, halved until it fits in
 * room) that holds p, clipped to the region. */
static void aligned(const struct iopf_region *r, uint64_t p, uint64_t w, uint64_t room, uint64_t *first,
                    uint64_t *end) {
	w = pow2_ceil(w);
	while (w > 1 && w > room)
		w >>= 1;
	*first = p & ~(w - 1);
	*end = *first + w;
	if (*end > r->n_pages)
		*end = r->n_pages;
}

static void fixed(struct iopf_space *s, struct iopf_region *r, uint64_t p, uint32_t length_hint, uint64_t room,
                  uint64_t *first, uint64_t *end) {
	uint64_t want = length_hint ? length_hint : s->cfg.window_min;
	if (want < s->cfg.window_min)
		want = s->cfg.window_min;
	if (want > s->cfg.window_max)
		want = s->cfg.window_max;
	aligned(r, p, pages_of(s, want), room, first, end);
}

/* Density: the largest aligned block around p (4, 16, 64... pages, up to
 * `cap`) of which more than half would be mapped with p: the rest of it is
 * likely to be wanted too. 1 when none. */
static uint64_t dense_block(const struct iopf_space *s, const struct iopf_region *r, uint64_t p, uint64_t cap) {
	uint64_t best = 1;
	for (uint64_t b = 4; b <= cap; b *= 4) {
		uint64_t lo = p & ~(b - 1), hi = lo + b > r->n_pages ? r->n_pages : lo + b, mapped = 1;
		for (uint64_t i = lo; i < hi; i++)
			mapped += i != p && (__atomic_load_n(&r->page[i], __ATOMIC_RELAXED) & IOPF_PAGE_PINNED);
		if (2 * mapped <= hi - lo)
			break;
		best = b;
	}
	return best;
}

void iopf_fault_around(struct iopf_space *s, struct iopf_region *r, uint64_t p, uint64_t key, uint32_t length_hint,
                       uint64_t room, uint64_t *first, uint64_t *end, bool *guess) {
	*guess = false;
	if (room < 1)
		room = 1;
	if (s->cfg.fault_around != IOPF_FAULT_AROUND_ADAPTIVE && s->cfg.fault_around != IOPF_FAULT_AROUND_DENSITY) {
		fixed(s, r, p, length_hint, room, first, end);
		return;
	}
	struct iopf_stream *st = stream_of(s, key);
	if (length_hint > s->cfg.page_size) {
		/* The device says how much it wants: as fixed does. */
		fixed(s, r, p, length_hint, room, first, end);
		*st = (struct iopf_stream){.key = st->key, .used = st->used, .region = r, .first = *first,
		                           .next = *end, .window = *end - *first, .dir = 1};
		return;
	}
	uint64_t wmin = pages_of(s, s->cfg.window_min), wmax = pages_of(s, s->adaptive_max);
	bool up = st->region == r && st->dir >= 0 && p == st->next;
	bool down = st->region == r && st->dir <= 0 && st->first > 0 && p == st->first - 1;
	if (up || down) {
		uint64_t w = st->window * 2;
		st->window = w > wmax ? wmax : w;
		st->dir = up ? 1 : -1;
	} else {
		st->window = wmin;
		st->dir = 0;
	}
	uint64_t w = st->window < room ? st->window : room;
	if (st->dir > 0) {
		*first = p;
		*end = p + w > r->n_pages ? r->n_pages : p + w;
	} else if (st->dir < 0) {
		*end = p + 1;
		*first = p + 1 >= w ? p + 1 - w : 0;
	} else {
		uint64_t dense = s->cfg.fault_around == IOPF_FAULT_AROUND_DENSITY ? dense_block(s, r, p, wmax < room ? wmax : room) : 1;
		aligned(r, p, dense > wmin ? dense : wmin, room, first, end);
		*guess = dense > wmin;
	}
	st->region = r;
	st->first = *first;
	st->next = *end;
}

uint64_t iopf_fault_around_run(struct iopf_space *s, struct iopf_region *r, uint64_t first, uint64_t end,
                               uint64_t key, uint64_t room, int *dir) {
	*dir = 1;
	if (s->cfg.fault_around != IOPF_FAULT_AROUND_ADAPTIVE && s->cfg.fault_around != IOPF_FAULT_AROUND_DENSITY)
		return 0;
	struct iopf_stream *st = stream_of(s, key);
	uint64_t wmax = pages_of(s, s->adaptive_max), len = end - first;
	bool up = st->region == r && st->dir >= 0 && first == st->next;
	bool down = st->region == r && st->dir <= 0 && st->first > 0 && end == st->first;
	/* A run is a sequential step by itself: the next one may be as long
	 * again, twice as long when it continues the stream. */
	uint64_t w = up || down ? (st->window > len ? st->window : len) * 2 : len;
	st->window = w > wmax ? wmax : w;
	st->dir = down ? -1 : 1;
	*dir = st->dir;
	uint64_t ahead = st->window < room ? st->window : room;
	st->region = r;
	if (st->dir > 0) {
		if (end + ahead > r->n_pages)
			ahead = r->n_pages - end;
		st->first = first;
		st->next = end + ahead;
	} else {
		if (ahead > first)
			ahead = first;
		st->first = first - ahead;
		st->next = end;
	}
	return ahead;
}
