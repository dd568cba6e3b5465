/* SPDX-License-Identifier: MIT */
/*
 * What every part of iopf-bench needs from the system, load or no load: the
 * clocks a run is timed with, the CPU a thread runs on, and the one way a
 * part gives up. Kept out of the load (load.h) because the mlock floor and
 * the daemon mode time and fail without one; kept out of the harness
 * (iopf-bench.c) so that nothing below it has to call back up into it.
 * Depends on no other bench file.
 */
#pragma once

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC, in nanoseconds: wall time of a run. */
uint64_t bench_now_ns(void);
/* A CPU-time clock (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID), in
 * seconds: where a run's time went. */
double bench_cpu_seconds(clockid_t id);

/* Run the calling thread on `cpu` only, or on every CPU again for -1.
 * Threads it creates afterwards start with the same set. */
void bench_pin(int cpu);

/* "iopf-bench: what: strerror(|r|)" on stderr, then exit status 1. Setting
 * up or running a measurement either works or the figures mean nothing, so
 * there is nothing to unwind. */
_Noreturn void bench_die(const char *what, int r);
