/* SPDX-License-Identifier: MIT */
/*
 * How often this machine takes its CPUs away: one thread per CPU spins on
 * the clock for a while and counts the gaps between two readings. On a
 * virtual machine a gap is the host running something else on that vCPU;
 * no process of the guest sees it coming, and every group in flight then
 * waits for it. The suite prints the figure beside its latencies.
 */
#pragma once

struct bench_gaps {
	unsigned cpus;
	double seconds;         /* spun on each CPU */
	double per_s_100us;     /* gaps over 100 us, per second and CPU */
	double per_s_1ms;       /* gaps over 1 ms, per second and CPU */
	double lost;            /* share of the time spent in gaps over 100 us */
	double longest_us;
};

/* Spin `seconds` on every online CPU at once (at most 64). */
int bench_gaps_measure(double seconds, struct bench_gaps *out);
