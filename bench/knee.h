/* SPDX-License-Identifier: MIT */
/*
 * Where a curve of tail latency against offered load crosses a limit: the
 * knee of the suite's latency targets (bench/README.md, "The knee"). Pure
 * arithmetic on the points measured, so that tests/unit/test-knee.c checks
 * the code the suite runs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define KNEE_MAX_POINTS 48

/* One handler's curve: the tail (µs) by offered rate, kept sorted by rate. */
struct knee_curve {
	double rate[KNEE_MAX_POINTS], p99[KNEE_MAX_POINTS];
	size_t n;
};

/* -E2BIG when the curve is full. */
int knee_curve_add(struct knee_curve *cv, double rate, double p99_us);

struct knee_crossing {
	double knee;     /* groups/s; 0: over the limit at the lowest rate already */
	bool open_ended; /* under the limit at every rate: knee is the highest rate */
	double below, above; /* the rates tried on either side of the crossing (0: none) */
};

struct knee_crossing knee_crossing(const struct knee_curve *cv, double limit_us);
