/* SPDX-License-Identifier: MIT */
/*
 * Traces made ready for replay (struct sim_trace in sim.h): the universe of
 * pages, each access's page index, stream and direction, and each access's
 * next use; from a trace in memory or from a file, compressed or not.
 */
#pragma once

#include "sim.h"
#include "trace.h"

/* 0, -ENOMEM, -EFBIG (more than 2^32 - 1 accesses or universe pages),
 * -ERANGE (pages whose addresses do not fit in 64 bits). */
int sim_trace_prepare(const struct trace *t, const char *name, struct sim_trace *out);
/*
 * Read a trace file and prepare it; a name ending in ".zst" is read
 * through `zstd -dc`. 0, -ENOENT (no such file, or no zstd to read it with:
 * *why says which), -EBADMSG (not a trace), or prepare's errors.
 */
int sim_trace_load(const char *path, struct sim_trace *out, const char **why);
void sim_trace_free(struct sim_trace *t);
/* Write a trace to a file, through `zstd -c` when its name ends in ".zst":
 * 0, -ENOENT (no zstd: *why says so), -EIO, or open's errno. */
int sim_trace_save(const struct trace *t, const char *path, const char **why);

/* The page number of universe index u. */
uint64_t sim_trace_page(const struct sim_trace *t, uint32_t u);
/* The universe index of a page, or -1 when no chunk of the trace holds it. */
int64_t sim_trace_index(const struct sim_trace *t, uint64_t page);
/*
 * The trace's memory as a client would register it: one region per run of
 * adjacent chunks, so that no fault-around window leaves what the trace
 * touched. From chunk *at on (0 to begin), the next run's first universe
 * page and its length in pages; false when there is none left.
 */
bool sim_trace_next_region(const struct sim_trace *t, size_t *at, uint32_t *first, uint32_t *pages);
