/* SPDX-License-Identifier: MIT */
/*
 * Access traces: what a device (or a program standing in for one) touched,
 * page by page, in order. The policy simulator replays them against iopfd's
 * own space code; the recorder makes them from real programs; the
 * synthetic generators make the textbook patterns.
 *
 * A trace file is a 16-byte header and then one 8-byte little-endian word
 * per access:
 *
 *   header   "iopftrc1" | u32 page_shift (12) | u32 reserved (0)
 *   access   bits  0..47  page number (address >> page_shift)
 *            bit  48      write
 *            bits 49..63  stream: the thread or device that made it
 *
 * Consecutive accesses by one stream to one page with the same direction
 * are one access: a page-granular trace says when the page changes, not
 * how often the program touched it in between. Files are usually kept
 * compressed (zstd); the reader here takes them raw, so callers pipe them
 * through `zstd -dc`.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TRACE_MAGIC "iopftrc1"
#define TRACE_PAGE_BITS 48
#define TRACE_WRITE (1ull << 48)
#define TRACE_STREAM_SHIFT 49
#define TRACE_STREAMS (1u << 15)

struct trace_access {
	uint64_t page;
	bool write;
	uint16_t stream;
};

static inline uint64_t trace_pack(const struct trace_access *a) {
	return (a->page & ((1ull << TRACE_PAGE_BITS) - 1)) | (a->write ? TRACE_WRITE : 0) |
	       ((uint64_t)(a->stream & (TRACE_STREAMS - 1)) << TRACE_STREAM_SHIFT);
}

static inline struct trace_access trace_unpack(uint64_t w) {
	return (struct trace_access){.page = w & ((1ull << TRACE_PAGE_BITS) - 1),
	                             .write = (w & TRACE_WRITE) != 0,
	                             .stream = (uint16_t)(w >> TRACE_STREAM_SHIFT)};
}

/* A whole trace in memory. */
struct trace {
	uint64_t *w; /* packed accesses */
	size_t n, cap;
	unsigned page_shift;
};

/* Writing: header first, then accesses, collapsing a repeat of the last
 * access of the same stream (see above). */
struct trace_writer {
	FILE *f;
	uint64_t last[64]; /* the last word of streams 0..63, +1 (0: none) */
	uint64_t written;
};

int trace_writer_open(struct trace_writer *w, FILE *f, unsigned page_shift);
int trace_writer_add(struct trace_writer *w, const struct trace_access *a);
int trace_writer_close(struct trace_writer *w);

/* The header, TRACE_HEADER_SIZE bytes, for readers that stream: 0 and the
 * page shift, or -EBADMSG for something that is not a trace. */
#define TRACE_HEADER_SIZE 16
int trace_header_parse(const void *header, unsigned *page_shift);

/* Reading a whole trace (raw, not compressed) from f: 0, -EBADMSG for
 * something that is not a trace, -ENOMEM, -EIO. */
int trace_read(FILE *f, struct trace *out);
/* Appending to (and then writing) a trace in memory, for generators. */
int trace_push(struct trace *t, const struct trace_access *a);
void trace_free(struct trace *t);

/* Distinct pages touched (the footprint), in pages. */
size_t trace_footprint(const struct trace *t);
