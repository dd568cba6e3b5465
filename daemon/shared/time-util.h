/* SPDX-License-Identifier: MIT */
/* CLOCK_MONOTONIC, the one clock iopfd measures with. */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t now_usec(void) {
	return now_ns() / 1000;
}
