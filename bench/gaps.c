/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "gaps.h"
#include "util.h"

#define MAX_CPUS 64

struct spinner {
	pthread_t t;
	int cpu;
	uint64_t ns;
	uint64_t over_100us, over_1ms, lost_ns, longest_ns;
};

static void *spin(void *arg) {
	struct spinner *s = arg;
	bench_pin(s->cpu);
	uint64_t last = bench_now_ns(), end = last + s->ns;
	while (last < end) {
		uint64_t now = bench_now_ns(), d = now - last;
		last = now;
		if (d <= 100000)
			continue;
		s->over_100us++;
		s->over_1ms += d > 1000000;
		s->lost_ns += d;
		if (d > s->longest_ns)
			s->longest_ns = d;
	}
	return NULL;
}

int bench_gaps_measure(double seconds, struct bench_gaps *out) {
	struct spinner sp[MAX_CPUS];
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return -EINVAL;
	if (n > MAX_CPUS)
		n = MAX_CPUS;
	memset(sp, 0, sizeof(sp));
	long started = 0;
	for (long i = 0; i < n; i++) {
		sp[i].cpu = (int)i;
		sp[i].ns = (uint64_t)(seconds * 1e9);
		if (pthread_create(&sp[i].t, NULL, spin, &sp[i]) != 0)
			break;
		started++;
	}
	for (long i = 0; i < started; i++)
		pthread_join(sp[i].t, NULL);
	if (!started)
		return -EAGAIN;
	*out = (struct bench_gaps){.cpus = (unsigned)started, .seconds = seconds};
	uint64_t lost = 0;
	for (long i = 0; i < started; i++) {
		out->per_s_100us += (double)sp[i].over_100us;
		out->per_s_1ms += (double)sp[i].over_1ms;
		lost += sp[i].lost_ns;
		if ((double)sp[i].longest_ns / 1e3 > out->longest_us)
			out->longest_us = (double)sp[i].longest_ns / 1e3;
	}
	double cpu_s = seconds * (double)started;
	out->per_s_100us /= cpu_s;
	out->per_s_1ms /= cpu_s;
	out->lost = (double)lost / 1e9 / cpu_s;
	return 0;
}
