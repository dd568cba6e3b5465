/* SPDX-License-Identifier: MIT */
/* The knee of the benchmark's latency targets (bench/knee.c): where a curve
 * of p99 against offered rate crosses the limit, on its isotonic fit. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>

#include "knee.h"

static struct knee_curve curve(const double *rate, const double *p99, size_t n) {
	struct knee_curve cv = {0};
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(knee_curve_add(&cv, rate[i], p99[i]), 0);
	return cv;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(knee, interpolates_in_log_rate_and_log_p99) {
	static const double r[] = {100, 200, 400}, p[] = {10, 20, 80};
	struct knee_curve cv = curve(r, p, N(r));
	struct knee_crossing x = knee_crossing(&cv, 40);
	/* log 40 is halfway from log 20 to log 80: halfway from 200 to 400 */
	cr_assert_float_eq(x.knee, 200 * sqrt(2), 1e-9);
	cr_assert_not(x.open_ended);
	cr_assert_eq(x.below, 200);
	cr_assert_eq(x.above, 400);
}

Test(knee, points_come_in_any_order) {
	static const double r[] = {400, 100, 200}, p[] = {80, 10, 20};
	struct knee_curve cv = curve(r, p, N(r));
	cr_assert_eq(cv.rate[0], 100);
	cr_assert_eq(cv.p99[2], 80);
	cr_assert_float_eq(knee_crossing(&cv, 40).knee, 200 * sqrt(2), 1e-9);
}

Test(knee, under_everywhere_is_open_ended) {
	static const double r[] = {100, 200, 400}, p[] = {10, 20, 30};
	struct knee_curve cv = curve(r, p, N(r));
	struct knee_crossing x = knee_crossing(&cv, 40);
	cr_assert(x.open_ended);
	cr_assert_eq(x.knee, 400);
	cr_assert_eq(x.above, 0);
}

Test(knee, over_at_the_lowest_rate_is_no_knee) {
	static const double r[] = {100, 200}, p[] = {50, 60};
	struct knee_curve cv = curve(r, p, N(r));
	struct knee_crossing x = knee_crossing(&cv, 40);
	cr_assert_eq(x.knee, 0);
	cr_assert_not(x.open_ended);
	cr_assert_eq(x.below, 0);
	cr_assert_eq(x.above, 100);
}

Test(knee, an_empty_curve_has_no_knee) {
	struct knee_curve cv = {0};
	struct knee_crossing x = knee_crossing(&cv, 40);
	cr_assert_eq(x.knee, 0);
	cr_assert_not(x.open_ended);
}

/* One draw far over the limit among draws under it does not decide: it is
 * pooled with its neighbours at their median. */
Test(knee, one_spike_among_rates_under_the_limit_is_outvoted) {
	static const double r[] = {1e3, 2e3, 4e3, 8e3, 16e3, 32e3}, p[] = {10, 10, 1000, 10, 10, 10};
	struct knee_curve cv = curve(r, p, N(r));
	struct knee_crossing x = knee_crossing(&cv, 40);
	cr_assert(x.open_ended);
	cr_assert_eq(x.knee, 32e3);
}

/* A spike is one vote whatever its size: the fit takes medians, not
 * means, so far over the limit or just over, the knee is the same. */
Test(knee, a_spike_weighs_no_more_than_a_point_just_over) {
	static const double r[] = {1e3, 2e3, 4e3, 8e3, 16e3, 32e3}, far[] = {10, 10, 1e6, 30, 30, 100},
	                    near[] = {10, 10, 41, 30, 30, 100};
	struct knee_curve a = curve(r, far, N(r)), b = curve(r, near, N(r));
	struct knee_crossing xa = knee_crossing(&a, 40), xb = knee_crossing(&b, 40);
	cr_assert_float_eq(xa.knee, xb.knee, 1e-6);
	/* 4 k to 16 k pooled at 30: the crossing is past 16 k */
	cr_assert_eq(xa.below, 16e3);
	cr_assert_eq(xa.above, 32e3);
}

/* A queue that grows is over the limit at every rate past the knee. */
Test(knee, a_growing_queue_crosses_once) {
	static const double r[] = {1e3, 2e3, 4e3, 8e3, 16e3}, p[] = {10, 12, 15, 500, 5000};
	struct knee_curve cv = curve(r, p, N(r));
	struct knee_crossing x = knee_crossing(&cv, 100);
	cr_assert_gt(x.knee, 4e3);
	cr_assert_lt(x.knee, 8e3);
	cr_assert_eq(x.below, 4e3);
	cr_assert_eq(x.above, 8e3);
}

Test(knee, a_full_curve_refuses_more) {
	struct knee_curve cv = {0};
	for (size_t i = 0; i < KNEE_MAX_POINTS; i++)
		cr_assert_eq(knee_curve_add(&cv, (double)i, 1), 0);
	cr_assert_eq(knee_curve_add(&cv, 1e9, 1), -E2BIG);
	cr_assert_eq(cv.n, KNEE_MAX_POINTS);
}
