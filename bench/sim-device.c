/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "shared/cleanup.h"
#include "sim-books.h"
#include "sim-device.h"
#include "trace.h"

/* A device's accesses issued and not yet done: trace positions. */
struct window {
	uint32_t *pos;
	unsigned n;
};

struct devices {
	const struct sim_trace *t;
	const struct sim_pager_ops *ops;
	void *pager;
	struct sim_books *books;
	unsigned inflight;
	uint8_t *faulted;         /* optional: per access */
	struct window *win;       /* per stream */
	struct sim_fault *faults; /* the batch being built */
	uint32_t *seen;           /* per page: the window that found it absent */
	uint32_t *slot;           /* per page: its fault in that window's batch */
	uint32_t gen;             /* the current window's number */
	struct sim_counts c;
};

/* Issue a window: hits complete, misses are one batch. */
static int issue(struct devices *d, struct window *w) {
	const struct sim_trace *t = d->t;
	size_t nf = 0;
	d->gen++;
	for (unsigned k = 0; k < w->n; k++) {
		uint32_t i = w->pos[k], u = t->u[i];
		if (d->seen[u] == d->gen) {
			/* Absent and already in the batch: one fault per page. */
			struct sim_fault *f = &d->faults[d->slot[u]];
			f->pos = i;
			f->write |= sim_write(t, i);
			if (d->faulted)
				d->faulted[i] = 1;
			continue;
		}
		if (d->ops->resident(d->pager, u)) {
			d->ops->hit(d->pager, u, i);
			sim_books_touch(d->books, u);
			continue;
		}
		if (d->faulted)
			d->faulted[i] = 1;
		d->seen[u] = d->gen;
		d->slot[u] = (uint32_t)nf;
		d->faults[nf++] = (struct sim_fault){.u = u, .pos = i, .stream = sim_stream(t, i),
		                                     .write = sim_write(t, i)};
	}
	d->c.accesses += w->n;
	w->n = 0;
	if (!nf)
		return 0;
	d->c.faults += nf;
	d->c.batches++;
	return d->ops->resolve(d->pager, d->faults, nf);
}

static int cmp_first_pos(const void *a, const void *b) {
	uint32_t x = (*(struct window *const *)a)->pos[0], y = (*(struct window *const *)b)->pos[0];
	return x < y ? -1 : x > y;
}

/* The end of the trace: the windows not full yet are issued, in the order
 * their first accesses came. */
static int flush(struct devices *d) {
	_cleanup_free_ struct window **open = malloc(TRACE_STREAMS * sizeof(*open));
	if (!open)
		return -ENOMEM;
	size_t n = 0;
	for (size_t s = 0; s < TRACE_STREAMS; s++)
		if (d->win[s].n)
			open[n++] = &d->win[s];
	qsort(open, n, sizeof(*open), cmp_first_pos);
	for (size_t i = 0; i < n; i++) {
		int r = issue(d, open[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int replay(struct devices *d) {
	const struct sim_trace *t = d->t;
	for (size_t i = 0; i < t->n; i++) {
		struct window *w = &d->win[sim_stream(t, i)];
		if (!w->pos && !(w->pos = malloc(d->inflight * sizeof(*w->pos))))
			return -ENOMEM;
		w->pos[w->n++] = (uint32_t)i;
		if (w->n == d->inflight) {
			int r = issue(d, w);
			if (r < 0)
				return r;
		}
	}
	return flush(d);
}

int sim_replay(const struct sim_run *run, struct sim_counts *out) {
	const struct sim_trace *t = run->t;
	struct sim_books books;
	struct devices d = {.t = t, .ops = run->policy->pager, .books = &books, .inflight = run->inflight,
	                    .faulted = run->faulted};
	*out = (struct sim_counts){0};
	if (!run->inflight || !run->quota_pages)
		return -EINVAL;
	int r = sim_books_init(&books, t->n_pages, 1ull << t->page_shift);
	if (r < 0)
		return r;
	d.win = calloc(TRACE_STREAMS, sizeof(*d.win));
	d.faults = malloc(run->inflight * sizeof(*d.faults));
	d.seen = calloc(t->n_pages ? t->n_pages : 1, sizeof(*d.seen));
	d.slot = malloc((t->n_pages ? t->n_pages : 1) * sizeof(*d.slot));
	if (!d.win || !d.faults || !d.seen || !d.slot) {
		r = -ENOMEM;
		goto out;
	}
	struct sim_pager_args a = {.t = t, .policy = run->policy, .quota_pages = run->quota_pages,
	                           .inflight = run->inflight, .books = &books};
	r = d.ops->open(&a, &d.pager);
	if (r < 0)
		goto out;
	r = replay(&d);
	if (r == 0)
		r = d.ops->report(d.pager, out);
	if (r == 0) {
		sim_books_close(&books);
		if (books.strays)
			r = -EPROTO;
		out->accesses = d.c.accesses;
		out->faults = d.c.faults;
		out->batches = d.c.batches;
		out->waste_bytes = books.c.waste_bytes;
	}
	d.ops->close(d.pager);
out:
	for (size_t s = 0; d.win && s < TRACE_STREAMS; s++)
		free(d.win[s].pos);
	free(d.win);
	free(d.faults);
	free(d.seen);
	free(d.slot);
	sim_books_fini(&books);
	return r;
}
