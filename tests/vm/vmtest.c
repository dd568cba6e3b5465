/* SPDX-License-Identifier: MIT */
/*
 * iopfd against the real kernel, run inside the test VM (tools/dev vmtest).
 *
 * Each scenario starts iopfd as a real process and plays a VMM: it builds
 * iommufd objects around the kernel's mock device (IOMMUFD_TEST), hands the
 * fault queue, the iommufd + IOAS and sealed memfds to iopfd over Varlink,
 * triggers page faults with IOMMU_TEST_OP_TRIGGER_IOPF and checks the IOMMU
 * page tables with IOMMU_TEST_OP_MD_CHECK_MAP against its own mapping of the
 * memfd. Prints TAP; exit status 0 when every scenario passed.
 *
 * Kernels: >= 6.13 lets a plain paging HWPT carry a fault queue ("paging");
 * 6.12 only a nested one ("nested", with a NEST_PARENT HWPT whose page table
 * MD_CHECK_MAP reads). The mode is found at run time.
 *
 * With --systemd (systemd is PID 1 and runs iopfd.socket/iopfd.service),
 * the scenarios are those of the service: socket activation, READY and
 * STATUS, restart without loss after kill -9 and after the watchdog fired on
 * a hung worker, and a clean stop followed by a start.
 *
 * Usage: iopfd-vmtest IOPFD_BINARY [SCENARIO...]
 *        iopfd-vmtest --systemd [SCENARIO...]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include "emu.h"
#include "iopf_abi.h"
#include "iommufd_test.h"
#include "iopfd/client.h"
#include "harness.h"
#include "control/config.h"
#include "engine/journal-format.h"
#include "engine/queue-internal.h"
#include "engine/rcu.h"
#include "engine/stats.h"
#include "sim-device.h"
#include "sim-policies.h"
#include "sim-trace.h"
#include "trace-synth.h"

#define PG 4096ull
#define RD IOMMU_PGFAULT_PERM_READ
#define WR IOMMU_PGFAULT_PERM_WRITE
#define SOCKET "/run/iopfd-vmtest.sock"
/* Access masks of iopfc_add_region(). */
#define ACC_R 1u
#define ACC_RW 3u

static const char *iopfd_bin;
static int iommufd = -1;
static bool nested; /* decided once: paging fault HWPTs refused (6.12) */

/* --- the kernel's mock device --------------------------------------------------------- */

struct mockdev {
	uint32_t ioas, stdev, idev;
	uint32_t hwpt;    /* the HWPT that reports faults */
	uint32_t checked; /* the paging HWPT MD_CHECK_MAP reads */
};

static int test_cmd(struct iommu_test_cmd *c) {
	c->size = sizeof(*c);
	return ioctl(iommufd, IOMMU_TEST_CMD, c) ? -errno : 0;
}

static uint32_t ioas_alloc(void) {
	struct iommu_ioas_alloc a = {.size = sizeof(a)};
	CHECK(ioctl(iommufd, IOMMU_IOAS_ALLOC, &a) == 0, "IOAS_ALLOC: %m");
	return a.out_ioas_id;
}

static void fault_alloc(uint32_t *id, int *fd) {
	struct iommu_fault_alloc f = {.size = sizeof(f)};
	CHECK(ioctl(iommufd, IOMMU_FAULT_QUEUE_ALLOC, &f) == 0, "FAULT_QUEUE_ALLOC: %m");
	*id = f.out_fault_id;
	*fd = (int)f.out_fault_fd;
}

/* A mock device on `ioas`, moved onto a HWPT that reports faults to `fault_id`. */
static struct mockdev mock_device(uint32_t ioas, uint32_t fault_id) {
	struct mockdev d = {.ioas = ioas};
	struct iommu_test_cmd md = {.op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas};
	CHECK(test_cmd(&md) == 0, "MOCK_DOMAIN: %s", strerror(errno));
	d.stdev = md.mock_domain.out_stdev_id;
	d.idev = md.mock_domain.out_idev_id;

	struct iommu_hwpt_alloc h = {.size = sizeof(h), .flags = IOMMU_HWPT_FAULT_ID_VALID, .dev_id = d.idev,
	                             .pt_id = ioas, .fault_id = fault_id};
	if (!nested && ioctl(iommufd, IOMMU_HWPT_ALLOC, &h) == 0) {
		d.hwpt = d.checked = h.out_hwpt_id;
	} else {
		CHECK(nested || errno == EOPNOTSUPP, "HWPT_ALLOC with a fault queue: %m");
		nested = true;
		struct iommu_hwpt_alloc p = {.size = sizeof(p), .flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
		                             .dev_id = d.idev, .pt_id = ioas};
		CHECK(ioctl(iommufd, IOMMU_HWPT_ALLOC, &p) == 0, "HWPT_ALLOC NEST_PARENT: %m");
		struct iommu_hwpt_selftest st = {.iotlb = IOMMU_TEST_IOTLB_DEFAULT};
		h.pt_id = p.out_hwpt_id;
		h.data_type = IOMMU_HWPT_DATA_SELFTEST;
		h.data_len = sizeof(st);
		h.data_uptr = (uintptr_t)&st;
		CHECK(ioctl(iommufd, IOMMU_HWPT_ALLOC, &h) == 0, "HWPT_ALLOC nested with a fault queue: %m");
		d.hwpt = h.out_hwpt_id;
		d.checked = p.out_hwpt_id;
	}
	struct iommu_test_cmd rp = {.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, .id = d.stdev,
	                            .mock_domain_replace.pt_id = d.hwpt};
	CHECK(test_cmd(&rp) == 0, "MOCK_DOMAIN_REPLACE: %s", strerror(errno));
	return d;
}

static void trigger(const struct mockdev *d, uint32_t pasid, uint32_t perm, uint64_t addr) {
	struct iommu_test_cmd t = {.op = IOMMU_TEST_OP_TRIGGER_IOPF,
	                           .trigger_iopf = {.dev_id = d->idev, .pasid = pasid, .grpid = 1, .perm = perm,
	                                            .addr = addr}};
	CHECK(test_cmd(&t) == 0, "TRIGGER_IOPF: %s", strerror(errno));
}

/* 0 when [iova, iova+len) is mapped in the device's page table to the pages
 * behind uptr, -EINVAL when not (or not to those pages). */
static int check_map(const struct mockdev *d, uint64_t iova, uint64_t len, const void *uptr) {
	struct iommu_test_cmd c = {.op = IOMMU_TEST_OP_MD_CHECK_MAP, .id = d->checked,
	                           .check_map = {.iova = iova, .length = len, .uptr = (uintptr_t)uptr}};
	return test_cmd(&c);
}

/* --- memory ---------------------------------------------------------------------------- */

struct mem {
	int fd;
	uint8_t *va; /* the client's own mapping: what the device must see */
	size_t len;
};

static struct mem memfd(size_t len, uint8_t fill) {
	struct mem m = {.len = len};
	m.fd = memfd_create("vmtest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(m.fd >= 0 && ftruncate(m.fd, (off_t)len) == 0, "memfd: %m");
	CHECK(fcntl(m.fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0, "seal: %m");
	m.va = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, m.fd, 0);
	CHECK(m.va != MAP_FAILED, "mmap: %m");
	for (size_t i = 0; i < len; i += PG)
		m.va[i] = (uint8_t)(fill + i / PG);
	return m;
}

static void mem_free(struct mem *m) {
	munmap(m->va, m->len);
	close(m->fd);
}

/* --- iopfd ----------------------------------------------------------------------------- */

static pid_t daemon_pid;

static sd_varlink *daemon_start(void) {
	unlink(SOCKET);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		execl(iopfd_bin, iopfd_bin, "--socket", SOCKET, "--workers", "2", (char *)NULL);
		_exit(127);
	}
	sd_varlink *v;
	for (int i = 0; i < 500; i++) {
		if (iopfc_connect(SOCKET, &v) == 0)
			return v;
		usleep(10000);
	}
	fail("iopfd did not come up");
}

/* iopfd with `conf` as its configuration, one worker (so one batch slot). */
static sd_varlink *daemon_start_conf(const char *conf) {
	const char *path = "/tmp/iopfd-vmtest.conf";
	FILE *f = fopen(path, "w");
	CHECK(f && fputs(conf, f) >= 0 && fclose(f) == 0, "%s: %m", path);
	unlink(SOCKET);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		execl(iopfd_bin, iopfd_bin, "--socket", SOCKET, "--workers", "1", "--config", path, (char *)NULL);
		_exit(127);
	}
	sd_varlink *v;
	for (int i = 0; i < 500; i++) {
		if (iopfc_connect(SOCKET, &v) == 0)
			return v;
		usleep(10000);
	}
	fail("iopfd did not come up");
}

/* Stop iopfd from reading, so that faults pile up in the kernel's queue. */
static void daemon_pause(void) {
	kill(daemon_pid, SIGSTOP);
	int st;
	waitpid(daemon_pid, &st, WUNTRACED);
}

static void daemon_resume(void) {
	kill(daemon_pid, SIGCONT);
}

static int daemon_stop(void) {
	if (daemon_pid <= 0)
		return -1;
	kill(daemon_pid, SIGTERM);
	int st;
	waitpid(daemon_pid, &st, 0);
	daemon_pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *err;

#define OK(call) CHECK((call) == 0, "%s: %s", #call, err ? err : strerror(errno))

static sd_json_variant *stats(sd_varlink *v) {
	sd_json_variant *s;
	OK(iopfc_statistics(v, &s, &err));
	return s;
}

/* A listing's array, ours to keep across later calls (a reply is valid
 * only until the next call on its connection); sd_json_variant_unref it. */
static sd_json_variant *listing(sd_varlink *v, const char *method, const char *key) {
	sd_json_variant *rep;
	OK(iopfc_call(v, method, NULL, NULL, 0, &rep, &err));
	return sd_json_variant_ref(sd_json_variant_by_key(rep, key));
}

static uint64_t invalid_of(sd_json_variant *s, const char *why) {
	return iopfc_u64(sd_json_variant_by_key(s, "invalid"), why);
}

/* Groups answered, SUCCESS and INVALID for any reason. */
static uint64_t answered_of(sd_json_variant *s) {
	uint64_t answered = iopfc_u64(s, "success");
	sd_json_variant *inv = sd_json_variant_by_key(s, "invalid");
	for (size_t i = 1; i < sd_json_variant_elements(inv); i += 2)
		answered += sd_json_variant_unsigned(sd_json_variant_by_index(inv, i));
	return answered;
}

/* Wait until iopfd has answered `groups` groups in all. */
static sd_json_variant *wait_groups_every(sd_varlink *v, uint64_t groups, unsigned poll_us) {
	uint64_t deadline = now_ns() + 60ull * 1000000000;
	for (;;) {
		sd_json_variant *s = stats(v);
		uint64_t answered = answered_of(s);
		if (answered >= groups)
			return s;
		CHECK(now_ns() < deadline, "only %lu of %lu groups answered", (unsigned long)iopfc_u64(s, "groups"),
		      (unsigned long)groups);
		usleep(poll_us);
	}
}

static sd_json_variant *wait_groups(sd_varlink *v, uint64_t groups) {
	return wait_groups_every(v, groups, 2000);
}

struct setup {
	sd_varlink *v;
	struct mockdev dev;
	uint32_t fault_id;
	int fault_fd;
	uint32_t queue;
	uint64_t space;
	struct mem mem;
	uint64_t iova;
};

/* An iommufd space with fixed windows and the clock: the scenarios here
 * check mechanisms (what is mapped, evicted, left in the queue), which
 * read-ahead would blur. */
static uint64_t fixed_space(sd_varlink *v, uint64_t quota, uint64_t window, uint32_t ioas) {
	sd_json_variant *p = NULL, *rep;
	OK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_STRING("backend", "iommufd"), SD_JSON_BUILD_PAIR_UNSIGNED("quota", quota),
	                  SD_JSON_BUILD_PAIR_UNSIGNED("windowMin", window), SD_JSON_BUILD_PAIR_UNSIGNED("windowMax", window),
	                  SD_JSON_BUILD_PAIR_INTEGER("iommufdIndex", 0), SD_JSON_BUILD_PAIR_UNSIGNED("ioasId", ioas),
	                  SD_JSON_BUILD_PAIR_STRING("faultAround", "fixed"),
	                  SD_JSON_BUILD_PAIR_STRING("eviction", "clock")) < 0);
	OK(iopfc_call(v, "io.iopfd.CreateSpace", p, &iommufd, 1, &rep, &err));
	sd_json_variant_unref(p);
	return iopfc_u64(rep, "space");
}

/* One device on its own IOAS and fault queue; one address space with one
 * region of `pages` pages at the start of the mock aperture. */
static void setup_one(struct setup *s, size_t pages, uint64_t quota, uint64_t window, uint32_t access) {
	s->v = daemon_start();
	uint32_t ioas = ioas_alloc();
	fault_alloc(&s->fault_id, &s->fault_fd);
	s->dev = mock_device(ioas, s->fault_id);
	s->mem = memfd(pages * PG, 0x10);
	s->iova = MOCK_APERTURE_START;
	s->space = fixed_space(s->v, quota, window, ioas);
	OK(iopfc_add_region(s->v, s->space, s->iova, pages * PG, s->mem.fd, 0, access, NULL, &err));
	OK(iopfc_register_queue(s->v, s->fault_fd, "iommufd", "vm", &s->queue, &err));
	OK(iopfc_bind(s->v, s->queue, s->dev.idev, IOPFC_PASID_NONE, s->space, &err));
}

static void teardown_one(struct setup *s) {
	if (s->v)
		sd_varlink_unref(s->v);
	CHECK(daemon_stop() == 0, "iopfd did not exit cleanly");
	mem_free(&s->mem);
	close(s->fault_fd);
}

/* --- the kernel queue after iopfd let go of it --------------------------------------- */

/* Read every group left in the kernel's queue and answer each, as the
 * queue's other holder would; the kernel must take each answer. Each
 * group's page is passed to fn (optional). Returns the groups read. */
static uint64_t answer_left(int fault_fd, void (*fn)(void *ud, uint64_t addr), void *ud) {
	uint64_t n = 0;
	iopf_record recs[64];
	ssize_t k;
	while ((k = read(fault_fd, recs, sizeof(recs))) > 0) {
		for (size_t i = 0; i < (size_t)k / sizeof(recs[0]); i++) {
			iopf_response r = {.cookie = recs[i].cookie, .code = IOMMUFD_PAGE_RESP_SUCCESS};
			CHECK(write(fault_fd, &r, sizeof(r)) == sizeof(r), "the kernel refused an answer to a left group: %m");
			CHECK(write(fault_fd, &r, sizeof(r)) < 0 && errno == EINVAL, "the kernel took an answer twice");
			if (fn)
				fn(ud, recs[i].addr);
			n++;
		}
	}
	CHECK(k == 0, "reading the fault queue: %m");
	return n;
}

/* Groups nobody answered, as the kernel's cookies show them: it gives out
 * the lowest free cookie, so 32 new groups get cookies 1..32 exactly when
 * no earlier group is still pending. The probes fault at iova (any pages:
 * the caller answers them itself). */
static uint64_t pending_groups(const struct mockdev *d, int fault_fd, uint64_t iova) {
	enum { PROBE = 32 };
	/* Cookies are given out when groups are read: read all 32 before
	 * answering any. */
	for (int i = 0; i < PROBE; i++)
		trigger(d, 0, RD, iova + ((uint64_t)i % 64) * PG);
	iopf_record probe[PROBE];
	int got = 0;
	for (int tries = 0; got < PROBE && tries < 1000; tries++) {
		ssize_t k = read(fault_fd, &probe[got], (PROBE - got) * sizeof(iopf_record));
		if (k > 0)
			got += (int)(k / (ssize_t)sizeof(iopf_record));
		else
			usleep(1000);
	}
	CHECK(got == PROBE, "only %d of the %d probe faults arrived", got, PROBE);
	bool seen[PROBE + 1] = {0};
	for (int i = 0; i < PROBE; i++) {
		if (probe[i].cookie >= 1 && probe[i].cookie <= PROBE)
			seen[probe[i].cookie] = true;
		iopf_response r = {.cookie = probe[i].cookie, .code = IOMMUFD_PAGE_RESP_INVALID};
		CHECK(write(fault_fd, &r, sizeof(r)) == sizeof(r), "answering a probe: %m");
	}
	/* A cookie below 33 not given to a probe is held by a group nobody
	 * answered. */
	uint64_t stuck = 0;
	for (int c = 1; c <= PROBE; c++)
		stuck += !seen[c];
	return stuck;
}

/* --- scenarios --------------------------------------------------------------------------- */

/* Thousands of faults over a memfd region: every group answered, every
 * faulted page pinned and mapped to the right memfd page. */
static void paging_demand(void) {
	enum { PAGES = 2048 };
	struct setup s = {0};
	setup_one(&s, PAGES, PAGES * PG, PG, ACC_RW);
	/* A stride that visits every page once, out of order. */
	for (uint64_t i = 0; i < PAGES; i++) {
		uint64_t p = (i * 1237) % PAGES;
		trigger(&s.dev, 0, RD | WR, s.iova + p * PG + (i % 7) * 8);
	}
	sd_json_variant *st = wait_groups(s.v, PAGES);
	CHECK(iopfc_u64(st, "success") == PAGES, "success %lu", (unsigned long)iopfc_u64(st, "success"));
	CHECK(iopfc_u64(st, "writeRejects") == 0, "the kernel refused responses");
	for (uint64_t p = 0; p < PAGES; p++)
		CHECK(check_map(&s.dev, s.iova + p * PG, PG, s.mem.va + p * PG) == 0, "page %lu not mapped to its memfd page",
		      (unsigned long)p);
	/* The check itself can fail: the wrong memfd page is refused. */
	CHECK(check_map(&s.dev, s.iova, PG, s.mem.va + PG) == -EINVAL, "MD_CHECK_MAP accepted a wrong page");
	printf("# %d faults answered with %lu reads and %lu writes\n", PAGES, (unsigned long)iopfc_u64(st, "reads"),
	       (unsigned long)iopfc_u64(st, "writes"));
	teardown_one(&s);
}

/* Faults iopfd must refuse: outside every region, a write to a read-only
 * region, a device or PASID nobody bound. Nothing gets mapped. */
static void refusals(void) {
	struct setup s = {0};
	setup_one(&s, 256, 1 << 20, PG, ACC_R);
	/* The same fault queue twice (or a dup of it): two readers would split
	 * it. Another fault queue is another file, though all share one anon
	 * inode. */
	uint32_t again;
	int copy = fcntl(s.fault_fd, F_DUPFD_CLOEXEC, 3);
	CHECK(iopfc_register_queue(s.v, s.fault_fd, "iommufd", NULL, &again, &err) == -EREMOTEIO &&
	      !strcmp(err, "io.iopfd.BadFileDescriptor"), "the same fault queue was registered twice");
	CHECK(iopfc_register_queue(s.v, copy, "iommufd", NULL, &again, &err) == -EREMOTEIO &&
	      !strcmp(err, "io.iopfd.BadFileDescriptor"), "a dup of a registered fault queue was registered");
	close(copy);
	uint32_t other_id;
	int other_fd;
	fault_alloc(&other_id, &other_fd);
	OK(iopfc_register_queue(s.v, other_fd, "iommufd", NULL, &again, &err));
	OK(iopfc_unregister_queue(s.v, again, &err));
	close(other_fd);
	/* A second device on the same queue that nobody binds. */
	struct mockdev stranger = mock_device(s.dev.ioas, s.fault_id);
	/* And the first device's requests with a PASID: bound only without. */
	trigger(&s.dev, 0, RD, s.iova + 300 * PG);                  /* outside the region */
	trigger(&s.dev, 0, RD | WR, s.iova + 10 * PG);              /* write to read-only */
	trigger(&stranger, 0, RD, s.iova + 11 * PG);                /* unknown device */
	trigger(&s.dev, 0, RD | IOMMU_PGFAULT_PERM_EXEC, s.iova + 12 * PG); /* exec not allowed */
	sd_json_variant *st = wait_groups(s.v, 4);
	CHECK(iopfc_u64(st, "success") == 0, "a refused fault was answered SUCCESS");
	CHECK(invalid_of(st, "no_region") == 1, "no_region %lu", (unsigned long)invalid_of(st, "no_region"));
	CHECK(invalid_of(st, "permission") == 2, "permission %lu", (unsigned long)invalid_of(st, "permission"));
	CHECK(invalid_of(st, "no_binding") == 1, "no_binding %lu", (unsigned long)invalid_of(st, "no_binding"));
	for (int p = 10; p <= 12; p++)
		CHECK(check_map(&s.dev, s.iova + (uint64_t)p * PG, PG, s.mem.va + p * PG) == -EINVAL,
		      "page %d mapped after a refused fault", p);
	/* A read of the same page is fine, and maps it. */
	trigger(&s.dev, 0, RD, s.iova + 10 * PG);
	wait_groups(s.v, 5);
	CHECK(check_map(&s.dev, s.iova + 10 * PG, PG, s.mem.va + 10 * PG) == 0, "page 10 not mapped after a read");
	teardown_one(&s);
}

/* A quota smaller than the pages touched: evicted pages are really unmapped,
 * pinned bytes stay within the quota, and evicted pages are served again. */
static void quota_eviction(void) {
	enum { PAGES = 64, QUOTA_PAGES = 16 };
	struct setup s = {0};
	setup_one(&s, PAGES, QUOTA_PAGES * PG, PG, ACC_RW);
	for (uint64_t p = 0; p < PAGES; p++) {
		trigger(&s.dev, 0, RD, s.iova + p * PG);
		wait_groups(s.v, p + 1);
	}
	sd_json_variant *rep;
	OK(iopfc_call(s.v, "io.iopfd.ListSpaces", NULL, NULL, 0, &rep, &err));
	sd_json_variant *sp = sd_json_variant_by_index(sd_json_variant_by_key(rep, "spaces"), 0);
	CHECK(iopfc_u64(sp, "pinnedPeak") <= QUOTA_PAGES * PG, "peak %lu over the quota", (unsigned long)iopfc_u64(sp, "pinnedPeak"));
	CHECK(iopfc_u64(sp, "evictions") >= PAGES - QUOTA_PAGES, "evictions %lu", (unsigned long)iopfc_u64(sp, "evictions"));
	unsigned mapped = 0;
	for (uint64_t p = 0; p < PAGES; p++)
		mapped += check_map(&s.dev, s.iova + p * PG, PG, s.mem.va + p * PG) == 0;
	CHECK(mapped <= QUOTA_PAGES && mapped > 0, "%u pages mapped with a quota of %d", mapped, QUOTA_PAGES);
	CHECK(check_map(&s.dev, s.iova, PG, s.mem.va) == -EINVAL, "page 0 still mapped after eviction");
	trigger(&s.dev, 0, RD, s.iova);
	sd_json_variant *st = wait_groups(s.v, PAGES + 1);
	CHECK(iopfc_u64(st, "success") == PAGES + 1,
	      "an evicted page was not served again: success %lu, quota %lu, backend %lu, no_region %lu",
	      (unsigned long)iopfc_u64(st, "success"), (unsigned long)invalid_of(st, "quota"),
	      (unsigned long)invalid_of(st, "backend"), (unsigned long)invalid_of(st, "no_region"));
	CHECK(check_map(&s.dev, s.iova, PG, s.mem.va) == 0, "page 0 not mapped again");
	teardown_one(&s);
}

/* Pages the device's page table maps to their memfd pages right now. */
static unsigned mapped_now(const struct setup *s, size_t pages) {
	unsigned n = 0;
	for (uint64_t p = 0; p < pages; p++)
		n += check_map(&s->dev, s->iova + p * PG, PG, s->mem.va + p * PG) == 0;
	return n;
}

/* 256 faults on distinct pages queued while iopfd is stopped, under a
 * 16-page quota: iopfd reads them in one go, and every group must still be
 * SUCCESS (a device fails its DMA on INVALID). The kernel's page table,
 * looked at while iopfd is stopped again and again as it works (a stop
 * lands between two map or unmap calls), never holds more than the quota. */
static void quota_pressure_queued(void) {
	enum { PAGES = 256, QUOTA_PAGES = 16 };
	struct setup s = {0};
	setup_one(&s, PAGES, QUOTA_PAGES * PG, PG, ACC_RW);
	daemon_pause();
	for (uint64_t i = 0; i < PAGES; i++)
		trigger(&s.dev, 0, RD, s.iova + ((i * 97) % PAGES) * PG);
	daemon_resume();
	unsigned peak = 0, looks = 0;
	sd_json_variant *st;
	uint64_t deadline = now_ns() + 60ull * 1000000000;
	for (;;) {
		daemon_pause();
		unsigned m = mapped_now(&s, PAGES);
		daemon_resume();
		looks++;
		if (m > peak)
			peak = m;
		st = stats(s.v);
		uint64_t answered = answered_of(st);
		if (answered >= PAGES)
			break;
		CHECK(now_ns() < deadline, "only %lu of %d groups answered", (unsigned long)answered, PAGES);
		usleep(500);
	}
	sd_json_variant *rep;
	OK(iopfc_call(s.v, "io.iopfd.ListSpaces", NULL, NULL, 0, &rep, &err));
	sd_json_variant *sp = sd_json_variant_by_index(sd_json_variant_by_key(rep, "spaces"), 0);
	uint64_t peak_bytes = iopfc_u64(sp, "pinnedPeak"), maps = iopfc_u64(sp, "maps");
	unsigned at_end = mapped_now(&s, PAGES);
	st = stats(s.v);
	printf("# %d faults queued under a %d-page quota: %lu SUCCESS, %lu INVALID (quota %lu); %lu map calls; "
	       "peak pinned %lu pages (iopfd), %u pages mapped at most in %u looks at the page table, %u at the end\n",
	       PAGES, QUOTA_PAGES, (unsigned long)iopfc_u64(st, "success"),
	       (unsigned long)(answered_of(st) - iopfc_u64(st, "success")), (unsigned long)invalid_of(st, "quota"), (unsigned long)maps, (unsigned long)(peak_bytes / PG), peak, looks,
	       at_end);
	CHECK(iopfc_u64(st, "success") == PAGES, "%lu of %d groups SUCCESS (quota refusals %lu)",
	      (unsigned long)iopfc_u64(st, "success"), PAGES, (unsigned long)invalid_of(st, "quota"));
	CHECK(iopfc_u64(st, "writeRejects") == 0, "the kernel refused responses");
	CHECK(peak_bytes <= QUOTA_PAGES * PG, "iopfd's peak %lu bytes over the quota", (unsigned long)peak_bytes);
	CHECK(peak <= QUOTA_PAGES && at_end <= QUOTA_PAGES, "the page table held %u pages under a %d-page quota",
	      peak > at_end ? peak : at_end, QUOTA_PAGES);
	CHECK(at_end > 0, "nothing mapped at the end: the check cannot see mappings");
	teardown_one(&s);
}

/* Several mock devices on one fault queue and on another, bound to
 * different address spaces over different IOASes and memfds; PASIDs of a
 * nested device bound to spaces of their own. */
static void devices_and_pasids(void) {
	sd_varlink *v = daemon_start();
	uint32_t ioas_a = ioas_alloc(), ioas_b = ioas_alloc();
	uint32_t f1, f2;
	int fd1, fd2;
	fault_alloc(&f1, &fd1);
	fault_alloc(&f2, &fd2);
	struct mockdev d1 = mock_device(ioas_a, f1), d2 = mock_device(ioas_a, f1), d3 = mock_device(ioas_b, f2);
	struct mem m1 = memfd(32 * PG, 0x20), m2 = memfd(32 * PG, 0x40), m3 = memfd(32 * PG, 0x60);
	const uint64_t X = MOCK_APERTURE_START, Y = MOCK_APERTURE_START + (1 << 20);
	uint64_t s1, s2, s3;
	uint32_t q1, q2;
	OK(iopfc_create_space(v, "iommufd", 1 << 20, PG, PG, iommufd, ioas_a, &s1, &err));
	OK(iopfc_create_space(v, "iommufd", 1 << 20, PG, PG, iommufd, ioas_a, &s2, &err));
	OK(iopfc_create_space(v, "iommufd", 1 << 20, PG, PG, iommufd, ioas_b, &s3, &err));
	OK(iopfc_add_region(v, s1, X, 32 * PG, m1.fd, 0, ACC_RW, NULL, &err));
	OK(iopfc_add_region(v, s2, Y, 32 * PG, m2.fd, 0, ACC_RW, NULL, &err));
	OK(iopfc_add_region(v, s3, X, 32 * PG, m3.fd, 0, ACC_RW, NULL, &err));
	OK(iopfc_register_queue(v, fd1, NULL, "shared", &q1, &err));
	OK(iopfc_register_queue(v, fd2, NULL, "own", &q2, &err));
	OK(iopfc_bind(v, q1, d1.idev, IOPFC_PASID_NONE, s1, &err));
	OK(iopfc_bind(v, q1, d2.idev, IOPFC_PASID_NONE, s2, &err));
	OK(iopfc_bind(v, q2, d3.idev, IOPFC_PASID_NONE, s3, &err));
	for (uint64_t p = 0; p < 32; p += 3) {
		trigger(&d1, 0, RD, X + p * PG);
		trigger(&d2, 0, RD | WR, Y + p * PG);
		trigger(&d3, 0, WR, X + p * PG);
	}
	sd_json_variant *st = wait_groups(v, 33);
	CHECK(iopfc_u64(st, "success") == 33, "success %lu of 33", (unsigned long)iopfc_u64(st, "success"));
	for (uint64_t p = 0; p < 32; p += 3) {
		CHECK(check_map(&d1, X + p * PG, PG, m1.va + p * PG) == 0, "d1 page %lu", (unsigned long)p);
		CHECK(check_map(&d2, Y + p * PG, PG, m2.va + p * PG) == 0, "d2 page %lu", (unsigned long)p);
		CHECK(check_map(&d3, X + p * PG, PG, m3.va + p * PG) == 0, "d3 page %lu (another IOAS, another memfd)",
		      (unsigned long)p);
		CHECK(check_map(&d3, X + p * PG, PG, m1.va + p * PG) == -EINVAL, "d3 sees d1's memory");
	}

	/* PASIDs: a nested domain takes faults for any PASID of its device. */
	bool was = nested;
	nested = true;
	uint32_t ioas_c = ioas_alloc();
	struct mockdev d4 = mock_device(ioas_c, f1);
	nested = was;
	struct mem m4 = memfd(8 * PG, 0x80), m5 = memfd(8 * PG, 0xa0);
	const uint64_t Z = MOCK_APERTURE_START + (4 << 20), W = MOCK_APERTURE_START + (8 << 20);
	uint64_t s4, s5;
	OK(iopfc_create_space(v, "iommufd", 1 << 20, PG, PG, iommufd, ioas_c, &s4, &err));
	OK(iopfc_create_space(v, "iommufd", 1 << 20, PG, PG, iommufd, ioas_c, &s5, &err));
	OK(iopfc_add_region(v, s4, Z, 8 * PG, m4.fd, 0, ACC_RW, NULL, &err));
	OK(iopfc_add_region(v, s5, W, 8 * PG, m5.fd, 0, ACC_RW, NULL, &err));
	OK(iopfc_bind(v, q1, d4.idev, 3, s4, &err));
	OK(iopfc_bind(v, q1, d4.idev, 4, s5, &err));
	trigger(&d4, 3, RD, Z + 2 * PG);
	trigger(&d4, 4, RD, W + 5 * PG);
	trigger(&d4, 9, RD, Z + 3 * PG); /* a PASID nobody bound */
	st = wait_groups(v, 36);
	CHECK(iopfc_u64(st, "success") == 35, "PASID faults: success %lu of 35", (unsigned long)iopfc_u64(st, "success"));
	CHECK(invalid_of(st, "no_binding") == 1, "the unbound PASID was not refused");
	CHECK(check_map(&d4, Z + 2 * PG, PG, m4.va + 2 * PG) == 0, "PASID 3 page");
	CHECK(check_map(&d4, W + 5 * PG, PG, m5.va + 5 * PG) == 0, "PASID 4 page");
	CHECK(check_map(&d4, Z + 3 * PG, PG, m4.va + 3 * PG) == -EINVAL, "the unbound PASID's page got mapped");

	sd_varlink_unref(v);
	CHECK(daemon_stop() == 0, "iopfd did not exit cleanly");
	mem_free(&m1);
	mem_free(&m2);
	mem_free(&m3);
	mem_free(&m4);
	mem_free(&m5);
	close(fd1);
	close(fd2);
}

/* Removing a region unmaps what iopfd mapped in it; a client going away
 * unmaps everything; the fault queue keeps working for the client. */
static void teardown_unmaps(void) {
	struct setup s = {0};
	setup_one(&s, 64, 1 << 20, PG, ACC_RW);
	struct mem second = memfd(64 * PG, 0x33);
	uint64_t second_iova = s.iova + (1 << 20), region2;
	OK(iopfc_add_region(s.v, s.space, second_iova, 64 * PG, second.fd, 0, ACC_RW, &region2, &err));
	for (uint64_t p = 0; p < 64; p += 4) {
		trigger(&s.dev, 0, RD, s.iova + p * PG);
		trigger(&s.dev, 0, RD, second_iova + p * PG);
	}
	wait_groups(s.v, 32);
	for (uint64_t p = 0; p < 64; p += 4) {
		CHECK(check_map(&s.dev, s.iova + p * PG, PG, s.mem.va + p * PG) == 0, "first region page %lu", (unsigned long)p);
		CHECK(check_map(&s.dev, second_iova + p * PG, PG, second.va + p * PG) == 0, "second region page %lu",
		      (unsigned long)p);
	}
	OK(iopfc_remove_region(s.v, s.space, region2, &err));
	for (uint64_t p = 0; p < 64; p += 4) {
		CHECK(check_map(&s.dev, second_iova + p * PG, PG, second.va + p * PG) == -EINVAL,
		      "removed region's page %lu still mapped", (unsigned long)p);
		CHECK(check_map(&s.dev, s.iova + p * PG, PG, s.mem.va + p * PG) == 0, "kept region's page %lu unmapped",
		      (unsigned long)p);
	}
	/* The client goes away: everything iopfd mapped for it goes too. */
	sd_varlink_flush_close_unref(s.v);
	s.v = NULL;
	sd_varlink *probe = NULL;
	OK(iopfc_connect(SOCKET, &probe));
	for (int i = 0; i < 500 && iopfc_u64(stats(probe), "spaces") > 0; i++)
		usleep(10000);
	CHECK(iopfc_u64(stats(probe), "spaces") == 0, "the client's space outlived it");
	sd_varlink_unref(probe);
	for (uint64_t p = 0; p < 64; p += 4)
		CHECK(check_map(&s.dev, s.iova + p * PG, PG, s.mem.va + p * PG) == -EINVAL, "page %lu mapped after disconnect",
		      (unsigned long)p);
	/* The queue is the client's again. */
	trigger(&s.dev, 0, RD, s.iova + 5 * PG);
	iopf_record rec;
	ssize_t n = 0;
	for (int i = 0; i < 1000 && n == 0; i++) {
		n = read(s.fault_fd, &rec, sizeof(rec));
		if (n == 0)
			usleep(1000);
	}
	CHECK(n == sizeof(rec), "the client could not read its own fault queue (%zd)", n);
	iopf_response r = {.cookie = rec.cookie, .code = IOMMUFD_PAGE_RESP_INVALID};
	CHECK(write(s.fault_fd, &r, sizeof(r)) == sizeof(r), "the client could not answer: %m");
	teardown_one(&s);
	mem_free(&second);
}

/* The response path under the kernel's rules: many groups queued before
 * iopfd looks are read in one go and answered with one write; and the
 * transport's recovery when the kernel refuses one response of a batch. */
static void response_path(void) {
	enum { N = 256 };
	struct setup s = {0};
	/* Slices by count only: the write count below is then exact. */
	s.v = daemon_start_conf("[Workers]\nAnswerSliceGroups=64\nAnswerSliceUsec=0\n");
	uint32_t ioas = ioas_alloc();
	fault_alloc(&s.fault_id, &s.fault_fd);
	s.dev = mock_device(ioas, s.fault_id);
	s.mem = memfd(N * PG, 0x55);
	s.iova = MOCK_APERTURE_START;
	OK(iopfc_create_space(s.v, "iommufd", N * PG, PG, PG, iommufd, ioas, &s.space, &err));
	OK(iopfc_add_region(s.v, s.space, s.iova, N * PG, s.mem.fd, 0, ACC_RW, NULL, &err));
	OK(iopfc_register_queue(s.v, s.fault_fd, "iommufd", NULL, &s.queue, &err));
	OK(iopfc_bind(s.v, s.queue, s.dev.idev, IOPFC_PASID_NONE, s.space, &err));
	daemon_pause();
	for (uint64_t p = 0; p < N; p++)
		trigger(&s.dev, 0, RD, s.iova + p * PG);
	daemon_resume();
	sd_json_variant *st = wait_groups(s.v, N);
	CHECK(iopfc_u64(st, "success") == N, "success %lu of %d", (unsigned long)iopfc_u64(st, "success"), N);
	/* Batched: a write per slice of 64 groups, at most, per read. */
	uint64_t writes = iopfc_u64(st, "writes"), reads = iopfc_u64(st, "reads");
	CHECK(writes <= reads + N / 64, "%lu writes for %d queued groups in %lu reads", (unsigned long)writes, N,
	      (unsigned long)reads);
	CHECK(iopfc_u64(st, "writeRejects") == 0, "the kernel refused a response");
	OK(iopfc_unregister_queue(s.v, s.queue, &err));

	/* The transport alone on the real queue: one response of eight carries
	 * a cookie the kernel does not know. */
	for (uint64_t p = 0; p < 8; p++)
		trigger(&s.dev, 0, RD, s.iova + p * PG);
	struct iopf_queue q = {.fd = s.fault_fd, .ops = &iopf_transport_iommufd};
	iopf_record recs[8];
	ssize_t n = q.ops->read(&q, recs, sizeof(recs));
	CHECK(n == sizeof(recs), "read %zd of the 8 groups", n);
	iopf_response resp[8];
	for (int i = 0; i < 8; i++)
		resp[i] = (iopf_response){.cookie = recs[i].cookie, .code = IOMMUFD_PAGE_RESP_SUCCESS};
	uint32_t held_back = resp[3].cookie;
	resp[3].cookie = 0xdead;
	struct iopf_counters c = {0};
	CHECK(q.ops->respond(&q, resp, 8, &c) == 0, "respond failed");
	CHECK(c.write_rejects == 1 && c.writes == 2, "rejects %lu writes %lu", (unsigned long)c.write_rejects,
	      (unsigned long)c.writes);
	/* The seven others were taken (a second answer is refused) ... */
	for (int i = 0; i < 8; i++) {
		if (i == 3)
			continue;
		iopf_response again = {.cookie = recs[i].cookie, .code = IOMMUFD_PAGE_RESP_SUCCESS};
		CHECK(write(s.fault_fd, &again, sizeof(again)) < 0 && errno == EINVAL, "group %d was not answered", i);
	}
	/* ... and the one behind the bad cookie is still pending, not lost. */
	iopf_response late = {.cookie = held_back, .code = IOMMUFD_PAGE_RESP_INVALID};
	CHECK(write(s.fault_fd, &late, sizeof(late)) == sizeof(late), "the held-back group was lost: %m");
	teardown_one(&s);
}

/* --- queues handed back with a backlog ------------------------------------------------- */

enum { HANDBACK_FAULTS = 3000 };

struct unregister_call {
	sd_varlink *v;
	uint32_t queue;
	int r;
	pthread_t th;
};

static void *unregister_fn(void *arg) {
	struct unregister_call *u = arg;
	const char *e = NULL;
	u->r = iopfc_unregister_queue(u->v, u->queue, &e);
	return NULL;
}

struct left_pages {
	uint64_t base;
	uint8_t *left; /* one per page */
};

static void note_left(void *ud, uint64_t addr) {
	struct left_pages *l = ud;
	uint64_t p = (addr - l->base) / PG;
	if (p < HANDBACK_FAULTS)
		l->left[p]++;
}

/* What iopfd read and answered, against what it left in the kernel queue:
 * all of it one or the other, nothing refused, nothing pending. */
static uint64_t handback_check(sd_varlink *v, const char *what, uint64_t left, uint64_t stuck) {
	sd_json_variant *st = stats(v);
	uint64_t read_by_iopfd = iopfc_u64(st, "groups"), success = iopfc_u64(st, "success");
	uint64_t no_binding = invalid_of(st, "no_binding"), invalid = read_by_iopfd - success;
	printf("# %s: %d faults queued: read by iopfd %lu, answered by iopfd %lu (%lu SUCCESS, %lu INVALID, "
	       "%lu for want of a binding); left for the other holder %lu; left pending %lu\n",
	       what, HANDBACK_FAULTS, (unsigned long)read_by_iopfd, (unsigned long)(success + invalid),
	       (unsigned long)success, (unsigned long)invalid, (unsigned long)no_binding, (unsigned long)left,
	       (unsigned long)stuck);
	CHECK(no_binding == 0, "%lu faults answered INVALID for want of a binding", (unsigned long)no_binding);
	CHECK(invalid == 0, "%lu faults answered INVALID", (unsigned long)invalid);
	CHECK(read_by_iopfd + left == HANDBACK_FAULTS, "%lu read by iopfd + %lu left != %d: faults lost",
	      (unsigned long)read_by_iopfd, (unsigned long)left, HANDBACK_FAULTS);
	CHECK(stuck == 0, "%lu groups left pending in the kernel", (unsigned long)stuck);
	CHECK(iopfc_u64(st, "writeRejects") == 0, "the kernel refused iopfd's answers");
	return read_by_iopfd;
}

/* UnregisterQueue with thousands of faults queued. With `stopped`, they
 * pile up (and the call is made) while iopfd is stopped. The client then
 * finds every fault iopfd did not read in its queue; every page iopfd
 * answered is mapped, every page it left is not. */
static void unregister_backlog(bool stopped) {
	struct setup s = {0};
	setup_one(&s, HANDBACK_FAULTS, HANDBACK_FAULTS * PG, PG, ACC_RW);
	if (stopped)
		daemon_pause();
	for (uint64_t p = 0; p < HANDBACK_FAULTS; p++)
		trigger(&s.dev, 0, RD, s.iova + p * PG);
	struct unregister_call u = {.v = s.v, .queue = s.queue, .r = -1};
	pthread_create(&u.th, NULL, unregister_fn, &u);
	if (stopped) {
		usleep(50 * 1000);
		daemon_resume();
	}
	pthread_join(u.th, NULL);
	CHECK(u.r == 0, "UnregisterQueue failed: %d", u.r);
	struct left_pages lp = {.base = s.iova, .left = calloc(HANDBACK_FAULTS, 1)};
	CHECK(lp.left != NULL, "calloc");
	uint64_t left = answer_left(s.fault_fd, note_left, &lp);
	uint64_t stuck = pending_groups(&s.dev, s.fault_fd, s.iova);
	handback_check(s.v, stopped ? "unregister, iopfd stopped" : "unregister", left, stuck);
	/* The kernel's view: mapped exactly where iopfd answered. */
	for (uint64_t p = 0; p < HANDBACK_FAULTS; p++) {
		bool mapped = check_map(&s.dev, s.iova + p * PG, PG, s.mem.va + p * PG) == 0;
		CHECK(mapped == !lp.left[p], "page %lu: %s, yet %s", (unsigned long)p, mapped ? "mapped" : "not mapped",
		      lp.left[p] ? "left for the client" : "answered by iopfd");
	}
	free(lp.left);
	teardown_one(&s);
}

static void unregister_hands_back(void) {
	unregister_backlog(false);
}

static void unregister_stopped_hands_back(void) {
	unregister_backlog(true);
}

/* The client that registered the queue is killed with thousands of faults
 * queued; its parent holds the same fault fd (it made it) and finds every
 * fault iopfd did not read. */
static void client_exit_backlog(bool stopped) {
	sd_varlink *probe = daemon_start();
	uint32_t ioas = ioas_alloc(), fault_id;
	int fault_fd;
	fault_alloc(&fault_id, &fault_fd);
	struct mockdev dev = mock_device(ioas, fault_id);
	struct mem mem = memfd(HANDBACK_FAULTS * PG, 0x21);
	int ready[2];
	CHECK(pipe(ready) == 0, "pipe: %m");
	pid_t client = fork();
	CHECK(client >= 0, "fork: %m");
	if (client == 0) {
		/* The client: its own connection, the parent's fds (inherited). */
		sd_varlink *v;
		uint64_t space;
		uint32_t queue;
		const char *e;
		if (iopfc_connect(SOCKET, &v) < 0 ||
		    iopfc_create_space(v, "iommufd", HANDBACK_FAULTS * PG, PG, PG, iommufd, ioas, &space, &e) < 0 ||
		    iopfc_add_region(v, space, MOCK_APERTURE_START, HANDBACK_FAULTS * PG, mem.fd, 0, ACC_RW, NULL, &e) < 0 ||
		    iopfc_register_queue(v, fault_fd, "iommufd", "child", &queue, &e) < 0 ||
		    iopfc_bind(v, queue, dev.idev, IOPFC_PASID_NONE, space, &e) < 0 || write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	char c;
	CHECK(read(ready[0], &c, 1) == 1, "the client did not set up");
	close(ready[0]);
	if (stopped)
		daemon_pause();
	for (uint64_t p = 0; p < HANDBACK_FAULTS; p++)
		trigger(&dev, 0, RD, MOCK_APERTURE_START + p * PG);
	kill(client, SIGKILL);
	waitpid(client, NULL, 0);
	if (stopped)
		daemon_resume();
	for (int i = 0; i < 1000 && iopfc_u64(stats(probe), "queues") > 0; i++)
		usleep(10000);
	CHECK(iopfc_u64(stats(probe), "queues") == 0, "the queue outlived its client");
	uint64_t left = answer_left(fault_fd, NULL, NULL);
	uint64_t stuck = pending_groups(&dev, fault_fd, MOCK_APERTURE_START);
	handback_check(probe, stopped ? "client killed, iopfd stopped" : "client killed", left, stuck);
	sd_varlink_unref(probe);
	CHECK(daemon_stop() == 0, "iopfd did not exit cleanly");
	mem_free(&mem);
	close(fault_fd);
}

static void client_exit_hands_back(void) {
	client_exit_backlog(false);
}

static void client_exit_stopped_hands_back(void) {
	client_exit_backlog(true);
}

/* Functional figures (TCG): faults served per second by iopfd and by a
 * naive handler (one read of one group, one map, one write) on this VM. */
static void figures(void) {
	enum { N = 16000 };
	/* 0: iopfd mapping each faulted page; 1: the naive handler, the same;
	 * 2: iopfd with a 64 KiB fault-around window (sequential faults). */
	double rate[3];
	for (int mode = 0; mode < 3; mode++) {
		struct setup s = {0};
		s.v = daemon_start();
		uint32_t ioas = ioas_alloc();
		fault_alloc(&s.fault_id, &s.fault_fd);
		s.dev = mock_device(ioas, s.fault_id);
		s.mem = memfd(N * PG, 0x77);
		s.iova = MOCK_APERTURE_START;
		/* The same backlog for all: N faults queued before serving starts. */
		if (mode != 1) {
			uint64_t window = mode == 2 ? 16 * PG : PG;
			s.space = fixed_space(s.v, N * PG, window, ioas);
			OK(iopfc_add_region(s.v, s.space, s.iova, N * PG, s.mem.fd, 0, ACC_RW, NULL, &err));
			OK(iopfc_register_queue(s.v, s.fault_fd, "iommufd", NULL, &s.queue, &err));
			OK(iopfc_bind(s.v, s.queue, s.dev.idev, IOPFC_PASID_NONE, s.space, &err));
			daemon_pause();
		}
		for (uint64_t p = 0; p < N; p++)
			trigger(&s.dev, 0, RD, s.iova + p * PG);
		uint64_t t0 = now_ns();
		if (mode != 1) {
			daemon_resume();
			/* Polling costs iopfd a little; every 20 ms is noise at this size. */
			sd_json_variant *st = wait_groups_every(s.v, N, 20000);
			CHECK(iopfc_u64(st, "success") == N, "iopfd served %lu of %d", (unsigned long)iopfc_u64(st, "success"), N);
		} else {
			for (int i = 0; i < N; i++) {
				iopf_record r;
				CHECK(read(s.fault_fd, &r, sizeof(r)) == sizeof(r), "naive read: %m");
				uint64_t iova = r.addr & ~(PG - 1);
				struct iommu_ioas_map_file m = {.size = sizeof(m),
				                                .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
				                                         IOMMU_IOAS_MAP_WRITEABLE,
				                                .ioas_id = ioas, .fd = s.mem.fd, .start = iova - s.iova,
				                                .length = PG, .iova = iova};
				if (ioctl(iommufd, IOMMU_IOAS_MAP_FILE, &m) < 0) {
					struct iommu_ioas_map mm = {.size = sizeof(mm), .flags = m.flags, .ioas_id = ioas,
					                            .user_va = (uintptr_t)s.mem.va + (iova - s.iova), .length = PG,
					                            .iova = iova};
					CHECK(ioctl(iommufd, IOMMU_IOAS_MAP, &mm) == 0, "naive map: %m");
				}
				iopf_response resp = {.cookie = r.cookie, .code = IOMMUFD_PAGE_RESP_SUCCESS};
				CHECK(write(s.fault_fd, &resp, sizeof(resp)) == sizeof(resp), "naive write: %m");
			}
		}
		rate[mode] = N / ((double)(now_ns() - t0) / 1e9);
		teardown_one(&s);
	}
	printf("# vm-figures (%d faults queued, TCG, functional): naive %.0f faults/s; iopfd mapping each page %.0f "
	       "(%.2fx); iopfd with 64 KiB fault-around %.0f (%.2fx)\n",
	       N, rate[1], rate[0], rate[0] / rate[1], rate[2], rate[2] / rate[1]);
}

/* --- the real kernel path's service time -------------------------------------------------- */

/*
 * How long a fault waits, from IOMMU_TEST_OP_TRIGGER_IOPF to the moment the
 * kernel has taken its answer: iopfd (iommufd backend, answer slices as its
 * configuration says) and a naive handler (wait, read one group, map its
 * page, write its answer) in the same boot, with the floor of the maps
 * themselves. TCG makes absolute times meaningless: only ratios count.
 *
 * When the kernel took an answer: a write() to the fault fd hands each
 * response to the IOMMU core before it returns, so the moment that write
 * returned. The naive handler counts the groups it answered after each
 * write. iopfd says it in its journal (engine/journal.c): a worker's batch
 * slot holds the records it read and, once a slice's write has returned,
 * how many of them are answered; the slot turns empty once the last
 * slice's write returned. A watcher thread looks at the counter or the
 * slot (shared memory: neither handler notices it; iopfd's Statistics
 * would cost its worker a command per look) and stamps each fault when it
 * first sees it answered. Every fault is on a page of its own, triggered
 * in page order, and both handlers answer in the order the kernel queued
 * them: a record's page says which fault it is, and one fault answered
 * means every earlier one was. A batch can come and go between two
 * looks: when the slot is empty and the fault queue has nothing to read,
 * every fault triggered before that is answered. Faults stamped only
 * because a later batch was seen are counted as late. The pages are every
 * other one of the region: iopfd maps a batch's adjacent misses with one
 * call, and adjacent faults would measure that rather than a map per
 * fault.
 */

/* How the faults come: spaced at a low rate, back to back from one thread,
 * or all queued before the handler may start (a read then brings in up to
 * 64 KiB of them: 1,638). */
enum svc_pattern { SVC_LOW, SVC_HIGH, SVC_BURST };

#define SVC_LOW_GAP_NS 2000000ull /* 500 faults/s */
#define SVC_STRIDE (2 * PG)       /* between the pages of two faults */

struct svc_watch {
	const uint64_t *count;         /* the naive handler's answered groups */
	const struct iopf_jslot *slot; /* iopfd's only worker's batch slot */
	int fault_fd;
	const uint64_t *triggered;     /* faults triggered so far */
	uint64_t iova;                 /* fault k is at iova + k * SVC_STRIDE */
	uint64_t n;
	unsigned gap_us;               /* between looks; 0: spin */
	uint64_t *ans;                 /* when fault k was seen answered */
	uint64_t done;                 /* faults 0 .. done - 1 are */
	uint64_t late;
	uint64_t deadline;             /* gives up then: a handler that never answers */
};

static void svc_mark(struct svc_watch *w, uint64_t upto, uint64_t now, bool late) {
	if (upto > w->n)
		upto = w->n;
	for (; w->done < upto; w->done++) {
		w->ans[w->done] = now;
		w->late += late;
	}
}

static uint64_t svc_ordinal(const struct svc_watch *w, const iopf_record *r) {
	return (r->addr - w->iova) / SVC_STRIDE;
}

static uint32_t svc_state(const struct iopf_jslot *s) {
	return __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
}

static bool svc_busy(uint32_t state) {
	return state == IOPF_JSLOT_READ || state == IOPF_JSLOT_ANSWERING;
}

/* One look at iopfd's slot. seen_end: the batch seen last ends before this
 * fault (0: none seen, or it is answered). */
static void svc_look_slot(struct svc_watch *w, uint64_t *seen_end) {
	const struct iopf_jslot *s = w->slot;
	uint64_t triggered = __atomic_load_n(w->triggered, __ATOMIC_ACQUIRE);
	uint32_t st = svc_state(s);
	uint64_t now = now_ns();
	if (st == IOPF_JSLOT_EMPTY) {
		/* Idle, or between two reads: what was read is answered. */
		if (*seen_end)
			svc_mark(w, *seen_end, now, false);
		*seen_end = 0;
		/* Nothing left to read and still idle: all answered. */
		struct pollfd p = {.fd = w->fault_fd, .events = POLLIN};
		if (poll(&p, 1, 0) == 0 && svc_state(s) == IOPF_JSLOT_EMPTY)
			svc_mark(w, triggered, now, false);
		return;
	}
	if (!svc_busy(st))
		return; /* a read under way */
	uint32_t len = __atomic_load_n(&s->len, __ATOMIC_RELAXED);
	uint16_t answered = __atomic_load_n(&s->answered, __ATOMIC_ACQUIRE);
	if (len < sizeof(iopf_record) || len % sizeof(iopf_record))
		return;
	const iopf_record *recs = (const iopf_record *)s->data;
	uint64_t first = svc_ordinal(w, &recs[0]), end = svc_ordinal(w, &recs[len / sizeof(iopf_record) - 1]) + 1;
	/* Still the same batch: then what was read is what it holds. */
	if (!svc_busy(svc_state(s)) || s->len != len || svc_ordinal(w, &recs[0]) != first || first >= end ||
	    end > w->n)
		return;
	if (*seen_end && *seen_end <= first)
		svc_mark(w, *seen_end, now, false);
	svc_mark(w, first, now, true); /* a batch never seen */
	svc_mark(w, first + answered, now, false);
	*seen_end = end;
}

static void *svc_watch_main(void *arg) {
	struct svc_watch *w = arg;
	uint64_t seen_end = 0;
	while (w->done < w->n && now_ns() < w->deadline) {
		if (w->count)
			svc_mark(w, __atomic_load_n(w->count, __ATOMIC_ACQUIRE), now_ns(), false);
		else
			svc_look_slot(w, &seen_end);
		if (w->gap_us)
			usleep(w->gap_us);
	}
	return NULL;
}

/* The naive handler runs in a process of its own, as iopfd does: under
 * TCG a switch between two processes costs far more than one between two
 * threads of a process, and the triggering thread is in this one. */
struct svc_naive {
	int fault_fd, memfd;
	uint32_t ioas;
	uint64_t iova, n;
	uint64_t answered; /* groups answered, in the order read */
	uint64_t syscalls; /* on the fault queue: reads, polls, writes */
	int go;
};

static void svc_naive_main(struct svc_naive *h) {
	while (!__atomic_load_n(&h->go, __ATOMIC_ACQUIRE))
		usleep(100);
	for (uint64_t i = 0; i < h->n; i++) {
		iopf_record r;
		ssize_t k;
		/* An empty fault queue reads as 0: wait for it to be readable. */
		while ((k = read(h->fault_fd, &r, sizeof(r))) == 0) {
			struct pollfd p = {.fd = h->fault_fd, .events = POLLIN};
			poll(&p, 1, 1000);
			h->syscalls += 2;
		}
		h->syscalls += 2; /* the read, and the write below */
		if (k != sizeof(r))
			break;
		uint64_t iova = r.addr & ~(PG - 1);
		struct iommu_ioas_map_file m = {.size = sizeof(m),
		                                .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
		                                         IOMMU_IOAS_MAP_WRITEABLE,
		                                .ioas_id = h->ioas, .fd = h->memfd, .start = iova - h->iova, .length = PG,
		                                .iova = iova};
		iopf_response resp = {.cookie = r.cookie,
		                      .code = ioctl(iommufd, IOMMU_IOAS_MAP_FILE, &m) == 0 ? IOMMUFD_PAGE_RESP_SUCCESS
		                                                                          : IOMMUFD_PAGE_RESP_INVALID};
		if (write(h->fault_fd, &resp, sizeof(resp)) != sizeof(resp))
			break;
		__atomic_store_n(&h->answered, i + 1, __ATOMIC_RELEASE);
	}
}

/* iopfd's journal, mapped read-only: found among its fds by name. */
static const struct iopf_jslot *svc_journal_slot(pid_t pid, void **map, size_t *size) {
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	CHECK(d, "%s: %m", dir);
	struct dirent *e;
	while ((e = readdir(d))) {
		char p[320], target[256];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		ssize_t k = readlink(p, target, sizeof(target) - 1);
		if (k < 0)
			continue;
		target[k] = '\0';
		if (strncmp(target, "/memfd:iopfd-journal", 20))
			continue;
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		struct stat st;
		CHECK(fd >= 0 && fstat(fd, &st) == 0, "the journal: %m");
		*size = (size_t)st.st_size;
		*map = mmap(NULL, *size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		closedir(d);
		CHECK(*map != MAP_FAILED, "mapping the journal: %m");
		struct iopf_journal j;
		CHECK(iopf_journal_open(*map, *size, &j) == 0 && j.shape.workers == 1, "not a journal of one worker");
		return iopf_journal_slot(&j, 0);
	}
	closedir(d);
	fail("iopfd has no journal");
}

/* Exact quantiles, in microseconds: iopfd's histograms round up to a
 * quarter of an octave, too coarse to say how far into a burst half its
 * faults were answered. */
struct svc_lat {
	double p50, p99;
};

static int svc_cmp(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v. */
static struct svc_lat svc_quantiles(uint64_t *v, size_t n) {
	qsort(v, n, sizeof(*v), svc_cmp);
	return (struct svc_lat){.p50 = (double)v[n / 2] / 1000.0, .p99 = (double)v[n * 99 / 100] / 1000.0};
}

struct svc_result {
	struct svc_lat lat;            /* trigger (or release) -> answer seen */
	double per_fault_us;           /* first trigger (or release) -> last answer, per fault */
	double syscalls_per_fault;     /* on the fault queue (reads, writes; the naive handler's polls) */
	double trigger_us;             /* per trigger, from the first to the last */
	uint64_t late;
	double daemon_p50, daemon_p99; /* iopfd's own: read -> answer written */
};

static void svc_trigger(const struct mockdev *d, uint64_t iova, enum svc_pattern pat, uint64_t n, uint64_t *trig,
                        uint64_t *triggered) {
	uint64_t t0 = now_ns();
	for (uint64_t k = 0; k < n; k++) {
		if (pat == SVC_LOW) {
			uint64_t due = t0 + k * SVC_LOW_GAP_NS;
			struct timespec ts = {.tv_sec = (time_t)(due / 1000000000ull), .tv_nsec = (long)(due % 1000000000ull)};
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		trig[k] = now_ns();
		trigger(d, 0, RD, iova + k * SVC_STRIDE);
		__atomic_store_n(triggered, k + 1, __ATOMIC_RELEASE);
	}
}

static unsigned svc_gap_us(enum svc_pattern pat) {
	const char *g = getenv("IOPFD_SERVICE_TIME_GAP_US");
	if (g && *g && pat != SVC_LOW)
		return (unsigned)atoi(g);
	return pat == SVC_LOW ? 0 : 100;
}

/* One run on a fresh IOAS, device, fault queue and handler: iopfd with
 * the configuration conf, or the naive handler (conf NULL). */
static void svc_run(const char *conf, enum svc_pattern pat, uint64_t n, struct svc_result *out) {
	*out = (struct svc_result){0};
	uint32_t ioas = ioas_alloc(), fault_id;
	int fault_fd;
	fault_alloc(&fault_id, &fault_fd);
	struct mockdev dev = mock_device(ioas, fault_id);
	uint64_t iova = MOCK_APERTURE_START, triggered = 0, len = n * SVC_STRIDE;
	struct mem mem = memfd(len, 0x5a);
	uint64_t *trig = calloc(n, sizeof(*trig)), *ans = calloc(n, sizeof(*ans));
	CHECK(trig && ans, "out of memory");
	/* Looks every 100 us but at the low rate: spinning costs the
	 * handlers a CPU that the trigger thread needs while it triggers back
	 * to back, and in a burst it only adds a vCPU for the host to run;
	 * 100 us is under 1 % of either's latencies. */
	struct svc_watch w = {.fault_fd = fault_fd, .triggered = &triggered, .iova = iova, .n = n, .ans = ans,
	                      .gap_us = svc_gap_us(pat), .deadline = now_ns() + 120ull * 1000000000};
	struct svc_naive *nv = mmap(NULL, sizeof(*nv), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(nv != MAP_FAILED, "mmap: %m");
	*nv = (struct svc_naive){.fault_fd = fault_fd, .memfd = mem.fd, .ioas = ioas, .iova = iova, .n = n};
	sd_varlink *v = NULL;
	void *jmap = NULL;
	size_t jsize = 0;
	pid_t naive = 0;
	pthread_t wth;
	if (conf) {
		v = daemon_start_conf(conf);
		uint64_t space;
		uint32_t queue;
		/* Fixed one-page windows: a map per fault, as the naive handler
		 * does (adaptive fault-around would map ahead of the stride). */
		space = fixed_space(v, len, PG, ioas);
		OK(iopfc_add_region(v, space, iova, len, mem.fd, 0, ACC_RW, NULL, &err));
		OK(iopfc_register_queue(v, fault_fd, "iommufd", NULL, &queue, &err));
		OK(iopfc_bind(v, queue, dev.idev, IOPFC_PASID_NONE, space, &err));
		w.slot = svc_journal_slot(daemon_pid, &jmap, &jsize);
		if (pat == SVC_BURST)
			daemon_pause();
	} else {
		w.count = &nv->answered;
		nv->go = pat != SVC_BURST;
		naive = fork();
		CHECK(naive >= 0, "fork: %m");
		if (naive == 0) {
			svc_naive_main(nv);
			_exit(0);
		}
	}
	if (pat != SVC_BURST)
		pthread_create(&wth, NULL, svc_watch_main, &w);
	svc_trigger(&dev, iova, pat, n, trig, &triggered);
	out->trigger_us = (double)(trig[n - 1] - trig[0]) / 1000.0 / (double)(n > 1 ? n - 1 : 1);
	if (pat == SVC_BURST) {
		/* Queued: each counts from the moment the handler may go. */
		pthread_create(&wth, NULL, svc_watch_main, &w);
		uint64_t t = now_ns();
		for (uint64_t k = 0; k < n; k++)
			trig[k] = t;
		if (conf)
			daemon_resume();
		else
			__atomic_store_n(&nv->go, 1, __ATOMIC_RELEASE);
	}
	pthread_join(wth, NULL);
	CHECK(w.done == n, "%lu of %lu faults seen answered", (unsigned long)w.done, (unsigned long)n);
	if (conf) {
		sd_json_variant *st = stats(v);
		CHECK(iopfc_u64(st, "success") == n, "iopfd served %lu of %lu", (unsigned long)iopfc_u64(st, "success"),
		      (unsigned long)n);
		out->daemon_p50 = sd_json_variant_real(sd_json_variant_by_key(st, "p50us"));
		out->daemon_p99 = sd_json_variant_real(sd_json_variant_by_key(st, "p99us"));
		out->syscalls_per_fault = (double)(iopfc_u64(st, "reads") + iopfc_u64(st, "writes")) / (double)n;
		munmap(jmap, jsize);
		sd_varlink_unref(v);
		CHECK(daemon_stop() == 0, "iopfd did not exit cleanly");
	} else {
		int status;
		waitpid(naive, &status, 0);
		CHECK(nv->answered == n, "the naive handler answered %lu of %lu", (unsigned long)nv->answered,
		      (unsigned long)n);
		out->syscalls_per_fault = (double)nv->syscalls / (double)n;
	}
	uint64_t t_last = 0;
	for (uint64_t k = 0; k < n; k++) {
		if (ans[k] > t_last)
			t_last = ans[k];
		ans[k] = ans[k] > trig[k] ? ans[k] - trig[k] : 0;
	}
	out->lat = svc_quantiles(ans, n);
	out->per_fault_us = (double)(t_last - trig[0]) / 1000.0 / (double)n;
	out->late = w.late;
	munmap(nv, sizeof(*nv));
	free(trig);
	free(ans);
	mem_free(&mem);
	close(fault_fd);
}

/* The floor: IOMMU_IOAS_MAP_FILE of the same one-page windows the handlers
 * map, one call each, then IOMMU_IOAS_UNMAP of each, in a loop: the maps
 * find the IOAS as full as the handlers' do. */
static void svc_map_floor(uint64_t n, unsigned rounds, struct svc_lat *map, struct svc_lat *unmap) {
	uint64_t *tm = calloc(n * rounds, sizeof(*tm)), *tu = calloc(n * rounds, sizeof(*tu));
	CHECK(tm && tu, "out of memory");
	uint32_t ioas = ioas_alloc();
	struct mem mem = memfd(n * SVC_STRIDE, 0x5a);
	uint64_t iova = MOCK_APERTURE_START;
	for (unsigned round = 0; round < rounds; round++) {
		for (uint64_t k = 0; k < n; k++) {
			struct iommu_ioas_map_file m = {.size = sizeof(m),
			                                .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			                                         IOMMU_IOAS_MAP_WRITEABLE,
			                                .ioas_id = ioas, .fd = mem.fd, .start = k * SVC_STRIDE, .length = PG,
			                                .iova = iova + k * SVC_STRIDE};
			uint64_t t0 = now_ns();
			CHECK(ioctl(iommufd, IOMMU_IOAS_MAP_FILE, &m) == 0, "IOAS_MAP_FILE: %m");
			tm[round * n + k] = now_ns() - t0;
		}
		for (uint64_t k = 0; k < n; k++) {
			struct iommu_ioas_unmap u = {.size = sizeof(u), .ioas_id = ioas, .iova = iova + k * SVC_STRIDE,
			                             .length = PG};
			uint64_t t0 = now_ns();
			CHECK(ioctl(iommufd, IOMMU_IOAS_UNMAP, &u) == 0, "IOAS_UNMAP: %m");
			tu[round * n + k] = now_ns() - t0;
		}
	}
	mem_free(&mem);
	*map = svc_quantiles(tm, n * rounds);
	*unmap = svc_quantiles(tu, n * rounds);
	free(tm);
	free(tu);
}

/* A handler measured: the naive one (conf NULL), or iopfd with answer
 * slices of `groups` groups or `usec` of resolving. */
struct svc_handler {
	char name[48];
	char conf[96];
	bool naive;
};

static void svc_iopfd(struct svc_handler *h, unsigned groups, unsigned usec, const char *what) {
	*h = (struct svc_handler){0};
	snprintf(h->name, sizeof(h->name), "iopfd, slices %u/%u us%s", groups, usec, what);
	snprintf(h->conf, sizeof(h->conf), "[Workers]\nAnswerSliceGroups=%u\nAnswerSliceUsec=%u\n", groups, usec);
}

#define SVC_MAX_HANDLERS 16

/*
 * The naive handler, iopfd without answer slices (before) and with the
 * defaults (after), and the slice settings IOPFD_SERVICE_TIME_SLICES names
 * ("GROUPS/USEC,..."), which is how the defaults were chosen: boot with
 * tools/vm/run -a IOPFD_SERVICE_TIME_SLICES=... and this scenario
 * (IOPFD_SERVICE_TIME_REPEAT: the runs of each, 3 by default;
 * IOPFD_SERVICE_TIME_LOADS: which loads, e.g. "burst,high"; all by
 * default).
 */
static void service_time(void) {
	static const struct {
		enum svc_pattern pat;
		uint64_t n;
		const char *key, *what;
	} loads[] = {
		{SVC_LOW, 300, "low", "low rate (500/s)"},
		{SVC_HIGH, 3200, "high", "high rate (3200 back to back)"},
		{SVC_BURST, 1600, "burst", "burst (1600 queued, one read)"},
	};
	const char *only = getenv("IOPFD_SERVICE_TIME_LOADS");
	static struct svc_handler hs[SVC_MAX_HANDLERS];
	size_t nh = 0;
	const char *rs = getenv("IOPFD_SERVICE_TIME_REPEAT");
	unsigned repeat = rs && atoi(rs) > 0 ? (unsigned)atoi(rs) : 3;
	hs[nh++] = (struct svc_handler){.name = "naive", .naive = true};
	svc_iopfd(&hs[nh++], 0, 0, " (before)");
	svc_iopfd(&hs[nh++], IOPFD_ANSWER_SLICE_GROUPS, IOPFD_ANSWER_SLICE_USEC, " (after: the defaults)");
	const char *more = getenv("IOPFD_SERVICE_TIME_SLICES");
	for (const char *p = more; p && *p && nh < SVC_MAX_HANDLERS;) {
		unsigned g, u;
		int used = 0;
		if (sscanf(p, " %u/%u%n", &g, &u, &used) != 2)
			break;
		svc_iopfd(&hs[nh++], g, u, "");
		p += used;
		p += strspn(p, " ,");
	}

	char cs[64] = "?";
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
	if (f) {
		if (!fgets(cs, sizeof(cs), f))
			snprintf(cs, sizeof(cs), "?");
		cs[strcspn(cs, "\n")] = '\0';
		fclose(f);
	}
	struct svc_lat map, unmap;
	svc_map_floor(3200, repeat, &map, &unmap);
	double floor_us = map.p50;
	printf("# service-time map floor (3200 one-page windows mapped, then unmapped, %u times; clocksource %s): "
	       "IOAS_MAP_FILE p50 %.1f p99 %.1f us, IOAS_UNMAP p50 %.1f p99 %.1f us\n",
	       repeat, cs, map.p50, map.p99, unmap.p50, unmap.p99);
	static struct svc_result best[SVC_MAX_HANDLERS], r;
	for (size_t l = 0; l < sizeof(loads) / sizeof(loads[0]); l++) {
		if (only && !strstr(only, loads[l].key))
			continue;
		/* Interleaved, the best of a few kept (by p99): the host's other
		 * work only ever slows a run down. */
		for (unsigned rep = 0; rep < repeat; rep++)
			for (size_t h = 0; h < nh; h++) {
				svc_run(hs[h].naive ? NULL : hs[h].conf, loads[l].pat, loads[l].n, &r);
				if (rep == 0 || r.lat.p99 < best[h].lat.p99)
					best[h] = r;
			}
		for (size_t h = 0; h < nh; h++) {
			const struct svc_result *b = &best[h], *nv = &best[0];
			printf("# service-time %s: %s: p50 %.1f p99 %.1f us", loads[l].what, hs[h].name, b->lat.p50,
			       b->lat.p99);
			if (!hs[h].naive)
				printf(" (%.2fx, %.2fx naive's)", b->lat.p50 / nv->lat.p50, b->lat.p99 / nv->lat.p99);
			if (loads[l].pat != SVC_LOW)
				printf(", %.1f us per fault = %.2fx the map floor", b->per_fault_us, b->per_fault_us / floor_us);
			/* How far into the burst half its faults were answered:
			 * 100 % when every answer waits for the last map. */
			if (loads[l].pat == SVC_BURST)
				printf(", p50 at %.0f%% of the burst's time",
				       100 * b->lat.p50 / (b->per_fault_us * (double)loads[l].n));
			if (loads[l].pat == SVC_HIGH)
				printf(" (triggers every %.1f us)", b->trigger_us);
			printf(", %.3f syscalls on the queue per fault", b->syscalls_per_fault);
			if (!hs[h].naive)
				printf("; its own read->answered p50 %.1f p99 %.1f us (histogram: rounded up); %lu stamped late", b->daemon_p50,
				       b->daemon_p99, (unsigned long)b->late);
			printf("\n");
		}
	}
}

/* --- access traces replayed against the kernel --------------------------------------- */

/* A space made with a simulator policy's configuration (window, fault-around,
 * eviction), as a client that chose that policy over Varlink would make it. */
static uint64_t create_space_as(sd_varlink *v, const struct iopf_space_config *cfg, uint64_t quota, uint32_t ioas) {
	sd_json_variant *p = NULL, *rep;
	const char *fa = cfg->fault_around ? iopf_fault_around_to_string(cfg->fault_around) : NULL;
	const char *ev = cfg->eviction ? iopf_eviction_to_string(cfg->eviction) : NULL;
	int r = sd_json_buildo(&p, SD_JSON_BUILD_PAIR_STRING("backend", "iommufd"), SD_JSON_BUILD_PAIR_UNSIGNED("quota", quota),
	                       SD_JSON_BUILD_PAIR_CONDITION(cfg->window_min > 0, "windowMin", SD_JSON_BUILD_UNSIGNED(cfg->window_min)),
	                       SD_JSON_BUILD_PAIR_CONDITION(cfg->window_max > 0, "windowMax", SD_JSON_BUILD_UNSIGNED(cfg->window_max)),
	                       SD_JSON_BUILD_PAIR_CONDITION(!!fa, "faultAround", SD_JSON_BUILD_STRING(fa)),
	                       SD_JSON_BUILD_PAIR_CONDITION(!!ev, "eviction", SD_JSON_BUILD_STRING(ev)),
	                       SD_JSON_BUILD_PAIR_INTEGER("iommufdIndex", 0), SD_JSON_BUILD_PAIR_UNSIGNED("ioasId", ioas));
	CHECK(r >= 0, "CreateSpace parameters: %s", strerror(-r));
	r = iopfc_call(v, "io.iopfd.CreateSpace", p, &iommufd, 1, &rep, &err);
	sd_json_variant_unref(p);
	CHECK(r == 0, "CreateSpace: %s", err ? err : strerror(-r));
	return iopfc_u64(rep, "space");
}

/* After a trigger: the fault's page mapped (cheap to look at), then its
 * group answered, so that the next access sees everything it did. */
static void await_answer(const struct mockdev *d, uint64_t iova, const void *uptr, sd_varlink *v, uint64_t groups) {
	uint64_t deadline = now_ns() + 30ull * 1000000000;
	while (check_map(d, iova, PG, uptr) != 0) {
		CHECK(now_ns() < deadline, "page %#lx never mapped", (unsigned long)iova);
		usleep(20);
	}
	for (;;) {
		sd_json_variant *st = stats(v);
		if (answered_of(st) >= groups)
			return;
		CHECK(now_ns() < deadline, "group %lu not answered", (unsigned long)groups);
		usleep(50);
	}
}

struct trace_case {
	const char *trace;
	size_t pages, accesses; /* the synthetic trace's size */
	const char *policy;
	unsigned quota_pct;
};

/*
 * One access at a time (N = 1), as the simulator's device with one access
 * in flight: MD_CHECK_MAP the access's page; if the mock device's page
 * table does not map it, trigger a fault and wait for iopfd's answer. The
 * simulator replays the same trace, policy and quota in this process. With
 * one fault in flight every batch iopfd reads is that one fault, the
 * simulator's batch, so the two must agree exactly: on every access (which
 * ones stalled), and on the map calls, evictions and pinned peak.
 */
static void replay_against_simulator(const struct trace_case *c) {
	struct synth_size size = {.pages = c->pages, .accesses = c->accesses};
	struct trace tr;
	CHECK(trace_synth(c->trace, &size, &tr) == 0, "no synthetic trace %s", c->trace);
	struct sim_trace t;
	int r = sim_trace_prepare(&tr, c->trace, &t);
	trace_free(&tr);
	CHECK(r == 0, "preparing %s: %s", c->trace, strerror(-r));
	const struct sim_policy *pol = sim_policy_find(c->policy);
	CHECK(pol && sim_policy_is_iopfd(pol), "%s is not an iopfd policy", c->policy);
	uint64_t quota = t.footprint * c->quota_pct / 100;
	quota = quota ? quota : 1;
	CHECK((uint64_t)MOCK_APERTURE_START + ((uint64_t)t.n_pages << 12) <= (uint64_t)MOCK_APERTURE_LAST + 1, "%s is too large", c->trace);

	uint8_t *sim_stalled = calloc(t.n, 1), *kernel_stalled = calloc(t.n, 1);
	CHECK(sim_stalled && kernel_stalled, "calloc");
	struct sim_run run = {.t = &t, .policy = pol, .quota_pages = quota, .inflight = 1, .faulted = sim_stalled};
	struct sim_counts sc;
	iopf_rcu_register();
	r = sim_replay(&run, &sc);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
	CHECK(r == 0, "the simulator: %s", strerror(-r));

	/* The trace's universe at the start of the aperture (chunks stay 2 MiB
	 * aligned), one region per run of chunks as the simulator registers. */
	struct setup s = {0};
	s.v = daemon_start();
	uint32_t ioas = ioas_alloc();
	fault_alloc(&s.fault_id, &s.fault_fd);
	s.dev = mock_device(ioas, s.fault_id);
	s.mem = memfd((size_t)t.n_pages * PG, 0x5a);
	s.iova = MOCK_APERTURE_START;
	s.space = create_space_as(s.v, &pol->space, quota * PG, ioas);
	size_t at = 0;
	uint32_t first, pages;
	while (sim_trace_next_region(&t, &at, &first, &pages))
		OK(iopfc_add_region(s.v, s.space, s.iova + first * PG, pages * PG, s.mem.fd, first * PG, ACC_RW, NULL, &err));
	OK(iopfc_register_queue(s.v, s.fault_fd, "iommufd", "replay", &s.queue, &err));
	OK(iopfc_bind(s.v, s.queue, s.dev.idev, IOPFC_PASID_NONE, s.space, &err));

	uint64_t faults = 0, t0 = now_ns();
	for (size_t i = 0; i < t.n; i++) {
		uint64_t iova = s.iova + (uint64_t)t.u[i] * PG;
		const void *uptr = s.mem.va + (size_t)t.u[i] * PG;
		int m = check_map(&s.dev, iova, PG, uptr);
		CHECK(m == 0 || m == -EINVAL, "MD_CHECK_MAP: %s", strerror(-m));
		if (m == 0)
			continue;
		kernel_stalled[i] = 1;
		trigger(&s.dev, 0, sim_write(&t, i) ? WR : RD, iova);
		await_answer(&s.dev, iova, uptr, s.v, ++faults);
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	sd_json_variant *st = stats(s.v);
	uint64_t success = iopfc_u64(st, "success"), rejects = iopfc_u64(st, "writeRejects");
	sd_json_variant *rep;
	OK(iopfc_call(s.v, "io.iopfd.ListSpaces", NULL, NULL, 0, &rep, &err));
	sd_json_variant *sp = sd_json_variant_by_index(sd_json_variant_by_key(rep, "spaces"), 0);
	uint64_t maps = iopfc_u64(sp, "maps"), evictions = iopfc_u64(sp, "evictions"), peak = iopfc_u64(sp, "pinnedPeak");
	size_t n = t.n, diff = n;
	for (size_t i = 0; i < n && diff == n; i++)
		if (sim_stalled[i] != kernel_stalled[i])
			diff = i;
	bool kernel_only = diff < n && kernel_stalled[diff];
	free(sim_stalled);
	free(kernel_stalled);
	sim_trace_free(&t);
	printf("# replay %s (%s, quota %u%% = %lu pages, N=1, %zu accesses, %.1f s): kernel faults %lu maps %lu "
	       "evictions %lu peak %lu pages | simulator faults %lu maps %lu evictions %lu peak %lu pages\n",
	       c->trace, c->policy, c->quota_pct, (unsigned long)quota, n, secs, (unsigned long)faults,
	       (unsigned long)maps, (unsigned long)evictions, (unsigned long)(peak / PG), (unsigned long)sc.faults,
	       (unsigned long)sc.maps, (unsigned long)sc.evictions, (unsigned long)(sc.pinned_peak / PG));
	CHECK(success == faults, "%lu of %lu faults answered SUCCESS", (unsigned long)success, (unsigned long)faults);
	CHECK(rejects == 0, "the kernel refused responses");
	CHECK(diff == n, "%s: from access %zu on the kernel and the simulator differ (it stalled in the %s only)",
	      c->trace, diff, kernel_only ? "kernel" : "simulator");
	CHECK(faults == sc.faults && maps == sc.maps && evictions == sc.evictions && peak == sc.pinned_peak,
	      "%s: the kernel's counts are not the simulator's", c->trace);
	teardown_one(&s);
}

/* Two traces, each under two policies, small enough for TCG: sequential
 * sweeps over twice and four times the quota (adaptive windows, fixed
 * 64 KiB windows), and a Zipf working set (the default one page per fault
 * with clock eviction; adaptive windows with density and 2q eviction). */
static void trace_replay(void) {
	static const struct trace_case cases[] = {
		{"seq", 256, 2048, "adaptive", 50},
		{"seq", 256, 2048, "window-64k", 25},
		{"zipf", 512, 4096, "default", 50},
		{"zipf", 512, 4096, "adaptive-2q", 25},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		replay_against_simulator(&cases[i]);
}

/* --- under systemd ---------------------------------------------------------------------------- */


static unsigned long restarts(void) {
	return strtoul(sh("systemctl show -p NRestarts --value iopfd.service"), NULL, 10);
}

static void socket_activation(void) {
	CHECK(!strcmp(sh("systemctl is-active iopfd.socket"), "active"), "iopfd.socket is not listening");
	CHECK(strcmp(sh("systemctl is-active iopfd.service"), "active") != 0, "iopfd.service runs before any client");
	sd_varlink *v = NULL;
	OK(iopfc_connect(SYSTEM_SOCKET, &v));
	sd_json_variant *st = stats(v); /* the first call starts the service */
	CHECK(iopfc_u64(st, "workers") > 0, "no workers");
	/* Type=notify: active only once READY=1 came. */
	CHECK(!strcmp(sh("systemctl is-active iopfd.service"), "active"), "not active after the first call");
	const char *status = sh("systemctl show -p StatusText --value iopfd.service");
	CHECK(strstr(status, "workers") || strstr(status, "queues"), "no STATUS= from iopfd: '%s'", status);
	printf("# status: %s\n", status);
	sd_varlink_unref(v);
}

/* A VMM's persistent setup: relay queues with emulated devices bound to one
 * persistent space, and a kernel fault queue bound to an iommufd space. */
struct service_load {
	sd_varlink *v;
	struct emu_queue *emu[4];
	int device_end[4];
	struct mockdev dev;
	int fault_fd;
	struct mem mem;
	uint64_t kernel_pages;
	pthread_t th;
	unsigned duration_ms;
};

static void *run_devices(void *arg) {
	struct service_load *l = arg;
	emu_run(l->emu, 4, l->duration_ms, l->duration_ms + 60000, 60000);
	return NULL;
}

static void service_load_start(struct service_load *l, unsigned duration_ms) {
	l->v = NULL;
	OK(iopfc_connect(SYSTEM_SOCKET, &l->v));
	/* Relay side. */
	sd_json_variant *p = NULL, *rep;
	uint64_t relay_space, kernel_space;
	OK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_STRING("backend", "none"), SD_JSON_BUILD_PAIR_UNSIGNED("quota", 1 << 30),
	                  SD_JSON_BUILD_PAIR_STRING("name", "relay-space"), SD_JSON_BUILD_PAIR_BOOLEAN("persistent", true)) < 0);
	struct mem relay_mem = memfd(1024 * PG, 0);
	OK(iopfc_call(l->v, "io.iopfd.CreateSpace", p, NULL, 0, &rep, &err));
	relay_space = iopfc_u64(rep, "space");
	sd_json_variant_unref(p);
	OK(iopfc_add_region(l->v, relay_space, 0x100000000ull, 1024 * PG, relay_mem.fd, 0, ACC_RW, NULL, &err));
	mem_free(&relay_mem);
	for (int i = 0; i < 4; i++) {
		int sv[2];
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %m");
		p = NULL;
		OK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_INTEGER("fdIndex", 0), SD_JSON_BUILD_PAIR_STRING("name", "relay"),
		                  SD_JSON_BUILD_PAIR_BOOLEAN("persistent", true)) < 0);
		OK(iopfc_call(l->v, "io.iopfd.RegisterQueue", p, &sv[0], 1, &rep, &err));
		uint32_t q = (uint32_t)iopfc_u64(rep, "queue");
		sd_json_variant_unref(p);
		close(sv[0]);
		OK(iopfc_bind(l->v, q, 100 + i, IOPFC_PASID_NONE, relay_space, &err));
		struct emu_config ec = {
			.devices = 1, .dev_id_base = 100 + i, .outstanding = 16, .group_min = 1, .group_max = 4,
			.iova_base = 0x100000000ull, .iova_pages = 1024, .pattern = EMU_RANDOM, .perm = RD, .seed = i + 1,
		};
		CHECK(emu_queue_new(&ec, sv[1], &l->emu[i]) == 0, "emulator");
	}
	/* Kernel side. */
	uint32_t ioas = ioas_alloc(), fault_id;
	fault_alloc(&fault_id, &l->fault_fd);
	l->dev = mock_device(ioas, fault_id);
	l->kernel_pages = 0;
	l->mem = memfd(8192 * PG, 0x42);
	p = NULL;
	OK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_STRING("backend", "iommufd"), SD_JSON_BUILD_PAIR_UNSIGNED("quota", 1 << 30),
	                  SD_JSON_BUILD_PAIR_INTEGER("iommufdIndex", 0), SD_JSON_BUILD_PAIR_UNSIGNED("ioasId", ioas),
	                  SD_JSON_BUILD_PAIR_STRING("name", "kernel-space"), SD_JSON_BUILD_PAIR_BOOLEAN("persistent", true)) < 0);
	OK(iopfc_call(l->v, "io.iopfd.CreateSpace", p, &iommufd, 1, &rep, &err));
	kernel_space = iopfc_u64(rep, "space");
	sd_json_variant_unref(p);
	OK(iopfc_add_region(l->v, kernel_space, MOCK_APERTURE_START, 8192 * PG, l->mem.fd, 0, ACC_RW, NULL, &err));
	p = NULL;
	OK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_INTEGER("fdIndex", 0), SD_JSON_BUILD_PAIR_STRING("name", "kernel"),
	                  SD_JSON_BUILD_PAIR_BOOLEAN("persistent", true)) < 0);
	OK(iopfc_call(l->v, "io.iopfd.RegisterQueue", p, &l->fault_fd, 1, &rep, &err));
	uint32_t kq = (uint32_t)iopfc_u64(rep, "queue");
	sd_json_variant_unref(p);
	OK(iopfc_bind(l->v, kq, l->dev.idev, IOPFC_PASID_NONE, kernel_space, &err));
	l->duration_ms = duration_ms;
	pthread_create(&l->th, NULL, run_devices, l);
}

/* Kernel faults on fresh pages while the relay devices run. */
static void kernel_faults(struct service_load *l, unsigned n) {
	for (unsigned i = 0; i < n && l->kernel_pages < 8192; i++, l->kernel_pages++) {
		trigger(&l->dev, 0, RD, MOCK_APERTURE_START + l->kernel_pages * PG);
		usleep(200);
	}
}

/* Nothing lost, nothing twice: every relay group answered exactly once,
 * every kernel fault's page mapped to its memfd page. */
static void service_load_check(struct service_load *l, const char *what) {
	pthread_join(l->th, NULL);
	uint64_t missing = 0, dup = 0, answered = 0;
	for (int i = 0; i < 4; i++) {
		struct emu_stats st;
		emu_queue_finish(l->emu[i]);
		emu_queue_stats(l->emu[i], &st);
		missing += st.missing;
		dup += st.duplicate + st.unknown_cookie;
		answered += st.success + st.invalid;
	}
	sd_varlink *v = await_service(0);
	sd_json_variant *st = stats(v);
	uint64_t restored = iopfc_u64(st, "restoredObjects"), recovered = iopfc_u64(st, "recoveredGroups");
	uint64_t rejects = iopfc_u64(st, "writeRejects");

	/* The kernel queue: take it back, answer what iopfd never read, then
	 * see whether any group is still pending in the kernel. Cookies are
	 * the lowest free ids, so 32 new groups get cookies 1..32 exactly when
	 * no earlier group was left unanswered (lost). */
	sd_json_variant *qs = listing(v, "io.iopfd.ListQueues", "queues");
	for (size_t i = 0; i < sd_json_variant_elements(qs); i++) {
		sd_json_variant *q = sd_json_variant_by_index(qs, i);
		if (!strcmp(sd_json_variant_string(sd_json_variant_by_key(q, "name")), "kernel"))
			OK(iopfc_unregister_queue(v, (uint32_t)iopfc_u64(q, "id"), &err));
	}
	sd_json_variant_unref(qs);
	uint64_t unread = answer_left(l->fault_fd, NULL, NULL);
	uint64_t stuck = pending_groups(&l->dev, l->fault_fd, MOCK_APERTURE_START + 8100 * PG);
	/* Every restart's journal recovery, from the service's log. */
	const char *journaled = sh("journalctl -u iopfd.service -o cat --no-pager | "
	                           "sed -n 's/^journal: \\([0-9]*\\) groups.*/\\1/p' | awk '{s+=$1} END {print s+0}'");
	printf("# %s: relay groups answered %lu, lost %lu, duplicate %lu; kernel faults %lu (%lu never read), "
	       "left pending %lu; restored %lu objects, recovered %lu journaled groups (%s over all restarts so far), "
	       "%lu responses refused; restarts %lu\n",
	       what, (unsigned long)answered, (unsigned long)missing, (unsigned long)dup, (unsigned long)l->kernel_pages,
	       (unsigned long)unread, (unsigned long)stuck, (unsigned long)restored, (unsigned long)recovered, journaled,
	       (unsigned long)rejects, restarts());
	CHECK(stuck == 0, "%lu kernel groups left unanswered", (unsigned long)stuck);
	CHECK(missing == 0, "%lu relay groups lost", (unsigned long)missing);
	CHECK(dup == 0, "%lu duplicate or unknown responses", (unsigned long)dup);
	CHECK(answered > 1000, "the load hardly ran (%lu groups)", (unsigned long)answered);
	/* The relay queues are all back (the kernel one we took back above). */
	qs = listing(v, "io.iopfd.ListQueues", "queues");
	CHECK(sd_json_variant_elements(qs) == 4, "queues did not all come back");
	/* Clean up for the next scenario: the devices go (their queues with
	 * them), and what we made. */
	for (int i = 0; i < 4; i++)
		emu_queue_free(l->emu[i]);
	for (size_t i = 0; i < sd_json_variant_elements(qs); i++)
		iopfc_unregister_queue(v, (uint32_t)iopfc_u64(sd_json_variant_by_index(qs, i), "id"), &err);
	sd_json_variant_unref(qs);
	qs = listing(v, "io.iopfd.ListSpaces", "spaces");
	for (size_t i = 0; i < sd_json_variant_elements(qs); i++)
		OK(iopfc_destroy_space(v, iopfc_u64(sd_json_variant_by_index(qs, i), "id"), &err));
	sd_json_variant_unref(qs);
	/* Nothing of this scenario is left for the next one to restore. */
	qs = listing(v, "io.iopfd.ListSpaces", "spaces");
	CHECK(sd_json_variant_elements(qs) == 0, "%zu spaces left after destroying them all",
	      sd_json_variant_elements(qs));
	sd_json_variant_unref(qs);
	sd_varlink_unref(v);
	if (l->v)
		sd_varlink_unref(l->v);
	mem_free(&l->mem);
	close(l->fault_fd);
}

/* Signal the running iopfd (SIGKILL, or a test hook of the drop-in), send
 * `during` more kernel faults, and wait for systemd to run another iopfd. */
static sd_varlink *signal_and_await_restart(struct service_load *l, int sig, unsigned during) {
	unsigned long pid = main_pid(), before = restarts();
	CHECK(pid > 0, "no main process");
	kill((pid_t)pid, sig);
	usleep(100000);
	kernel_faults(l, during);
	sd_varlink *v = await_service(pid);
	CHECK(restarts() > before, "iopfd was not restarted after signal %d", sig);
	return v;
}

static void kill9_restart(void) {
	struct service_load l = {0};
	service_load_start(&l, 6000);
	for (int k = 0; k < 3; k++) {
		kernel_faults(&l, 300);
		sd_varlink_unref(signal_and_await_restart(&l, SIGKILL, 0));
	}
	kernel_faults(&l, 300);
	service_load_check(&l, "kill -9 x3");
}

static void watchdog_restart(void) {
	struct service_load l = {0};
	service_load_start(&l, 5000);
	kernel_faults(&l, 300);
	/* Worker 0 stops answering (IOPFD_TEST_HANG_ON_SIGUSR2 in the test's
	 * drop-in): the liveness pings go unanswered and iopfd fires its own
	 * watchdog; systemd kills and restarts it. */
	sd_varlink_unref(signal_and_await_restart(&l, SIGUSR2, 0));
	kernel_faults(&l, 300);
	/* sh() answers in one buffer: each answer read before the next call. */
	int fired = atoi(sh("journalctl -u iopfd.service -o cat --no-pager | grep -c 'stopped answering' || true"));
	int killed = atoi(sh("journalctl -u iopfd.service -o cat --no-pager | grep -ci 'watchdog' || true"));
	printf("# watchdog: iopfd saw a hung worker %d time(s); journal lines about the watchdog: %d\n", fired, killed);
	CHECK(fired >= 1, "iopfd did not notice the hung worker");
	service_load_check(&l, "watchdog");
}

/* The window docs/restart.md describes, made wide: with the test hook armed
 * (IOPFD_TEST_DIE_ANSWERING_ON_SIGUSR1 in the test's drop-in), the next
 * batch of the kernel queue turns its slot ANSWERING and the process is
 * killed before the write. The next iopfd dies too, before answering it
 * (IOPFD_TEST_DIE_IN_RECOVERY, once: it leaves an fd in the store that says
 * so); the one after must still
 * find the batch in the journal and answer it again. */
static void kill_while_answering(void) {
	struct service_load l = {0};
	service_load_start(&l, 4000);
	kernel_faults(&l, 100);
	sd_varlink *v = signal_and_await_restart(&l, SIGUSR1, 20);
	uint64_t again = iopfc_u64(stats(v), "reansweredGroups");
	sd_varlink_unref(v);
	kernel_faults(&l, 100);
	int armed = atoi(sh("journalctl -u iopfd.service -o cat --no-pager | grep -c 'fault injection: the next kernel' || true"));
	printf("# killed while answering: %lu kernel groups answered again by the next iopfd\n", (unsigned long)again);
	int died = atoi(sh("journalctl -u iopfd.service -o cat --no-pager | grep -c 'fault injection: dying before the journal' || true"));
	printf("# killed while answering: the next iopfd died before answering it %d time(s)\n", died);
	CHECK(armed >= 1, "the hook was not armed");
	CHECK(died >= 1, "the restart was not killed before answering the journal");
	CHECK(again >= 1, "no group was answered again (the kill did not land in the window)");
	service_load_check(&l, "killed while answering");
}

/* A persistent relay queue for the hand-on scenario, bound as device dev;
 * returns our (device) end. */
static int handon_queue(sd_varlink *v, uint64_t space, uint32_t dev, const char *name) {
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %m");
	sd_json_variant *p = NULL, *rep;
	OK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_INTEGER("fdIndex", 0), SD_JSON_BUILD_PAIR_STRING("name", name),
	                  SD_JSON_BUILD_PAIR_BOOLEAN("persistent", true)) < 0);
	OK(iopfc_call(v, "io.iopfd.RegisterQueue", p, &sv[0], 1, &rep, &err));
	OK(iopfc_bind(v, (uint32_t)iopfc_u64(rep, "queue"), dev, IOPFC_PASID_NONE, space, &err));
	sd_json_variant_unref(p);
	close(sv[0]);
	return sv[1];
}

static iopf_record handon_record(uint32_t dev, uint32_t cookie, uint64_t page, bool last) {
	return (iopf_record){.flags = last ? IOMMU_PGFAULT_FLAGS_LAST_PAGE : 0, .dev_id = dev, .perm = RD,
	                     .addr = 0x100000000ull + (page % 1024) * PG, .cookie = cookie};
}

/* Read answers from fd until `want` have come or 10 s pass; each cookie
 * below `limit` is counted in seen[]. Returns how many came. */
static size_t handon_answers(int fd, uint8_t *seen, uint32_t limit, size_t want, uint64_t *bad) {
	size_t got = 0;
	uint64_t deadline = now_ns() + 10ull * 1000000000;
	iopf_response r[512];
	size_t have = 0; /* bytes of r[] holding a partial response */
	while (got < want && now_ns() < deadline) {
		ssize_t n = recv(fd, (uint8_t *)r + have, sizeof(r) - have, MSG_DONTWAIT);
		if (n <= 0) {
			usleep(1000);
			continue;
		}
		have += (size_t)n;
		size_t k = have / sizeof(r[0]);
		for (size_t i = 0; i < k; i++) {
			if (r[i].cookie >= limit || r[i].code != IOMMUFD_PAGE_RESP_SUCCESS || seen[r[i].cookie]++)
				++*bad;
			got++;
		}
		have -= k * sizeof(r[0]);
		memmove(r, (uint8_t *)r + k * sizeof(r[0]), have);
	}
	return got;
}

/* A clean restart (systemctl restart: SIGTERM, drain, start) while one
 * relay peer is half-way through a group and another has stopped reading
 * its answers: iopfd hands the partial group and the unsent answers on to
 * the next iopfd through the journal, so the group completes and every
 * answer arrives, once. */
static void restart_hands_on(void) {
	sd_varlink *v = NULL;
	OK(iopfc_connect(SYSTEM_SOCKET, &v));
	sd_json_variant *p = NULL, *rep;
	OK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_STRING("backend", "none"), SD_JSON_BUILD_PAIR_UNSIGNED("quota", 1 << 30),
	                  SD_JSON_BUILD_PAIR_STRING("name", "handon-space"),
	                  SD_JSON_BUILD_PAIR_BOOLEAN("persistent", true)) < 0);
	OK(iopfc_call(v, "io.iopfd.CreateSpace", p, NULL, 0, &rep, &err));
	uint64_t space = iopfc_u64(rep, "space");
	sd_json_variant_unref(p);
	struct mem mem = memfd(1024 * PG, 0);
	OK(iopfc_add_region(v, space, 0x100000000ull, 1024 * PG, mem.fd, 0, ACC_RW, NULL, &err));
	mem_free(&mem);
	int a = handon_queue(v, space, 200, "handon-partial");
	int b = handon_queue(v, space, 201, "handon-backlog");

	/* A: one whole group, then a two-record group cut inside its second record. */
	iopf_record ra[3] = {handon_record(200, 1, 1, true), handon_record(200, 2, 2, false),
	                     handon_record(200, 2, 3, true)};
	const size_t cut = sizeof(iopf_record) + sizeof(iopf_record) + 20;
	CHECK(send(a, ra, cut, 0) == (ssize_t)cut, "send: %m");
	/* B: one-record groups, never reading the answers, until iopfd stops
	 * reading them (its answers back up) and our sends would block. */
	enum { LIMIT = 1 << 20 };
	uint32_t sent = 0;
	uint64_t deadline = now_ns() + 20ull * 1000000000;
	for (;;) {
		iopf_record r = handon_record(201, sent, sent, true);
		ssize_t n = send(b, &r, sizeof(r), MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			usleep(200000);
			n = send(b, &r, sizeof(r), MSG_DONTWAIT);
			if (n < 0 && errno == EAGAIN)
				break; /* still full after a pause: iopfd is holding back */
		}
		CHECK(n == (ssize_t)sizeof(r), "send: %zd, %m", n);
		CHECK(++sent < LIMIT && now_ns() < deadline, "the backlog never built up");
	}
	usleep(300000); /* iopfd reads A's partial group and carries it */

	unsigned long pid = main_pid();
	CHECK(system("systemctl restart iopfd.service") == 0, "systemctl restart failed");
	sd_varlink_unref(v);
	v = await_service(pid);
	uint64_t restored = iopfc_u64(stats(v), "restoredObjects");

	CHECK(send(a, (uint8_t *)ra + cut, sizeof(ra) - cut, 0) == (ssize_t)(sizeof(ra) - cut), "send: %m");
	uint8_t *seen = calloc(LIMIT, 1);
	CHECK(seen != NULL, "calloc");
	uint64_t bad = 0;
	size_t got_a = handon_answers(a, seen, 3, 2, &bad);
	memset(seen, 0, LIMIT);
	size_t got_b = handon_answers(b, seen, LIMIT, sent, &bad);
	printf("# stop, start with work in hand: partial group completed %s (%zu of 2 answers); backlog peer: %u "
	       "groups, %zu answers; %lu bad or repeated; restored %lu objects\n",
	       got_a == 2 ? "yes" : "no", got_a, sent, got_b, (unsigned long)bad, (unsigned long)restored);
	CHECK(bad == 0, "%lu answers bad, unknown or repeated", (unsigned long)bad);
	CHECK(got_a == 2, "the group cut across the restart was not answered (%zu of 2)", got_a);
	CHECK(got_b == sent, "%zu of %u answers of the backlogged peer arrived", got_b, sent);
	CHECK(restored == 3, "restored %lu objects, want its space and its two queues", (unsigned long)restored);
	free(seen);

	sd_json_variant *qs = listing(v, "io.iopfd.ListQueues", "queues");
	for (size_t i = 0; i < sd_json_variant_elements(qs); i++)
		OK(iopfc_unregister_queue(v, (uint32_t)iopfc_u64(sd_json_variant_by_index(qs, i), "id"), &err));
	sd_json_variant_unref(qs);
	OK(iopfc_destroy_space(v, space, &err));
	close(a);
	close(b);
	sd_varlink_unref(v);
}

static void stop_start(void) {
	struct service_load l = {0};
	service_load_start(&l, 4000);
	kernel_faults(&l, 300);
	unsigned long pid = main_pid();
	CHECK(system("systemctl stop iopfd.service") == 0, "systemctl stop failed");
	const char *status = sh("systemctl show -p ExecMainStatus --value iopfd.service");
	CHECK(!strcmp(status, "0"), "iopfd exited with status %s on stop", status);
	const char *result = sh("systemctl show -p Result --value iopfd.service");
	CHECK(!strcmp(result, "success"), "stop result: %s", result);
	/* Faults keep coming while it is stopped; the next start serves them. */
	kernel_faults(&l, 100);
	CHECK(system("systemctl start iopfd.service") == 0, "systemctl start failed");
	sd_varlink_unref(await_service(pid));
	kernel_faults(&l, 100);
	service_load_check(&l, "stop, start");
}

/* --- who may connect, and what they may pin ------------------------------------------------ */

/* The uid the test's drop-in grants 16 MiB, a member of the iopfd group
 * (systemd-test.sh makes it one): "daemon", uid 1 on Debian. */
#define MEMBER_UID 1
#define MEMBER_BUDGET (16ull << 20)

/* In a child as another user (with the groups the user database gives
 * it): 0, or the step that failed. */
static int child_connect(uid_t uid, sd_varlink **v) {
	struct passwd *pw = getpwuid(uid);
	if (!pw || initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(uid) < 0)
		return 10;
	return iopfc_connect(SYSTEM_SOCKET, v) == 0 ? 0 : 11;
}

static uint64_t reserved_of(sd_varlink *v, uint64_t *budget) {
	sd_json_variant *st;
	if (iopfc_statistics(v, &st, &err) < 0)
		return UINT64_MAX;
	sd_json_variant *u = sd_json_variant_by_index(sd_json_variant_by_key(st, "users"), 0);
	*budget = iopfc_u64(u, "pinBudget");
	return iopfc_u64(u, "pinReserved");
}

/* The member's side: a persistent 12 MiB mlock space, then (after the
 * restart the parent makes) the same figures, and no room for 8 MiB more. */
static int member_across_restart(int go_fd, int done_fd) {
	sd_varlink *v;
	int r = child_connect(MEMBER_UID, &v);
	if (r)
		return r;
	sd_json_variant *p = NULL, *rep;
	if (sd_json_buildo(&p, SD_JSON_BUILD_PAIR_STRING("backend", "mlock"),
	                   SD_JSON_BUILD_PAIR_UNSIGNED("quota", 12ull << 20),
	                   SD_JSON_BUILD_PAIR_BOOLEAN("persistent", true)) < 0 ||
	    iopfc_call(v, "io.iopfd.CreateSpace", p, NULL, 0, &rep, &err) < 0)
		return 12;
	uint64_t budget;
	if (reserved_of(v, &budget) != 12ull << 20 || budget != MEMBER_BUDGET)
		return 13;
	sd_varlink_unref(v);
	char c = 1;
	if (write(done_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1) /* the parent restarts iopfd */
		return 14;
	if (iopfc_connect(SYSTEM_SOCKET, &v) < 0)
		return 15;
	uint64_t reserved = reserved_of(v, &budget);
	printf("# budgets: after systemctl restart, uid %d reserves %lu MiB of %lu MiB\n", MEMBER_UID,
	       (unsigned long)(reserved >> 20), (unsigned long)(budget >> 20));
	if (reserved != 12ull << 20 || budget != MEMBER_BUDGET)
		return 16;
	if (iopfc_create_space(v, "mlock", 8ull << 20, 0, 0, -1, 0, NULL, &err) != -EREMOTEIO ||
	    strcmp(err, "io.iopfd.PinBudgetExceeded"))
		return 17;
	sd_varlink_unref(v);
	return 0;
}

static void socket_access_and_budgets(void) {
	/* The socket as the unit makes it. */
	struct stat st;
	CHECK(stat(SYSTEM_SOCKET, &st) == 0, "stat %s: %m", SYSTEM_SOCKET);
	struct group *g = getgrnam("iopfd");
	CHECK(g, "no iopfd group (sysusers.d)");
	printf("# socket: mode %04o, group %s\n", (unsigned)(st.st_mode & 07777), g->gr_name);
	CHECK((st.st_mode & 07777) == 0660 && st.st_gid == g->gr_gid, "socket mode %04o gid %u",
	      (unsigned)(st.st_mode & 07777), (unsigned)st.st_gid);

	/* A user outside the group cannot connect. */
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		sd_varlink *v;
		int r = child_connect(65534, &v);
		_exit(r == 11 && errno == EACCES ? 0 : r == 0 ? 1 : r);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "nobody (not in the group) could connect: status %d",
	      WEXITSTATUS(status));

	/* A member can, within its budget, and both survive a restart. */
	int go[2], done[2];
	CHECK(pipe(go) == 0 && pipe(done) == 0, "pipe");
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int r = member_across_restart(go[0], done[1]);
		fflush(NULL);
		_exit(r);
	}
	char c;
	CHECK(read(done[0], &c, 1) == 1, "the member did not make its space");
	unsigned long old = main_pid();
	CHECK(system("systemctl restart iopfd.service") == 0, "systemctl restart failed");
	sd_varlink_unref(await_service(old));
	CHECK(write(go[1], &c, 1) == 1, "go");
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the member's checks failed at step %d",
	      WEXITSTATUS(status));
	close(go[0]), close(go[1]), close(done[0]), close(done[1]);
}

/* --- driver -------------------------------------------------------------------------------- */

struct scenario {
	const char *name;
	void (*fn)(void);
};

static const struct scenario systemd_scenarios[] = {
	{"systemd_socket_activation", socket_activation},
	{"systemd_kill9_restart_no_loss", kill9_restart},
	{"systemd_watchdog_restart_no_loss", watchdog_restart},
	{"systemd_kill_while_answering_no_loss", kill_while_answering},
	{"systemd_restart_hands_on_partials_and_backlog", restart_hands_on},
	{"systemd_stop_drains_then_start", stop_start},
	{"systemd_socket_access_and_budgets", socket_access_and_budgets},
};

static const struct scenario scenarios[] = {
	{"paging_demand_map", paging_demand},
	{"refusals_map_nothing", refusals},
	{"quota_eviction_unmaps", quota_eviction},
	{"quota_pressure_queued_all_succeed", quota_pressure_queued},
	{"devices_queues_pasids", devices_and_pasids},
	{"teardown_unmaps", teardown_unmaps},
	{"response_path", response_path},
	{"unregister_hands_back_backlog", unregister_hands_back},
	{"unregister_while_stopped_hands_back_backlog", unregister_stopped_hands_back},
	{"client_exit_hands_back_backlog", client_exit_hands_back},
	{"client_exit_while_stopped_hands_back_backlog", client_exit_stopped_hands_back},
	{"figures", figures},
	{"service_time", service_time},
	{"trace_replay_matches_simulator", trace_replay},
};

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: iopfd-vmtest IOPFD_BINARY [SCENARIO...]\n");
		return 2;
	}
	iopfd_bin = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	const struct scenario *list = scenarios;
	size_t n = sizeof(scenarios) / sizeof(scenarios[0]);
	if (!strcmp(argv[1], "--systemd")) {
		list = systemd_scenarios;
		n = sizeof(systemd_scenarios) / sizeof(systemd_scenarios[0]);
	}
	int failed = 0, ran = 0;
	printf("TAP version 13\n");
	for (size_t i = 0; i < n; i++) {
		bool wanted = argc == 2;
		for (int a = 2; a < argc; a++)
			wanted |= !strcmp(argv[a], list[i].name);
		if (!wanted)
			continue;
		iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
		if (iommufd < 0) {
			printf("not ok %d - %s # /dev/iommu: %s\n", ++ran, list[i].name, strerror(errno));
			failed++;
			continue;
		}
		uint64_t t0 = now_ns();
		if (setjmp(fail_jmp) == 0) {
			list[i].fn();
			printf("ok %d - %s (%s, %.1f s)\n", ++ran, list[i].name, nested ? "nested" : "paging",
			       (double)(now_ns() - t0) / 1e9);
		} else {
			printf("not ok %d - %s # %s\n", ++ran, list[i].name, fail_msg);
			failed++;
			daemon_stop();
		}
		/* Closing the iommufd destroys every object the scenario made. */
		close(iommufd);
	}
	printf("1..%d\n", ran);
	return failed ? 1 : 0;
}
