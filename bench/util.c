/* SPDX-License-Identifier: MIT */
/*
 * The clocks and the exit on failure every part of iopf-bench shares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

uint64_t bench_now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double bench_cpu_seconds(clockid_t id) {
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_die(const char *what, int r) {
	fprintf(stderr, "iopf-bench: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}
