/* SPDX-License-Identifier: MIT */
/*
 * The handlers iopfd is measured against, on the same relay sockets and the
 * same emulated load:
 *
 *   naive     one thread, epoll, one record per read (as the kernel selftest
 *             and early VMM code read), one write per response, the engine's
 *             own resolution code;
 *   perqueue  one blocking thread per queue: batched reads, the same
 *             resolution, one write per group (the other common pattern);
 *   echo      one thread, epoll, batched reads, one write per batch and no
 *             lookup at all: answers SUCCESS to every LAST_PAGE record. What
 *             the transport allows a handler that does no work. With one
 *             queue and one group in flight it is the ping-pong latency floor.
 *   mlock     mlock/munlock of the same windows in a tight loop: what pinning
 *             costs, without faults, sockets or bookkeeping.
 *
 * Every handler counts its system calls on the fault path.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baselines.h"
#include "load.h"
#include "util.h"
#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/rcu.h"
#include "engine/resolve.h"

/* The engine's limits, so that the baselines read as much per call. */
#define READ_BYTES (64 * 1024)
#define MAX_EVENTS 64
#define MAX_GROUP_FAULTS 512

struct handler {
	const struct bench_cfg *c;
	struct bench_load *l;
	struct iopf_bindings *b;
	int stop;
	uint64_t syscalls;
};

static void handler_stop(struct handler *h) {
	__atomic_store_n(&h->stop, 1, __ATOMIC_RELAXED);
}

static bool handler_stopped(struct handler *h) {
	return __atomic_load_n(&h->stop, __ATOMIC_RELAXED);
}

/* Everything but the handler itself: bindings, load, drive, collect. */
static void run_with(const struct bench_cfg *c, bool bind, void *(*fn)(void *), struct bench_result *res) {
	struct iopf_bindings *b = NULL;
	int r;
	if (bind && (r = iopf_bindings_new(&b)) < 0)
		bench_die("bindings", r);
	struct bench_load l;
	bench_load_new(c, b, &l);
	struct handler h = {.c = c, .l = &l, .b = b};
	pthread_t th;
	if ((r = pthread_create(&th, NULL, fn, &h)) != 0)
		bench_die("thread", -r);
	bench_load_drive(c, &l, res);
	handler_stop(&h);
	pthread_join(th, NULL);
	bench_load_collect(c, &l, res);
	res->syscalls = h.syscalls;
	for (unsigned q = 0; q < c->queues; q++)
		close(l.dfd[q]);
	bench_load_free(c, b, &l);
	if (b)
		iopf_bindings_free(b);
}

/* --- naive: one group per read, one write per response ------------------------ */

static void *naive_main(void *arg) {
	struct handler *n = arg;
	iopf_rcu_register();
	struct iopf_counters cnt = {0};
	struct iopf_resolver res;
	if (iopf_resolver_init(&res, n->b, MAX_GROUP_FAULTS, &cnt) < 0)
		bench_die("resolver", -ENOMEM);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned q = 0; q < n->c->queues; q++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = q};
		epoll_ctl(ep, EPOLL_CTL_ADD, n->l->dfd[q], &ev);
	}
	/* Per queue: the records of the group being read so far. */
	iopf_record(*cur)[64] = calloc(n->c->queues, sizeof(*cur));
	unsigned *have = calloc(n->c->queues, sizeof(unsigned));
	struct epoll_event ev[MAX_EVENTS];
	while (!handler_stopped(n)) {
		iopf_rcu_offline();
		int k = epoll_wait(ep, ev, MAX_EVENTS, 50);
		iopf_rcu_online();
		n->syscalls++;
		for (int i = 0; i < k; i++) {
			unsigned q = ev[i].data.u32;
			int fd = n->l->dfd[q];
			/* One record per read, until the group is whole. */
			ssize_t got = recv(fd, &cur[q][have[q]], sizeof(iopf_record), MSG_WAITALL);
			n->syscalls++;
			if (got != sizeof(iopf_record))
				continue;
			iopf_record *rec = &cur[q][have[q]++];
			if (!(rec->flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE) && have[q] < 64)
				continue;
			struct iopf_group g = {.faults = cur[q], .n_faults = have[q], .cookie = rec->cookie,
			                       .dev_id = rec->dev_id,
			                       .pasid = (rec->flags & IOMMU_PGFAULT_FLAGS_PASID_VALID) ? rec->pasid
			                                                                               : IOPF_PASID_NONE};
			have[q] = 0;
			iopf_rcu_read_lock();
			iopf_resolver_begin(&res);
			iopf_response resp = {.cookie = g.cookie, .code = iopf_resolve_group(&res, q, &g)};
			send(fd, &resp, sizeof(resp), MSG_NOSIGNAL);
			n->syscalls++;
			iopf_resolver_end(&res);
			iopf_rcu_read_unlock();
		}
		iopf_rcu_quiescent();
	}
	free(cur);
	free(have);
	close(ep);
	iopf_resolver_fini(&res);
	iopf_rcu_unregister();
	return NULL;
}

void bench_run_naive(const struct bench_cfg *c, struct bench_result *res) {
	run_with(c, true, naive_main, res);
}

/* --- perqueue: one blocking thread per queue ----------------------------------- */

struct pq_thread {
	struct handler *h;
	unsigned q;
	uint64_t syscalls;
	pthread_t th;
};

static void *pq_main(void *arg) {
	struct pq_thread *t = arg;
	struct handler *h = t->h;
	int fd = h->l->dfd[t->q];
	size_t cap = READ_BYTES - READ_BYTES % sizeof(iopf_record), max_groups = cap / sizeof(iopf_record);
	uint8_t *buf = aligned_alloc(64, (cap + 63) & ~(size_t)63); /* a multiple of the alignment */
	struct iopf_group *groups = calloc(max_groups, sizeof(*groups));
	struct iopf_counters cnt = {0};
	struct iopf_resolver res;
	if (!buf || !groups || iopf_resolver_init(&res, h->b, max_groups, &cnt) < 0)
		bench_die("perqueue thread", -ENOMEM);
	iopf_rcu_register();
	size_t have = 0;
	for (;;) {
		/* Blocking: offline, so a QSBR grace period never waits for it. */
		iopf_rcu_offline();
		ssize_t n = recv(fd, buf + have, cap - have, 0);
		iopf_rcu_online();
		t->syscalls++;
		if (n <= 0)
			break; /* shut down at the end of the run */
		size_t len = have + (size_t)n;
		struct iopf_batch b;
		if (iopf_batch_parse(buf, len, MAX_GROUP_FAULTS, groups, max_groups, &b) < 0)
			break;
		for (size_t i = 0; i < b.n_groups; i++) {
			iopf_rcu_read_lock();
			iopf_resolver_begin(&res);
			iopf_response resp = {.cookie = groups[i].cookie,
			                      .code = iopf_resolve_group(&res, t->q, &groups[i])};
			ssize_t w = send(fd, &resp, sizeof(resp), MSG_NOSIGNAL);
			t->syscalls++;
			iopf_resolver_end(&res);
			iopf_rcu_read_unlock();
			if (w < 0)
				goto out;
		}
		have = len - b.consumed;
		memmove(buf, buf + b.consumed, have);
		iopf_rcu_quiescent();
	}
out:
	iopf_rcu_unregister();
	iopf_resolver_fini(&res);
	free(groups);
	free(buf);
	return NULL;
}

void bench_run_perqueue(const struct bench_cfg *c, struct bench_result *res) {
	struct iopf_bindings *b;
	int r = iopf_bindings_new(&b);
	if (r < 0)
		bench_die("bindings", r);
	struct bench_load l;
	bench_load_new(c, b, &l);
	struct handler h = {.c = c, .l = &l, .b = b};
	struct pq_thread *t = calloc(c->queues, sizeof(*t));
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	/* Thousands of threads: small stacks keep them affordable. */
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (unsigned q = 0; q < c->queues; q++) {
		t[q] = (struct pq_thread){.h = &h, .q = q};
		if ((r = pthread_create(&t[q].th, &attr, pq_main, &t[q])) != 0)
			bench_die("perqueue thread", -r);
	}
	pthread_attr_destroy(&attr);
	bench_load_drive(c, &l, res);
	/* Wakes every blocked recv() with 0. */
	for (unsigned q = 0; q < c->queues; q++)
		shutdown(l.dfd[q], SHUT_RDWR);
	for (unsigned q = 0; q < c->queues; q++) {
		pthread_join(t[q].th, NULL);
		res->syscalls += t[q].syscalls;
	}
	free(t);
	bench_load_collect(c, &l, res);
	for (unsigned q = 0; q < c->queues; q++)
		close(l.dfd[q]);
	bench_load_free(c, b, &l);
	iopf_bindings_free(b);
}

/* --- echo: a do-nothing epoll handler ------------------------------------------ */

static void *echo_main(void *arg) {
	struct handler *h = arg;
	unsigned nq = h->c->queues;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned q = 0; q < nq; q++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = q};
		epoll_ctl(ep, EPOLL_CTL_ADD, h->l->dfd[q], &ev);
	}
	size_t cap = READ_BYTES - READ_BYTES % sizeof(iopf_record);
	uint8_t *buf = aligned_alloc(64, (cap + 63) & ~(size_t)63); /* a multiple of the alignment */
	iopf_response *resp = malloc(cap / sizeof(iopf_record) * sizeof(*resp));
	/* A read may end inside a record: its start, per queue. */
	uint8_t(*part)[sizeof(iopf_record)] = calloc(nq, sizeof(*part));
	uint8_t *part_len = calloc(nq, 1);
	if (!buf || !resp || !part || !part_len)
		bench_die("echo", -ENOMEM);
	struct epoll_event ev[MAX_EVENTS];
	while (!handler_stopped(h)) {
		int k = epoll_wait(ep, ev, MAX_EVENTS, 50);
		h->syscalls++;
		for (int i = 0; i < k; i++) {
			unsigned q = ev[i].data.u32;
			int fd = h->l->dfd[q];
			size_t have = part_len[q];
			memcpy(buf, part[q], have);
			ssize_t n = recv(fd, buf + have, cap - have, MSG_DONTWAIT);
			h->syscalls++;
			if (n <= 0)
				continue;
			if (h->c->echo_visit_ns) {
				uint64_t until = bench_now_ns() + h->c->echo_visit_ns;
				while (bench_now_ns() < until)
					;
			}
			size_t len = have + (size_t)n, off = 0, nr = 0;
			for (; off + sizeof(iopf_record) <= len; off += sizeof(iopf_record)) {
				const iopf_record *rec = (const iopf_record *)(buf + off);
				if (rec->flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE)
					resp[nr++] = (iopf_response){.cookie = rec->cookie,
					                             .code = IOMMUFD_PAGE_RESP_SUCCESS};
			}
			part_len[q] = (uint8_t)(len - off);
			memcpy(part[q], buf + off, len - off);
			if (nr) {
				/* Blocking: the device takes responses as fast as
				 * it gets them; a few hundred bytes never fill it. */
				send(fd, resp, nr * sizeof(*resp), MSG_NOSIGNAL);
				h->syscalls++;
			}
		}
	}
	free(part);
	free(part_len);
	free(resp);
	free(buf);
	close(ep);
	return NULL;
}

void bench_run_echo(const struct bench_cfg *c, struct bench_result *res) {
	run_with(c, false, echo_main, res);
}

/* --- the mlock floor --------------------------------------------------------------- */

void bench_run_mlock_floor(void *base, uint64_t len, uint64_t window_bytes, uint64_t quota, unsigned duration_ms,
                           uint64_t seed, struct bench_result *res) {
	uint64_t nwin = len / window_bytes, slots = quota / window_bytes;
	if (!nwin)
		bench_die("mlock floor: window larger than the region", -EINVAL);
	if (!slots)
		slots = 1;
	if (slots > nwin)
		slots = nwin;
	uint64_t *ring = calloc(slots, sizeof(uint64_t));
	uint8_t *locked = calloc(nwin, 1);
	if (!ring || !locked)
		bench_die("mlock floor", -ENOMEM);
	uint64_t head = 0, used = 0, x = seed ? seed : 0x9e3779b97f4a7c15ull, ops = 0;
	uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)duration_ms * 1000000;
	uint64_t now = t0;
	while (now < end) {
		for (int i = 0; i < 256; i++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			uint64_t w = (x * 0x2545f4914f6cdd1dull) % nwin;
			if (locked[w])
				continue; /* a hit: the engine maps nothing either */
			if (used == slots) {
				uint64_t old = ring[head];
				if (munlock((char *)base + old * window_bytes, window_bytes) < 0)
					bench_die("munlock", errno);
				locked[old] = 0;
				head = (head + 1) % slots;
				used--;
				res->unmaps++;
			}
			if (mlock((char *)base + w * window_bytes, window_bytes) < 0)
				bench_die("mlock (is RLIMIT_MEMLOCK large enough?)", errno);
			locked[w] = 1;
			ring[(head + used) % slots] = w;
			used++;
			ops++;
		}
		now = bench_now_ns();
	}
	res->seconds = (double)(now - t0) / 1e9;
	for (uint64_t i = 0; i < used; i++)
		munlock((char *)base + ring[(head + i) % slots] * window_bytes, window_bytes);
	res->maps = ops;
	res->mapped_bytes = ops * window_bytes;
	res->window_bytes = window_bytes;
	res->syscalls = ops + res->unmaps;
	free(ring);
	free(locked);
}
