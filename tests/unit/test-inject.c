/* SPDX-License-Identifier: MIT */
/*
 * Fault injection on the fault path, with real workers and emulated devices:
 *
 *  - a backend whose map fails (ENOMEM, EFAULT, EINVAL, and errnos that mean
 *    something else to the space: ENOENT, EACCES) or whose unmap fails: the
 *    group is answered INVALID (reason backend), counted, the quota
 *    accounting matches what the backend really has mapped, nothing stays
 *    mapped at the end, and other queues are served without a violation;
 *  - queue reads and writes failing (EIO, ...) on one relay queue or one
 *    kernel queue: the engine drops that queue (io-error), counts it, and
 *    serves the others with zero violations;
 *  - a worker running out of memory for a relay's backlog.
 *
 * The failing backend is a test-owned ops struct installed on a none space
 * right after it is made (before any region, so attach/detach pair up): the
 * space calls through s->ops only. I/O failures come from recv/send/read/
 * write and realloc wrapped at link time (tests/meson.build) for chosen fds.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "../common.h"
#include "space-common.h"
#include "emu.h"
#include "engine/backend.h"
#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/engine.h"
#include "engine/queue-internal.h"
#include "engine/space-internal.h"

#define PG 4096ull
#define IOVA 0x200000000ull
#define PAGES 1024

/* --- wrapped I/O ------------------------------------------------------------------------- */

ssize_t __real_recv(int fd, void *buf, size_t n, int flags);
ssize_t __real_send(int fd, const void *buf, size_t n, int flags);
ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_write(int fd, const void *buf, size_t n);
void *__real_realloc(void *p, size_t n);
ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
void *__wrap_realloc(void *p, size_t n);

/* fd whose recv/send fail, and with what. -1: none. */
static int recv_fail_fd = -1, recv_fail_errno;
static int send_fail_fd = -1, send_fail_errno;
/* While set, a thread whose send was failed has its next realloc fail too
 * (the worker buffering what it could not send). */
static int backlog_oom;
static __thread bool fail_next_realloc;
/* While set, a recv on recv_oom_fd makes the same thread's next realloc
 * fail (the worker keeping a partial group for the next read). */
static int recv_oom_fd = -1;

static bool fails(int *which, int fd, int *err_src) {
	if (fd < 0 || __atomic_load_n(which, __ATOMIC_ACQUIRE) != fd)
		return false;
	errno = __atomic_load_n(err_src, __ATOMIC_RELAXED);
	return true;
}

static void fail_fd(int *which, int *err_dst, int fd, int err) {
	__atomic_store_n(err_dst, err, __ATOMIC_RELAXED);
	__atomic_store_n(which, fd, __ATOMIC_RELEASE);
}

ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags) {
	if (fails(&recv_fail_fd, fd, &recv_fail_errno))
		return -1;
	if (fd >= 0 && fd == __atomic_load_n(&recv_oom_fd, __ATOMIC_ACQUIRE))
		fail_next_realloc = true;
	return __real_recv(fd, buf, n, flags);
}

ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags) {
	if (fails(&send_fail_fd, fd, &send_fail_errno)) {
		if (__atomic_load_n(&backlog_oom, __ATOMIC_ACQUIRE))
			fail_next_realloc = true;
		return -1;
	}
	return __real_send(fd, buf, n, flags);
}

void *__wrap_realloc(void *p, size_t n) {
	if (fail_next_realloc) {
		fail_next_realloc = false;
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

/*
 * A kernel fault queue, played by read()/write() on one eventfd: read()
 * returns whole groups of what the test queued (0 when there is nothing, as
 * the kernel does), write() takes responses for cookies in flight. The
 * eventfd is only the readiness signal: readable while groups wait.
 */
static struct {
	pthread_mutex_t lock;
	int fd;
	uint8_t buf[64 * 1024];
	size_t len;
	bool inflight[256];
	unsigned answered, bad_responses;
	int read_errno, write_errno; /* fail with these when non-zero */
} kq = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

ssize_t __wrap_read(int fd, void *buf, size_t n) {
	if (fd < 0 || fd != __atomic_load_n(&kq.fd, __ATOMIC_ACQUIRE))
		return __real_read(fd, buf, n);
	pthread_mutex_lock(&kq.lock);
	ssize_t r;
	if (kq.read_errno) {
		errno = kq.read_errno;
		r = -1;
	} else if (n % IOPF_RECORD_SIZE) {
		errno = ESPIPE;
		r = -1;
	} else {
		/* Whole groups that fit. */
		size_t take = 0, i = 0;
		while (i < kq.len) {
			iopf_record rec;
			memcpy(&rec, kq.buf + i, sizeof(rec));
			i += IOPF_RECORD_SIZE;
			if (i > n)
				break;
			if (rec.flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE)
				take = i;
		}
		memcpy(buf, kq.buf, take);
		memmove(kq.buf, kq.buf + take, kq.len - take);
		kq.len -= take;
		r = (ssize_t)take;
		if (kq.len == 0) {
			uint64_t v;
			__real_read(fd, &v, sizeof(v)); /* no longer readable */
		}
	}
	pthread_mutex_unlock(&kq.lock);
	return r;
}

ssize_t __wrap_write(int fd, const void *buf, size_t n) {
	if (fd < 0 || fd != __atomic_load_n(&kq.fd, __ATOMIC_ACQUIRE))
		return __real_write(fd, buf, n);
	pthread_mutex_lock(&kq.lock);
	ssize_t r;
	if (kq.write_errno) {
		errno = kq.write_errno;
		r = -1;
	} else {
		size_t done = 0;
		for (; done + sizeof(iopf_response) <= n; done += sizeof(iopf_response)) {
			iopf_response resp;
			memcpy(&resp, (const uint8_t *)buf + done, sizeof(resp));
			if (resp.cookie >= 256 || !kq.inflight[resp.cookie]) {
				kq.bad_responses++;
				break;
			}
			kq.inflight[resp.cookie] = false;
			kq.answered++;
		}
		r = (ssize_t)done;
		if (done == 0) {
			errno = EINVAL;
			r = -1;
		}
	}
	pthread_mutex_unlock(&kq.lock);
	return r;
}

/* Queue one group of n faults with `cookie` on the kernel queue. */
static void kq_push(uint32_t cookie, uint32_t dev, uint64_t page, unsigned n) {
	pthread_mutex_lock(&kq.lock);
	for (unsigned i = 0; i < n; i++) {
		iopf_record rec = {
			.flags = i == n - 1 ? IOMMU_PGFAULT_FLAGS_LAST_PAGE : 0, .dev_id = dev, .perm = IOPF_PERM_READ,
			.addr = IOVA + (page + i) * PG, .cookie = cookie,
		};
		memcpy(kq.buf + kq.len, &rec, sizeof(rec));
		kq.len += sizeof(rec);
	}
	kq.inflight[cookie] = true;
	pthread_mutex_unlock(&kq.lock);
	eventfd_write(kq.fd, 1); /* libc's own write: not wrapped */
}

/* --- a backend that fails on demand ---------------------------------------------------- */

/* State per space; map/unmap run under the space's lock, the counters are
 * read by the test. */
struct fail_backend {
	int map_errno;         /* maps touching region pages [bad_lo, bad_hi) fail with it */
	uint64_t bad_lo, bad_hi;
	unsigned unmap_fail_every; /* every Nth unmap fails (EINVAL); 0: never */
	bool unmap_always_fails;
	/* Counters. */
	uint64_t maps, map_fails, unmaps, unmap_fails;
	uint64_t double_maps, bad_unmaps; /* accounting bugs: must stay 0 */
	uint64_t mapped_pages;            /* pages mapped now */
	uint64_t left_at_detach;          /* pages still mapped when a region went */
};

#define FB(s) ((struct fail_backend *)(s)->backend)
#define FB_GET(f) __atomic_load_n(&(f), __ATOMIC_ACQUIRE)
#define FB_ADD(f, n) __atomic_fetch_add(&(f), (n), __ATOMIC_ACQ_REL)

static int fb_init(struct iopf_space *s, int fd) {
	return 0;
}

/* One byte per page of the region: mapped or not. */
static int fb_attach(struct iopf_space *s, struct iopf_region *r) {
	r->backend_data = calloc(r->n_pages, 1);
	return r->backend_data ? 0 : -ENOMEM;
}

static void fb_detach(struct iopf_space *s, struct iopf_region *r) {
	uint8_t *mapped = r->backend_data;
	uint64_t left = 0;
	for (uint64_t i = 0; i < r->n_pages; i++)
		left += mapped[i];
	FB_ADD(FB(s)->left_at_detach, left);
	FB_ADD(FB(s)->mapped_pages, -left);
	free(mapped);
	r->backend_data = NULL;
}

static int fb_map(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	struct fail_backend *f = FB(s);
	uint8_t *mapped = r->backend_data;
	uint64_t first = off / PG, n = len / PG;
	FB_ADD(f->maps, 1);
	if (f->map_errno && first < f->bad_hi && first + n > f->bad_lo) {
		FB_ADD(f->map_fails, 1);
		return -f->map_errno;
	}
	for (uint64_t i = first; i < first + n; i++) {
		if (mapped[i])
			FB_ADD(f->double_maps, 1);
		mapped[i] = 1;
	}
	FB_ADD(f->mapped_pages, n);
	return 0;
}

static int fb_unmap(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	struct fail_backend *f = FB(s);
	uint8_t *mapped = r->backend_data;
	uint64_t first = off / PG, n = len / PG;
	uint64_t k = FB_ADD(f->unmaps, 1) + 1;
	if (f->unmap_always_fails || (f->unmap_fail_every && k % f->unmap_fail_every == 0)) {
		FB_ADD(f->unmap_fails, 1);
		return -EINVAL;
	}
	for (uint64_t i = first; i < first + n; i++) {
		if (!mapped[i])
			FB_ADD(f->bad_unmaps, 1);
		mapped[i] = 0;
	}
	FB_ADD(f->mapped_pages, -n);
	return 0;
}

static void fb_destroy(struct iopf_space *s) {
	s->backend = NULL; /* the test owns the state */
}

static const struct iopf_backend_ops fail_ops = {
	.pins = true,
	.init = fb_init,
	.attach_region = fb_attach,
	.detach_region = fb_detach,
	.map = fb_map,
	.unmap = fb_unmap,
	.destroy = fb_destroy,
};

/* A space calling the failing backend: made as a none space, the ops
 * swapped before it has a region. One-page windows, so a map covers
 * exactly the faulting page. */
static struct iopf_space *failing_space(struct fail_backend *f, uint64_t quota) {
	struct iopf_space_config cfg = {
		.backend = IOPF_BACKEND_NONE, .quota = quota, .page_size = PG, .window_min = PG, .window_max = PG,
		.fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = IOPF_EVICTION_CLOCK, .iommufd = -1,
	};
	struct iopf_space *s;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), 0);
	s->ops = &fail_ops;
	s->backend = f;
	struct iopf_region_config rc = {
		.iova = IOVA, .length = PAGES * PG, .memfd = -1, .perm = IOPF_PERM_READ | IOPF_PERM_WRITE,
	};
	cr_assert_eq(iopf_space_add_region(s, &rc, 0, NULL, NULL), IOPF_REGION_ADDED);
	return s;
}

/* The space's books against what the backend really holds. */
static void check_books(struct iopf_space *s, struct fail_backend *f, uint64_t quota) {
	struct iopf_space_stats st;
	iopf_space_get_stats(s, &st); /* takes the lock: the backend's writes happen before */
	cr_assert_eq(FB_GET(f->double_maps), 0, "a page was mapped twice");
	cr_assert_eq(FB_GET(f->bad_unmaps), 0, "a page was unmapped that was not mapped");
	cr_assert_eq(st.pinned_bytes, FB_GET(f->mapped_pages) * PG, "pinned %lu, backend holds %lu pages",
	             st.pinned_bytes, FB_GET(f->mapped_pages));
	cr_assert_leq(st.pinned_peak, quota, "quota held");
	cr_assert_eq(st.map_errors, FB_GET(f->map_fails));
	cr_assert_eq(st.unmap_errors, FB_GET(f->unmap_fails));
}

/* --- the engine around it ------------------------------------------------------------------ */

static struct iopf_engine *engine;
static pthread_mutex_t closed_lock = PTHREAD_MUTEX_INITIALIZER;
static int closed_why[64];

static void on_closed(struct iopf_queue *q, enum iopf_queue_close why, void *ud) {
	/* The fd number is free again: stop failing it before anyone reuses it. */
	__atomic_store_n(&recv_fail_fd, -1, __ATOMIC_RELEASE);
	__atomic_store_n(&send_fail_fd, -1, __ATOMIC_RELEASE);
	__atomic_store_n(&kq.fd, -1, __ATOMIC_RELEASE);
	__atomic_store_n(&recv_oom_fd, -1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&closed_lock);
	closed_why[q->id] = why;
	pthread_mutex_unlock(&closed_lock);
}

static int closed_reason(uint32_t id) {
	pthread_mutex_lock(&closed_lock);
	int w = closed_why[id];
	pthread_mutex_unlock(&closed_lock);
	return w;
}

static void wait_closed(uint32_t id) {
	for (int i = 0; i < 1000 && !closed_reason(id); i++)
		usleep(10000);
}

static void setup(void) {
	memset(closed_why, 0, sizeof(closed_why));
	iopf_rcu_register();
	struct iopf_engine_config cfg = {.workers = 2, .on_queue_closed = on_closed};
	cr_assert_eq(iopf_engine_new(&cfg, &engine), 0);
}

static void teardown(void) {
	iopf_engine_free(engine);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
}

TestSuite(inject, .init = setup, .fini = teardown, .timeout = 180);

static struct iopf_space *none_space(uint64_t id) {
	struct iopf_space_config cfg = {
		.backend = IOPF_BACKEND_NONE, .quota = IOPF_QUOTA_UNLIMITED, .page_size = PG, .window_min = PG,
		.window_max = 4 * PG, .fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = IOPF_EVICTION_CLOCK,
		.iommufd = -1,
	};
	struct iopf_space *s;
	cr_assert_eq(iopf_space_new(id, &cfg, &s), 0);
	struct iopf_region_config rc = {.iova = IOVA, .length = PAGES * PG, .memfd = -1, .perm = IOPF_PERM_READ};
	cr_assert_eq(iopf_space_add_region(s, &rc, 0, NULL, NULL), IOPF_REGION_ADDED);
	return s;
}

static void bind_dev(uint32_t q, uint32_t dev, struct iopf_space *s) {
	struct iopf_binding_key k = {.queue_id = q, .dev_id = dev, .pasid = IOPF_PASID_NONE};
	cr_assert_eq(iopf_bindings_add(iopf_engine_bindings(engine), &k, s), 0);
}

/* A relay queue in the engine with an emulator on the device end. With
 * keep, *kept is a second fd of the daemon's end, so that what the daemon
 * never read can be counted after it let go. */
static struct iopf_queue *relay_queue(uint32_t id, const struct emu_config *ec, struct emu_queue **emu, int *kept) {
	int sv[2];
	relay_pair(sv);
	struct iopf_queue *q;
	cr_assert_eq(iopf_queue_new(id, kept ? fcntl(sv[0], F_DUPFD_CLOEXEC, 3) : sv[0], IOPF_TRANSPORT_RELAY, &q), 0);
	if (kept)
		*kept = sv[0];
	cr_assert_eq(iopf_engine_add_queue(engine, q), 0);
	cr_assert_eq(emu_queue_new(ec, sv[1], emu), 0);
	return q;
}

static struct emu_config load(uint32_t dev, uint64_t seed, uint64_t max_groups) {
	return (struct emu_config){
		.devices = 1, .dev_id_base = dev, .outstanding = 8, .group_min = 1, .group_max = 4, .iova_base = IOVA,
		.iova_pages = PAGES, .pattern = EMU_RANDOM, .perm = IOPF_PERM_READ, .seed = seed,
		.max_groups = max_groups,
	};
}

struct emu_thread {
	struct emu_queue **q;
	unsigned n;
	unsigned duration_ms;
	pthread_t th;
};

static void *run_emu(void *arg) {
	struct emu_thread *t = arg;
	emu_run(t->q, t->n, t->duration_ms, 60000, 3000);
	return NULL;
}

static void emu_start(struct emu_thread *t, struct emu_queue **q, unsigned n, unsigned duration_ms) {
	*t = (struct emu_thread){.q = q, .n = n, .duration_ms = duration_ms};
	pthread_create(&t->th, NULL, run_emu, t);
}

/* Zero violations of any kind; returns groups answered. */
static uint64_t clean(struct emu_queue *emu, const char *what) {
	struct emu_stats st;
	emu_queue_finish(emu);
	emu_queue_stats(emu, &st);
	cr_assert_eq(emu_violations(&st), 0, "%s: unknown %lu dup %lu bad %lu unexpected %lu missing %lu", what,
	             st.unknown_cookie, st.duplicate, st.bad_code, st.unexpected, st.missing);
	return st.success + st.invalid;
}

static void drop_queue(struct iopf_queue *q) {
	cr_assert_eq(iopf_engine_remove_queue(engine, q, IOPF_RELEASE_TO_HOLDER), 0);
	iopf_bindings_remove_queue(iopf_engine_bindings(engine), q->id);
	iopf_queue_free(q);
}

static void drop_space(struct iopf_space *s) {
	iopf_bindings_remove_space(iopf_engine_bindings(engine), s);
	iopf_space_destroy(s);
}

/* --- backend failures ---------------------------------------------------------------------- */

/* Groups that touch the failing half of the region must be refused. */
static int expect_half(void *ud, const iopf_record *recs, unsigned n) {
	const struct fail_backend *f = ud;
	for (unsigned i = 0; i < n; i++) {
		uint64_t page = (recs[i].addr - IOVA) / PG;
		if (page >= f->bad_lo && page < f->bad_hi)
			return IOMMUFD_PAGE_RESP_INVALID;
	}
	return IOMMUFD_PAGE_RESP_SUCCESS;
}

Test(inject, backend_map_failures_refuse_only_their_groups) {
	static const int errnos[] = {ENOMEM, EFAULT, EINVAL, ENOENT, EACCES, EBUSY};
	for (size_t e = 0; e < sizeof(errnos) / sizeof(errnos[0]); e++) {
		/* Half the region cannot be mapped. The quota (512 pages) is
		 * below the good half, so eviction runs too, and well above
		 * what the groups in flight can hold (8 x 4 pages), so no
		 * good group is ever refused for quota. */
		struct fail_backend f = {.map_errno = errnos[e], .bad_lo = PAGES / 2, .bad_hi = PAGES};
		const uint64_t quota = 512 * PG;
		struct iopf_space *bad = failing_space(&f, quota);
		struct iopf_space *good = none_space(2);
		bind_dev(1, 1, bad);
		bind_dev(2, 2, good);
		struct emu_queue *emu[2];
		struct emu_config ec = load(1, 11 + e, 6000);
		ec.expect = expect_half;
		ec.expect_ud = &f;
		struct iopf_queue *qa = relay_queue(1, &ec, &emu[0], NULL);
		ec = load(2, 22 + e, 6000);
		ec.expect = NULL;
		struct iopf_queue *qb = relay_queue(2, &ec, &emu[1], NULL);
		struct iopf_counters c0;
		iopf_engine_counters(engine, &c0);

		cr_assert_eq(emu_run(emu, 2, 0, 60000, 3000), 0);

		struct emu_stats sa, sb;
		clean(emu[0], "queue on the failing backend");
		clean(emu[1], "queue on a good backend");
		emu_queue_stats(emu[0], &sa);
		emu_queue_stats(emu[1], &sb);
		cr_assert_eq(sa.success + sa.invalid, 6000, "every group answered");
		cr_assert_gt(sa.invalid, 0);
		cr_assert_gt(sa.success, 0);
		cr_assert_eq(sb.success, 6000, "the other queue is untouched");
		struct iopf_counters c;
		iopf_engine_counters(engine, &c);
		cr_assert_eq(c.invalid[IOPF_INVALID_BACKEND] - c0.invalid[IOPF_INVALID_BACKEND], sa.invalid,
		             "errno %d: refusals counted as backend failures (%lu of %lu)", errnos[e],
		             c.invalid[IOPF_INVALID_BACKEND] - c0.invalid[IOPF_INVALID_BACKEND], sa.invalid);
		cr_assert_eq(iopf_counters_invalid_total(&c) - iopf_counters_invalid_total(&c0), sa.invalid);
		cr_assert_gt(FB_GET(f.map_fails), 0);
		check_books(bad, &f, quota);
		struct iopf_space_stats st;
		iopf_space_get_stats(bad, &st);
		cr_assert_gt(st.evictions, 0, "eviction ran");

		drop_queue(qa);
		drop_queue(qb);
		drop_space(bad);
		drop_space(good);
		cr_assert_eq(FB_GET(f.left_at_detach), 0, "everything unmapped before the region went");
		cr_assert_eq(FB_GET(f.mapped_pages), 0);
		emu_queue_free(emu[0]);
		emu_queue_free(emu[1]);
	}
}

Test(inject, backend_unmap_failures_keep_the_books_right) {
	/* A tight quota: eviction on nearly every fault, one unmap in three
	 * failing. A failed unmap leaves the area pinned and counted; the
	 * clock moves on to another. */
	struct fail_backend f = {.unmap_fail_every = 3};
	const uint64_t quota = 64 * PG;
	struct iopf_space *bad = failing_space(&f, quota);
	struct iopf_space *good = none_space(2);
	bind_dev(1, 1, bad);
	bind_dev(2, 2, good);
	struct emu_queue *emu[2];
	struct emu_config ec = load(1, 5, 6000);
	ec.outstanding = 4; /* at most 16 pages held: eviction always finds room */
	struct iopf_queue *qa = relay_queue(1, &ec, &emu[0], NULL);
	ec = load(2, 6, 6000);
	struct iopf_queue *qb = relay_queue(2, &ec, &emu[1], NULL);

	cr_assert_eq(emu_run(emu, 2, 0, 60000, 3000), 0);

	struct emu_stats sa, sb;
	clean(emu[0], "queue on the failing backend");
	clean(emu[1], "queue on a good backend");
	emu_queue_stats(emu[0], &sa);
	emu_queue_stats(emu[1], &sb);
	cr_assert_eq(sa.success + sa.invalid, 6000);
	cr_assert_eq(sb.success, 6000);
	cr_assert_gt(FB_GET(f.unmap_fails), 10, "unmaps failed");
	check_books(bad, &f, quota);
	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	cr_assert_eq(iopf_counters_invalid_total(&c), c.invalid[IOPF_INVALID_QUOTA],
	             "the only refusals possible are for quota");
	cr_assert_eq(c.invalid[IOPF_INVALID_QUOTA], sa.invalid);

	/* Unmapping everything works once unmap does. The workers let go of
	 * a batch's pages just after its responses are out: drained, they
	 * hold none. */
	f.unmap_fail_every = 0;
	cr_assert_eq(iopf_engine_drain(engine), 0);
	iopf_space_evict_all(bad);
	check_books(bad, &f, quota);
	cr_assert_eq(FB_GET(f.mapped_pages), 0);
	drop_queue(qa);
	drop_queue(qb);
	drop_space(bad);
	drop_space(good);
	cr_assert_eq(FB_GET(f.left_at_detach), 0);
	emu_queue_free(emu[0]);
	emu_queue_free(emu[1]);
}

/*
 * Removing a region whose unmaps fail: the region is gone either way, so
 * nothing of it may stay in the eviction ring (the clock would touch a
 * freed region) or in the pinned count (the quota would shrink for good).
 */
Test(inject, region_removed_while_unmap_fails) {
	struct fail_backend f = {0};
	const uint64_t quota = 8 * PG;
	struct iopf_space *s = failing_space(&f, quota);
	struct iopf_region_config rc = {
		.iova = IOVA + PAGES * PG, .length = 64 * PG, .memfd = -1, .perm = IOPF_PERM_READ,
	};
	struct iopf_region_info info;
	cr_assert_eq(iopf_space_add_region(s, &rc, 0, &info, NULL), IOPF_REGION_ADDED);
	uint64_t r2 = info.id;
	for (uint64_t i = 0; i < 4; i++)
		cr_assert_eq(space_fault(s, IOVA + PAGES * PG + i * PG, IOPF_PERM_READ), 0);
	f.unmap_always_fails = true;
	cr_assert_eq(iopf_space_remove_region(s, r2), 0, "the region goes even if unmapping it fails");
	cr_assert_eq(FB_GET(f.unmap_fails), 4);
	struct iopf_space_stats st;
	iopf_space_get_stats(s, &st);
	cr_assert_eq(st.unmap_errors, 4, "counted");
	cr_assert_eq(st.pinned_bytes, 0, "nothing of the removed region is accounted");
	cr_assert_eq(FB_GET(f.left_at_detach), 4, "its backend was told to let go of the rest");

	/* The first region fills the quota twice over: the clock must only
	 * ever meet areas of live regions (ASan: no use after free). */
	f.unmap_always_fails = false;
	for (uint64_t i = 0; i < 2 * quota / PG; i++)
		cr_assert_eq(space_fault(s, IOVA + i * PG, IOPF_PERM_READ), 0, "fault %lu", i);
	check_books(s, &f, quota);
	iopf_space_destroy(s);
	cr_assert_eq(FB_GET(f.mapped_pages), 0);
}

/* --- relay I/O failures --------------------------------------------------------------------- */

/* Bytes still queued at the daemon's end (never read by it). */
static uint64_t unread_bytes(int fd) {
	static uint8_t buf[1 << 20];
	uint64_t n = 0;
	for (;;) {
		ssize_t k = __real_recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k <= 0)
			return n;
		n += (uint64_t)k;
	}
}

/* Three relay queues under load; partway, I/O on the first one starts
 * failing. It is dropped with io-error and counted; the others run on. */
static void relay_io_case(bool reads, int err) {
	struct iopf_space *s = none_space(1);
	struct emu_queue *emu[3];
	struct iopf_queue *q[3];
	int kept = -1;
	for (uint32_t i = 0; i < 3; i++) {
		bind_dev(i + 1, i + 1, s);
		struct emu_config ec = load(i + 1, 40 + i, 0);
		/* A failed read loses nothing: keep the daemon's end to count
		 * what it never read. A failed write ends the queue with its
		 * batch unanswered: the peer must see the end (the kernel
		 * answers a closed queue's groups itself). */
		q[i] = relay_queue(i + 1, &ec, &emu[i], i == 0 && reads ? &kept : NULL);
	}
	struct emu_thread t;
	emu_start(&t, emu, 3, 1500);
	usleep(300 * 1000);
	struct iopf_counters c0;
	iopf_engine_counters(engine, &c0);
	if (reads)
		fail_fd(&recv_fail_fd, &recv_fail_errno, q[0]->fd, err);
	else
		fail_fd(&send_fail_fd, &send_fail_errno, q[0]->fd, err);
	wait_closed(1);
	cr_assert_eq(closed_reason(1), IOPF_QUEUE_IO_ERROR, "dropped as io-error (got %d)", closed_reason(1));
	pthread_join(t.th, NULL);

	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	if (reads) {
		cr_assert_eq(c.read_errors - c0.read_errors, 1, "the failed read is counted");
		cr_assert_eq(c.write_errors, c0.write_errors);
	} else {
		cr_assert_eq(c.write_errors - c0.write_errors, 1, "the failed write is counted");
		cr_assert_eq(c.read_errors, c0.read_errors);
	}
	cr_assert_eq(c.protocol_errors + c.write_rejects, 0);

	struct emu_stats st;
	emu_queue_stats(emu[0], &st);
	cr_assert_eq(st.unknown_cookie + st.duplicate + st.bad_code, 0, "no wrong answers before the drop");
	cr_assert_gt(st.success, 100, "load was running");
	if (reads) {
		uint64_t consumed = emu_queue_bytes_sent(emu[0]) - unread_bytes(kept);
		cr_assert_eq(emu_queue_unanswered_before(emu[0], consumed), 0,
		             "every group the daemon read before the failure was answered");
		close(kept);
	}
	for (int i = 1; i < 3; i++)
		cr_assert_gt(clean(emu[i], "another queue"), 1000, "and it was served");

	for (int i = 0; i < 3; i++) {
		drop_queue(q[i]);
		emu_queue_free(emu[i]);
	}
	drop_space(s);
}

Test(inject, relay_read_fails_eio) {
	relay_io_case(true, EIO);
}

Test(inject, relay_read_fails_enomem) {
	relay_io_case(true, ENOMEM);
}

Test(inject, relay_write_fails_eio) {
	relay_io_case(false, EIO);
}

Test(inject, relay_write_fails_enobufs) {
	relay_io_case(false, ENOBUFS);
}

/* --- kernel queue I/O failures ------------------------------------------------------------- */

/* A kernel queue around the eventfd that plays it (a real one needs
 * /dev/iommu: the VM suite has those). iopf_queue_new() only takes a real
 * fault fd for that transport, so the queue is made as a relay and then
 * turned into a kernel queue on the eventfd. */
static struct iopf_queue *kernel_queue(uint32_t id) {
	int sv[2];
	relay_pair(sv);
	struct iopf_queue *q;
	cr_assert_eq(iopf_queue_new(id, sv[0], IOPF_TRANSPORT_RELAY, &q), 0);
	close(sv[1]);
	close(q->fd);
	pthread_mutex_lock(&kq.lock);
	kq.len = 0;
	kq.answered = kq.bad_responses = 0;
	kq.read_errno = kq.write_errno = 0;
	memset(kq.inflight, 0, sizeof(kq.inflight));
	pthread_mutex_unlock(&kq.lock);
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert_geq(fd, 0);
	__atomic_store_n(&kq.fd, fd, __ATOMIC_RELEASE);
	q->fd = fd;
	q->kind = IOPF_TRANSPORT_IOMMUFD;
	q->ops = &iopf_transport_iommufd;
	cr_assert_eq(iopf_engine_add_queue(engine, q), 0);
	return q;
}

static unsigned kq_answered(void) {
	pthread_mutex_lock(&kq.lock);
	unsigned n = kq.answered;
	pthread_mutex_unlock(&kq.lock);
	return n;
}

static void kernel_io_case(bool reads, int err) {
	struct iopf_space *s = none_space(1);
	bind_dev(1, 7, s);
	bind_dev(2, 2, s);
	struct emu_queue *emu;
	struct emu_config ec = load(2, 77, 0);
	struct iopf_queue *other = relay_queue(2, &ec, &emu, NULL);
	struct emu_thread t;
	emu_start(&t, &emu, 1, 1000);

	struct iopf_queue *q = kernel_queue(1);
	/* It works first. */
	kq_push(0, 7, 0, 2);
	kq_push(1, 7, 4, 1);
	for (int i = 0; i < 500 && kq_answered() < 2; i++)
		usleep(10000);
	cr_assert_eq(kq_answered(), 2);
	struct iopf_counters c0;
	iopf_engine_counters(engine, &c0);

	pthread_mutex_lock(&kq.lock);
	if (reads)
		kq.read_errno = err;
	else
		kq.write_errno = err;
	pthread_mutex_unlock(&kq.lock);
	kq_push(2, 7, 8, 3);
	wait_closed(1);
	cr_assert_eq(closed_reason(1), IOPF_QUEUE_IO_ERROR, "dropped as io-error (got %d)", closed_reason(1));
	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	if (reads)
		cr_assert_eq(c.read_errors - c0.read_errors, 1);
	else
		cr_assert_eq(c.write_errors - c0.write_errors, 1);
	cr_assert_eq(c.write_rejects, 0);
	pthread_mutex_lock(&kq.lock);
	cr_assert_eq(kq.bad_responses, 0);
	pthread_mutex_unlock(&kq.lock);

	pthread_join(t.th, NULL);
	cr_assert_gt(clean(emu, "a relay queue on the same workers"), 1000);
	drop_queue(q);
	drop_queue(other);
	emu_queue_free(emu);
	drop_space(s);
}

Test(inject, kernel_read_fails) {
	static const int errnos[] = {EIO, EFAULT, EINVAL, ESPIPE};
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
		memset(closed_why, 0, sizeof(closed_why));
		kernel_io_case(true, errnos[i]);
	}
}

Test(inject, kernel_write_fails) {
	static const int errnos[] = {EIO, EFAULT, EBADF};
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
		memset(closed_why, 0, sizeof(closed_why));
		kernel_io_case(false, errnos[i]);
	}
}

/* The kernel hands over whole groups only: one longer than a relay may
 * send (over max_group_faults records) is answered, not taken for a stream
 * that lost its place. */
Test(inject, a_long_kernel_group_is_answered) {
	struct iopf_space *s = none_space(1);
	bind_dev(1, 7, s);
	struct iopf_queue *q = kernel_queue(1);
	kq_push(0, 7, 0, 600);
	for (int i = 0; i < 500 && kq_answered() < 1; i++)
		usleep(10000);
	cr_assert_eq(kq_answered(), 1);
	cr_assert_eq(closed_reason(1), 0, "the queue was dropped");
	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	cr_assert_eq(c.protocol_errors, 0);
	cr_assert_eq(c.success, 1);
	cr_assert_eq(c.faults, 600);
	drop_queue(q);
	drop_space(s);
}

/* --- a worker out of memory ---------------------------------------------------------------- */

/*
 * A relay peer that does not take its responses makes the worker keep
 * them (relay backpressure). When even that memory cannot be had, the
 * queue is dropped as io-error and that is counted; the other queue is
 * served on.
 */
Test(inject, relay_backlog_without_memory) {
	struct iopf_space *s = none_space(1);
	bind_dev(1, 1, s);
	bind_dev(2, 2, s);
	struct emu_queue *emu;
	struct emu_config ec = load(2, 3, 0);
	struct iopf_queue *other = relay_queue(2, &ec, &emu, NULL);
	struct emu_thread t;
	emu_start(&t, &emu, 1, 1000);

	int sv[2];
	relay_pair(sv);
	struct iopf_queue *q;
	cr_assert_eq(iopf_queue_new(1, sv[0], IOPF_TRANSPORT_RELAY, &q), 0);
	/* The peer's socket is full: every send would block. */
	fail_fd(&send_fail_fd, &send_fail_errno, q->fd, EAGAIN);
	__atomic_store_n(&backlog_oom, 1, __ATOMIC_RELEASE);
	struct iopf_counters c0;
	iopf_engine_counters(engine, &c0);
	cr_assert_eq(iopf_engine_add_queue(engine, q), 0);
	iopf_record rec = {.flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE, .dev_id = 1, .perm = IOPF_PERM_READ,
	                   .addr = IOVA, .cookie = 1};
	cr_assert_eq(__real_send(sv[1], &rec, sizeof(rec), 0), (ssize_t)sizeof(rec));
	wait_closed(1);
	__atomic_store_n(&backlog_oom, 0, __ATOMIC_RELEASE);
	cr_assert_eq(closed_reason(1), IOPF_QUEUE_IO_ERROR);
	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	cr_assert_eq(c.write_errors - c0.write_errors, 1, "the undeliverable response is counted");

	pthread_join(t.th, NULL);
	cr_assert_gt(clean(emu, "the other queue"), 1000);
	close(sv[1]);
	drop_queue(q);
	drop_queue(other);
	emu_queue_free(emu);
	drop_space(s);
}

#ifndef IOPFD_TEST_LITE
/*
 * A worker that cannot keep a relay's partial group for the next read (out
 * of memory, when there is no journal or its carry slots are all taken)
 * drops the queue as io-error, and counts it.
 */
Test(inject, partial_group_without_memory) {
	struct iopf_space *s = none_space(1);
	bind_dev(1, 1, s);
	int sv[2];
	relay_pair(sv);
	struct iopf_queue *q;
	cr_assert_eq(iopf_queue_new(1, sv[0], IOPF_TRANSPORT_RELAY, &q), 0);
	__atomic_store_n(&recv_oom_fd, q->fd, __ATOMIC_RELEASE);
	struct iopf_counters c0;
	iopf_engine_counters(engine, &c0);
	/* A whole group and the first record of the next. */
	iopf_record recs[2] = {
		{.flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE, .dev_id = 1, .perm = IOPF_PERM_READ, .addr = IOVA, .cookie = 1},
		{.flags = 0, .dev_id = 1, .perm = IOPF_PERM_READ, .addr = IOVA + PG, .cookie = 2},
	};
	cr_assert_eq(__real_send(sv[1], recs, sizeof(recs), 0), (ssize_t)sizeof(recs));
	cr_assert_eq(iopf_engine_add_queue(engine, q), 0);
	wait_closed(1);
	cr_assert_eq(closed_reason(1), IOPF_QUEUE_IO_ERROR);
	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	cr_assert_eq(c.read_errors + c.write_errors - c0.read_errors - c0.write_errors, 1,
	             "the drop is counted as an I/O error");
	close(sv[1]);
	drop_queue(q);
	drop_space(s);
}
#endif

/* --- eviction under concurrent hits ----------------------------------------------------- */

struct hammer {
	struct iopf_space *s;
	int stop;
	uint64_t faults, refused;
};

static void *hammer_main(void *arg) {
	struct hammer *h = arg;
	iopf_rcu_register();
	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		for (uint64_t i = 0; i < 64; i++) {
			if (space_fault(h->s, IOVA + i * PG, IOPF_PERM_READ) != 0)
				h->refused++;
			h->faults++;
		}
		iopf_rcu_quiescent();
	}
	iopf_rcu_unregister();
	return NULL;
}

/*
 * A fault may be refused for quota only when every pinned page is held by
 * a group being resolved. Here one thread keeps hitting the pages already
 * pinned (setting their referenced bits, without the space's lock) while
 * another faults new pages: at most two pages are ever held, so every
 * fault must succeed, however often the clock finds everything referenced.
 */
Test(inject, eviction_under_concurrent_hits_never_refuses) {
	struct iopf_space_config cfg = {
		.backend = IOPF_BACKEND_SIMULATED, .quota = 64 * PG, .page_size = PG, .window_min = PG, .window_max = PG,
		.iommufd = -1,
	};
	struct iopf_space *s;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), 0);
	struct iopf_region_config rc = {.iova = IOVA, .length = PAGES * PG, .memfd = -1, .perm = IOPF_PERM_READ};
	cr_assert_eq(iopf_space_add_region(s, &rc, 0, NULL, NULL), IOPF_REGION_ADDED);
	struct hammer h = {.s = s};
	pthread_t th;
	pthread_create(&th, NULL, hammer_main, &h);
	uint64_t refused = 0;
	for (unsigned round = 0; round < 200; round++)
		for (uint64_t i = 64; i < PAGES; i++)
			refused += space_fault(s, IOVA + i * PG, IOPF_PERM_READ) != 0;
	__atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	struct iopf_space_stats st;
	iopf_space_get_stats(s, &st);
	cr_assert_gt(h.faults, 1000, "the other thread was hitting pages");
	cr_assert_eq(refused + h.refused, 0, "%lu + %lu faults refused (quota refusals %lu) with at most two pages held",
	             refused, h.refused, st.quota_refusals);
	cr_assert_leq(st.pinned_peak, 64 * PG);
	iopf_space_destroy(s);
}

#define WIN (64 * 1024) /* pages per window: publishing one takes a while */

struct toucher {
	uint16_t *word; /* the state word of the page being published */
	int ready;      /* spinning */
	int held;       /* the hold was taken */
};

/*
 * Another worker's lock-free path, as page_try_hold() does it: the moment
 * the page shows pinned (and not being evicted), take a hold with one
 * compare-and-swap, keep it while the publication goes on, release it.
 */
static void *touch_when_pinned(void *arg) {
	struct toucher *t = arg;
	__atomic_store_n(&t->ready, 1, __ATOMIC_RELEASE);
	for (unsigned long spins = 0; spins < 4000000000ul; spins++) {
		uint16_t st = __atomic_load_n(t->word, __ATOMIC_ACQUIRE);
		if (!(st & IOPF_PAGE_PINNED) || (st & IOPF_PAGE_EVICTING))
			continue;
		if (__atomic_compare_exchange_n(t->word, &st, (uint16_t)((st + IOPF_PAGE_HOLD_ONE) | IOPF_PAGE_REF), false,
		                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&t->held, 1, __ATOMIC_RELEASE);
			return NULL;
		}
	}
	return NULL;
}

/*
 * A page's hold is never lost. A fault publishes a large window (its page
 * states go from unpinned to pinned, one by one) while another worker takes
 * a hold on the faulting page through the lock-free path the moment it
 * shows pinned. Both holds must count: after both are released the page is
 * unheld again. (A lost hold underflows: the page then reads as held 4095
 * times, is never evicted and refuses every later fault: the soak saw
 * stable groups refused for quota after some minutes.)
 */
Test(inject, holds_survive_a_window_being_published) {
	struct iopf_space_config cfg = {
		.backend = IOPF_BACKEND_SIMULATED, .quota = 2ull * WIN * PG, .page_size = PG, .window_min = WIN * PG,
		.window_max = WIN * PG, .iommufd = -1,
	};
	struct iopf_space *s;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), 0);
	struct iopf_region_config rc = {.iova = IOVA, .length = 2ull * WIN * PG, .memfd = -1, .perm = IOPF_PERM_READ};
	struct iopf_region_info info;
	cr_assert_eq(iopf_space_add_region(s, &rc, 0, &info, NULL), IOPF_REGION_ADDED);
	uint64_t rid = info.id;
	struct iopf_region *r = iopf_space_region(s, rid);
	cr_assert_not_null(r);
	unsigned caught = 0;
	for (unsigned round = 0; round < 20; round++) {
		uint64_t p = (round % 2) * WIN; /* the first page of a window */
		struct toucher t = {.word = &r->page[p]};
		pthread_t th;
		pthread_create(&th, NULL, touch_when_pinned, &t);
		while (!__atomic_load_n(&t.ready, __ATOMIC_ACQUIRE))
			;
		cr_assert_eq(space_fault(s, IOVA + p * PG, IOPF_PERM_READ), 0);
		pthread_join(th, NULL);
		cr_assert(__atomic_load_n(&t.held, __ATOMIC_ACQUIRE), "the other worker never saw the page pinned");
		struct iopf_page_ref ref = {.region = r, .page = p};
		iopf_page_release(&ref);
		uint16_t st = __atomic_load_n(&r->page[p], __ATOMIC_ACQUIRE);
		cr_assert_eq(st >> IOPF_PAGE_HOLD_SHIFT, 0, "round %u: %u holds left on the page (state %#x): a hold was lost",
		             round, st >> IOPF_PAGE_HOLD_SHIFT, st);
		caught++;
		iopf_space_evict_all(s);
		cr_assert_eq(iopf_space_region_count(s), 1);
	}
	cr_assert_eq(caught, 20);
	iopf_space_destroy(s);
}
