/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "rcu.h"
#include "shared/string-table.h"
#include "stats.h"

#if defined(__SANITIZE_THREAD__)
char iopf_rcu_tsan_gp; /* see iopfd/rcu.h */
#endif

static const char *const iopf_verdict_table[_IOPF_VERDICT_MAX] = {
	[IOPF_INVALID_DEFECT] = "defect",
	[IOPF_INVALID_NO_BINDING] = "no_binding",
	[IOPF_INVALID_NO_REGION] = "no_region",
	[IOPF_INVALID_PERM] = "permission",
	[IOPF_INVALID_QUOTA] = "quota",
	[IOPF_INVALID_BACKEND] = "backend",
	[IOPF_INVALID_DROPPED] = "dropped",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(iopf_verdict, enum iopf_verdict)

void iopf_counters_merge(struct iopf_counters *into, const struct iopf_counters *from) {
	/* The struct is all uint64_t: add it field by field, reading each once. */
	uint64_t *d = (uint64_t *)into;
	const uint64_t *s = (const uint64_t *)from;
	for (size_t i = 0; i < sizeof(*into) / sizeof(uint64_t); i++)
		d[i] += __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

uint64_t iopf_counters_invalid_total(const struct iopf_counters *c) {
	uint64_t n = 0;
	for (int i = 0; i < _IOPF_VERDICT_MAX; i++)
		n += c->invalid[i];
	return n;
}

static unsigned hist_index(uint64_t v) {
	if (v < IOPF_HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - IOPF_HIST_SUB_BITS;
	return (shift + 1) * IOPF_HIST_SUB + (unsigned)((v >> shift) & (IOPF_HIST_SUB - 1));
}

/* Largest value that falls into bucket i. */
static uint64_t hist_upper(unsigned i) {
	if (i < IOPF_HIST_SUB)
		return i;
	unsigned shift = i / IOPF_HIST_SUB - 1;
	uint64_t base = (uint64_t)(IOPF_HIST_SUB + i % IOPF_HIST_SUB) << shift;
	return base + ((1ull << shift) - 1);
}

void iopf_hist_add_n(struct iopf_hist *h, uint64_t v, uint64_t n) {
	h->bucket[hist_index(v)] += n;
	h->count += n;
	if (v > h->max)
		h->max = v;
}

void iopf_hist_add(struct iopf_hist *h, uint64_t v) {
	iopf_hist_add_n(h, v, 1);
}

void iopf_hist_merge(struct iopf_hist *into, const struct iopf_hist *from) {
	for (unsigned i = 0; i < IOPF_HIST_BUCKETS; i++)
		into->bucket[i] += from->bucket[i];
	into->count += from->count;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t iopf_hist_quantile(const struct iopf_hist *h, double q) {
	if (h->count == 0)
		return 0;
	if (q <= 0)
		q = 0;
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < IOPF_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen > rank) {
			uint64_t up = hist_upper(i);
			return up < h->max ? up : h->max;
		}
	}
	return h->max;
}
