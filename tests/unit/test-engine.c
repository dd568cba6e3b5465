/* SPDX-License-Identifier: MIT */
/* The engine with real worker threads, real relay sockets and the device
 * emulator on the other end: exactly-once under load, removal, control
 * changes under load, and misbehaving peers. */
#include <pthread.h>
#include <stdlib.h>

#include "../common.h"
#include "emu.h"
#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/engine.h"
#include "engine/journal.h"
#include "engine/space.h"

#define PG 4096ull
#define IOVA 0x200000000ull
#define PAGES 1024

static struct iopf_engine *engine;
static pthread_mutex_t closed_lock = PTHREAD_MUTEX_INITIALIZER;
static int closed_why[1024];

static void on_closed(struct iopf_queue *q, enum iopf_queue_close why, void *ud) {
	pthread_mutex_lock(&closed_lock);
	closed_why[iopf_queue_id(q)] = why;
	pthread_mutex_unlock(&closed_lock);
}

static int closed_reason(uint32_t id) {
	pthread_mutex_lock(&closed_lock);
	int w = closed_why[id];
	pthread_mutex_unlock(&closed_lock);
	return w;
}

static void start(unsigned workers) {
	memset(closed_why, 0, sizeof(closed_why));
	iopf_rcu_register();
	struct iopf_engine_config cfg = {.workers = workers, .on_queue_closed = on_closed};
	cr_assert_eq(iopf_engine_new(&cfg, &engine), 0);
}

static void setup(void) {
	start(2);
}

static void teardown(void) {
	iopf_engine_free(engine);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
}

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 120);

static struct iopf_space *none_space(uint64_t id, uint64_t quota, uint64_t window) {
	struct iopf_space_config cfg = {
		.backend = IOPF_BACKEND_SIMULATED, .quota = quota, .page_size = PG,
		.window_min = window, .window_max = window, .iommufd = -1,
	};
	struct iopf_space *s;
	cr_assert_eq(iopf_space_new(id, &cfg, &s), 0);
	struct iopf_region_config rc = {
		.iova = IOVA, .length = PAGES * PG, .memfd = -1, .perm = IOPF_PERM_READ | IOPF_PERM_WRITE,
	};
	cr_assert_eq(iopf_space_add_region(s, &rc, 0, NULL, NULL), IOPF_REGION_ADDED);
	return s;
}

/* A relay queue in the engine and an emulator on its other end. */
static struct iopf_queue *relay_queue(uint32_t id, const struct emu_config *ec, struct emu_queue **emu) {
	int sv[2];
	relay_pair(sv);
	struct iopf_queue *q;
	cr_assert_eq(iopf_queue_new(id, sv[0], IOPF_TRANSPORT_RELAY, &q), 0);
	cr_assert_eq(iopf_engine_add_queue(engine, q), 0);
	if (emu)
		cr_assert_eq(emu_queue_new(ec, sv[1], emu), 0);
	else
		close(sv[1]);
	return q;
}

static void bind_dev(uint32_t q, uint32_t dev, uint32_t pasid, struct iopf_space *s) {
	struct iopf_binding_key k = {.queue_id = q, .dev_id = dev, .pasid = pasid};
	cr_assert_eq(iopf_bindings_add(iopf_engine_bindings(engine), &k, s), 0);
}

/* --- exactly once under random load ------------------------------------------- */

#define NQ 64
#define NDEV 2
#define NPASID 16

/* What each queue's emulator expects: bound (dev, PASID) pairs succeed,
 * unbound ones are refused; -1 where a small quota may refuse either way. */
struct expectation {
	int8_t code[NDEV][NPASID];
};

static int expect_code(void *ud, const iopf_record *recs, unsigned n) {
	struct expectation *e = ud;
	return e->code[recs[0].dev_id % NDEV][recs[0].pasid];
}

Test(engine, exactly_once_under_random_load) {
	struct iopf_space *spaces[4] = {
		none_space(1, IOPF_QUOTA_UNLIMITED, PG),
		none_space(2, IOPF_QUOTA_UNLIMITED, 16 * PG),
		none_space(3, 1 << 30, 4 * PG),
		none_space(4, 64 * PG, 4 * PG), /* tight: evicts constantly */
	};
	static struct expectation ex[NQ];
	struct iopf_queue *qs[NQ];
	struct emu_queue *emus[NQ];
	uint64_t x = 12345;
	for (uint32_t i = 0; i < NQ; i++) {
		for (int d = 0; d < NDEV; d++)
			for (int p = 0; p < NPASID; p++) {
				x = x * 6364136223846793005ull + 1442695040888963407ull;
				unsigned pick = (unsigned)(x >> 40) % 9;
				if (pick >= 4) {
					ex[i].code[d][p] = IOMMUFD_PAGE_RESP_SUCCESS;
					pick %= 3;
				} else if (pick == 3) {
					ex[i].code[d][p] = -1;
				} else {
					ex[i].code[d][p] = IOMMUFD_PAGE_RESP_INVALID;
					continue; /* left unbound */
				}
				bind_dev(i, (uint32_t)(i * NDEV + d), (uint32_t)p, spaces[pick]);
			}
		struct emu_config ec = {
			.devices = NDEV, .dev_id_base = i * NDEV, .pasids = NPASID, .outstanding = 8,
			.group_min = 1, .group_max = 8, .iova_base = IOVA, .iova_pages = PAGES,
			.pattern = (enum emu_pattern)(i % 3), .perm = IOPF_PERM_READ, .seed = i + 1,
			.max_groups = 1600, .expect = expect_code, .expect_ud = &ex[i],
		};
		qs[i] = relay_queue(i, &ec, &emus[i]);
	}

	cr_assert_eq(emu_run(emus, NQ, 0, 60000, 5000), 0);

	struct emu_stats tot = {0};
	for (int i = 0; i < NQ; i++) {
		struct emu_stats st;
		emu_queue_finish(emus[i]);
		emu_queue_stats(emus[i], &st);
		cr_assert_eq(emu_violations(&st), 0,
		             "queue %d: unknown %lu dup %lu bad %lu unexpected %lu missing %lu", i,
		             st.unknown_cookie, st.duplicate, st.bad_code, st.unexpected, st.missing);
		cr_assert_eq(st.emitted, 1600);
		tot.emitted += st.emitted;
		tot.success += st.success;
		tot.invalid += st.invalid;
	}
	cr_assert_eq(tot.emitted, NQ * 1600);
	cr_assert_eq(tot.success + tot.invalid, tot.emitted, "every group answered");
	cr_assert_gt(tot.invalid, 0);
	cr_assert_gt(tot.success, tot.invalid);

	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	cr_assert_eq(c.groups, tot.emitted);
	cr_assert_eq(c.success, tot.success);
	cr_assert_eq(iopf_counters_invalid_total(&c), tot.invalid);
	cr_assert_eq(c.write_rejects + c.protocol_errors + c.read_errors, 0);

	struct iopf_space_stats st;
	iopf_space_get_stats(spaces[3], &st);
	cr_assert_leq(st.pinned_peak, 64 * PG, "quota held under concurrent load");
	cr_assert_gt(st.evictions, 0);

	for (int i = 0; i < NQ; i++) {
		cr_assert_eq(iopf_engine_remove_queue(engine, qs[i], IOPF_RELEASE_TO_HOLDER), 0);
		iopf_queue_free(qs[i]);
		emu_queue_free(emus[i]);
	}
	for (int i = 0; i < 4; i++) {
		iopf_bindings_remove_space(iopf_engine_bindings(engine), spaces[i]);
		iopf_space_destroy(spaces[i]);
	}
}

/* --- removal answers everything that was read ------------------------------------- */

struct emu_thread {
	struct emu_queue **q;
	unsigned n;
	unsigned duration_ms;
};

static void *run_emu(void *arg) {
	struct emu_thread *t = arg;
	emu_run(t->q, t->n, t->duration_ms, 30000, 2000);
	return NULL;
}

/* Whole groups (and a trailing partial one) in a byte stream of records. */
static uint64_t groups_in(const uint8_t *p, size_t len) {
	uint64_t n = 0;
	size_t whole_end = 0;
	for (size_t i = 0; i + IOPF_RECORD_SIZE <= len; i += IOPF_RECORD_SIZE) {
		iopf_record r;
		memcpy(&r, p + i, sizeof(r));
		if (r.flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE) {
			n++;
			whole_end = i + IOPF_RECORD_SIZE;
		}
	}
	return n + (whole_end < len ? 1 : 0);
}

Test(engine, removal_answers_everything_it_read) {
	struct iopf_space *s = none_space(1, IOPF_QUOTA_UNLIMITED, PG);
	bind_dev(0, 0, IOPF_PASID_NONE, s);
	struct emu_config ec = {
		.devices = 1, .outstanding = 64, .group_min = 1, .group_max = 16, .iova_base = IOVA,
		.iova_pages = PAGES, .pattern = EMU_RANDOM, .perm = IOPF_PERM_READ, .seed = 9,
	};
	struct emu_queue *emu;
	struct iopf_queue *q = relay_queue(0, &ec, &emu);
	struct emu_thread t = {.q = &emu, .n = 1, .duration_ms = 20000};
	pthread_t th;
	pthread_create(&th, NULL, run_emu, &t);
	usleep(200 * 1000);

	cr_assert_eq(iopf_engine_remove_queue(engine, q, IOPF_RELEASE_TO_HOLDER), 0);
	/* The engine has let go, at a group boundary. End the device's run
	 * (it sees end of file) and count what the daemon never read: only
	 * those may be unanswered. */
	int fd = iopf_queue_fd(q);
	shutdown(fd, SHUT_WR);
	pthread_join(th, NULL);
	uint8_t *buf = malloc(1 << 22);
	size_t len = 0;
	for (;;) {
		ssize_t n = recv(fd, buf + len, (1 << 22) - len, MSG_DONTWAIT);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	struct emu_stats st;
	emu_queue_stats(emu, &st);
	cr_assert_gt(st.success, 1000, "load was running");
	cr_assert_eq(st.unknown_cookie + st.duplicate + st.bad_code, 0);
	cr_assert_eq(st.inflight, groups_in(buf, len),
	             "in flight at the device = never read by the daemon (%lu vs %lu)", st.inflight,
	             groups_in(buf, len));
	free(buf);
	iopf_queue_free(q);
	emu_queue_free(emu);
	iopf_bindings_remove_space(iopf_engine_bindings(engine), s);
	iopf_space_destroy(s);
}

/* --- control changes under load -------------------------------------------------- */

Test(engine, bindings_and_regions_change_under_load) {
	enum { N = 8 };
	struct iopf_space *s = none_space(1, 256 * PG, 4 * PG);
	struct iopf_space *s2 = none_space(2, IOPF_QUOTA_UNLIMITED, PG);
	struct emu_queue *emus[N];
	struct iopf_queue *qs[N];
	for (uint32_t i = 0; i < N; i++) {
		struct emu_config ec = {
			.devices = 2, .dev_id_base = 2 * i, .pasids = 4, .outstanding = 16, .group_min = 1,
			.group_max = 4, .iova_base = IOVA, .iova_pages = PAGES, .pattern = EMU_RANDOM,
			.perm = IOPF_PERM_READ, .seed = 100 + i,
		};
		qs[i] = relay_queue(i, &ec, &emus[i]);
		for (uint32_t p = 0; p < 4; p++)
			bind_dev(i, 2 * i, p, s);
	}
	struct emu_thread t = {.q = emus, .n = N, .duration_ms = 1500};
	pthread_t th;
	pthread_create(&th, NULL, run_emu, &t);

	struct iopf_bindings *b = iopf_engine_bindings(engine);
	uint64_t changes = 0;
	for (int round = 0; round < 300; round++) {
		for (uint32_t i = 0; i < N; i++) {
			struct iopf_binding_key k = {.queue_id = i, .dev_id = 2 * i + 1, .pasid = (uint32_t)round % 4};
			if (round % 2 == 0)
				cr_assert_eq(iopf_bindings_add(b, &k, round % 4 ? s : s2), 0);
			else {
				k.pasid = (uint32_t)(round - 1) % 4;
				cr_assert_eq(iopf_bindings_remove(b, &k), 0);
			}
			changes++;
		}
		/* Split the region of s and put it back together. */
		struct iopf_region_config rc = {
			.iova = IOVA + PAGES * PG, .length = 64 * PG, .memfd = -1, .perm = IOPF_PERM_READ,
		};
		struct iopf_region_info info;
		cr_assert_eq(iopf_space_add_region(s, &rc, 0, &info, NULL), IOPF_REGION_ADDED);
		cr_assert_eq(iopf_space_remove_region(s, info.id), 0);
		changes += 2;
		usleep(2000);
	}
	pthread_join(th, NULL);

	uint64_t answered = 0;
	for (int i = 0; i < N; i++) {
		struct emu_stats st;
		emu_queue_finish(emus[i]);
		emu_queue_stats(emus[i], &st);
		cr_assert_eq(emu_violations(&st), 0, "queue %d: unknown %lu dup %lu missing %lu", i,
		             st.unknown_cookie, st.duplicate, st.missing);
		answered += st.success + st.invalid;
		cr_assert_eq(iopf_engine_remove_queue(engine, qs[i], IOPF_RELEASE_TO_HOLDER), 0);
		iopf_queue_free(qs[i]);
		emu_queue_free(emus[i]);
	}
	cr_assert_gt(answered, 1000);
	cr_assert_gt(changes, 2000);
	struct iopf_space_stats st;
	iopf_space_get_stats(s, &st);
	cr_assert_leq(st.pinned_peak, 256 * PG);
	iopf_bindings_remove_space(b, s);
	iopf_bindings_remove_space(b, s2);
	iopf_space_destroy(s);
	iopf_space_destroy(s2);
}

/* --- misbehaving relay peers -------------------------------------------------------- */

static iopf_record frec(uint32_t flags, uint32_t cookie, uint64_t page) {
	return (iopf_record){.flags = flags, .dev_id = 0, .perm = IOPF_PERM_READ, .addr = IOVA + page * PG,
	                     .cookie = cookie};
}

#define LAST IOMMU_PGFAULT_FLAGS_LAST_PAGE

/* Read n responses (blocking, with a timeout) from a device end. */
static size_t read_responses(int fd, iopf_response *r, size_t n) {
	size_t got = 0;
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < n * sizeof(*r)) {
		ssize_t k = recv(fd, (uint8_t *)r + got, n * sizeof(*r) - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got / sizeof(*r);
}

static void wait_closed(uint32_t id) {
	for (int i = 0; i < 500 && !closed_reason(id); i++)
		usleep(10000);
}

Test(engine, groups_split_across_reads_byte_by_byte) {
	struct iopf_space *s = none_space(1, IOPF_QUOTA_UNLIMITED, PG);
	bind_dev(0, 0, IOPF_PASID_NONE, s);
	int sv[2];
	relay_pair(sv);
	struct iopf_queue *q;
	cr_assert_eq(iopf_queue_new(0, sv[0], IOPF_TRANSPORT_RELAY, &q), 0);
	cr_assert_eq(iopf_engine_add_queue(engine, q), 0);
	iopf_record recs[] = {frec(0, 1, 1), frec(0, 1, 2), frec(LAST, 1, 3), frec(LAST, 2, PAGES + 5)};
	const uint8_t *p = (const uint8_t *)recs;
	for (size_t i = 0; i < sizeof(recs); i++) {
		cr_assert_eq(send(sv[1], p + i, 1, 0), 1);
		if (i % 7 == 0)
			usleep(100);
	}
	iopf_response r[2];
	cr_assert_eq(read_responses(sv[1], r, 2), 2);
	cr_assert_eq(r[0].cookie, 1);
	cr_assert_eq(r[0].code, IOMMUFD_PAGE_RESP_SUCCESS);
	cr_assert_eq(r[1].cookie, 2);
	cr_assert_eq(r[1].code, IOMMUFD_PAGE_RESP_INVALID, "outside the region");
	cr_assert_eq(closed_reason(0), 0);
	close(sv[1]);
	wait_closed(0);
	cr_assert_eq(closed_reason(0), IOPF_QUEUE_HANGUP, "peer hang-up ends the queue cleanly");
	cr_assert_eq(iopf_engine_remove_queue(engine, q, IOPF_RELEASE_TO_HOLDER), 0);
	iopf_queue_free(q);
	iopf_bindings_remove_space(iopf_engine_bindings(engine), s);
	iopf_space_destroy(s);
}

/* A peer that breaks the protocol is dropped; another queue's load on the
 * same workers goes on without a violation. */
static void protocol_case(const iopf_record *recs, size_t n, size_t expect_responses) {
	struct iopf_space *s = none_space(1, IOPF_QUOTA_UNLIMITED, PG);
	bind_dev(0, 0, IOPF_PASID_NONE, s);
	bind_dev(1, 0, IOPF_PASID_NONE, s);
	struct emu_config ec = {
		.devices = 1, .outstanding = 32, .group_min = 1, .group_max = 4, .iova_base = IOVA,
		.iova_pages = PAGES, .pattern = EMU_RANDOM, .perm = IOPF_PERM_READ, .seed = 5,
		.max_groups = 20000,
	};
	struct emu_queue *emu;
	struct iopf_queue *good = relay_queue(1, &ec, &emu);
	struct emu_thread t = {.q = &emu, .n = 1};
	pthread_t th;
	pthread_create(&th, NULL, run_emu, &t);

	int sv[2];
	relay_pair(sv);
	/* Queued before the engine sees the socket, so one read takes it all. */
	cr_assert_eq(send(sv[1], recs, n * sizeof(*recs), 0), (ssize_t)(n * sizeof(*recs)));
	struct iopf_queue *bad;
	cr_assert_eq(iopf_queue_new(0, sv[0], IOPF_TRANSPORT_RELAY, &bad), 0);
	cr_assert_eq(iopf_engine_add_queue(engine, bad), 0);
	iopf_response r[16];
	cr_assert_eq(read_responses(sv[1], r, 16), expect_responses);
	for (size_t i = 0; i < expect_responses; i++)
		for (size_t j = i + 1; j < expect_responses; j++)
			cr_assert_neq(r[i].cookie, r[j].cookie, "one answer per cookie");
	wait_closed(0);
	cr_assert_eq(closed_reason(0), IOPF_QUEUE_PROTOCOL);

	pthread_join(th, NULL);
	struct emu_stats st;
	emu_queue_finish(emu);
	emu_queue_stats(emu, &st);
	cr_assert_eq(emu_violations(&st), 0);
	cr_assert_eq(st.success, 20000, "the other queue was served in full");
	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	cr_assert_eq(c.protocol_errors, 1);

	cr_assert_eq(iopf_engine_remove_queue(engine, bad, IOPF_RELEASE_TO_HOLDER), 0);
	cr_assert_eq(iopf_engine_remove_queue(engine, good, IOPF_RELEASE_TO_HOLDER), 0);
	iopf_queue_free(bad);
	iopf_queue_free(good);
	emu_queue_free(emu);
	close(sv[1]);
	iopf_bindings_remove_space(iopf_engine_bindings(engine), s);
	iopf_space_destroy(s);
}

Test(engine, mixed_cookies_drop_the_peer) {
	iopf_record recs[] = {frec(LAST, 1, 1), frec(0, 2, 2), frec(LAST, 3, 3)};
	protocol_case(recs, 3, 1); /* group 1 answered, then the stream is garbage */
}

Test(engine, duplicate_inflight_cookie_drops_the_peer) {
	iopf_record recs[] = {frec(LAST, 1, 1), frec(LAST, 2, 2), frec(LAST, 1, 3), frec(LAST, 4, 4)};
	/* 1 and 2 resolved, the second 1 gets no second answer, 4 answered
	 * INVALID because the peer is being dropped. */
	protocol_case(recs, 4, 3);
}

Test(engine, endless_group_drops_the_peer) {
	static iopf_record recs[600];
	for (int i = 0; i < 600; i++)
		recs[i] = frec(0, 9, (uint64_t)i);
	protocol_case(recs, 600, 0);
}

/* The queue takes its fd, also when it refuses it: each case passes a
 * copy, and the copy is closed either way. */
static int queue_of(int fd, enum iopf_transport_kind kind) {
	struct iopf_queue *q;
	int r = iopf_queue_new(0, fcntl(fd, F_DUPFD_CLOEXEC, 3), kind, &q);
	if (r == 0)
		iopf_queue_free(q);
	return r;
}

Test(engine, wrong_fd_kinds_are_refused) {
	int fd = sealed_memfd(PG);
	cr_assert_eq(queue_of(fd, IOPF_TRANSPORT_RELAY), -EBADFD, "a memfd");
	cr_assert_eq(queue_of(fd, IOPF_TRANSPORT_IOMMUFD), -EBADFD);
	close(fd);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	cr_assert_eq(queue_of(sv[0], IOPF_TRANSPORT_RELAY), -EPROTOTYPE, "SEQPACKET");
	close(sv[0]);
	close(sv[1]);
	int in = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(queue_of(in, IOPF_TRANSPORT_RELAY), -EAFNOSUPPORT, "TCP");
	close(in);
	struct iopf_queue *q;
	cr_assert_eq(iopf_queue_new(0, -1, IOPF_TRANSPORT_RELAY, &q), -EBADF);
	relay_pair(sv);
	cr_assert_eq(queue_of(sv[0], IOPF_TRANSPORT_IOMMUFD), -EBADFD, "a socket is no fault fd");
	cr_assert_eq(queue_of(sv[0], IOPF_TRANSPORT_RELAY), 0);
	close(sv[0]);
	close(sv[1]);
}

/* Queues removed one after another while every other queue of the same
 * workers is busy: a removal must never leave a worker an event naming a
 * freed queue (ASan catches the use after free). */
Test(engine, queues_removed_one_by_one_under_load) {
	enum { N = 16 };
	struct iopf_space *s = none_space(1, IOPF_QUOTA_UNLIMITED, PG);
	struct emu_queue *emus[N];
	struct iopf_queue *qs[N];
	for (uint32_t i = 0; i < N; i++) {
		struct emu_config ec = {
			.devices = 1, .dev_id_base = i, .outstanding = 32, .group_min = 1, .group_max = 2,
			.iova_base = IOVA, .iova_pages = PAGES, .pattern = EMU_RANDOM, .perm = IOPF_PERM_READ,
			.seed = 7 + i,
		};
		qs[i] = relay_queue(i, &ec, &emus[i]);
		bind_dev(i, i, IOPF_PASID_NONE, s);
	}
	struct emu_thread t = {.q = emus, .n = N, .duration_ms = 3000};
	pthread_t th;
	pthread_create(&th, NULL, run_emu, &t);
	for (int i = 0; i < N; i++) {
		usleep(20 * 1000);
		cr_assert_eq(iopf_engine_remove_queue(engine, qs[i], IOPF_RELEASE_TO_HOLDER), 0);
		iopf_bindings_remove_queue(iopf_engine_bindings(engine), (uint32_t)i);
		iopf_queue_free(qs[i]); /* the peer sees the end and stops */
	}
	pthread_join(th, NULL);
	for (int i = 0; i < N; i++) {
		struct emu_stats st;
		emu_queue_stats(emus[i], &st);
		cr_assert_eq(st.unknown_cookie + st.duplicate + st.bad_code, 0);
		emu_queue_free(emus[i]);
	}
	iopf_bindings_remove_space(iopf_engine_bindings(engine), s);
	iopf_space_destroy(s);
}
