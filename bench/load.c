/* SPDX-License-Identifier: MIT */
/*
 * The load handlers are measured on: address space, bindings, socket pairs,
 * emulators; driving them for a run and collecting what they saw.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"
#include "util.h"
#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/space-internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* The memory behind the region: a sealed memfd, as a client must pass.
 * Allocated up front, so that neither iopfd nor a floor it is compared with
 * pays for first-touch page allocation. */
int bench_load_memfd(uint64_t bytes, bool allocate) {
	int fd = memfd_create("iopf-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		bench_die("memfd", errno);
	if (allocate && fallocate(fd, 0, 0, (off_t)bytes) < 0)
		bench_die("fallocate", errno);
	return fd;
}

struct iopf_region *bench_load_region(const struct bench_load *l) {
	struct iopf_space *s = l->space;
	return s && s->regions && s->regions->n ? s->regions->r[0] : NULL;
}

/*
 * Open loop: the run in windows of scheduled time, each long enough for
 * WINDOW_GROUPS groups and at least WINDOW_MIN_MS, so that a window's p99
 * is its tenth slowest group or later; fewer than WINDOWS_MIN windows, and
 * the run has no windowed figure.
 */
#define WINDOW_GROUPS 1000
#define WINDOW_MIN_MS 100
#define WINDOWS_MIN 5
/* A window that saw fewer than this share of its groups (the last one, cut
 * by the end of the run) does not count. */
#define WINDOW_FULL 0.5

static void windows_new(const struct bench_cfg *c, struct bench_load *l, uint64_t *window_ns) {
	*window_ns = 0;
	if (c->rate <= 0)
		return;
	double ns = 1e9 * WINDOW_GROUPS / c->rate;
	if (ns < WINDOW_MIN_MS * 1e6)
		ns = WINDOW_MIN_MS * 1e6;
	unsigned n = (unsigned)((double)c->duration_ms * 1e6 / ns);
	if (n < WINDOWS_MIN)
		return;
	l->windows = calloc(n, sizeof(*l->windows));
	if (!l->windows)
		bench_die("load", -ENOMEM);
	l->n_windows = n;
	*window_ns = (uint64_t)ns;
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void windows_collect(const struct bench_cfg *c, const struct bench_load *l, struct bench_result *res) {
	if (!l->n_windows)
		return;
	double *p99 = calloc(l->n_windows, sizeof(double));
	if (!p99)
		bench_die("load", -ENOMEM);
	double expect = c->rate * (double)c->duration_ms / 1e3 / l->n_windows;
	unsigned n = 0;
	for (unsigned i = 0; i < l->n_windows; i++)
		if ((double)l->windows[i].count >= WINDOW_FULL * expect)
			p99[n++] = (double)iopf_hist_quantile(&l->windows[i], 0.99) / 1e3;
	if (n >= WINDOWS_MIN) {
		qsort(p99, n, sizeof(double), cmp_double);
		res->p99_window_us = n % 2 ? p99[n / 2] : (p99[n / 2 - 1] + p99[n / 2]) / 2;
		res->windows = n;
	}
	free(p99);
}

void bench_load_new(const struct bench_cfg *c, struct iopf_bindings *b, struct bench_load *l) {
	int r;
	l->space = NULL;
	l->windows = NULL;
	l->n_windows = 0;
	uint64_t window_ns;
	windows_new(c, l, &window_ns);
	l->memfd = c->backend == IOPF_BACKEND_NONE ? -1 : bench_load_memfd(c->pages * 4096, true);
	if (b) {
		struct iopf_space_config sc = {
			.backend = c->backend, .quota = c->quota, .page_size = 4096, .window_min = c->window,
			.window_max = c->window, .iommufd = -1,
		};
		if ((r = iopf_space_new(1, &sc, &l->space)) < 0)
			bench_die("space", r);
		/* The region takes an fd of its own: the load keeps l->memfd. */
		struct iopf_region_config rc = {.iova = BENCH_LOAD_IOVA, .length = c->pages * 4096,
		                                .memfd = l->memfd >= 0 ? fcntl(l->memfd, F_DUPFD_CLOEXEC, 3) : -1,
		                                .perm = IOPF_PERM_READ | IOPF_PERM_WRITE};
		int err = 0;
		if (iopf_space_add_region(l->space, &rc, 0, NULL, &err) != IOPF_REGION_ADDED)
			bench_die("region", -err);
		struct iopf_region *reg = bench_load_region(l);
		/* Page tables filled before the run, for iopfd and the floor alike. */
		if (c->backend == IOPF_BACKEND_MLOCK && reg && reg->backend_data &&
		    madvise(reg->backend_data, reg->length, MADV_POPULATE_WRITE) < 0)
			bench_die("populate", errno);
	}
	l->dfd = calloc(c->queues, sizeof(int));
	l->emu = calloc(c->queues, sizeof(*l->emu));
	if (!l->dfd || !l->emu)
		bench_die("load", -ENOMEM);
	for (unsigned q = 0; q < c->queues; q++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			bench_die("socketpair", errno);
		l->dfd[q] = sv[0];
		struct emu_config ec = {
			.devices = c->devices, .dev_id_base = q * c->devices, .pasids = c->pasids,
			.outstanding = c->outstanding, .group_min = c->group_min, .group_max = c->group_max,
			.sizes = c->sizes, .group_mean = c->group_mean, .iova_base = BENCH_LOAD_IOVA,
			.iova_pages = c->pages, .pattern = c->pattern, .zipf_s = c->zipf_s, .perm = IOPF_PERM_READ,
			.seed = c->seed + q + 1, .windows = l->windows, .n_windows = l->n_windows,
			.window_ns = window_ns,
		};
		if (c->rate > 0) {
			/* The queues take turns on one schedule of c->rate groups/s. */
			ec.rate = c->rate / c->queues;
			ec.phase_ns = (uint64_t)(1e9 * q / c->rate);
		}
		if ((r = emu_queue_new(&ec, sv[1], &l->emu[q])) < 0)
			bench_die("emulator", r);
		if (!b)
			continue;
		for (unsigned d = 0; d < c->devices; d++)
			for (unsigned p = 0; p < (c->pasids ? c->pasids : 1); p++) {
				struct iopf_binding_key k = {q, q * c->devices + d, c->pasids ? p : IOPF_PASID_NONE};
				if ((r = iopf_bindings_add(b, &k, l->space)) < 0)
					bench_die("bind", r);
			}
	}
}

void bench_load_drive(const struct bench_cfg *c, struct bench_load *l, struct bench_result *res) {
	/* The handler's threads exist by now, on the CPU the harness gave
	 * them: the emulator takes its own. */
	if (c->cpu_emu >= 0)
		bench_pin(c->cpu_emu);
	double p0 = bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID), e0 = bench_cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
	uint64_t t0 = bench_now_ns();
	int r = emu_run(l->emu, c->queues, c->duration_ms, c->duration_ms + 10000, 2000);
	if (r < 0)
		bench_die("emulator run", r);
	res->seconds = (double)(bench_now_ns() - t0) / 1e9;
	res->emu_cpu = bench_cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - e0;
	res->handler_cpu = bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - p0 - res->emu_cpu;
}

void bench_load_collect(const struct bench_cfg *c, struct bench_load *l, struct bench_result *res) {
	for (unsigned q = 0; q < c->queues; q++) {
		struct emu_stats st;
		emu_queue_finish(l->emu[q]);
		emu_queue_stats(l->emu[q], &st);
		res->groups += st.success + st.invalid;
		res->invalid += st.invalid;
		res->faults += st.faults;
		res->violations += emu_violations(&st);
		iopf_hist_merge(&res->lat, emu_queue_latency(l->emu[q]));
	}
	windows_collect(c, l, res);
	res->ran = true;
}

void bench_load_free(const struct bench_cfg *c, struct iopf_bindings *b, struct bench_load *l) {
	for (unsigned q = 0; q < c->queues; q++)
		emu_queue_free(l->emu[q]);
	if (b && l->space) {
		iopf_bindings_remove_space(b, l->space);
		iopf_space_destroy(l->space);
	}
	if (l->memfd >= 0)
		close(l->memfd);
	free(l->emu);
	free(l->dfd);
	free(l->windows);
}
