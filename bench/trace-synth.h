/* SPDX-License-Identifier: MIT */
/*
 * Synthetic access traces, made in the process from a name, a size and a
 * seed: the same trace on every machine.
 *
 *   seq      sequential sweeps over the footprint (odd sweeps write)
 *   stride   a fixed stride through it (9 pages, or the next stride
 *            coprime with the footprint, so a lap touches every page)
 *   random   uniform
 *   zipf     Zipf, s = 1.1, the ranks scattered over the footprint
 *   phases   a working set of a quarter of the footprint that moves
 *            through eight phases, each a different pattern
 *   streams  four devices, each sweeping its own quarter, interleaved
 *
 * The generators follow the format's rule (trace.h): a stream's access
 * that repeats its last one (page and direction) is not an access.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "trace.h"

struct synth_size {
	size_t pages;    /* the footprint: at least 16 */
	size_t accesses;
	uint64_t seed;   /* 0: the name's own */
};

#define SYNTH_PAGES 4096
#define SYNTH_ACCESSES (1u << 20)
#define SYNTH_QUICK_PAGES 1024
#define SYNTH_QUICK_ACCESSES (1u << 17)

/* The names, in the order they are listed above. */
const char *const *trace_synth_names(size_t *n);
/* 0, -EINVAL (unknown name, fewer than 16 pages), -ENOMEM. */
int trace_synth(const char *name, const struct synth_size *size, struct trace *out);
