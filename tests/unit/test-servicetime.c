/* SPDX-License-Identifier: MIT */
/*
 * Statistics.serviceTime, the histogram Prometheus and systemd-report get:
 * each bucket counts exactly the service times up to its bound, as the
 * engine's own histogram (iopf_hist_add) files them, and the sum is within
 * 3.2 % of the true one.
 */
#include <stdlib.h>

#include "../common.h"
#include "control/varlink-methods.h"
#include "engine/stats.h"

static sd_json_variant *export(const struct iopf_hist *h) {
	sd_json_variant *v = NULL;
	cr_assert_eq(stats_service_time(h, &v), 0);
	return v;
}

static uint64_t field(sd_json_variant *o, const char *k) {
	sd_json_variant *f = sd_json_variant_by_key(o, k);
	cr_assert(f && sd_json_variant_is_unsigned(f), "no %s", k);
	return sd_json_variant_unsigned(f);
}

Test(servicetime, every_bucket_is_there_even_when_empty) {
	struct iopf_hist h = {0};
	sd_json_variant *v = export(&h);
	sd_json_variant *b = sd_json_variant_by_key(v, "buckets");
	cr_assert_eq(sd_json_variant_elements(b), SERVICE_TIME_LAST_POW2 - SERVICE_TIME_FIRST_POW2 + 1);
	for (size_t i = 0; i < sd_json_variant_elements(b); i++) {
		sd_json_variant *e = sd_json_variant_by_index(b, i);
		cr_assert_eq(field(e, "leNs"), (1ull << (SERVICE_TIME_FIRST_POW2 + i)) - 1);
		cr_assert_eq(field(e, "count"), 0);
	}
	cr_assert_eq(field(v, "count"), 0);
	cr_assert_eq(field(v, "sumNs"), 0);
	sd_json_variant_unref(v);
}

/* A time of exactly 2^k - 1 ns counts in the bucket of that bound, one of
 * 2^k ns in the next: the bounds fall on the engine's boundaries. */
Test(servicetime, bounds_are_exact) {
	for (unsigned k = SERVICE_TIME_FIRST_POW2; k <= SERVICE_TIME_LAST_POW2; k++) {
		struct iopf_hist h = {0};
		iopf_hist_add(&h, (1ull << k) - 1);
		iopf_hist_add(&h, 1ull << k);
		sd_json_variant *v = export(&h);
		sd_json_variant *b = sd_json_variant_by_key(v, "buckets");
		for (size_t i = 0; i < sd_json_variant_elements(b); i++) {
			unsigned bound = SERVICE_TIME_FIRST_POW2 + (unsigned)i;
			uint64_t want = bound < k ? 0 : bound == k ? 1 : 2;
			cr_assert_eq(field(sd_json_variant_by_index(b, i), "count"), want, "k %u, bucket 2^%u - 1: %lu", k,
			             bound, (unsigned long)field(sd_json_variant_by_index(b, i), "count"));
		}
		cr_assert_eq(field(v, "count"), 2);
		cr_assert_eq(field(v, "maxNs"), 1ull << k);
		sd_json_variant_unref(v);
	}
}

Test(servicetime, counts_are_cumulative_and_the_sum_close) {
	struct iopf_hist h = {0};
	double sum = 0;
	srand(7);
	for (int i = 0; i < 100000; i++) {
		/* A power of two from 2^6 to 2^27 ns, then anywhere up to the
		 * next one; and some beyond the last bound. */
		unsigned e = 6 + (unsigned)(rand() % 22);
		uint64_t t = (1ull << e) + (uint64_t)rand() % (1ull << e);
		if (i % 1000 == 0)
			t = 1ull << 35;
		iopf_hist_add(&h, t);
		sum += (double)t;
	}
	sd_json_variant *v = export(&h);
	sd_json_variant *b = sd_json_variant_by_key(v, "buckets");
	uint64_t prev = 0;
	for (size_t i = 0; i < sd_json_variant_elements(b); i++) {
		uint64_t c = field(sd_json_variant_by_index(b, i), "count");
		cr_assert_geq(c, prev, "cumulative");
		prev = c;
	}
	cr_assert_eq(field(v, "count"), 100000);
	cr_assert_eq(prev, 100000 - 100, "the times past 2^34 ns are in no bucket but the count");
	double err = ((double)field(v, "sumNs") - sum) / sum;
	if (err < 0)
		err = -err;
	cr_assert_lt(err, 0.032, "sum off by %.2f %%", err * 100);
	sd_json_variant_unref(v);
}
