/* SPDX-License-Identifier: MIT */
/*
 * The books of one run: which pages are mapped, which of those a device
 * has touched since they were mapped, and what the mapping cost: map and
 * unmap calls, bytes mapped, pinned bytes and their peak, and the waste
 * (bytes mapped and then unmapped, or still mapped at the end, without a
 * touch in between: what a prefetch brought in for nothing).
 *
 * Baselines map and unmap through these calls; iopfd's space reaches them
 * through its simulated backend's observer, so they count what iopfd's own
 * code did, call by call.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "sim.h"

struct sim_books {
	uint8_t *st;       /* per universe page: SIM_BOOKS_* */
	size_t n_pages;
	uint64_t page_bytes;
	uint64_t pinned;   /* pages mapped now */
	struct sim_counts c; /* maps, unmaps, mapped_bytes, pinned_peak, waste_bytes */
	uint64_t strays;   /* a page mapped twice, unmapped or touched while not mapped: a bug */
};

int sim_books_init(struct sim_books *b, size_t n_pages, uint64_t page_bytes);
void sim_books_fini(struct sim_books *b);

/* One map call of pages [first, first + n). */
void sim_books_map(struct sim_books *b, uint32_t first, uint32_t n);
/* More pages mapped by the call counted last (one fetch of scattered pages). */
void sim_books_map_more(struct sim_books *b, uint32_t first, uint32_t n);
/* One unmap call of pages [first, first + n). */
void sim_books_unmap(struct sim_books *b, uint32_t first, uint32_t n);
/* A device's access to a page completed. */
void sim_books_touch(struct sim_books *b, uint32_t u);
bool sim_books_mapped(const struct sim_books *b, uint32_t u);
/* The end of the run: what is still mapped untouched is waste too. */
void sim_books_close(struct sim_books *b);
