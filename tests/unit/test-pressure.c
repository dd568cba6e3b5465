/* SPDX-License-Identifier: MIT */
/*
 * Quota pressure through the real engine: a batch whose groups together
 * need more than the quota is answered SUCCESS group by group (the pages
 * the batch holds for answered groups go, eviction makes room), whatever
 * the order of the pages and however the groups arrive. Only a group that
 * alone needs more than the quota is refused. A device takes INVALID as a
 * failed request, so a refusal here would fail its DMA.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../common.h"
#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/engine.h"
#include "engine/space.h"
#include "engine/stats.h"

#define PG 4096ull
#define IOVA 0x200000000ull
#define PAGES 1024
#define QUOTA_PAGES 16
#define LAST IOMMU_PGFAULT_FLAGS_LAST_PAGE

static struct iopf_engine *engine;
static long locked0; /* the workers' own buffers, locked at start */

static void start(unsigned workers, unsigned slice_groups) {
	struct iopf_engine_config cfg = {.workers = workers, .slice_groups = slice_groups};
	cr_assert_eq(iopf_engine_new(&cfg, &engine), 0);
	locked0 = locked_bytes();
}

static void setup(void) {
	iopf_rcu_register();
	start(1, 0);
}

static void teardown(void) {
	iopf_engine_free(engine);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
}

TestSuite(pressure, .init = setup, .fini = teardown, .timeout = 60);

struct rig {
	struct iopf_space *s;
	struct iopf_queue *q;
	int dev; /* the device's end of the relay */
	int memfd;
};

/* A space of `backend` with a 16-page quota and one-page windows, a relay
 * queue in the engine, and device 0 bound to the space. */
static void rig_open(struct rig *r, enum iopf_backend_kind backend) {
	struct iopf_space_config cfg = {
		.backend = backend, .quota = QUOTA_PAGES * PG, .page_size = PG, .window_min = PG, .window_max = PG,
		.iommufd = -1,
	};
	cr_assert_eq(iopf_space_new(1, &cfg, &r->s), 0);
	r->memfd = backend == IOPF_BACKEND_MLOCK ? sealed_memfd(PAGES * PG) : -1;
	struct iopf_region_config rc = {
		.iova = IOVA, .length = PAGES * PG, .memfd = r->memfd, .perm = IOPF_PERM_READ | IOPF_PERM_WRITE,
	};
	cr_assert_eq(iopf_space_add_region(r->s, &rc, 0, NULL, NULL), IOPF_REGION_ADDED);
	int sv[2];
	relay_pair(sv);
	cr_assert_eq(iopf_queue_new(0, sv[0], IOPF_TRANSPORT_RELAY, &r->q), 0);
	cr_assert_eq(iopf_engine_add_queue(engine, r->q), 0);
	r->dev = sv[1];
	struct iopf_binding_key k = {.queue_id = 0, .dev_id = 0, .pasid = IOPF_PASID_NONE};
	cr_assert_eq(iopf_bindings_add(iopf_engine_bindings(engine), &k, r->s), 0);
}

static void rig_close(struct rig *r) {
	cr_assert_eq(iopf_engine_remove_queue(engine, r->q, IOPF_RELEASE_TO_HOLDER), 0);
	iopf_queue_free(r->q);
	close(r->dev);
	iopf_bindings_remove_space(iopf_engine_bindings(engine), r->s);
	iopf_space_destroy(r->s);
	if (r->memfd >= 0)
		close(r->memfd);
}

static iopf_record rec(uint32_t flags, uint32_t cookie, uint64_t page) {
	return (iopf_record){.flags = flags, .perm = IOPF_PERM_READ, .addr = IOVA + page * PG, .cookie = cookie};
}

static void send_all(int fd, const void *p, size_t len) {
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, (const uint8_t *)p + off, len - off, 0);
		cr_assert_gt(n, 0, "send: %s", strerror(errno));
		off += (size_t)n;
	}
}

static size_t read_responses(int fd, iopf_response *r, size_t n) {
	size_t got = 0;
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < n * sizeof(*r)) {
		ssize_t k = recv(fd, (uint8_t *)r + got, n * sizeof(*r) - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got / sizeof(*r);
}

static uint64_t quota_refused(void) {
	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	return c.invalid[IOPF_INVALID_QUOTA];
}

enum order { ASCENDING, DESCENDING, SHUFFLED };

/* 64 pages, four times the quota, in the given order. */
static void pages_in(enum order o, uint64_t *page, size_t n) {
	for (size_t i = 0; i < n; i++)
		page[i] = o == DESCENDING ? 3 * n - 3 * i : 3 * i; /* a stride: no window covers two */
	if (o == SHUFFLED) {
		uint64_t x = 0x9e3779b97f4a7c15ull;
		for (size_t i = n - 1; i > 0; i--) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			size_t j = (size_t)(x >> 33) % (i + 1);
			uint64_t t = page[i];
			page[i] = page[j];
			page[j] = t;
		}
	}
}

/* `groups` groups of `per_group` distinct pages each, sent in one write;
 * every group must come back SUCCESS, once, in order, with the pinned peak
 * within the quota. */
static void one_write(enum iopf_backend_kind backend, enum order o, size_t groups, size_t per_group) {
	struct rig r;
	rig_open(&r, backend);
	uint64_t refused0 = quota_refused();
	size_t n = groups * per_group;
	uint64_t page[256];
	iopf_record recs[256];
	cr_assert_leq(n, 256);
	pages_in(o, page, n);
	for (size_t i = 0; i < n; i++)
		recs[i] = rec((i + 1) % per_group == 0 ? LAST : 0, (uint32_t)(i / per_group + 1), page[i]);
	send_all(r.dev, recs, n * sizeof(*recs));
	iopf_response resp[256];
	cr_assert_eq(read_responses(r.dev, resp, groups), groups);
	for (size_t i = 0; i < groups; i++) {
		cr_assert_eq(resp[i].cookie, i + 1, "answers in the order of the groups");
		cr_assert_eq(resp[i].code, IOMMUFD_PAGE_RESP_SUCCESS, "group %zu of %zu refused under quota pressure", i + 1,
		             groups);
	}
	cr_assert_eq(quota_refused(), refused0);
	struct iopf_space_stats st;
	iopf_space_get_stats(r.s, &st);
	cr_assert_leq(st.pinned_peak, QUOTA_PAGES * PG, "peak %lu bytes over the quota", (unsigned long)st.pinned_peak);
	if (per_group == 1)
		cr_assert_eq(st.maps, n, "each page mapped once");
	cr_assert_eq(st.quota_refusals, 0);
	if (backend == IOPF_BACKEND_MLOCK)
		cr_assert_leq(locked_bytes() - locked0, (long)(QUOTA_PAGES * PG), "the kernel's count of locked memory");
	rig_close(&r);
}

Test(pressure, one_write_of_64_groups_mlock_ascending) {
	one_write(IOPF_BACKEND_MLOCK, ASCENDING, 64, 1);
}

Test(pressure, one_write_of_64_groups_mlock_descending) {
	one_write(IOPF_BACKEND_MLOCK, DESCENDING, 64, 1);
}

Test(pressure, one_write_of_64_groups_mlock_shuffled) {
	one_write(IOPF_BACKEND_MLOCK, SHUFFLED, 64, 1);
}

Test(pressure, one_write_of_64_groups_simulated_shuffled) {
	one_write(IOPF_BACKEND_SIMULATED, SHUFFLED, 64, 1);
}

/* Groups of several pages: the retry happens in the middle of a group. */
Test(pressure, one_write_of_four_page_groups) {
	one_write(IOPF_BACKEND_MLOCK, SHUFFLED, 48, 4);
}

/* A group as large as the quota, between small ones. */
Test(pressure, a_group_as_large_as_the_quota_fits) {
	one_write(IOPF_BACKEND_SIMULATED, ASCENDING, 8, QUOTA_PAGES);
}

/* The same batch split over many writes: the answers are the same. */
Test(pressure, groups_sent_one_byte_at_a_time) {
	struct rig r;
	rig_open(&r, IOPF_BACKEND_MLOCK);
	iopf_record recs[64];
	for (uint32_t i = 0; i < 64; i++)
		recs[i] = rec(LAST, i + 1, 2 * i);
	for (size_t i = 0; i < sizeof(recs); i++)
		send_all(r.dev, (const uint8_t *)recs + i, 1);
	iopf_response resp[64];
	cr_assert_eq(read_responses(r.dev, resp, 64), 64);
	for (size_t i = 0; i < 64; i++)
		cr_assert_eq(resp[i].code, IOMMUFD_PAGE_RESP_SUCCESS);
	rig_close(&r);
}

/* Only a group that alone needs more than the quota is refused (counted as
 * quota); the groups around it are served. */
Test(pressure, a_group_larger_than_the_quota_alone_is_refused) {
	struct rig r;
	rig_open(&r, IOPF_BACKEND_MLOCK);
	uint64_t refused0 = quota_refused();
	iopf_record recs[2 + QUOTA_PAGES + 1];
	size_t n = 0;
	recs[n++] = rec(LAST, 1, 500);
	for (uint64_t p = 0; p <= QUOTA_PAGES; p++)
		recs[n++] = rec(p == QUOTA_PAGES ? LAST : 0, 2, 2 * p);
	recs[n++] = rec(LAST, 3, 501);
	send_all(r.dev, recs, n * sizeof(*recs));
	iopf_response resp[3];
	cr_assert_eq(read_responses(r.dev, resp, 3), 3);
	cr_assert_eq(resp[0].code, IOMMUFD_PAGE_RESP_SUCCESS);
	cr_assert_eq(resp[1].code, IOMMUFD_PAGE_RESP_INVALID, "17 pages cannot be pinned under a 16-page quota");
	cr_assert_eq(resp[2].code, IOMMUFD_PAGE_RESP_SUCCESS);
	cr_assert_eq(quota_refused(), refused0 + 1);
	struct iopf_space_stats st;
	iopf_space_get_stats(r.s, &st);
	cr_assert_eq(st.quota_refusals, 1);
	rig_close(&r);
}

/* The none backend pins nothing: no pinned bytes, no peak, no evictions,
 * however many pages its quota would have held. */
Test(pressure, none_pins_nothing) {
	struct rig r;
	rig_open(&r, IOPF_BACKEND_NONE);
	iopf_record recs[64];
	for (uint32_t i = 0; i < 64; i++)
		recs[i] = rec(LAST, i + 1, i);
	send_all(r.dev, recs, sizeof(recs));
	iopf_response resp[64];
	cr_assert_eq(read_responses(r.dev, resp, 64), 64);
	for (size_t i = 0; i < 64; i++)
		cr_assert_eq(resp[i].code, IOMMUFD_PAGE_RESP_SUCCESS);
	struct iopf_space_stats st;
	iopf_space_get_stats(r.s, &st);
	cr_assert_eq(st.pinned_bytes, 0);
	cr_assert_eq(st.pinned_peak, 0);
	cr_assert_eq(st.evictions, 0);
	cr_assert_eq(st.quota_refusals, 0);
	rig_close(&r);
}

/* Answered in slices of 8 groups: the same answers, in order, and the
 * slices let pages go for the groups after them. */
Test(pressure, slices_answer_every_group_once_in_order) {
	iopf_engine_free(engine);
	start(1, 8);
	one_write(IOPF_BACKEND_MLOCK, SHUFFLED, 64, 1);
}

/* Answered in slices of time, here each as short as the clock allows:
 * the same. (The clock is read every few groups, then after every group
 * once they are slow: slices of one group.) */
Test(pressure, time_slices_answer_every_group_once_in_order) {
	iopf_engine_free(engine);
	struct iopf_engine_config cfg = {.workers = 1, .slice_ns = 1};
	cr_assert_eq(iopf_engine_new(&cfg, &engine), 0);
	locked0 = locked_bytes();
	one_write(IOPF_BACKEND_MLOCK, SHUFFLED, 64, 1);
	one_write(IOPF_BACKEND_SIMULATED, DESCENDING, 200, 1);
}

struct sender {
	int fd;
	uint32_t first_page;
	size_t success;
};

static void *send_and_read(void *arg) {
	struct sender *x = arg;
	iopf_record recs[256];
	for (uint32_t i = 0; i < 256; i++)
		recs[i] = rec(LAST, i + 1, x->first_page + i);
	send_all(x->fd, recs, sizeof(recs));
	iopf_response resp[256];
	size_t n = read_responses(x->fd, resp, 256);
	for (size_t i = 0; i < n; i++)
		x->success += resp[i].code == IOMMUFD_PAGE_RESP_SUCCESS;
	return NULL;
}

/* Two queues on two workers share one space: the room one worker's batch
 * holds is the other's only for the moment it takes to answer. */
Test(pressure, two_workers_share_a_small_quota) {
	iopf_engine_free(engine);
	start(2, 0);
	struct rig r;
	rig_open(&r, IOPF_BACKEND_SIMULATED);
	int sv[2];
	relay_pair(sv);
	struct iopf_queue *q2;
	cr_assert_eq(iopf_queue_new(1, sv[0], IOPF_TRANSPORT_RELAY, &q2), 0);
	cr_assert_eq(iopf_engine_add_queue_to(engine, q2, 1), 0);
	struct iopf_binding_key k = {.queue_id = 1, .dev_id = 0, .pasid = IOPF_PASID_NONE};
	cr_assert_eq(iopf_bindings_add(iopf_engine_bindings(engine), &k, r.s), 0);
	for (int round = 0; round < 4; round++) {
		struct sender a = {.fd = r.dev, .first_page = 0}, b = {.fd = sv[1], .first_page = 256};
		pthread_t ta, tb;
		pthread_create(&ta, NULL, send_and_read, &a);
		pthread_create(&tb, NULL, send_and_read, &b);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		cr_assert_eq(a.success, 256, "round %d: queue 0: %zu of 256 served", round, a.success);
		cr_assert_eq(b.success, 256, "round %d: queue 1: %zu of 256 served", round, b.success);
	}
	struct iopf_space_stats st;
	iopf_space_get_stats(r.s, &st);
	cr_assert_leq(st.pinned_peak, QUOTA_PAGES * PG);
	cr_assert_eq(st.quota_refusals, 0);
	cr_assert_eq(iopf_engine_remove_queue(engine, q2, IOPF_RELEASE_TO_HOLDER), 0);
	iopf_queue_free(q2);
	close(sv[1]);
	rig_close(&r);
}

/* Busy polling: the worker polls before it sleeps, and serves as well. */
Test(pressure, busy_polling_serves_and_then_sleeps) {
	iopf_engine_free(engine);
	struct iopf_engine_config cfg = {.workers = 1, .busy_poll_ns = 2 * 1000 * 1000};
	cr_assert_eq(iopf_engine_new(&cfg, &engine), 0);
	struct rig r;
	rig_open(&r, IOPF_BACKEND_SIMULATED);
	for (int round = 0; round < 20; round++) {
		iopf_record rr = rec(LAST, 1, (uint64_t)round);
		send_all(r.dev, &rr, sizeof(rr));
		iopf_response resp;
		cr_assert_eq(read_responses(r.dev, &resp, 1), 1);
		cr_assert_eq(resp.code, IOMMUFD_PAGE_RESP_SUCCESS);
		usleep(round % 2 ? 100 : 5000); /* within the budget, and past it */
	}
	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	cr_assert_gt(c.polls, 0, "it polled");
	cr_assert_gt(c.epoll_waits, 0);
	rig_close(&r);
}
