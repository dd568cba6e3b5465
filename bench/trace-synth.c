/* SPDX-License-Identifier: MIT */
/*
 * Determinism: integers throughout, except the Zipf weights, which use
 * only IEEE basic operations (and frexp/ldexp/floor, which are exact) in
 * a fixed order, with contraction into fused multiply-adds off for this
 * file (bench/meson.build): libm's pow and exp may round differently from
 * one C library to the next, and a weight one ulp apart can move a sample.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shared/cleanup.h"
#include "trace-synth.h"

#define BASE_PAGE (1ull << 20) /* footprints start at 4 GiB (of 4 KiB pages) */
#define ZIPF_S 1.1

static const char *const names[] = {"seq", "stride", "random", "zipf", "phases", "streams"};

const char *const *trace_synth_names(size_t *n) {
	*n = sizeof(names) / sizeof(names[0]);
	return names;
}

/* splitmix64 */
static uint64_t rnd(uint64_t *s) {
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n) {
	return rnd(s) % n;
}

struct gen {
	struct trace *t;
	size_t want;
	uint64_t rng;
	uint64_t last[4]; /* per stream: the last word pushed, + 1 */
	int err;
};

/* One access, unless it repeats its stream's last one. */
static void push(struct gen *g, uint16_t stream, uint64_t page, bool write) {
	struct trace_access a = {.page = BASE_PAGE + page, .write = write, .stream = stream};
	uint64_t w = trace_pack(&a);
	if (g->last[stream] == w + 1 || g->err)
		return;
	g->last[stream] = w + 1;
	g->err = trace_push(g->t, &a);
}

static bool more(const struct gen *g) {
	return !g->err && g->t->n < g->want;
}

static bool more_until(const struct gen *g, size_t n) {
	return more(g) && g->t->n < n;
}

/* --- Zipf ---------------------------------------------------------------- */

#define LN2 0.6931471805599453

static double det_log(double x) {
	int e;
	double m = frexp(x, &e); /* [0.5, 1): ln m = 2 atanh((m - 1) / (m + 1)) */
	double z = (m - 1) / (m + 1), z2 = z * z, term = z, sum = 0;
	for (int k = 1; k < 64; k += 2) {
		sum += term / k;
		term *= z2;
	}
	return 2 * sum + e * LN2;
}

static double det_exp(double y) {
	double k = floor(y / LN2), r = y - k * LN2, term = 1, sum = 1;
	for (int i = 1; i < 32; i++) {
		term *= r / i;
		sum += term;
	}
	return ldexp(sum, (int)k);
}

/* Cumulative weights of ranks 1..n, rank r weighing r^-s, in units of
 * 2^-32 (integers from here on). */
static uint64_t *zipf_cdf(size_t n) {
	uint64_t *c = malloc(n * sizeof(*c)), sum = 0;
	if (!c)
		return NULL;
	for (size_t r = 0; r < n; r++) {
		double w = det_exp(-ZIPF_S * det_log((double)(r + 1)));
		sum += (uint64_t)(w * 4294967296.0) + 1;
		c[r] = sum;
	}
	return c;
}

static size_t zipf_rank(const uint64_t *cdf, size_t n, uint64_t *rng) {
	uint64_t x = below(rng, cdf[n - 1]);
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cdf[mid] > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* A random permutation: where each rank lives. */
static size_t *scatter(size_t n, uint64_t *rng) {
	size_t *p = malloc(n * sizeof(*p));
	if (!p)
		return NULL;
	for (size_t i = 0; i < n; i++)
		p[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = below(rng, i + 1), x = p[i];
		p[i] = p[j];
		p[j] = x;
	}
	return p;
}

/* --- the patterns, over [base, base + n) until access `until` ------------- */

static void seq(struct gen *g, size_t base, size_t n, size_t until) {
	for (size_t i = 0; more_until(g, until); i++)
		push(g, 0, base + i % n, (i / n) & 1);
}

static size_t coprime_stride(size_t n) {
	size_t s = 9;
	for (;; s++) {
		size_t a = s, b = n;
		while (b) {
			size_t r = a % b;
			a = b;
			b = r;
		}
		if (a == 1)
			return s;
	}
}

static void stride(struct gen *g, size_t base, size_t n, size_t until) {
	size_t s = coprime_stride(n);
	for (size_t i = 0; more_until(g, until); i++)
		push(g, 0, base + (i * s) % n, false);
}

static void uniform(struct gen *g, size_t base, size_t n, size_t until) {
	while (more_until(g, until)) {
		/* Two draws, in this order: as arguments of one call, the
		 * order would be the compiler's. */
		uint64_t page = below(&g->rng, n);
		bool write = below(&g->rng, 4) == 0;
		push(g, 0, base + page, write);
	}
}

static void zipf(struct gen *g, size_t base, size_t n, size_t until) {
	_cleanup_free_ uint64_t *cdf = zipf_cdf(n);
	_cleanup_free_ size_t *where = scatter(n, &g->rng);
	if (!cdf || !where) {
		g->err = -ENOMEM;
		return;
	}
	while (more_until(g, until)) {
		size_t rank = zipf_rank(cdf, n, &g->rng);
		bool write = below(&g->rng, 4) == 0;
		push(g, 0, base + where[rank], write);
	}
}

#define PHASES 8

static void phases(struct gen *g, size_t n) {
	static void (*const pattern[])(struct gen *, size_t, size_t, size_t) = {seq, uniform, stride, zipf};
	size_t ws = n / 4;
	for (size_t k = 0; k < PHASES && more(g); k++) {
		size_t base = k * (n - ws) / (PHASES - 1);
		pattern[k % 4](g, base, ws, g->want * (k + 1) / PHASES);
	}
}

static void streams(struct gen *g, size_t n) {
	size_t slice = n / 4, at[4] = {0};
	while (more(g)) {
		uint16_t s = (uint16_t)below(&g->rng, 4);
		push(g, s, s * slice + at[s]++ % slice, s == 3); /* the last device writes */
	}
}

static uint64_t name_seed(const char *name) {
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 0x100000001b3ull;
	return h;
}

int trace_synth(const char *name, const struct synth_size *size, struct trace *out) {
	*out = (struct trace){.page_shift = 12};
	if (size->pages < 16)
		return -EINVAL;
	struct gen g = {.t = out, .want = size->accesses, .rng = size->seed ? size->seed : name_seed(name)};
	size_t n = size->pages;
	if (strcmp(name, "seq") == 0)
		seq(&g, 0, n, SIZE_MAX);
	else if (strcmp(name, "stride") == 0)
		stride(&g, 0, n, SIZE_MAX);
	else if (strcmp(name, "random") == 0)
		uniform(&g, 0, n, SIZE_MAX);
	else if (strcmp(name, "zipf") == 0)
		zipf(&g, 0, n, SIZE_MAX);
	else if (strcmp(name, "phases") == 0)
		phases(&g, n);
	else if (strcmp(name, "streams") == 0)
		streams(&g, n);
	else
		return -EINVAL;
	if (g.err) {
		trace_free(out);
		return g.err;
	}
	return 0;
}
