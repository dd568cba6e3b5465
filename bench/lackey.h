/* SPDX-License-Identifier: MIT */
/*
 * Valgrind lackey's memory trace (`--tool=lackey --trace-mem=yes`) read as
 * it streams, reduced to page-granular accesses (trace.h).
 *
 * Lackey writes one line per guest access:
 *
 *   I  04010173,3        an instruction fetch: skipped
 *    L 1ffefffd58,8      a load: a read
 *    S 1ffefffd50,8      a store: a write
 *    M 0421ef0,4         a modify (load and store): a write
 *
 * among valgrind's own messages (`==pid== ...`, `--pid-- ...`,
 * `**pid** ...`), which are skipped. An access that straddles a page
 * boundary touches every page it covers, in address order. A repeat of the
 * last access (same page, same direction) is dropped here already, as the
 * trace format would drop it: most of the input is such repeats, and the
 * callback need not see them.
 *
 * Input arrives in chunks of any size (a line may be cut anywhere); only a
 * cut line is kept between chunks, never the input.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "trace.h"

/* Longer lines are not lackey's: its longest is " M <16 hex digits>,<size>". */
#define LACKEY_LINE_MAX 128

/* Receives each page access; a negative return stops the parse with it. */
typedef int (*lackey_emit_fn)(void *ctx, const struct trace_access *a);

struct lackey_counts {
	uint64_t lines, instructions, loads, stores, modifies, messages;
	uint64_t emitted; /* page accesses passed to the callback */
};

struct lackey {
	unsigned page_shift;
	uint16_t stream;
	lackey_emit_fn emit;
	void *ctx;
	struct trace_access last;
	bool have_last;
	char cut[LACKEY_LINE_MAX]; /* the start of a line the last chunk cut */
	size_t cut_len;
	bool skipping; /* the cut line is a long message: skip to its end */
	struct lackey_counts counts;
	/* After -EBADMSG: what was wrong, on which line (1-based), and the
	 * line's start (NUL-terminated, shortened). */
	const char *error;
	uint64_t error_line;
	char error_text[48];
};

void lackey_init(struct lackey *l, unsigned page_shift, uint16_t stream, lackey_emit_fn emit, void *ctx);
/* 0; -EBADMSG for a line that is not lackey's (l->error says why); or the
 * callback's error. */
int lackey_feed(struct lackey *l, const char *buf, size_t len);
/* The end of the input: a last line without a newline is parsed too. */
int lackey_finish(struct lackey *l);
