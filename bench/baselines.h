/* SPDX-License-Identifier: MIT */
/*
 * The handlers iopfd is measured against (baselines.c). Each runs on the
 * load c asks for (load.h) and fills res as a run of iopfd would, so the
 * harness can set them side by side; they know nothing of the harness.
 */
#pragma once

#include <stdint.h>

#include "bench.h"

void bench_run_naive(const struct bench_cfg *c, struct bench_result *res);
void bench_run_perqueue(const struct bench_cfg *c, struct bench_result *res);
/* Also the ping-pong floor, given the one-queue, one-group load. */
void bench_run_echo(const struct bench_cfg *c, struct bench_result *res);
/* mlock() windows of window_bytes at random aligned offsets of base[0..len)
 * for duration_ms, munlock()ing the oldest beyond quota bytes, as the mlock
 * backend does on a miss. No load: the harness hands it the mapping iopfd's
 * mlock backend has just used. */
void bench_run_mlock_floor(void *base, uint64_t len, uint64_t window_bytes, uint64_t quota, unsigned duration_ms,
                           uint64_t seed, struct bench_result *res);
