/* SPDX-License-Identifier: MIT */
/*
 * Allocation failures on the control plane: fail the Nth allocation, check
 * that the operation gives a clean error, leaks nothing (no memory: checked
 * with LeakSanitizer in ASan builds; no fds: counted) and leaves its object
 * consistent and usable, then N+1, until the operation passes without
 * reaching an Nth allocation. Each loop runs twice: failing only the Nth
 * allocation, and failing every allocation from the Nth on (an error path
 * that itself allocates must cope too).
 *
 * The allocator is wrapped at link time (-Wl,--wrap=malloc,... in
 * tests/meson.build): only calls from iopfd's own code and this file are
 * seen, not those inside libsystemd or liburcu. Injection is armed per
 * thread, so the engine's workers are never failed by a loop aimed at the
 * control thread.
 */
#include <dirent.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "../common.h"
#include "space-common.h"
#include "engine/bindings.h"
#include "engine/engine.h"
#include "control/log.h"
#include "control/manager.h"
#include "engine/queue.h"
#include "engine/resolve.h"
#include "engine/space-internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#endif

#define PG 4096ull
#define IOVA 0x100000000ull

/* --- the wrapped allocator ------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
char *__real_strdup(const char *s);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
char *__wrap_strdup(const char *s);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static __thread bool inj_armed, inj_hit, inj_persistent;
static __thread unsigned long inj_calls, inj_fail_at;

static bool inject(void) {
	if (!inj_armed)
		return false;
	inj_calls++;
	if (inj_calls == inj_fail_at || (inj_persistent && inj_calls > inj_fail_at)) {
		inj_hit = true;
		errno = ENOMEM;
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t n) {
	return inject() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
	return inject() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
	return inject() ? NULL : __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n) {
	return inject() ? NULL : __real_aligned_alloc(align, n);
}

char *__wrap_strdup(const char *s) {
	return inject() ? NULL : __real_strdup(s);
}

/* Anonymous memory (a region's page states) and file mappings (the mlock
 * backend's view of a memfd) are allocations too. */
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
	return inject() ? MAP_FAILED : __real_mmap(addr, len, prot, flags, fd, off);
}

static void arm(unsigned long n, bool persistent) {
	inj_calls = 0;
	inj_fail_at = n;
	inj_hit = false;
	inj_persistent = persistent;
	inj_armed = true;
}

/* Disarm; true when the operation reached the Nth allocation (and saw it fail). */
static bool disarm(void) {
	inj_armed = false;
	return inj_hit;
}

/* --- what must not leak ------------------------------------------------------------------ */

static int count_fds(void) {
	DIR *d = opendir("/proc/self/fd");
	cr_assert(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static void no_leaks(const char *what) {
#ifdef HAVE_LSAN
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "%s: leaks (the report is above)", what);
#else
	(void)what;
#endif
}

/*
 * The loop. `op` runs with the Nth allocation failing and returns 0 or a
 * negative errno; `check` then looks at the state it left (r is what op
 * returned, failed whether the injection was reached) and undoes it.
 * Returns how many allocations the operation makes when nothing fails.
 */
struct loop {
	const char *what;
	void (*setup)(void *ctx);
	int (*op)(void *ctx);
	void (*check)(void *ctx, int r, bool failed);
	void *ctx;
};

static unsigned long run_loop(const struct loop *l, bool persistent) {
	for (unsigned long n = 1;; n++) {
		cr_assert_lt(n, 10000, "%s: no end to the allocations", l->what);
		int fds = count_fds();
		if (l->setup)
			l->setup(l->ctx);
		arm(n, persistent);
		int r = l->op(l->ctx);
		bool failed = disarm();
		if (failed)
			cr_assert(r == 0 || r == -ENOMEM, "%s: allocation %lu failed: got %d (%s), want -ENOMEM or 0",
			          l->what, n, r, strerror(-r));
		else
			cr_assert_eq(r, 0, "%s: failed (%s) with nothing injected", l->what, strerror(-r));
		l->check(l->ctx, r, failed);
		cr_assert_eq(count_fds(), fds, "%s: allocation %lu failed: fds leaked", l->what, n);
		if (!failed) {
			no_leaks(l->what);
			return n - 1;
		}
	}
}

static void loop_both(const struct loop *l) {
	unsigned long n = run_loop(l, false);
	cr_assert_gt(n, 0, "%s: the operation allocates nothing: the loop proves nothing", l->what);
	cr_assert_eq(run_loop(l, true), n);
}

/* --- address spaces ---------------------------------------------------------------------- */

static void rcu_setup(void) {
	iopf_rcu_register();
	log_set_max_level(LOG_CRIT);
}

static void rcu_teardown(void) {
	iopf_rcu_barrier();
	iopf_rcu_unregister();
}

TestSuite(alloc, .init = rcu_setup, .fini = rcu_teardown, .timeout = 240);

struct space_ctx {
	enum iopf_backend_kind backend;
	enum iopf_eviction eviction;
	struct iopf_space *s;
	int memfd;
	uint64_t r1, r2; /* regions made by setup */
	unsigned extra;  /* faults made by setup */
};

static struct iopf_space *space_new(enum iopf_backend_kind be, uint64_t quota) {
	struct iopf_space_config cfg = {
		.backend = be, .quota = quota, .page_size = PG, .window_min = PG, .window_max = 4 * PG, .iommufd = -1,
	};
	struct iopf_space *s;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), 0);
	return s;
}

/* A region takes its memfd: each gets a copy (none for the none backend). */
static int region_memfd(int memfd) {
	return memfd >= 0 ? fcntl(memfd, F_DUPFD_CLOEXEC, 3) : -1;
}

static uint64_t add_region(struct iopf_space *s, struct iopf_region_config *rc) {
	struct iopf_region_info info;
	rc->memfd = region_memfd(rc->memfd);
	cr_assert_eq(iopf_space_add_region(s, rc, 0, &info, NULL), IOPF_REGION_ADDED);
	return info.id;
}

static int op_space_new(void *p) {
	struct space_ctx *c = p;
	struct iopf_space_config cfg = {
		.backend = c->backend, .quota = 1 << 20, .page_size = PG, .window_min = PG, .window_max = PG,
		.eviction = c->eviction, .iommufd = -1,
	};
	c->s = NULL;
	return iopf_space_new(1, &cfg, &c->s);
}

static void check_space_new(void *p, int r, bool failed) {
	struct space_ctx *c = p;
	if (r < 0) {
		cr_assert_null(c->s, "nothing handed out on failure");
		return;
	}
	cr_assert_eq(iopf_space_region_count(c->s), 0);
	iopf_space_destroy(c->s);
}

Test(alloc, space_new) {
	for (int be = 0; be < _IOPF_BACKEND_MAX; be++) {
		if (be != IOPF_BACKEND_SIMULATED && be != IOPF_BACKEND_MLOCK)
			continue; /* the pinning backends that need nothing of the host */
		for (int e = IOPF_EVICTION_CLOCK; e <= IOPF_EVICTION_2Q; e++) {
			struct space_ctx c = {.backend = (enum iopf_backend_kind)be, .eviction = e};
			struct loop l = {"iopf_space_new", NULL, op_space_new, check_space_new, &c};
			/* The simulated and mlock backends allocate nothing of their
			 * own; 2q has its table of ghosts. */
			unsigned long n = run_loop(&l, false);
			cr_assert_eq(n, e == IOPF_EVICTION_2Q ? 2 : 1, "%s: the space (and its ghosts)",
			             iopf_eviction_to_string(e));
			run_loop(&l, true);
		}
	}
}

/* A space with one region (r1) and a page of it pinned. */
static void setup_one_region(void *p) {
	struct space_ctx *c = p;
	c->s = space_new(c->backend, 1 << 20);
	struct iopf_region_config rc = {
		.iova = IOVA, .length = 64 * PG, .memfd = c->memfd, .perm = IOPF_PERM_READ | IOPF_PERM_WRITE,
	};
	c->r1 = add_region(c->s, &rc);
	cr_assert_eq(space_fault(c->s, IOVA, IOPF_PERM_READ), 0);
	c->r2 = 0;
}

static int op_add_region(void *p) {
	struct space_ctx *c = p;
	struct iopf_region_config rc = {
		.iova = IOVA + 64 * PG, .length = 64 * PG, .memfd = region_memfd(c->memfd), .offset = 64 * PG,
		.perm = IOPF_PERM_READ,
	};
	struct iopf_region_info info;
	enum iopf_region_refusal why = iopf_space_add_region(c->s, &rc, 0, &info, NULL);
	if (why != IOPF_REGION_ADDED)
		return why == IOPF_REGION_NO_MEMORY ? -ENOMEM : -EINVAL;
	c->r2 = info.id;
	return 0;
}

static void check_add_region(void *p, int r, bool failed) {
	struct space_ctx *c = p;
	if (r < 0) {
		cr_assert_eq(iopf_space_region_count(c->s), 1, "the failed region is not there");
		cr_assert_eq(space_fault(c->s, IOVA + 64 * PG, IOPF_PERM_READ), IOPF_INVALID_NO_REGION);
		cr_assert_eq(space_fault(c->s, IOVA + PG, IOPF_PERM_READ), 0, "the old region still serves");
		/* Usable: the same call succeeds now. */
		cr_assert_eq(op_add_region(c), 0);
	}
	cr_assert_eq(iopf_space_region_count(c->s), 2);
	cr_assert_eq(space_fault(c->s, IOVA + 64 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(iopf_space_remove_region(c->s, c->r2), 0);
	cr_assert_eq(iopf_space_remove_region(c->s, c->r1), 0);
	cr_assert_eq(space_pinned(c->s), 0);
	iopf_space_destroy(c->s);
}

Test(alloc, add_region) {
	for (int be = 0; be < _IOPF_BACKEND_MAX; be++) {
		if (be != IOPF_BACKEND_SIMULATED && be != IOPF_BACKEND_MLOCK)
			continue; /* the pinning backends that need nothing of the host */
		struct space_ctx c = {.backend = (enum iopf_backend_kind)be, .memfd = sealed_memfd(128 * PG)};
		struct loop l = {"iopf_space_add_region", setup_one_region, op_add_region, check_add_region, &c};
		loop_both(&l);
		close(c.memfd);
	}
}

static void setup_two_regions(void *p) {
	struct space_ctx *c = p;
	setup_one_region(c);
	cr_assert_eq(op_add_region(c), 0);
	cr_assert_eq(space_fault(c->s, IOVA + 64 * PG, IOPF_PERM_READ), 0);
}

static int op_remove_region(void *p) {
	struct space_ctx *c = p;
	return iopf_space_remove_region(c->s, c->r1);
}

static void check_remove_region(void *p, int r, bool failed) {
	struct space_ctx *c = p;
	if (r < 0) {
		cr_assert_eq(iopf_space_region_count(c->s), 2, "nothing removed");
		cr_assert_eq(space_fault(c->s, IOVA + PG, IOPF_PERM_READ), 0, "the region still serves");
		cr_assert_eq(op_remove_region(c), 0);
	}
	cr_assert_eq(iopf_space_region_count(c->s), 1);
	cr_assert_eq(space_fault(c->s, IOVA, IOPF_PERM_READ), IOPF_INVALID_NO_REGION);
	cr_assert_eq(space_pinned(c->s), PG, "the other region's page only");
	cr_assert_eq(space_fault(c->s, IOVA + 100 * PG, IOPF_PERM_READ), 0, "the other region still serves");
	iopf_space_destroy(c->s);
}

Test(alloc, remove_region) {
	for (int be = 0; be < _IOPF_BACKEND_MAX; be++) {
		if (be != IOPF_BACKEND_SIMULATED && be != IOPF_BACKEND_MLOCK)
			continue; /* the pinning backends that need nothing of the host */
		struct space_ctx c = {.backend = (enum iopf_backend_kind)be, .memfd = sealed_memfd(128 * PG)};
		struct loop l = {"iopf_space_remove_region", setup_two_regions, op_remove_region, check_remove_region,
		                 &c};
		/* Removing the last but one region allocates the smaller set. */
		loop_both(&l);
		close(c.memfd);
	}
}

static int op_fault_grows_ring(void *p) {
	struct space_ctx *c = p;
	return space_fault(c->s, IOVA + 127 * PG, IOPF_PERM_READ) == IOPF_SERVED ? 0 : -ENOMEM;
}

static void check_fault_grows_ring(void *p, int r, bool failed) {
	struct space_ctx *c = p;
	uint64_t before = space_pinned(c->s);
	if (r < 0) {
		struct iopf_space_stats st;
		iopf_space_get_stats(c->s, &st);
		cr_assert_eq(st.maps, 64, "nothing mapped for the refused fault");
		cr_assert_eq(space_fault(c->s, IOVA + 127 * PG, IOPF_PERM_READ), 0, "the same fault succeeds now");
		cr_assert_gt(space_pinned(c->s), before);
	}
	struct iopf_space_stats st;
	iopf_space_get_stats(c->s, &st);
	cr_assert_eq(st.maps, 65);
	cr_assert_eq(st.pinned_bytes, st.mapped_bytes, "accounting matches what was mapped");
	iopf_space_destroy(c->s);
}

/* The fault path grows the eviction ring (64 areas at first): with one-page
 * windows, 64 faults fill it and the 65th needs an allocation. A failure
 * refuses that fault only. */
static void setup_ring_64(void *p) {
	struct space_ctx *c = p;
	struct iopf_space_config cfg = {
		.backend = c->backend, .quota = 1 << 30, .page_size = PG, .window_min = PG, .window_max = PG,
		/* One page an area, one ring: 64 faults fill its first 64 slots. */
		.fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = IOPF_EVICTION_CLOCK, .iommufd = -1,
	};
	cr_assert_eq(iopf_space_new(1, &cfg, &c->s), 0);
	struct iopf_region_config rc = {
		.iova = IOVA, .length = 128 * PG, .memfd = c->memfd, .perm = IOPF_PERM_READ | IOPF_PERM_WRITE,
	};
	c->r1 = add_region(c->s, &rc);
	for (unsigned i = 0; i < 64; i++)
		cr_assert_eq(space_fault(c->s, IOVA + i * PG, IOPF_PERM_READ), 0);
}

Test(alloc, fault_path_ring_growth) {
	for (int be = 0; be < _IOPF_BACKEND_MAX; be++) {
		if (be != IOPF_BACKEND_SIMULATED && be != IOPF_BACKEND_MLOCK)
			continue; /* the pinning backends that need nothing of the host */
		struct space_ctx c = {.backend = (enum iopf_backend_kind)be, .memfd = sealed_memfd(128 * PG)};
		struct loop l = {"fault growing the area ring", setup_ring_64, op_fault_grows_ring,
		                 check_fault_grows_ring, &c};
		loop_both(&l);
		close(c.memfd);
	}
}

/* --- bindings, queues, resolver, engine -------------------------------------------------- */

struct bind_ctx {
	struct iopf_bindings *b;
	struct iopf_space *s;
};

static int op_bindings_new(void *p) {
	struct bind_ctx *c = p;
	c->b = NULL;
	return iopf_bindings_new(&c->b);
}

static void check_bindings_new(void *p, int r, bool failed) {
	struct bind_ctx *c = p;
	if (r < 0) {
		cr_assert_null(c->b);
		return;
	}
	iopf_bindings_free(c->b);
}

static void setup_bindings(void *p) {
	struct bind_ctx *c = p;
	cr_assert_eq(iopf_bindings_new(&c->b), 0);
	struct iopf_binding_key k = {.queue_id = 1, .dev_id = 1, .pasid = IOPF_PASID_NONE};
	cr_assert_eq(iopf_bindings_add(c->b, &k, c->s), 0);
}

static int op_bindings_add(void *p) {
	struct bind_ctx *c = p;
	struct iopf_binding_key k = {.queue_id = 1, .dev_id = 2, .pasid = 7};
	return iopf_bindings_add(c->b, &k, c->s);
}

static void check_bindings_add(void *p, int r, bool failed) {
	struct bind_ctx *c = p;
	struct iopf_binding_key k1 = {.queue_id = 1, .dev_id = 1, .pasid = IOPF_PASID_NONE};
	struct iopf_binding_key k2 = {.queue_id = 1, .dev_id = 2, .pasid = 7};
	if (r < 0) {
		cr_assert_eq(iopf_bindings_count(c->b), 1);
		iopf_rcu_read_lock();
		cr_assert_null(iopf_bindings_lookup(c->b, &k2));
		cr_assert_eq(iopf_bindings_lookup(c->b, &k1), c->s);
		iopf_rcu_read_unlock();
		cr_assert_eq(iopf_bindings_remove(c->b, &k2), -ENOENT);
		cr_assert_eq(op_bindings_add(c), 0);
	}
	cr_assert_eq(iopf_bindings_count(c->b), 2);
	cr_assert_eq(iopf_bindings_remove(c->b, &k2), 0);
	cr_assert_eq(iopf_bindings_remove_queue(c->b, 1), 1);
	cr_assert_eq(iopf_bindings_count(c->b), 0);
	iopf_bindings_free(c->b);
}

Test(alloc, bindings) {
	struct bind_ctx c = {.s = space_new(IOPF_BACKEND_NONE, 1 << 20)};
	struct loop l1 = {"iopf_bindings_new", NULL, op_bindings_new, check_bindings_new, &c};
	loop_both(&l1);
	struct loop l2 = {"iopf_bindings_add", setup_bindings, op_bindings_add, check_bindings_add, &c};
	loop_both(&l2);
	iopf_space_destroy(c.s);
}

struct queue_ctx {
	int sv[2];
	struct iopf_queue *q;
};

/* The queue takes the fd it is given, also when it fails: each round
 * gives it a copy, and no copy may be left open (count_fds checks). */
static int op_queue_new(void *p) {
	struct queue_ctx *c = p;
	c->q = NULL;
	return iopf_queue_new(3, fcntl(c->sv[0], F_DUPFD_CLOEXEC, 3), IOPF_TRANSPORT_RELAY, &c->q);
}

static void check_queue_new(void *p, int r, bool failed) {
	struct queue_ctx *c = p;
	if (r < 0) {
		cr_assert_null(c->q);
		return;
	}
	cr_assert_eq(iopf_queue_kind(c->q), IOPF_TRANSPORT_RELAY);
	iopf_queue_free(c->q);
}

Test(alloc, queue_new) {
	struct queue_ctx c;
	relay_pair(c.sv);
	struct loop l = {"iopf_queue_new", NULL, op_queue_new, check_queue_new, &c};
	loop_both(&l);
	close(c.sv[0]);
	close(c.sv[1]);
}

struct resolver_ctx {
	struct iopf_bindings *b;
	struct iopf_counters counters;
	struct iopf_resolver res;
};

static int op_resolver_init(void *p) {
	struct resolver_ctx *c = p;
	return iopf_resolver_init(&c->res, c->b, 1024, &c->counters);
}

static void check_resolver_init(void *p, int r, bool failed) {
	struct resolver_ctx *c = p;
	if (r < 0) {
		cr_assert_null(c->res.holds, "freed and cleared on failure");
		cr_assert_null(c->res.dedup);
		cr_assert_null(c->res.cookies);
		return;
	}
	iopf_resolver_begin(&c->res);
	cr_assert(iopf_resolver_claim_cookie(&c->res, 5));
	cr_assert_not(iopf_resolver_claim_cookie(&c->res, 5));
	iopf_resolver_end(&c->res);
	iopf_resolver_fini(&c->res);
}

Test(alloc, resolver_init) {
	struct resolver_ctx c = {0};
	cr_assert_eq(iopf_bindings_new(&c.b), 0);
	struct loop l = {"iopf_resolver_init", NULL, op_resolver_init, check_resolver_init, &c};
	loop_both(&l);
	iopf_bindings_free(c.b);
}

struct engine_ctx {
	unsigned workers;
	struct iopf_engine *e;
};

static int op_engine_new(void *p) {
	struct engine_ctx *c = p;
	struct iopf_engine_config cfg = {.workers = c->workers};
	c->e = NULL;
	return iopf_engine_new(&cfg, &c->e);
}

static void check_engine_new(void *p, int r, bool failed) {
	struct engine_ctx *c = p;
	cr_assert(fcntl(0, F_GETFD) >= 0, "fd 0 is still open (the error path closed an fd it never opened)");
	if (r < 0) {
		cr_assert_null(c->e);
		return;
	}
	/* Usable: a queue goes in and out. */
	int sv[2];
	relay_pair(sv);
	struct iopf_queue *q;
	cr_assert_eq(iopf_queue_new(1, sv[0], IOPF_TRANSPORT_RELAY, &q), 0);
	cr_assert_eq(iopf_engine_add_queue(c->e, q), 0);
	cr_assert_eq(iopf_engine_remove_queue(c->e, q, IOPF_RELEASE_TO_HOLDER), 0);
	iopf_queue_free(q);
	close(sv[1]);
	iopf_engine_free(c->e);
}

/* Keep fd 0 open on something harmless, so that closing it by mistake
 * shows (the test runner may have it closed). */
static void hold_fd0(void) {
	if (fcntl(0, F_GETFD) < 0)
		cr_assert_eq(open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
}

Test(alloc, engine_new_one_worker) {
	hold_fd0();
	struct engine_ctx c = {.workers = 1};
	struct loop l = {"iopf_engine_new (1 worker)", NULL, op_engine_new, check_engine_new, &c};
	loop_both(&l);
}

/*
 * When worker i fails to initialize, the cleanup runs on every configured
 * worker, including those after i that were never set up: their fds must
 * read "none", not 0 (it once closed fd 0 twice). With two workers, failing
 * the first worker's first allocation shows it.
 */
Test(alloc, engine_new_two_workers) {
	hold_fd0();
	struct engine_ctx c = {.workers = 2};
	struct loop l = {"iopf_engine_new (2 workers)", NULL, op_engine_new, check_engine_new, &c};
	loop_both(&l);
}

/* --- the daemon's Varlink methods, in process ------------------------------------------ */

static struct manager *mgr;

/* manager_startup() registers the thread with RCU and manager_free()
 * unregisters it: these suites leave that to them. */
static void manager_setup(void) {
	log_set_max_level(LOG_CRIT);
	hold_fd0();
	struct manager_config cfg = {.no_listen = true, .workers = 1};
	cr_assert_eq(config_defaults(&cfg.config), 0);
	cfg.config.limits = (struct iopfd_limits){
		.connections_per_uid = 64, .max = {[ACCT_QUEUES] = 64, [ACCT_SPACES] = 64, [ACCT_REGIONS] = 64}};
	cr_assert_eq(manager_new(&cfg, &mgr), 0);
	cr_assert_geq(manager_startup(mgr), 0);
}

static void manager_teardown(void) {
	manager_free(mgr);
	mgr = NULL;
}

TestSuite(varlink_alloc, .init = manager_setup, .fini = manager_teardown, .timeout = 240);

struct reply {
	bool done;
	char error[128];
	sd_json_variant *params;
};

static int on_reply(sd_varlink *v, sd_json_variant *p, const char *error_id, sd_varlink_reply_flags_t f, void *ud) {
	struct reply *r = sd_varlink_get_userdata(v);
	r->done = true;
	/* No allocation here: this runs while the injection is armed. */
	snprintf(r->error, sizeof(r->error), "%s", error_id ? error_id : "");
	sd_json_variant_unref(r->params);
	r->params = sd_json_variant_ref(p);
	return 0;
}

struct conn {
	sd_varlink *v;
	struct reply reply;
};

static void conn_open(struct conn *c) {
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_geq(manager_add_connection(mgr, sv[0]), 0);
	cr_assert_geq(sd_varlink_connect_fd(&c->v, sv[1]), 0);
	cr_assert_geq(sd_varlink_set_allow_fd_passing_output(c->v, true), 0);
	sd_varlink_set_userdata(c->v, &c->reply);
	sd_varlink_bind_reply(c->v, on_reply);
	c->reply = (struct reply){0};
}

/* The client goes; everything it made must go with it. */
static void conn_close(struct conn *c) {
	sd_json_variant_unref(c->reply.params);
	sd_varlink_close_unref(c->v);
	c->v = NULL;
	for (int i = 0; i < 1000 && mgr->n_clients > 0; i++)
		sd_event_run(mgr->event, 1000);
	cr_assert_eq(mgr->n_clients, 0);
	cr_assert_eq(mgr->n_objects[OBJECT_QUEUE], 0, "queues torn down with their client");
	cr_assert_eq(mgr->n_objects[OBJECT_SPACE], 0, "spaces torn down with their client");
	cr_assert_eq(iopf_bindings_count(iopf_engine_bindings(mgr->engine)), 0);
	for (int r = 0; r < _ACCT_RESOURCE_MAX; r++)
		cr_assert_eq(accounting_used(&mgr->acct, getuid(), r), 0, "per-uid %s back to zero",
		             acct_resource_to_string(r));
}

/* Invoke a method (parameters as JSON text) with fds (duplicated), and run
 * both ends until the reply. Returns 0 or -EREMOTEIO (error in c->reply). */
static int conn_call(struct conn *c, const char *method, const char *json, const int *fds, unsigned n_fds) {
	sd_json_variant *p = NULL;
	cr_assert_eq(sd_json_parse(json, 0, &p, NULL, NULL), 0, "bad JSON in the test: %s", json);
	for (unsigned i = 0; i < n_fds; i++)
		cr_assert_geq(sd_varlink_push_dup_fd(c->v, fds[i]), 0);
	c->reply.done = false;
	bool more = strcmp(method, "io.iopfd.Monitor") == 0;
	cr_assert_geq(more ? sd_varlink_observe(c->v, method, p) : sd_varlink_invoke(c->v, method, p), 0);
	sd_json_variant_unref(p);
	for (int i = 0; i < 10000 && !c->reply.done; i++) {
		sd_event_run(mgr->event, 0);
		cr_assert_geq(sd_varlink_process(c->v), 0);
		if (!c->reply.done)
			sd_varlink_wait(c->v, 1000);
	}
	cr_assert(c->reply.done, "%s: no reply", method);
	return c->reply.error[0] ? -EREMOTEIO : 0;
}

static uint64_t reply_u64(struct conn *c, const char *field) {
	sd_json_variant *f = c->reply.params ? sd_json_variant_by_key(c->reply.params, field) : NULL;
	cr_assert(f && sd_json_variant_is_unsigned(f), "no %s in the reply", field);
	return sd_json_variant_unsigned(f);
}

/* What a failed call must leave as it was. */
struct snapshot {
	unsigned clients, queues, spaces;
	size_t bindings, regions;
	uint64_t used[_ACCT_RESOURCE_MAX];
};

static struct snapshot snap(void) {
	struct snapshot s = {
		.clients = mgr->n_clients, .queues = mgr->n_objects[OBJECT_QUEUE], .spaces = mgr->n_objects[OBJECT_SPACE],
		.bindings = iopf_bindings_count(iopf_engine_bindings(mgr->engine)),
	};
	struct object *o;
	objects_foreach(o, mgr, OBJECT_SPACE)
		s.regions += iopf_space_region_count(o->s);
	for (int r = 0; r < _ACCT_RESOURCE_MAX; r++)
		s.used[r] = accounting_used(&mgr->acct, getuid(), r);
	return s;
}

static void snap_eq(const struct snapshot *a, const struct snapshot *b, const char *what) {
	cr_assert_eq(a->queues, b->queues, "%s: queues", what);
	cr_assert_eq(a->spaces, b->spaces, "%s: spaces", what);
	cr_assert_eq(a->bindings, b->bindings, "%s: bindings", what);
	cr_assert_eq(a->regions, b->regions, "%s: regions", what);
	for (int r = 0; r < _ACCT_RESOURCE_MAX; r++)
		cr_assert_eq(a->used[r], b->used[r], "%s: the uid's %s", what, acct_resource_to_string(r));
}

/*
 * One method under the loop. `prepare` makes a fresh connection's
 * preconditions (a space, a queue, ...) and fills the parameters; the
 * method is then called with the Nth allocation failing. A failure must be
 * an error reply that changed nothing; the same call then succeeds.
 */
struct method_case {
	const char *method;
	const char *json; /* $SPACE, $QUEUE, $REGION: ids made by prepare */
	int fd_kind;      /* 0 none, 1 sealed memfd, 2 relay socket */
	unsigned prepare; /* bits: 1 space (+ region), 2 queue, 4 binding, 8 any call first */
};

static const struct method_case method_cases[] = {
	/* The connection's first call: the client record is made on it. */
	{"io.iopfd.CreateSpace", "{\"backend\":\"mlock\",\"quota\":1048576,\"name\":\"s\"}", 0, 0},
	/* Not first: fds passed with a connection's first call are lost (see
	 * fds_with_the_first_call below). */
	{"io.iopfd.RegisterQueue", "{\"fdIndex\":0,\"name\":\"q\"}", 2, 8},
	{"io.iopfd.AddRegion",
	 "{\"space\":$SPACE,\"iova\":1073741824,\"length\":65536,\"memfdIndex\":0,\"access\":[\"read\"]}", 1, 1},
	{"io.iopfd.RemoveRegion", "{\"space\":$SPACE,\"region\":$REGION}", 0, 1},
	{"io.iopfd.Bind", "{\"queue\":$QUEUE,\"device\":3,\"pasid\":5,\"space\":$SPACE}", 0, 3},
	{"io.iopfd.Unbind", "{\"queue\":$QUEUE,\"device\":1}", 0, 7},
	{"io.iopfd.UnregisterQueue", "{\"queue\":$QUEUE}", 0, 7},
	{"io.iopfd.DestroySpace", "{\"space\":$SPACE}", 0, 7},
	{"io.iopfd.ListQueues", "{}", 0, 7},
	{"io.iopfd.ListSpaces", "{}", 0, 7},
	{"io.iopfd.ListBindings", "{}", 0, 7},
	{"io.iopfd.GetStatistics", "{}", 0, 7},
	{"io.iopfd.Monitor", "{\"intervalMs\":100}", 0, 7},
};

struct prepared {
	uint64_t space, queue, region;
	int memfd, sv[2];
	int qsv[2]; /* the registered queue's pair: open, or the worker drops it */
};

static void prepare(struct conn *c, const struct method_case *mc, struct prepared *pr) {
	char json[512];
	*pr = (struct prepared){.memfd = sealed_memfd(32 * PG), .sv = {-1, -1}, .qsv = {-1, -1}};
	relay_pair(pr->sv);
	if (mc->prepare & 8)
		cr_assert_eq(conn_call(c, "io.iopfd.GetStatistics", "{}", NULL, 0), 0);
	if (mc->prepare & 1) {
		cr_assert_eq(conn_call(c, "io.iopfd.CreateSpace", "{\"backend\":\"mlock\",\"quota\":1048576}", NULL, 0), 0,
		             "%s", c->reply.error);
		pr->space = reply_u64(c, "space");
		snprintf(json, sizeof(json),
		         "{\"space\":%lu,\"iova\":0,\"length\":65536,\"memfdIndex\":0,\"access\":[\"read\",\"write\"]}",
		         (unsigned long)pr->space);
		cr_assert_eq(conn_call(c, "io.iopfd.AddRegion", json, &pr->memfd, 1), 0, "%s", c->reply.error);
		pr->region = reply_u64(c, "region");
	}
	if (mc->prepare & 2) {
		relay_pair(pr->qsv);
		cr_assert_eq(conn_call(c, "io.iopfd.RegisterQueue", "{\"fdIndex\":0}", &pr->qsv[0], 1), 0, "%s",
		             c->reply.error);
		pr->queue = reply_u64(c, "queue");
	}
	if (mc->prepare & 4) {
		snprintf(json, sizeof(json), "{\"queue\":%lu,\"device\":1,\"space\":%lu}", (unsigned long)pr->queue,
		         (unsigned long)pr->space);
		cr_assert_eq(conn_call(c, "io.iopfd.Bind", json, NULL, 0), 0, "%s", c->reply.error);
	}
}

static void expand(char *out, size_t n, const char *in, const struct prepared *pr) {
	size_t o = 0;
	for (const char *p = in; *p && o + 24 < n;) {
		const char *keys[] = {"$SPACE", "$QUEUE", "$REGION"};
		uint64_t vals[] = {pr->space, pr->queue, pr->region};
		bool done = false;
		for (int k = 0; k < 3 && !done; k++)
			if (strncmp(p, keys[k], strlen(keys[k])) == 0) {
				o += (size_t)snprintf(out + o, n - o, "%lu", (unsigned long)vals[k]);
				p += strlen(keys[k]);
				done = true;
			}
		if (!done)
			out[o++] = *p++;
	}
	out[o] = '\0';
}

static void method_loop(const struct method_case *mc, bool persistent) {
	unsigned long n;
	for (n = 1;; n++) {
		cr_assert_lt(n, 10000, "%s: no end to the allocations", mc->method);
		int fds = count_fds();
		struct conn c;
		conn_open(&c);
		struct prepared pr;
		prepare(&c, mc, &pr);
		char json[512];
		expand(json, sizeof(json), mc->json, &pr);
		int fd = mc->fd_kind == 1 ? pr.memfd : mc->fd_kind == 2 ? pr.sv[0] : -1;
		struct snapshot before = snap();
		arm(n, persistent);
		int r = conn_call(&c, mc->method, json, fd >= 0 ? &fd : NULL, fd >= 0);
		bool failed = disarm();
		if (!failed)
			cr_assert_eq(r, 0, "%s: %s with nothing injected", mc->method, c.reply.error);
		if (r < 0) {
			struct snapshot after = snap();
			snap_eq(&before, &after, mc->method);
			/* Usable: the same call goes through now. */
			r = conn_call(&c, mc->method, json, fd >= 0 ? &fd : NULL, fd >= 0);
			cr_assert_eq(r, 0, "%s after allocation %lu failed (%s): %s %s", mc->method, n,
			             persistent ? "and all after" : "only", c.reply.error,
			             c.reply.params ? "(see the parameters)" : "");
		}
		/* Persistent objects outlive the connection: end them here. */
		for (int t = 0; t < _OBJECT_TYPE_MAX; t++) {
			struct object *o, *ot;
			cds_list_for_each_entry_safe(o, ot, &mgr->objects[t], node)
				if (o->persistent)
					object_destroy(o, OBJECT_FORGET, NULL);
		}
		conn_close(&c);
		close(pr.memfd);
		for (int i = 0; i < 2; i++) {
			close(pr.sv[i]);
			if (pr.qsv[i] >= 0)
				close(pr.qsv[i]);
		}
		cr_assert_eq(count_fds(), fds, "%s: allocation %lu failed: fds leaked", mc->method, n);
		if (!failed)
			break;
	}
	no_leaks(mc->method);
}

Test(varlink_alloc, every_method) {
	for (size_t i = 0; i < sizeof(method_cases) / sizeof(method_cases[0]); i++) {
		method_loop(&method_cases[i], false);
		method_loop(&method_cases[i], true);
	}
}

/* Persistent objects: the creator's pidfd is kept and watched. */
static const struct method_case persistent_cases[] = {
	{"io.iopfd.CreateSpace", "{\"backend\":\"none\",\"quota\":1048576,\"name\":\"ps\",\"persistent\":true}", 0, 8},
	{"io.iopfd.RegisterQueue", "{\"fdIndex\":0,\"name\":\"pq\",\"persistent\":true}", 2, 8},
};

/*
 * CreateSpace and RegisterQueue with persistent=true take a pidfd of the
 * caller and hand it to object_add_space()/object_add_queue(), which own it on
 * every path: a failed call (calloc, strdup, the engine refusing the
 * queue) must not leak it (it once leaked one fd per failed call).
 */
Test(varlink_alloc, persistent_objects) {
	for (size_t i = 0; i < sizeof(persistent_cases) / sizeof(persistent_cases[0]); i++) {
		method_loop(&persistent_cases[i], false);
		method_loop(&persistent_cases[i], true);
	}
}

/*
 * A connection handed to the server directly (manager_add_connection(), as
 * the fuzzer makes them) must allow fds before its first message: the
 * server's connect hook runs only for sockets it accepted, and a hook run
 * lazily inside the first call came after sd-varlink had dropped that
 * call's fds.
 */
Test(varlink_alloc, fds_with_the_first_call) {
	struct conn c;
	conn_open(&c);
	int sv[2];
	relay_pair(sv);
	int r = conn_call(&c, "io.iopfd.RegisterQueue", "{\"fdIndex\":0}", &sv[0], 1);
	cr_assert_eq(r, 0, "a relay socket passed with the first call: %s", c.reply.error);
	close(sv[0]);
	close(sv[1]);
	conn_close(&c);
}

/* The daemon's own start and stop: a failure anywhere in manager_startup()
 * leaves a manager that manager_free() takes apart without leaking. */
static int op_manager(void *p) {
	struct manager **m = p;
	struct manager_config cfg = {.no_listen = true, .workers = 1, .config = {.limits = {.connections_per_uid = 8}}};
	*m = NULL;
	int r = manager_new(&cfg, m);
	if (r < 0)
		return r;
	r = manager_startup(*m);
	return r < 0 ? r : 0;
}

static void check_manager(void *p, int r, bool failed) {
	struct manager **m = p;
	cr_assert(fcntl(0, F_GETFD) >= 0, "fd 0 is still open");
	if (*m)
		manager_free(*m);
}

TestSuite(startup_alloc, .timeout = 240);

Test(startup_alloc, manager_startup) {
	log_set_max_level(LOG_CRIT);
	hold_fd0();
	struct manager *m;
	struct loop l = {"manager_new + manager_startup", NULL, op_manager, check_manager, &m};
	loop_both(&l);
}
