/* SPDX-License-Identifier: MIT */
/*
 * Fault-around: how much to map around a page that faulted. Under the
 * space's lock (mapping is the slow path).
 *
 * fixed: the kernel's length hint clamped to [window_min, window_max],
 * rounded up to a power of two of pages and aligned in the region.
 *
 * adaptive: per stream (a device and PASID of the space), as readahead
 * does for files. A miss where the stream's last mapping ended (or, going
 * down, where it began) is a sequential stream: the window doubles, up to
 * window_max, and is mapped ahead of the miss in the stream's direction. A
 * miss anywhere else maps window_min and starts over. density: the same,
 * and a miss in no stream maps the rest of the largest aligned block more
 * than half mapped (as UVM's density prefetcher does), if the quota has
 * room free for it: a guess never evicts anything. A run of adjacent
 * misses of one batch (coalesced into one map call) counts as one
 * sequential step of its length. Random access thus costs no more than
 * fixed windows of window_min; a stream that keeps going is served in
 * ever fewer faults.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct iopf_space;
struct iopf_region;

#define IOPF_STREAMS 16

struct iopf_stream {
	uint64_t key; /* dev_id << 32 | pasid, +1 (0: unused) */
	const struct iopf_region *region;
	uint64_t next;  /* the page after the last mapping going up */
	uint64_t first; /* the first page of the last mapping */
	uint64_t window; /* pages of the next sequential step */
	int dir;         /* +1 up, -1 down, 0 not known yet */
	uint64_t used;   /* when last used (for replacement) */
};

/* The pages to map for a miss at page p of region r by stream `key`:
 * [*first, *end) holds p, lies in r and is at most `room` pages (at least
 * p alone). The stream's state moves on. *guess tells a window chosen by
 * density alone (no stream, no hint): worth mapping into free room, not
 * worth evicting anything for. */
void iopf_fault_around(struct iopf_space *s, struct iopf_region *r, uint64_t p, uint64_t key, uint32_t length_hint,
                       uint64_t room, uint64_t *first, uint64_t *end, bool *guess);

/* A run [first, end) of one batch's misses by stream `key` is about to be
 * mapped: how far past its end (or before its start, going down) to map
 * ahead, in pages, at most `room` (0: nothing). The stream's state moves
 * on as if the run and the ahead part were one step. */
uint64_t iopf_fault_around_run(struct iopf_space *s, struct iopf_region *r, uint64_t first, uint64_t end,
                               uint64_t key, uint64_t room, int *dir);
