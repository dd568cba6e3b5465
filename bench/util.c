/* SPDX-License-Identifier: MIT */
/*
 * The clocks, the pinning and the exit on failure every part of iopf-bench
 * shares.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

void bench_pin(int cpu) {
	cpu_set_t set;
	CPU_ZERO(&set);
	long n = sysconf(_SC_NPROCESSORS_CONF);
	for (long i = 0; i < n && i < CPU_SETSIZE; i++)
		if (cpu < 0 || i == cpu)
			CPU_SET(i, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		bench_die("sched_setaffinity", errno);
}

void bench_die(const char *what, int r) {
	fprintf(stderr, "iopf-bench: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}
