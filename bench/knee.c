/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "knee.h"

int knee_curve_add(struct knee_curve *cv, double rate, double p99_us) {
	if (cv->n == KNEE_MAX_POINTS)
		return -E2BIG;
	size_t i = cv->n++;
	for (; i > 0 && cv->rate[i - 1] > rate; i--) {
		cv->rate[i] = cv->rate[i - 1];
		cv->p99[i] = cv->p99[i - 1];
	}
	cv->rate[i] = rate;
	cv->p99[i] = p99_us;
	return 0;
}

/* The median of v[0..n), which it sorts. */
static double median_of(double *v, size_t n) {
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * The p99 of one rate is a draw (a shared machine, a few hundred slowest
 * groups), and where the curve runs flat near the limit a draw on either
 * side of it would decide alone. So the crossing is taken on the curve's
 * closest non-decreasing fit: isotonic regression of log p99 on the rate
 * by least absolute deviations, the pool-adjacent-violators way
 * (neighbours that disagree are pooled at their median, so that a rate
 * far over the limit among rates under it is one vote, whatever its
 * size). The knee is then interpolated in log p99 and log rate between
 * the last fitted point under the limit and the first over.
 */
struct knee_crossing knee_crossing(const struct knee_curve *cv, double limit_us) {
	double lp[KNEE_MAX_POINTS], fit[KNEE_MAX_POINTS], tmp[KNEE_MAX_POINTS], f[KNEE_MAX_POINTS];
	size_t first[KNEE_MAX_POINTS], nb = 0; /* blocks: their first point and their fit */
	for (size_t i = 0; i < cv->n; i++) {
		lp[i] = log(cv->p99[i] > 0 ? cv->p99[i] : 1e-3);
		first[nb] = i;
		fit[nb++] = lp[i];
		while (nb > 1 && fit[nb - 2] > fit[nb - 1]) {
			nb--;
			size_t from = first[nb - 1], n = i + 1 - from;
			memcpy(tmp, &lp[from], n * sizeof(double));
			fit[nb - 1] = median_of(tmp, n);
		}
	}
	for (size_t b = 0; b < nb; b++)
		for (size_t i = first[b]; i < (b + 1 < nb ? first[b + 1] : cv->n); i++)
			f[i] = fit[b];

	struct knee_crossing x = {0};
	double l = log(limit_us);
	size_t j = 0;
	while (j < cv->n && f[j] <= l)
		j++;
	x.open_ended = cv->n > 0 && j == cv->n;
	x.below = j > 0 ? cv->rate[j - 1] : 0;
	x.above = j < cv->n ? cv->rate[j] : 0;
	if (j == 0)
		x.knee = 0;
	else if (j == cv->n)
		x.knee = cv->rate[j - 1];
	else {
		double t = (l - f[j - 1]) / (f[j] - f[j - 1]);
		x.knee = exp(log(cv->rate[j - 1]) + t * (log(cv->rate[j]) - log(cv->rate[j - 1])));
	}
	return x;
}
