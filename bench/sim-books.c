/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "sim-books.h"

#define MAPPED 0x1u
#define TOUCHED 0x2u

int sim_books_init(struct sim_books *b, size_t n_pages, uint64_t page_bytes) {
	*b = (struct sim_books){.n_pages = n_pages, .page_bytes = page_bytes};
	b->st = calloc(n_pages ? n_pages : 1, 1);
	return b->st ? 0 : -ENOMEM;
}

void sim_books_fini(struct sim_books *b) {
	free(b->st);
	b->st = NULL;
}

void sim_books_map_more(struct sim_books *b, uint32_t first, uint32_t n) {
	for (uint32_t i = first; i < first + n; i++) {
		if (b->st[i] & MAPPED) {
			b->strays++;
			continue;
		}
		b->st[i] = MAPPED; /* untouched: the mapping is new */
		b->pinned++;
	}
	b->c.mapped_bytes += n * b->page_bytes;
	if (b->pinned * b->page_bytes > b->c.pinned_peak)
		b->c.pinned_peak = b->pinned * b->page_bytes;
}

void sim_books_map(struct sim_books *b, uint32_t first, uint32_t n) {
	b->c.maps++;
	sim_books_map_more(b, first, n);
}

void sim_books_unmap(struct sim_books *b, uint32_t first, uint32_t n) {
	b->c.unmaps++;
	for (uint32_t i = first; i < first + n; i++) {
		if (!(b->st[i] & MAPPED)) {
			b->strays++;
			continue;
		}
		if (!(b->st[i] & TOUCHED))
			b->c.waste_bytes += b->page_bytes;
		b->st[i] = 0;
		b->pinned--;
	}
}

void sim_books_touch(struct sim_books *b, uint32_t u) {
	if (b->st[u] & MAPPED)
		b->st[u] |= TOUCHED;
	else
		b->strays++; /* the pager answered a fault without mapping it */
}

bool sim_books_mapped(const struct sim_books *b, uint32_t u) {
	return b->st[u] & MAPPED;
}

void sim_books_close(struct sim_books *b) {
	for (size_t i = 0; i < b->n_pages; i++)
		if (b->st[i] == MAPPED)
			b->c.waste_bytes += b->page_bytes;
}
