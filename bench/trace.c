/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

struct trace_header {
	char magic[8];
	uint32_t page_shift;
	uint32_t reserved;
};

int trace_writer_open(struct trace_writer *w, FILE *f, unsigned page_shift) {
	*w = (struct trace_writer){.f = f};
	struct trace_header h = {.page_shift = page_shift};
	memcpy(h.magic, TRACE_MAGIC, sizeof(h.magic));
	return fwrite(&h, sizeof(h), 1, f) == 1 ? 0 : -EIO;
}

int trace_writer_add(struct trace_writer *w, const struct trace_access *a) {
	uint64_t word = trace_pack(a);
	if (a->stream < 64) {
		if (w->last[a->stream] == word + 1)
			return 0;
		w->last[a->stream] = word + 1;
	}
	if (fwrite(&word, sizeof(word), 1, w->f) != 1)
		return -EIO;
	w->written++;
	return 0;
}

int trace_writer_close(struct trace_writer *w) {
	return fflush(w->f) == 0 ? 0 : -EIO;
}

int trace_push(struct trace *t, const struct trace_access *a) {
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 1 << 16;
		uint64_t *n = realloc(t->w, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->w = n;
		t->cap = cap;
	}
	t->w[t->n++] = trace_pack(a);
	return 0;
}

int trace_header_parse(const void *header, unsigned *page_shift) {
	struct trace_header h;
	_Static_assert(sizeof(h) == TRACE_HEADER_SIZE, "the header is 16 bytes");
	memcpy(&h, header, sizeof(h));
	if (memcmp(h.magic, TRACE_MAGIC, sizeof(h.magic)) != 0 || h.page_shift < 12 || h.page_shift > 30)
		return -EBADMSG;
	*page_shift = h.page_shift;
	return 0;
}

int trace_read(FILE *f, struct trace *out) {
	*out = (struct trace){0};
	char h[TRACE_HEADER_SIZE];
	if (fread(h, sizeof(h), 1, f) != 1 || trace_header_parse(h, &out->page_shift) < 0)
		return -EBADMSG;
	for (;;) {
		if (out->n == out->cap) {
			size_t cap = out->cap ? 2 * out->cap : 1 << 16;
			uint64_t *n = realloc(out->w, cap * sizeof(*n));
			if (!n) {
				trace_free(out);
				return -ENOMEM;
			}
			out->w = n;
			out->cap = cap;
		}
		size_t got = fread(out->w + out->n, sizeof(uint64_t), out->cap - out->n, f);
		out->n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		trace_free(out);
		return -EIO;
	}
	return 0;
}

void trace_free(struct trace *t) {
	free(t->w);
	*t = (struct trace){0};
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

size_t trace_footprint(const struct trace *t) {
	if (!t->n)
		return 0;
	uint64_t *p = malloc(t->n * sizeof(*p));
	if (!p)
		return 0;
	for (size_t i = 0; i < t->n; i++)
		p[i] = trace_unpack(t->w[i]).page;
	qsort(p, t->n, sizeof(*p), cmp_u64);
	size_t d = 1;
	for (size_t i = 1; i < t->n; i++)
		d += p[i] != p[i - 1];
	free(p);
	return d;
}
