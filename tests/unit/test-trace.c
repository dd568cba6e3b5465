/* SPDX-License-Identifier: MIT */
/* Access traces: the file format, its collapse rule, and the reader of
 * valgrind lackey's output the recorder makes traces with. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lackey.h"
#include "trace.h"

#define R(p, s) {.page = (p), .write = false, .stream = (s)}
#define W(p, s) {.page = (p), .write = true, .stream = (s)}

/* Writes the accesses through a trace_writer, reads the file back. */
static struct trace write_and_read(const struct trace_access *a, size_t n) {
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert(f);
	struct trace_writer w;
	cr_assert_eq(trace_writer_open(&w, f, 12), 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(trace_writer_add(&w, &a[i]), 0);
	cr_assert_eq(trace_writer_close(&w), 0);
	fclose(f);
	cr_assert_eq(len, TRACE_HEADER_SIZE + w.written * sizeof(uint64_t));

	struct trace t;
	f = fmemopen(buf, len, "rb");
	cr_assert(f);
	cr_assert_eq(trace_read(f, &t), 0);
	fclose(f);
	free(buf);
	cr_assert_eq(t.page_shift, 12);
	cr_assert_eq(t.n, w.written);
	return t;
}

static void assert_accesses(const struct trace *t, const struct trace_access *want, size_t n) {
	cr_assert_eq(t->n, n, "%zu accesses, expected %zu", t->n, n);
	for (size_t i = 0; i < n; i++) {
		struct trace_access a = trace_unpack(t->w[i]);
		cr_assert(a.page == want[i].page && a.write == want[i].write && a.stream == want[i].stream,
		          "access %zu: page 0x%llx %c stream %u, expected page 0x%llx %c stream %u", i,
		          (unsigned long long)a.page, a.write ? 'W' : 'R', a.stream, (unsigned long long)want[i].page,
		          want[i].write ? 'W' : 'R', want[i].stream);
	}
}

Test(trace, round_trip_keeps_page_direction_and_stream) {
	const struct trace_access a[] = {
		R(0, 0), W(1, 0), R(0xffffffffffffull, 1), W(42, TRACE_STREAMS - 1), R(7, 63), W(7, 64),
	};
	struct trace t = write_and_read(a, 6);
	assert_accesses(&t, a, 6);
	cr_assert_eq(trace_footprint(&t), 5);
	trace_free(&t);
}

Test(trace, a_streams_repeat_of_its_last_access_is_one_access) {
	const struct trace_access in[] = {
		R(5, 0), R(5, 0), /* a repeat: dropped */
		W(5, 0),          /* the other direction: kept */
		R(5, 1),          /* another stream: kept, and does not break stream 0's run */
		W(5, 0),          /* stream 0 repeats its last access across stream 1's: dropped */
		R(6, 0), R(5, 0), /* back to an earlier page: kept */
		R(9, 70), R(9, 70), /* streams from 64 on are not tracked: written as they come */
	};
	const struct trace_access want[] = {R(5, 0), W(5, 0), R(5, 1), R(6, 0), R(5, 0), R(9, 70), R(9, 70)};
	struct trace t = write_and_read(in, sizeof(in) / sizeof(in[0]));
	assert_accesses(&t, want, sizeof(want) / sizeof(want[0]));
	trace_free(&t);
}

static int read_bytes(const void *p, size_t n) {
	FILE *f = fmemopen((void *)p, n, "rb");
	cr_assert(f);
	struct trace t;
	int r = trace_read(f, &t);
	fclose(f);
	if (r == 0)
		trace_free(&t);
	return r;
}

Test(trace, a_bad_header_is_not_a_trace) {
	unsigned char h[TRACE_HEADER_SIZE + 8] = "iopftrc1\x0c\0\0\0\0\0\0\0";
	cr_assert_eq(read_bytes(h, sizeof(h)), 0, "the good header, as a control");
	cr_assert_eq(read_bytes(h, 0), -EBADMSG, "empty");
	cr_assert_eq(read_bytes(h, 10), -EBADMSG, "cut short");
	h[7] = '2';
	cr_assert_eq(read_bytes(h, sizeof(h)), -EBADMSG, "another magic");
	h[7] = '1';
	h[8] = 11;
	cr_assert_eq(read_bytes(h, sizeof(h)), -EBADMSG, "pages under 4 KiB");
	h[8] = 31;
	cr_assert_eq(read_bytes(h, sizeof(h)), -EBADMSG, "pages over 1 GiB");
	unsigned shift;
	cr_assert_eq(trace_header_parse("\x28\xb5\x2f\xfd\0\0\0\0\0\0\0\0\0\0\0\0", &shift), -EBADMSG, "zstd");
}

/* --- lackey --------------------------------------------------------------------- */

struct sink {
	struct trace_access a[64];
	size_t n;
	int fail_at; /* 1-based; 0: never */
};

static int collect(void *ctx, const struct trace_access *a) {
	struct sink *s = ctx;
	if (s->fail_at && (int)s->n + 1 == s->fail_at)
		return -ENOSPC;
	cr_assert_lt(s->n, 64);
	s->a[s->n++] = *a;
	return 0;
}

/* What lackey prints, as it prints it, with valgrind's own lines around. */
static const char canned[] =
	"==4242== Lackey, an example Valgrind tool\n"
	"==4242== Command: ./prog\n"
	"I  04010173,3\n"
	" L 1ffefffd58,8\n"  /* page 0x1ffefff */
	" L 1ffefffd60,8\n"  /* the same page, read again: nothing new */
	"I  04010176,4\n"    /* fetches never show, nor break a run */
	" S 1ffefffd50,8\n"  /* the same page, written */
	" M 0421ef0,4\n"     /* a modify is a write: page 0x421 */
	" L 0421ffe,4\n"     /* straddles: 0x421 and 0x422, read */
	" S 0422ffc,8\n"     /* straddles, written: 0x422, 0x423 */
	" L 04230000,1\n"    /* the first byte of a page */
	" L 4230fff,1\n"     /* and the last of it: the same page */
	"--4242-- a debug line\n"
	" M 7ff0ABCDEF,16\n" /* upper-case hex */
	"==4242== \n"
	"==4242== Counted 1 call to main()\n";

static const struct trace_access canned_want[] = {
	R(0x1ffefff, 3), W(0x1ffefff, 3), W(0x421, 3), R(0x421, 3), R(0x422, 3),
	W(0x422, 3),     W(0x423, 3),     R(0x4230, 3),    W(0x7ff0abc, 3),
};

static struct sink parse_in_chunks(const char *text, size_t len, size_t chunk, struct lackey *l) {
	struct sink s = {0};
	lackey_init(l, 12, 3, collect, &s);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		int r = lackey_feed(l, text + off, n);
		cr_assert_eq(r, 0, "chunk %zu at %zu: %d (line %llu: %s)", chunk, off, r,
		             (unsigned long long)l->error_line, l->error ? l->error : "");
	}
	cr_assert_eq(lackey_finish(l), 0);
	return s;
}

static void assert_sink(const struct sink *s, const struct trace_access *want, size_t n, size_t chunk) {
	cr_assert_eq(s->n, n, "chunks of %zu: %zu accesses, expected %zu", chunk, s->n, n);
	for (size_t i = 0; i < n; i++)
		cr_assert(s->a[i].page == want[i].page && s->a[i].write == want[i].write &&
		                  s->a[i].stream == want[i].stream,
		          "chunks of %zu, access %zu: page 0x%llx %c, expected 0x%llx %c", chunk, i,
		          (unsigned long long)s->a[i].page, s->a[i].write ? 'W' : 'R',
		          (unsigned long long)want[i].page, want[i].write ? 'W' : 'R');
}

Test(lackey, loads_read_stores_and_modifies_write_fetches_and_messages_skipped) {
	struct lackey l;
	struct sink s = parse_in_chunks(canned, strlen(canned), sizeof(canned), &l);
	assert_sink(&s, canned_want, sizeof(canned_want) / sizeof(canned_want[0]), sizeof(canned));
	cr_assert_eq(l.counts.lines, 16);
	cr_assert_eq(l.counts.instructions, 2);
	cr_assert_eq(l.counts.loads, 5);
	cr_assert_eq(l.counts.stores, 2);
	cr_assert_eq(l.counts.modifies, 2);
	cr_assert_eq(l.counts.messages, 5);
	cr_assert_eq(l.counts.emitted, s.n);
}

Test(lackey, a_line_may_be_cut_anywhere) {
	for (size_t chunk = 1; chunk < sizeof(canned); chunk++) {
		struct lackey l;
		struct sink s = parse_in_chunks(canned, strlen(canned), chunk, &l);
		assert_sink(&s, canned_want, sizeof(canned_want) / sizeof(canned_want[0]), chunk);
		cr_assert_eq(l.counts.lines, 16);
	}
}

Test(lackey, the_last_line_needs_no_newline) {
	struct lackey l;
	struct sink s = parse_in_chunks(" L 1000,4\n S 2000,4", 19, 7, &l);
	const struct trace_access want[] = {R(1, 3), W(2, 3)};
	assert_sink(&s, want, 2, 7);
}

Test(lackey, long_messages_are_skipped_whole) {
	char text[1024];
	int n = snprintf(text, sizeof(text), "==1== %0600d\n L 5000,4\n==1== %0300d", 0, 0);
	for (size_t chunk = 1; chunk <= (size_t)n; chunk += 37) {
		struct lackey l;
		struct sink s = parse_in_chunks(text, (size_t)n, chunk, &l);
		const struct trace_access want[] = {R(5, 3)};
		assert_sink(&s, want, 1, chunk);
		cr_assert_eq(l.counts.lines, 3);
		cr_assert_eq(l.counts.messages, 2);
	}
}

/* Each malformed line is refused with -EBADMSG, saying why and where. */
static void assert_refused(const char *text, uint64_t line, const char *why) {
	struct sink s = {0};
	struct lackey l;
	lackey_init(&l, 12, 0, collect, &s);
	int r = lackey_feed(&l, text, strlen(text));
	if (r == 0)
		r = lackey_finish(&l);
	cr_assert_eq(r, -EBADMSG, "\"%s\" was taken", text);
	cr_assert_eq(l.error_line, line, "\"%s\": line %llu", text, (unsigned long long)l.error_line);
	cr_assert(strstr(l.error, why), "\"%s\": \"%s\", expected \"%s\"", text, l.error, why);
}

Test(lackey, malformed_lines_are_refused_with_where_and_why) {
	assert_refused("I  1000,4\n X 1000,4\n", 2, "unknown access kind");
	assert_refused("hello\n", 1, "not a lackey access line");
	assert_refused(" L 10g0,4\n", 1, "not hexadecimal");
	assert_refused(" L ,4\n", 1, "no address");
	assert_refused(" L 1000\n", 1, "no ',SIZE'");
	assert_refused(" L 1000,\n", 1, "no size");
	assert_refused(" L 1000,4x\n", 1, "not a decimal");
	assert_refused(" L 1000,0\n", 1, "out of range");
	assert_refused(" L 1000,65537\n", 1, "out of range");
	assert_refused(" L 12345678901234567,4\n", 1, "longer than 64 bits");
	assert_refused(" L 1000000000000000,4\n", 1, "48-bit page numbers");
	assert_refused(" L ffffffffffffffff,2\n", 1, "48-bit page numbers");
	char longline[300];
	memset(longline, '1', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	assert_refused(longline, 1, "longer than 128 bytes");
}

Test(lackey, a_callback_error_stops_the_parse) {
	struct sink s = {.fail_at = 2};
	struct lackey l;
	lackey_init(&l, 12, 0, collect, &s);
	cr_assert_eq(lackey_feed(&l, " L 1000,4\n L 2000,4\n L 3000,4\n", 30), -ENOSPC);
	cr_assert_eq(s.n, 1);
}
