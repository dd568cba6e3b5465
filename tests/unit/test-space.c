/* SPDX-License-Identifier: MIT */
/* Address spaces: region checks, permissions, fault-around, quota, eviction,
 * holds, and real pinning with the mlock backend. */
#include <sys/resource.h>

#include "../common.h"
#include "space-common.h"
#include "engine/backend-simulated.h"
#include "engine/space-internal.h"

#define PG 4096ull
#define IOVA 0x100000000ull

static void setup(void) {
	iopf_rcu_register();
}

static void teardown(void) {
	iopf_rcu_unregister();
}

TestSuite(space, .init = setup, .fini = teardown);

static struct iopf_space *make_space(enum iopf_backend_kind be, uint64_t quota, uint64_t wmin, uint64_t wmax) {
	struct iopf_space_config cfg = {
		.backend = be, .quota = quota, .page_size = PG, .window_min = wmin, .window_max = wmax,
		/* The mechanisms these tests look at: windows as asked, one clock. */
		.fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = IOPF_EVICTION_CLOCK, .iommufd = -1,
	};
	struct iopf_space *s;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), 0);
	return s;
}

/* The space takes the memfd it is given: pass it a copy (of an open fd),
 * so that the test keeps its own. */
static enum iopf_region_refusal try_add(struct iopf_space *s, struct iopf_region_config rc) {
	if (rc.memfd >= 0 && fcntl(rc.memfd, F_GETFD) >= 0)
		rc.memfd = fcntl(rc.memfd, F_DUPFD_CLOEXEC, 3);
	return iopf_space_add_region(s, &rc, 0, NULL, NULL);
}

static uint64_t add_region(struct iopf_space *s, uint64_t iova, uint64_t len, int memfd, uint32_t perm) {
	struct iopf_region_config rc = {.iova = iova, .length = len,
	                                .memfd = memfd >= 0 ? fcntl(memfd, F_DUPFD_CLOEXEC, 3) : -1, .perm = perm};
	struct iopf_region_info info;
	int err = 0;
	enum iopf_region_refusal why = iopf_space_add_region(s, &rc, 0, &info, &err);
	cr_assert_eq(why, IOPF_REGION_ADDED, "add_region: %d (%s)", why, strerror(err));
	return info.id;
}

Test(space, config_is_checked) {
	struct iopf_space *s;
	struct iopf_space_config cfg = {.backend = IOPF_BACKEND_NONE, .quota = 1 << 20, .page_size = 4096};
	cfg.page_size = 6000;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), -EINVAL, "page size must be a power of two");
	cfg.page_size = 2048;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), -EINVAL, "page size below 4 KiB");
	cfg.page_size = 4096;
	cfg.quota = 100;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), -EINVAL, "quota below one page");
	cfg.quota = 1 << 20;
	cfg.window_min = 1 << 16;
	cfg.window_max = 1 << 12;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), -EINVAL, "window min above max");
	cfg.backend = 42;
	cfg.window_min = cfg.window_max = 0;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), -EINVAL, "unknown backend");
	cfg.backend = IOPF_BACKEND_IOMMUFD;
	cfg.iommufd = -1;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), -EBADF, "iommufd backend without an iommufd");
	cfg.iommufd = sealed_memfd(PG); /* the space's, also when refused */
	cr_assert_eq(iopf_space_new(1, &cfg, &s), -ENOTTY, "a memfd is not an iommufd");
}

Test(space, region_checks) {
	struct iopf_space *s = make_space(IOPF_BACKEND_MLOCK, 1 << 20, 0, 0);
	int fd = sealed_memfd(16 * PG);
	struct iopf_region_config rc = {.iova = IOVA, .length = 4 * PG, .memfd = fd, .perm = IOPF_PERM_READ};

	rc.iova = IOVA + 1;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_INVALID, "misaligned iova");
	rc.iova = IOVA;
	rc.length = 0;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_INVALID, "empty region");
	rc.length = 100;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_INVALID, "misaligned length");
	rc.length = 4 * PG;
	rc.offset = 12;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_INVALID, "misaligned offset");
	rc.offset = 0;
	rc.perm = IOPF_PERM_EXEC;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_INVALID, "neither read nor write");
	rc.perm = 0x30 | IOPF_PERM_READ;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_INVALID, "unknown permission bits");
	rc.perm = IOPF_PERM_READ;
	rc.iova = UINT64_MAX - PG + 1;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_INVALID, "iova + length wraps");
	rc.iova = IOVA;
	rc.offset = 14 * PG;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_OUT_OF_RANGE, "beyond the end of the memfd");
	rc.offset = 0;

	int unsealed = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_eq(ftruncate(unsealed, 16 * PG), 0);
	rc.memfd = unsealed;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_UNSEALED, "memfd without F_SEAL_SHRINK");
	int pipefd[2];
	cr_assert_eq(pipe(pipefd), 0);
	rc.memfd = pipefd[0];
	cr_assert_eq(try_add(s, rc), IOPF_REGION_NOT_MEMFD, "a pipe is not a memfd");
	/* Not /tmp: a tmpfs file is a shmem file and answers F_GET_SEALS. */
	char path[] = "./iopfd-test-XXXXXX";
	int file = mkstemp(path);
	unlink(path);
	cr_assert_eq(ftruncate(file, 16 * PG), 0);
	rc.memfd = file;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_NOT_MEMFD, "a regular file on disk is not sealable");
	rc.memfd = 1000;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_NOT_MEMFD, "not an open fd");
	rc.memfd = -1;
	cr_assert_eq(try_add(s, rc), IOPF_REGION_NOT_MEMFD, "mlock needs memory");

	rc.memfd = fd;
	add_region(s, IOVA, 4 * PG, fd, IOPF_PERM_READ);
	struct iopf_region_config ov = {.iova = IOVA + 3 * PG, .length = 2 * PG, .memfd = fd, .perm = IOPF_PERM_READ};
	cr_assert_eq(try_add(s, ov), IOPF_REGION_OVERLAP, "overlaps the end");
	ov.iova = IOVA - PG;
	cr_assert_eq(try_add(s, ov), IOPF_REGION_OVERLAP, "overlaps the start");
	ov.iova = IOVA + 4 * PG;
	cr_assert_eq(try_add(s, ov), IOPF_REGION_ADDED, "adjacent is fine");
	ov.iova = IOVA - 2 * PG;
	cr_assert_eq(try_add(s, ov), IOPF_REGION_ADDED, "adjacent below is fine");
	cr_assert_eq(iopf_space_region_count(s), 3);
	cr_assert_eq(iopf_space_remove_region(s, 999), -ENOENT);

	close(unsealed);
	close(pipefd[0]);
	close(pipefd[1]);
	close(file);
	close(fd);
	iopf_space_destroy(s);
}

Test(space, lookup_finds_the_right_region) {
	struct iopf_space *s = make_space(IOPF_BACKEND_NONE, 1 << 30, 0, 0);
	for (int i = 0; i < 20; i++)
		add_region(s, IOVA + (uint64_t)(19 - i) * 16 * PG, 8 * PG, -1, IOPF_PERM_READ);
	for (uint64_t a = IOVA - PG; a < IOVA + 21 * 16 * PG; a += PG) {
		uint64_t rel = a - IOVA;
		bool inside = a >= IOVA && rel < 20 * 16 * PG && (rel % (16 * PG)) < 8 * PG;
		cr_assert_eq(space_fault(s, a, IOPF_PERM_READ), inside ? IOPF_SERVED : IOPF_INVALID_NO_REGION, "at %#lx", (unsigned long)a);
	}
	iopf_space_destroy(s);
}

/* Region permission x requested permission. */
struct perm_case {
	uint32_t region, request;
	int expect;
};

static struct perm_case perm_cases[] = {
	{IOPF_PERM_READ, IOPF_PERM_READ, 0},
	{IOPF_PERM_READ, IOPF_PERM_WRITE, IOPF_INVALID_PERM},
	{IOPF_PERM_READ, IOPF_PERM_READ | IOPF_PERM_WRITE, IOPF_INVALID_PERM},
	{IOPF_PERM_WRITE, IOPF_PERM_READ, IOPF_INVALID_PERM},
	{IOPF_PERM_WRITE, IOPF_PERM_WRITE, 0},
	{IOPF_PERM_READ | IOPF_PERM_WRITE, IOPF_PERM_READ | IOPF_PERM_WRITE, 0},
	{IOPF_PERM_READ | IOPF_PERM_WRITE, IOPF_PERM_READ | IOPF_PERM_EXEC, IOPF_INVALID_PERM},
	{IOPF_PERM_READ | IOPF_PERM_WRITE, IOPF_PERM_READ | IOPF_PERM_PRIV, IOPF_INVALID_PERM},
	{IOPF_PERM_READ | IOPF_PERM_EXEC, IOPF_PERM_READ | IOPF_PERM_EXEC, 0},
	{IOPF_PERM_READ | IOPF_PERM_PRIV, IOPF_PERM_READ | IOPF_PERM_PRIV, 0},
	{IOPF_PERM_READ | IOPF_PERM_PRIV, IOPF_PERM_READ | IOPF_PERM_EXEC, IOPF_INVALID_PERM},
	{IOPF_PERM_ALL, IOPF_PERM_ALL, 0},
	{IOPF_PERM_READ, 0, 0}, /* a request for presence only */
};

ParameterizedTestParameters(space, permission_matrix) {
	return cr_make_param_array(struct perm_case, perm_cases, sizeof(perm_cases) / sizeof(perm_cases[0]));
}

ParameterizedTest(struct perm_case *c, space, permission_matrix) {
	struct iopf_space *s = make_space(IOPF_BACKEND_MLOCK, 1 << 20, 0, 0);
	int fd = sealed_memfd(4 * PG);
	add_region(s, IOVA, 4 * PG, fd, c->region);
	cr_assert_eq(space_fault(s, IOVA + PG, c->request), c->expect, "region %#x request %#x", c->region, c->request);
	cr_assert_eq(space_pinned(s), c->expect == 0 ? PG : 0, "a refused fault maps nothing");
	close(fd);
	iopf_space_destroy(s);
}

Test(space, fault_around_window_is_aligned_and_clipped) {
	struct iopf_space *s = make_space(IOPF_BACKEND_SIMULATED, 1 << 30, 8 * PG, 64 * PG);
	add_region(s, IOVA, 20 * PG, -1, IOPF_PERM_READ);
	cr_assert_eq(space_fault(s, IOVA + 5 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_pinned(s), 8 * PG, "pages 0..7");
	cr_assert_eq(space_fault(s, IOVA + 7 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_pinned(s), 8 * PG, "already mapped");
	cr_assert_eq(space_fault(s, IOVA + 17 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_pinned(s), 12 * PG, "pages 16..19: clipped at the region's end");

	/* The kernel's length hint widens the window, up to window_max. */
	struct iopf_page_ref ref;
	iopf_rcu_read_lock();
	cr_assert_eq(iopf_space_fault(s, IOVA + 9 * PG, IOPF_PERM_READ, 4 * PG, &ref), 0);
	iopf_page_release(&ref);
	iopf_rcu_read_unlock();
	cr_assert_eq(space_pinned(s), 20 * PG, "pages 8..15 added (hint below min: min wins)");
	iopf_space_destroy(s);

	s = make_space(IOPF_BACKEND_SIMULATED, 1 << 30, PG, 16 * PG);
	add_region(s, IOVA, 64 * PG, -1, IOPF_PERM_READ);
	iopf_rcu_read_lock();
	cr_assert_eq(iopf_space_fault(s, IOVA + 33 * PG, IOPF_PERM_READ, 1 << 30, &ref), 0);
	iopf_page_release(&ref);
	iopf_rcu_read_unlock();
	cr_assert_eq(space_pinned(s), 16 * PG, "a huge hint is capped at window_max: pages 32..47");
	cr_assert_eq(space_fault(s, IOVA + 47 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_fault(s, IOVA + 48 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_pinned(s), 17 * PG);
	iopf_space_destroy(s);
}

struct seen {
	uint64_t mapped, unmapped, calls;
};

static void saw_map(void *ud, uint64_t iova, uint64_t len) {
	struct seen *x = ud;
	x->mapped += len;
	x->calls++;
}

static void saw_unmap(void *ud, uint64_t iova, uint64_t len) {
	struct seen *x = ud;
	x->unmapped += len;
}

/* The simulated backend shows each call to an observer, and what is
 * resident is what its calls left mapped; no other backend takes one. */
Test(space, simulated_backend_shows_its_calls) {
	struct iopf_space *s = make_space(IOPF_BACKEND_SIMULATED, 8 * PG, 4 * PG, 4 * PG);
	add_region(s, IOVA, 64 * PG, -1, IOPF_PERM_READ);
	struct seen x = {0};
	const struct iopf_space_observer o = {.map = saw_map, .unmap = saw_unmap, .userdata = &x};
	cr_assert_eq(iopf_space_observe(s, &o), 0);
	cr_assert_eq(space_fault(s, IOVA + 1 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_fault(s, IOVA + 9 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_fault(s, IOVA + 17 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(x.calls, 3);
	cr_assert_eq(x.mapped, 12 * PG);
	cr_assert_eq(x.unmapped, 4 * PG, "the quota holds two windows: the first went");
	iopf_rcu_read_lock();
	cr_assert_not(iopf_space_resident(s, IOVA + 1 * PG));
	cr_assert(iopf_space_resident(s, IOVA + 11 * PG));
	cr_assert(iopf_space_resident(s, IOVA + 16 * PG));
	cr_assert_not(iopf_space_resident(s, IOVA + 20 * PG));
	iopf_rcu_read_unlock();
	iopf_space_evict_all(s);
	cr_assert_eq(x.unmapped, 12 * PG);
	iopf_space_destroy(s);
	struct iopf_space *m = make_space(IOPF_BACKEND_NONE, 8 * PG, 0, 0);
	cr_assert_eq(iopf_space_observe(m, &o), -EINVAL);
	iopf_space_destroy(m);
}

Test(space, quota_is_never_exceeded) {
	const uint64_t quota = 10 * PG;
	struct iopf_space *s = make_space(IOPF_BACKEND_SIMULATED, quota, 4 * PG, 4 * PG);
	add_region(s, IOVA, 1024 * PG, -1, IOPF_PERM_READ | IOPF_PERM_WRITE);
	uint64_t x = 7;
	for (int i = 0; i < 20000; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		cr_assert_eq(space_fault(s, IOVA + ((x >> 33) % 1024) * PG, IOPF_PERM_READ), 0);
		cr_assert_leq(space_pinned(s), quota);
	}
	struct iopf_space_stats st;
	iopf_space_get_stats(s, &st);
	cr_assert_leq(st.pinned_peak, quota);
	cr_assert_gt(st.evictions, 1000, "a small quota over a large range must evict");
	cr_assert_eq(st.maps - st.unmaps, st.pinned_bytes / (4 * PG), "every area is one aligned 4-page window");
	iopf_space_destroy(s);
}

Test(space, held_pages_are_never_evicted) {
	/* Quota of four pages, windows of one page: hold two, then fault
	 * many others. The held pages must stay; once everything is held,
	 * the next fault is refused rather than evicting. */
	struct iopf_space *s = make_space(IOPF_BACKEND_SIMULATED, 4 * PG, PG, PG);
	add_region(s, IOVA, 256 * PG, -1, IOPF_PERM_READ);
	struct iopf_page_ref h[4];
	iopf_rcu_read_lock();
	cr_assert_eq(iopf_space_fault(s, IOVA, IOPF_PERM_READ, 0, &h[0]), 0);
	cr_assert_eq(iopf_space_fault(s, IOVA + PG, IOPF_PERM_READ, 0, &h[1]), 0);
	for (int i = 2; i < 200; i++) {
		struct iopf_page_ref t;
		cr_assert_eq(iopf_space_fault(s, IOVA + (uint64_t)i * PG, IOPF_PERM_READ, 0, &t), 0);
		iopf_page_release(&t);
		cr_assert(h[0].region->page[0] & IOPF_PAGE_PINNED, "held page 0 evicted at %d", i);
		cr_assert(h[1].region->page[1] & IOPF_PAGE_PINNED, "held page 1 evicted at %d", i);
	}
	cr_assert_eq(iopf_space_fault(s, IOVA + 244 * PG, IOPF_PERM_READ, 0, &h[2]), 0);
	cr_assert_eq(iopf_space_fault(s, IOVA + 250 * PG, IOPF_PERM_READ, 0, &h[3]), 0);
	struct iopf_page_ref t;
	cr_assert_eq(iopf_space_fault(s, IOVA + 251 * PG, IOPF_PERM_READ, 0, &t), IOPF_INVALID_QUOTA,
	             "all four pages held: nothing evictable");
	for (int i = 0; i < 4; i++)
		iopf_page_release(&h[i]);
	cr_assert_eq(iopf_space_fault(s, IOVA + 251 * PG, IOPF_PERM_READ, 0, &t), 0, "evictable again");
	iopf_page_release(&t);
	iopf_rcu_read_unlock();
	struct iopf_space_stats st;
	iopf_space_get_stats(s, &st);
	cr_assert_eq(st.quota_refusals, 0, "counted by whoever gives up on the group, not here");
	iopf_space_destroy(s);
}

Test(space, window_shrinks_to_the_page_under_pressure) {
	struct iopf_space *s = make_space(IOPF_BACKEND_SIMULATED, 3 * PG, 8 * PG, 8 * PG);
	add_region(s, IOVA, 64 * PG, -1, IOPF_PERM_READ);
	cr_assert_eq(space_fault(s, IOVA + 20 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_pinned(s), PG, "an 8-page window cannot fit a 3-page quota: the page alone");
	iopf_space_destroy(s);
}

/* AddressSanitizer turns mlock into a no-op, so locked memory can only be
 * checked in builds without it. */
#if defined(__SANITIZE_ADDRESS__)
#define CHECK_LOCKED 0
#else
#define CHECK_LOCKED 1
#endif

Test(space, mlock_backend_really_locks_and_unlocks) {
	struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
	setrlimit(RLIMIT_MEMLOCK, &rl);
	const uint64_t quota = 64 * PG;
	long base = locked_bytes();
	struct iopf_space *s = make_space(IOPF_BACKEND_MLOCK, quota, 4 * PG, 4 * PG);
	int fd = sealed_memfd(1024 * PG);
	add_region(s, IOVA, 1024 * PG, fd, IOPF_PERM_READ | IOPF_PERM_WRITE);
	for (int i = 0; i < 1024; i += 3) {
		cr_assert_eq(space_fault(s, IOVA + (uint64_t)i * PG, IOPF_PERM_WRITE), 0);
		cr_assert_leq(space_pinned(s), quota);
		if (CHECK_LOCKED)
			cr_assert_eq(locked_bytes() - base, (long)space_pinned(s), "VmLck follows pinned bytes at %d", i);
	}
	cr_assert_eq(space_pinned(s), quota);
	cr_assert_eq(iopf_space_evict_all(s), quota);
	if (CHECK_LOCKED)
		cr_assert_eq(locked_bytes(), base, "everything unlocked");
	cr_assert_eq(space_fault(s, IOVA, IOPF_PERM_READ), 0, "served again after eviction");
	if (CHECK_LOCKED)
		cr_assert_eq(locked_bytes() - base, (long)(4 * PG));
	close(fd);
	iopf_space_destroy(s);
	if (CHECK_LOCKED)
		cr_assert_eq(locked_bytes(), base, "destroy unlocks");
}

Test(space, mlock_populates_the_clients_pages) {
	struct iopf_space *s = make_space(IOPF_BACKEND_MLOCK, 1 << 20, PG, PG);
	int fd = sealed_memfd(8 * PG);
	/* The client's view of the same memory. */
	char *client = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(client, MAP_FAILED);
	client[3 * PG] = 'x';
	add_region(s, IOVA, 8 * PG, fd, IOPF_PERM_READ | IOPF_PERM_WRITE);
	cr_assert_eq(space_fault(s, IOVA + 3 * PG, IOPF_PERM_READ), 0);
	struct iopf_region *r = iopf_region_find(s->regions, IOVA);
	cr_assert_eq(((char *)r->backend_data)[3 * PG], 'x', "the daemon maps the client's page");
	munmap(client, 8 * PG);
	close(fd);
	iopf_space_destroy(s);
}

Test(space, remove_region_unmaps_what_it_pinned) {
	long base = locked_bytes();
	struct iopf_space *s = make_space(IOPF_BACKEND_MLOCK, 1 << 20, PG, PG);
	int fd = sealed_memfd(32 * PG);
	uint64_t a = add_region(s, IOVA, 16 * PG, fd, IOPF_PERM_READ);
	struct iopf_region_config rc = {.iova = IOVA + 16 * PG, .length = 16 * PG, .memfd = fd,
	                                .offset = 16 * PG, .perm = IOPF_PERM_READ};
	cr_assert_eq(try_add(s, rc), IOPF_REGION_ADDED);
	for (int i = 0; i < 32; i += 2)
		cr_assert_eq(space_fault(s, IOVA + (uint64_t)i * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_pinned(s), 16 * PG);
	cr_assert_eq(iopf_space_remove_region(s, a), 0);
	cr_assert_eq(space_pinned(s), 8 * PG, "region a's pages unmapped, b's kept");
	if (CHECK_LOCKED)
		cr_assert_eq(locked_bytes() - base, (long)(8 * PG));
	cr_assert_eq(space_fault(s, IOVA, IOPF_PERM_READ), IOPF_INVALID_NO_REGION, "gone");
	cr_assert_eq(space_fault(s, IOVA + 16 * PG, IOPF_PERM_READ), 0, "b still served");
	cr_assert_eq(iopf_space_remove_region(s, a), -ENOENT);
	close(fd);
	iopf_space_destroy(s);
	if (CHECK_LOCKED)
		cr_assert_eq(locked_bytes(), base);
}

Test(space, backend_names_round_trip) {
	for (int k = 0; k < _IOPF_BACKEND_MAX; k++)
		if (k != IOPF_BACKEND_SIMULATED)
			cr_assert_eq(iopf_backend_kind_from_string(iopf_backend_kind_to_string(k)), k);
	cr_assert_null(iopf_backend_kind_to_string(IOPF_BACKEND_SIMULATED), "no client can ask for it");
	cr_assert_eq(iopf_backend_kind_from_string("nope"), -EINVAL);
	cr_assert_eq(iopf_backend_kind_from_string(NULL), -EINVAL);
}

static bool resident(struct iopf_space *s, uint64_t page) {
	iopf_rcu_read_lock();
	bool r = iopf_space_resident(s, IOVA + page * PG);
	iopf_rcu_read_unlock();
	return r;
}

/* 2q: a page that faults back after its eviction joins the main ring and
 * outlives a scan of one-time pages; the clock lets the scan push it out. */
Test(space, two_q_keeps_what_comes_back_through_a_scan) {
	for (int e = IOPF_EVICTION_CLOCK; e <= IOPF_EVICTION_2Q; e++) {
		struct iopf_space_config cfg = {.backend = IOPF_BACKEND_SIMULATED, .quota = 8 * PG, .page_size = PG,
		                                .fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = e, .iommufd = -1};
		struct iopf_space *s;
		cr_assert_eq(iopf_space_new(1, &cfg, &s), 0);
		add_region(s, IOVA, 512 * PG, -1, IOPF_PERM_READ);
		cr_assert_eq(space_fault(s, IOVA, IOPF_PERM_READ), 0);
		for (uint64_t p = 100; p < 108; p++)
			cr_assert_eq(space_fault(s, IOVA + p * PG, IOPF_PERM_READ), 0);
		cr_assert_not(resident(s, 0), "%s: page 0 went with the first scan", iopf_eviction_to_string(e));
		cr_assert_eq(space_fault(s, IOVA, IOPF_PERM_READ), 0, "it comes back");
		for (uint64_t p = 200; p < 232; p++)
			cr_assert_eq(space_fault(s, IOVA + p * PG, IOPF_PERM_READ), 0);
		if (e == IOPF_EVICTION_2Q)
			cr_assert(resident(s, 0), "2q: page 0 came back, the scan does not push it out");
		else
			cr_assert_not(resident(s, 0), "clock: the scan pushes it out again");
		struct iopf_space_stats st;
		iopf_space_get_stats(s, &st);
		cr_assert_leq(st.pinned_peak, 8 * PG);
		iopf_space_destroy(s);
	}
}

/* adaptive fault-around: a stream going up doubles its window at each
 * step, going down too, and a miss elsewhere starts over at one page. */
Test(space, adaptive_windows_follow_a_stream) {
	struct iopf_space_config cfg = {.backend = IOPF_BACKEND_SIMULATED, .quota = 1 << 30, .page_size = PG,
	                                .fault_around = IOPF_FAULT_AROUND_ADAPTIVE, .window_max = 16 * PG,
	                                .iommufd = -1};
	struct iopf_space *s;
	cr_assert_eq(iopf_space_new(1, &cfg, &s), 0);
	add_region(s, IOVA, 1024 * PG, -1, IOPF_PERM_READ);
	/* Up from page 100: maps 1, 2, 4, 8, 16, 16 pages. */
	uint64_t p = 100, want[] = {1, 2, 4, 8, 16, 16};
	for (size_t i = 0; i < 6; i++) {
		uint64_t before = space_pinned(s);
		cr_assert_eq(space_fault(s, IOVA + p * PG, IOPF_PERM_READ), 0);
		cr_assert_eq(space_pinned(s) - before, want[i] * PG, "step %zu", i);
		p += want[i];
	}
	/* Elsewhere: one page. */
	uint64_t before = space_pinned(s);
	cr_assert_eq(space_fault(s, IOVA + 700 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_pinned(s) - before, PG);
	/* Down from 699: 2 pages (698-699)... */
	before = space_pinned(s);
	cr_assert_eq(space_fault(s, IOVA + 699 * PG, IOPF_PERM_READ), 0);
	cr_assert_eq(space_pinned(s) - before, 2 * PG, "a stream going down");
	cr_assert(resident(s, 698));
	iopf_space_destroy(s);
}
