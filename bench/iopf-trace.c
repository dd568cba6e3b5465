/* SPDX-License-Identifier: MIT */
/*
 * iopf-trace: access traces (trace.h) from real programs, and what a trace
 * holds.
 *
 *   valgrind --tool=lackey --trace-mem=yes --log-fd=3 PROGRAM 3>&1 >/dev/null |
 *       iopf-trace lackey [--stream N] >NAME.trace
 *   iopf-trace info [--json] FILE|-
 *
 * tools/record-traces records the standard set with it (bench/README.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lackey.h"
#include "shared/cleanup.h"
#include "trace.h"

#define CHUNK (1u << 20)
#define PAGE_SHIFT 12

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("iopf-trace: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static void usage(FILE *f) {
	fputs("usage: iopf-trace lackey [--stream N]   valgrind lackey's --trace-mem=yes output on stdin\n"
	      "                                        to a page-granular trace on stdout\n"
	      "       iopf-trace info [--json] FILE|-  accesses, footprint, reads/writes, streams, span\n",
	      f);
}

/* --- lackey ------------------------------------------------------------------- */

static int emit_to_writer(void *ctx, const struct trace_access *a) {
	return trace_writer_add(ctx, a);
}

/*
 * valgrind writes lackey's lines a few hundred bytes at a time, and a
 * reader waiting on an empty pipe is woken by every write: measured, that
 * made a recording four times as slow as one into /dev/null, most of it
 * in the kernel. So the pipe is made large (1 MiB; not a pipe, or a lower
 * limit: only slower), and after a short read the reader lets it fill for
 * a while. A write to a pipe that is not empty wakes no one.
 */
static void prepare_pipe(int fd) {
	(void)fcntl(fd, F_SETPIPE_SZ, (int)CHUNK);
}

static ssize_t read_lagging(int fd, char *buf, size_t size) {
	for (;;) {
		ssize_t n = read(fd, buf, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		/* 2 ms at lackey's rate (~50 MB/s) is a tenth of the pipe. */
		if (n > 0 && (size_t)n < size / 4)
			nanosleep(&(struct timespec){.tv_nsec = 2 * 1000 * 1000}, NULL);
		return n;
	}
}

static int cmd_lackey(int argc, char **argv) {
	static const struct option opts[] = {{"stream", required_argument, NULL, 's'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {0}};
	unsigned long stream = 0;
	for (int c; (c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1;) {
		char *end;
		switch (c) {
		case 's':
			errno = 0;
			stream = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || stream >= TRACE_STREAMS)
				return fail("lackey: --stream takes a number from 0 to %u, not '%s'", TRACE_STREAMS - 1,
				            optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc)
		return fail("lackey: reads stdin only; unexpected argument '%s'", argv[optind]);
	if (isatty(STDOUT_FILENO))
		return fail("lackey: the trace is binary; redirect stdout to a file or a pipe");

	_cleanup_free_ char *in = malloc(CHUNK);
	if (!in)
		return fail("lackey: out of memory");
	static char out[CHUNK];
	setvbuf(stdout, out, _IOFBF, sizeof(out));
	prepare_pipe(STDIN_FILENO);

	struct trace_writer w;
	if (trace_writer_open(&w, stdout, PAGE_SHIFT) < 0)
		return fail("lackey: writing the trace: %m");
	struct lackey l;
	lackey_init(&l, PAGE_SHIFT, (uint16_t)stream, emit_to_writer, &w);
	int r;
	for (;;) {
		ssize_t n = read_lagging(STDIN_FILENO, in, CHUNK);
		if (n < 0)
			return fail("lackey: reading stdin: %s", strerror((int)-n));
		if (n == 0) {
			r = lackey_finish(&l);
			break;
		}
		if ((r = lackey_feed(&l, in, (size_t)n)) < 0)
			break;
	}
	if (r == -EBADMSG)
		return fail("lackey: stdin line %" PRIu64 ": %s: \"%s\"", l.error_line, l.error, l.error_text);
	/* The writer says -EIO for any failed write; stdio left the cause in
	 * errno (ENOSPC, EPIPE). */
	if (r < 0 || trace_writer_close(&w) < 0 || fflush(stdout) != 0)
		return fail("lackey: writing the trace: %s", strerror(r < 0 && r != -EIO ? -r : errno));
	fprintf(stderr,
	        "iopf-trace lackey: %" PRIu64 " lines: %" PRIu64 " instructions, %" PRIu64 " loads, %" PRIu64
	        " stores, %" PRIu64 " modifies, %" PRIu64 " messages; %" PRIu64 " page accesses, %" PRIu64
	        " written\n",
	        l.counts.lines, l.counts.instructions, l.counts.loads, l.counts.stores, l.counts.modifies,
	        l.counts.messages, l.counts.emitted, w.written);
	return 0;
}

/* --- info --------------------------------------------------------------------- */

/* The distinct pages: open addressing on page + 1 (0 is an empty slot). */
struct page_set {
	uint64_t *slot;
	size_t mask, n;
};

static int page_set_grow(struct page_set *s) {
	size_t cap = s->slot ? 2 * (s->mask + 1) : 1u << 16;
	uint64_t *slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	for (size_t i = 0; s->slot && i <= s->mask; i++) {
		if (!s->slot[i])
			continue;
		size_t j = (s->slot[i] * 0x9e3779b97f4a7c15ull) >> 20 & (cap - 1);
		while (slot[j])
			j = (j + 1) & (cap - 1);
		slot[j] = s->slot[i];
	}
	free(s->slot);
	s->slot = slot;
	s->mask = cap - 1;
	return 0;
}

static int page_set_add(struct page_set *s, uint64_t page) {
	if (2 * (s->n + 1) > s->mask + 1 || !s->slot) {
		int r = page_set_grow(s);
		if (r < 0)
			return r;
	}
	uint64_t key = page + 1;
	size_t j = (key * 0x9e3779b97f4a7c15ull) >> 20 & s->mask;
	while (s->slot[j] && s->slot[j] != key)
		j = (j + 1) & s->mask;
	if (!s->slot[j]) {
		s->slot[j] = key;
		s->n++;
	}
	return 0;
}

struct info {
	unsigned page_shift;
	uint64_t accesses, reads, writes;
	uint64_t first_page, last_page;
	uint64_t streams[TRACE_STREAMS / 64];
	size_t n_streams;
	struct page_set pages;
	size_t trailing; /* bytes after the last whole word */
	bool zstd;       /* not a trace: a compressed one, most likely */
};

/* 0, -EBADMSG (not a trace), -EIO, -ENOMEM. */
static int scan(FILE *f, struct info *in, uint64_t *buf) {
	unsigned char h[TRACE_HEADER_SIZE];
	size_t got = fread(h, 1, sizeof(h), f);
	if (got >= 4 && memcmp(h, "\x28\xb5\x2f\xfd", 4) == 0) {
		in->zstd = true;
		return -EBADMSG;
	}
	if (got < sizeof(h))
		return ferror(f) ? -EIO : -EBADMSG;
	int r = trace_header_parse(h, &in->page_shift);
	if (r < 0)
		return r;
	in->first_page = UINT64_MAX;
	size_t carry = 0; /* bytes of a word cut by the last read */
	for (;;) {
		size_t n = fread((char *)buf + carry, 1, CHUNK - carry, f);
		if (n == 0)
			break;
		n += carry;
		size_t words = n / sizeof(uint64_t);
		for (size_t i = 0; i < words; i++) {
			struct trace_access a = trace_unpack(buf[i]);
			in->accesses++;
			if (a.write)
				in->writes++;
			else
				in->reads++;
			if (a.page < in->first_page)
				in->first_page = a.page;
			if (a.page > in->last_page)
				in->last_page = a.page;
			uint64_t bit = 1ull << (a.stream % 64);
			if (!(in->streams[a.stream / 64] & bit)) {
				in->streams[a.stream / 64] |= bit;
				in->n_streams++;
			}
			if ((r = page_set_add(&in->pages, a.page)) < 0)
				return r;
		}
		carry = n % sizeof(uint64_t);
		memmove(buf, (char *)buf + words * sizeof(uint64_t), carry);
	}
	if (ferror(f))
		return -EIO;
	in->trailing = carry;
	return 0;
}

static double mib(uint64_t bytes) {
	return (double)bytes / (1 << 20);
}

static void print_info(const struct info *in, bool json) {
	uint64_t footprint = (uint64_t)in->pages.n << in->page_shift;
	uint64_t start = in->accesses ? in->first_page << in->page_shift : 0;
	uint64_t end = in->accesses ? (in->last_page + 1) << in->page_shift : 0;
	if (json) {
		printf("{\"page_shift\": %u, \"accesses\": %" PRIu64 ", \"footprint_pages\": %zu, "
		       "\"footprint_mib\": %.1f, \"reads\": %" PRIu64 ", \"writes\": %" PRIu64 ", \"streams\": %zu, "
		       "\"span_start\": \"0x%" PRIx64 "\", \"span_end\": \"0x%" PRIx64 "\", \"span_mib\": %.1f}\n",
		       in->page_shift, in->accesses, in->pages.n, mib(footprint), in->reads, in->writes,
		       in->n_streams, start, end, mib(end - start));
		return;
	}
	printf("accesses   %" PRIu64 "\n", in->accesses);
	printf("footprint  %zu pages of %u KiB, %.1f MiB\n", in->pages.n, 1u << (in->page_shift - 10),
	       mib(footprint));
	printf("reads      %" PRIu64 "\n", in->reads);
	printf("writes     %" PRIu64 "\n", in->writes);
	printf("streams    %zu\n", in->n_streams);
	if (in->accesses)
		printf("span       0x%" PRIx64 "-0x%" PRIx64 ", %.1f MiB\n", start, end, mib(end - start));
	else
		printf("span       none\n");
}

static int cmd_info(int argc, char **argv) {
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
	bool json = false;
	for (int c; (c = getopt_long(argc, argv, "jh", opts, NULL)) != -1;) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (argc - optind != 1)
		return fail("info: takes one trace file (or - for stdin)");
	const char *name = argv[optind];
	bool is_stdin = strcmp(name, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(name, "rb");
	if (!f)
		return fail("info: %s: %m", name);
	_cleanup_free_ uint64_t *buf = malloc(CHUNK);
	struct info in = {0};
	int r = buf ? scan(f, &in, buf) : -ENOMEM;
	if (!is_stdin)
		fclose(f);
	free(in.pages.slot);
	if (is_stdin)
		name = "stdin";
	if (r == -EBADMSG && in.zstd)
		return fail("info: %s is zstd-compressed: zstd -dc %s | iopf-trace info -", name, name);
	if (r == -EBADMSG)
		return fail("info: %s is not a trace (no \"" TRACE_MAGIC "\" header with a page shift of 12..30)", name);
	if (r < 0)
		return fail("info: %s: %s", name, strerror(-r));
	if (in.trailing)
		return fail("info: %s is cut short: %zu bytes after the last whole access", name, in.trailing);
	print_info(&in, json);
	return fflush(stdout) == 0 ? 0 : fail("info: writing stdout: %m");
}

int main(int argc, char **argv) {
	const char *cmd = argc > 1 ? argv[1] : "";
	if (strcmp(cmd, "lackey") == 0)
		return cmd_lackey(argc - 1, argv + 1);
	if (strcmp(cmd, "info") == 0)
		return cmd_info(argc - 1, argv + 1);
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 1;
}
