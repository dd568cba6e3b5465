/* SPDX-License-Identifier: MIT */
/*
 * The load every handler is measured on, so that iopfd and its baselines see
 * the same thing: one address space with one region (when the handler
 * resolves faults), the bindings of every (queue, device, PASID) to it, one
 * socket pair per relay queue, and an emulator on the device end of each.
 * The harness (iopf-bench.c) and the baselines (baselines.c) build on it; it
 * knows neither.
 *
 * A run: bench_load_new, hand l->dfd[] to the handler, bench_load_drive,
 * stop the handler, bench_load_collect, close what the handler did not take,
 * bench_load_free.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"

struct iopf_bindings;
struct iopf_region;

/* Where the region sits in every bound device's IOVA space, and where the
 * emulators fault. */
#define BENCH_LOAD_IOVA 0x100000000ull

struct bench_load {
	struct iopf_space *space;
	int memfd;
	int *dfd; /* handler ends */
	struct emu_queue **emu;
	/* Open loop: latency by window of scheduled time (see bench.h's
	 * p99_window_us), shared by the emulators. */
	struct iopf_hist *windows;
	unsigned n_windows;
};

/* Address space and bindings (when b is not NULL), socket pairs, emulators. */
void bench_load_new(const struct bench_cfg *c, struct iopf_bindings *b, struct bench_load *l);
/* Drive the emulators for the run's duration; seconds into res. */
void bench_load_drive(const struct bench_cfg *c, struct bench_load *l, struct bench_result *res);
/* Finish the emulators and add their figures to res. */
void bench_load_collect(const struct bench_cfg *c, struct bench_load *l, struct bench_result *res);
void bench_load_free(const struct bench_cfg *c, struct iopf_bindings *b, struct bench_load *l);

/* A sealed memfd of `bytes` for the region, allocated up front when asked.
 * Also what a real daemon is handed when the load made none itself. */
int bench_load_memfd(uint64_t bytes, bool allocate);
/* The load's only region (the mlock backend's own mapping is in its
 * backend_data); NULL when there is none. */
struct iopf_region *bench_load_region(const struct bench_load *l);
