/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "lackey.h"

/* Lackey's largest accesses are the FPU state's (xsave: a few KiB); a
 * larger size is a corrupt line, not a big access. */
#define ACCESS_MAX (1u << 16)

void lackey_init(struct lackey *l, unsigned page_shift, uint16_t stream, lackey_emit_fn emit, void *ctx) {
	*l = (struct lackey){.page_shift = page_shift, .stream = stream, .emit = emit, .ctx = ctx};
}

static int bad(struct lackey *l, const char *why, const char *s, size_t n) {
	size_t k = n < sizeof(l->error_text) - 1 ? n : sizeof(l->error_text) - 1;
	for (size_t i = 0; i < k; i++)
		l->error_text[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	l->error_text[k] = '\0';
	l->error = why;
	l->error_line = l->counts.lines;
	return -EBADMSG;
}

/* valgrind's own messages: "==pid== ", "--pid-- ", "**pid** ". */
static bool is_message(const char *s, size_t n) {
	return n >= 2 && s[0] == s[1] && (s[0] == '=' || s[0] == '-' || s[0] == '*');
}

static int hex_digit(char c) {
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int emit_range(struct lackey *l, uint64_t addr, uint64_t size, bool write) {
	uint64_t first = addr >> l->page_shift, last = (addr + size - 1) >> l->page_shift;
	for (uint64_t page = first; page <= last; page++) {
		if (l->have_last && l->last.page == page && l->last.write == write)
			continue;
		struct trace_access a = {.page = page, .write = write, .stream = l->stream};
		int r = l->emit(l->ctx, &a);
		if (r < 0)
			return r;
		l->last = a;
		l->have_last = true;
		l->counts.emitted++;
	}
	return 0;
}

/* One line, without its newline. */
static int parse_line(struct lackey *l, const char *s, size_t n) {
	l->counts.lines++;
	/* Instruction fetches are most of the input: decided on two bytes. */
	if (n >= 2 && s[0] == 'I' && s[1] == ' ') {
		l->counts.instructions++;
		return 0;
	}
	if (n == 0 || is_message(s, n)) {
		l->counts.messages++;
		return 0;
	}
	if (n < 3 || s[0] != ' ' || s[2] != ' ')
		return bad(l, "not a lackey access line", s, n);
	bool write;
	switch (s[1]) {
	case 'L':
		l->counts.loads++;
		write = false;
		break;
	case 'S':
		l->counts.stores++;
		write = true;
		break;
	case 'M':
		l->counts.modifies++;
		write = true;
		break;
	default:
		return bad(l, "unknown access kind (not L, S or M)", s, n);
	}

	const char *p = s + 3, *end = s + n;
	uint64_t addr = 0;
	unsigned digits = 0;
	for (; p < end && *p != ','; p++) {
		int d = hex_digit(*p);
		if (d < 0)
			return bad(l, "the address is not hexadecimal", s, n);
		if (++digits > 16)
			return bad(l, "the address is longer than 64 bits", s, n);
		addr = addr << 4 | (unsigned)d;
	}
	if (digits == 0)
		return bad(l, "no address", s, n);
	if (p == end)
		return bad(l, "no ',SIZE' after the address", s, n);
	p++;
	uint64_t size = 0;
	digits = 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return bad(l, "the size is not a decimal number", s, n);
		if (++digits > 9)
			return bad(l, "the size is too large", s, n);
		size = size * 10 + (unsigned)(*p - '0');
	}
	if (digits == 0)
		return bad(l, "no size after ','", s, n);
	if (size == 0 || size > ACCESS_MAX)
		return bad(l, "the size is out of range (1..65536)", s, n);
	if (addr + (size - 1) < addr || (addr + (size - 1)) >> l->page_shift >> TRACE_PAGE_BITS)
		return bad(l, "the address is beyond the trace's 48-bit page numbers", s, n);
	return emit_range(l, addr, size, write);
}

/* The rest of a line cut at a chunk's end, or all of it. */
static int take_cut(struct lackey *l, const char *p, size_t n, bool complete) {
	if (l->skipping) {
		if (complete)
			l->skipping = false;
		return 0;
	}
	if (l->cut_len + n > LACKEY_LINE_MAX) {
		/* A message may be long; it is not kept, only skipped. */
		char head[2];
		size_t k = 0;
		for (; k < 2 && k < l->cut_len; k++)
			head[k] = l->cut[k];
		for (size_t i = 0; k < 2 && i < n; i++)
			head[k++] = p[i];
		if (!is_message(head, k)) {
			l->counts.lines++;
			memcpy(l->cut + l->cut_len, p, LACKEY_LINE_MAX - l->cut_len);
			return bad(l, "a line longer than 128 bytes", l->cut, LACKEY_LINE_MAX);
		}
		l->counts.lines++;
		l->counts.messages++;
		l->cut_len = 0;
		l->skipping = !complete;
		return 0;
	}
	memcpy(l->cut + l->cut_len, p, n);
	l->cut_len += n;
	if (!complete)
		return 0;
	size_t len = l->cut_len;
	l->cut_len = 0;
	return parse_line(l, l->cut, len);
}

int lackey_feed(struct lackey *l, const char *buf, size_t len) {
	const char *p = buf, *end = buf + len;
	if (l->cut_len || l->skipping) {
		const char *nl = memchr(p, '\n', len);
		int r = take_cut(l, p, nl ? (size_t)(nl - p) : len, nl != NULL);
		if (r < 0 || !nl)
			return r;
		p = nl + 1;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return take_cut(l, p, (size_t)(end - p), false);
		int r = parse_line(l, p, (size_t)(nl - p));
		if (r < 0)
			return r;
		p = nl + 1;
	}
	return 0;
}

int lackey_finish(struct lackey *l) {
	if (l->skipping) {
		l->skipping = false;
		return 0;
	}
	if (!l->cut_len)
		return 0;
	size_t len = l->cut_len;
	l->cut_len = 0;
	return parse_line(l, l->cut, len);
}
