/* SPDX-License-Identifier: MIT */
/*
 * The policy simulator's vocabulary, types only: a trace made ready for
 * replay, the counts of one run, the pager interface every policy sits
 * behind, and a policy.
 *
 * A pager is what makes pages resident for a device: iopfd's own space and
 * resolver (sim-space.c), or one of the baselines (sim-baselines.c). The
 * device model (sim-device.c) replays a trace against one and counts; the
 * books (sim-books.c) keep what was mapped and what was touched, whoever
 * mapped it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/space.h"

/* Pages are named by their index in the trace's universe (below). */
#define SIM_NEVER UINT32_MAX /* no next use */

/*
 * A trace ready for replay. Its universe is every page of every 2 MiB chunk
 * the trace touches, chunks in address order, so that a page's index and
 * its neighbours' are one apart and a 2 MiB block is an aligned run of
 * indices: fault-around windows and the density prefetcher's blocks are
 * runs of indices, and a dense array over the universe is small.
 */
struct sim_trace {
	char *name;
	unsigned page_shift;
	size_t n;         /* accesses */
	uint32_t *u;      /* per access: its page's universe index */
	uint16_t *meta;   /* per access: stream << 1 | write */
	uint32_t *next;   /* per access: the next access to the same page, or SIM_NEVER */
	size_t footprint; /* distinct pages accessed */
	size_t streams;   /* distinct streams */

	uint32_t chunk_pages; /* pages per chunk: 2 MiB worth, at least 1 */
	size_t n_chunks;
	uint64_t *chunk;  /* the chunks' numbers (page >> log2(chunk_pages)), ascending */
	size_t n_pages;   /* the universe: n_chunks * chunk_pages */
};

static inline uint16_t sim_stream(const struct sim_trace *t, size_t i) {
	return t->meta[i] >> 1;
}

static inline bool sim_write(const struct sim_trace *t, size_t i) {
	return t->meta[i] & 1;
}

/* What one run counted. Byte counts are in bytes of the trace's pages. */
struct sim_counts {
	uint64_t accesses;
	uint64_t faults;  /* accesses that found their page absent: device stalls (distinct pages per window) */
	uint64_t batches; /* windows with at least one fault */
	uint64_t maps;    /* map calls */
	uint64_t unmaps;  /* unmap calls */
	uint64_t mapped_bytes;
	uint64_t pinned_peak;
	uint64_t evictions;
	uint64_t waste_bytes;    /* mapped, then unmapped or left at the end, never touched while mapped */
	uint64_t quota_refusals; /* faults answered INVALID for want of room: must stay 0 */
};

/* A fault the device stalls on: one page, one group. */
struct sim_fault {
	uint32_t u;      /* the page */
	uint32_t pos;    /* the window's last access to it (MIN looks ahead from there) */
	uint16_t stream; /* the device */
	bool write;      /* any of the window's accesses to it writes */
};

struct sim_books;
struct sim_policy;

/* What a pager is given. */
struct sim_pager_args {
	const struct sim_trace *t;
	const struct sim_policy *policy;
	uint64_t quota_pages;
	unsigned inflight; /* the most faults one batch can hold */
	struct sim_books *books;
};

/*
 * A paging policy. Every page it maps or unmaps goes through the books
 * (directly, or through a backend observer), and every fault it answers
 * touches its page there: the device's access completes on the answer.
 */
struct sim_pager_ops {
	int (*open)(const struct sim_pager_args *a, void **out);
	/* Whether a device's access finds the page mapped now. */
	bool (*resident)(void *p, uint32_t u);
	/* A resident page was accessed (trace position pos). */
	void (*hit)(void *p, uint32_t u, uint32_t pos);
	/* One batch of faults on distinct absent pages, answered in order:
	 * 0, or a negative errno (the run means nothing then). */
	int (*resolve)(void *p, const struct sim_fault *f, size_t n);
	/* Fill in what the pager counts itself (maps ... quota_refusals); the
	 * books' own figures are final after this. 0 or a negative errno. */
	int (*report)(void *p, struct sim_counts *c);
	void (*close)(void *p);
};

/* A policy: a name, the pager that runs it, and for iopfd's own code the
 * space configuration the daemon would be given (backend, quota and page
 * size are the run's). */
struct sim_policy {
	const char *name;
	const struct sim_pager_ops *pager;
	struct iopf_space_config space;
	const char *what; /* one line, for --list */
};
