/* SPDX-License-Identifier: MIT */
/*
 * iopfd serving faults that come from the guest's real IOMMU driver: the
 * test device of tools/qemu-pri (iopfd-pri-test: ATS, PRI, PASID) behind
 * QEMU's VT-d in scalable mode, bound to vfio-pci, reached through
 * /dev/vfio/devices/vfioN and iommufd. Run inside the test VM by
 * tools/dev vmtest --real-iommu; docs/real-iommu.md describes the path.
 *
 * The program plays a userspace driver. It binds the device to vfio-pci,
 * binds the VFIO cdev to an iommufd, allocates an IOAS, a fault queue and a
 * paging HWPT that reports faults to it (IOMMU_HWPT_FAULT_ID_VALID, and
 * IOMMU_HWPT_ALLOC_PASID so that it can be attached to a PASID), attaches
 * the device's PASID to it, maps the device's BARs, and hands the queue, the
 * iommufd + IOAS and a sealed memfd to iopfd over Varlink. Then it orders
 * DMA through the device's registers and checks the data the device moved.
 *
 * Usage: iopfd-vmtest-pri IOPFD_BINARY [SCENARIO...]
 *        iopfd-vmtest-pri --systemd [SCENARIO...]
 * Prints TAP; "# layer: ..." lines say how far the path got.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "iopf_abi.h"
#include "iommufd_test.h"
#include "iopfd/client.h"
#include "harness.h"

#define PG 4096ull
#define SOCKET "/run/iopfd-vmtest-pri.sock"
#define ACC_R 1u
#define ACC_RW 3u
#define PASID 1u
/* Where the device's address space starts: above 4 GiB, clear of the MSI
 * window and of anything the IOAS reserves. */
#define IOVA_BASE 0x100000000ull

/* --- the device's registers (hw/misc/iopfd-pri-test.c in the patch) ---------- */

enum {
	R_ID = 0x00, R_PASID = 0x08, R_IOVA = 0x10, R_LEN = 0x18, R_BUFOFF = 0x20, R_CMD = 0x28,
	R_STATUS = 0x30, R_RESP = 0x38, R_FAULTADDR = 0x40, R_ERRNO = 0x48, R_TIMEOUT = 0x50,
	R_DONE = 0x58, R_PRQ = 0x60, R_SUCCESS = 0x68, R_INVALID = 0x70, R_FAILURE = 0x78,
	R_ATS = 0x80, R_PAGES = 0x88, R_WAIT_NS = 0x90, R_CMDS = 0x98, R_STRAY = 0xa0,
};
enum { ST_IDLE, ST_BUSY, ST_DONE, ST_REFUSED, ST_ERROR, ST_TIMEOUT };
#define CMD_READ 1u  /* host memory -> device buffer */
#define CMD_WRITE 2u /* device buffer -> host memory */
#define CMD_NO_PRI 0x100u /* fail at the first missing translation, no page request */
#define DEV_VENDOR 0x1234
#define DEV_DEVICE 0x1f0d
#define DEV_BUF (4u << 20)

static const char *status_name[] = {"idle", "busy", "done", "refused", "error", "timed out"};

static const char *iopfd_bin;

/* An eventfd that the iopfd this program starts writes after every write
 * of answers (IOPFD_TEST_ANSWERED_EVENTFD, a test hook): the client sleeps
 * on it instead of spinning on the two emulated CPUs that iopfd and the
 * kernel need. -1 under systemd, whose iopfd has no such fd. */
static int answered_efd = -1;
static pid_t daemon_pid;

/* Answers written since the last call (0 if none). */
static uint64_t answered_take(void) {
	uint64_t v = 0;
	if (answered_efd < 0 || read(answered_efd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* Sleep until iopfd writes an answer or a clock tick passes (the guest
 * kernel has no high-resolution timers: a tick is 4 ms). */
static void nap(void) {
	if (answered_efd >= 0 && daemon_pid > 0) {
		struct pollfd p = {.fd = answered_efd, .events = POLLIN};
		if (poll(&p, 1, 4) > 0)
			answered_take();
	} else {
		usleep(1000);
	}
}

static void layer(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	printf("# layer: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

/* --- sysfs ---------------------------------------------------------------------- */

static int write_file(const char *path, const char *s) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, s, strlen(s));
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

static unsigned long read_hex(const char *path) {
	char buf[64] = "";
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strtoul(buf, NULL, 0);
}

/* The test device's PCI address, or fail. */
static void find_device(char *bdf, size_t n) {
	DIR *d = opendir("/sys/bus/pci/devices");
	CHECK(d, "/sys/bus/pci/devices: %m");
	struct dirent *e;
	bool found = false;
	while ((e = readdir(d))) {
		char p[512];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vendor", e->d_name);
		unsigned long v = read_hex(p);
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/device", e->d_name);
		if (v == DEV_VENDOR && read_hex(p) == DEV_DEVICE && strlen(e->d_name) < n) {
			memcpy(bdf, e->d_name, strlen(e->d_name) + 1);
			found = true;
			break;
		}
	}
	closedir(d);
	CHECK(found, "no iopfd-pri-test device (%04x:%04x) on the PCI bus", DEV_VENDOR, DEV_DEVICE);
}

/* What the host kernel enabled on the function: the ATS, PASID and PRI
 * capabilities' control words, read from its config space. */
static void show_caps(const char *bdf) {
	char p[512];
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/config", bdf);
	uint8_t cfg[4096];
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "%s: %m", p);
	ssize_t n = pread(fd, cfg, sizeof(cfg), 0);
	close(fd);
	if (n < 0x104) {
		layer("config space of %s is %zd bytes: no extended capabilities visible (MMCONFIG?)", bdf, n);
		return;
	}
	char out[256] = "";
	for (unsigned off = 0x100; off && off + 4 <= (unsigned)n;) {
		uint32_t h;
		memcpy(&h, cfg + off, 4);
		unsigned id = h & 0xffff, next = h >> 20;
		uint16_t w4, w6;
		memcpy(&w4, cfg + off + 4, 2);
		memcpy(&w6, cfg + off + 6, 2);
		char one[64] = "";
		if (id == PCI_EXT_CAP_ID_ATS)
			snprintf(one, sizeof(one), " ATS ctrl=%#x", w6);
		else if (id == PCI_EXT_CAP_ID_PASID)
			snprintf(one, sizeof(one), " PASID cap=%#x ctrl=%#x", w4, w6);
		else if (id == PCI_EXT_CAP_ID_PRI)
			snprintf(one, sizeof(one), " PRI ctrl=%#x status=%#x", w4, w6);
		strncat(out, one, sizeof(out) - strlen(out) - 1);
		if (!id || next <= off)
			break;
		off = next;
	}
	layer("%s extended capabilities:%s", bdf, out[0] ? out : " none");
}

/* Bind to vfio-pci; returns the cdev path. */
static void bind_vfio(const char *bdf, char *cdev, size_t n) {
	char p[512], drv[512] = "";
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver", bdf);
	ssize_t k = readlink(p, drv, sizeof(drv) - 1);
	if (k > 0)
		drv[k] = 0;
	if (!strstr(drv, "vfio-pci")) {
		if (k > 0) {
			snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
			write_file(p, bdf);
		}
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver_override", bdf);
		int r = write_file(p, "vfio-pci");
		CHECK(r == 0, "driver_override: %s", strerror(-r));
		r = write_file("/sys/bus/pci/drivers_probe", bdf);
		CHECK(r == 0, "drivers_probe %s: %s", bdf, strerror(-r));
	}
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	DIR *d = opendir(p);
	CHECK(d, "%s: %m (vfio-pci did not bind, or no VFIO cdev)", p);
	struct dirent *e;
	cdev[0] = 0;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "vfio", 4) && strlen(e->d_name) + 18 < n)
			snprintf(cdev, n, "/dev/vfio/devices/%.32s", e->d_name);
	closedir(d);
	CHECK(cdev[0], "no vfioN under %s", p);
}

/* --- the device through VFIO and iommufd ---------------------------------------- */

struct dev {
	char bdf[64];
	int vfio;      /* the cdev */
	int iommufd;
	uint32_t devid; /* iommufd's device id */
	uint32_t ioas;
	uint32_t fault_id;
	int fault_fd;
	uint32_t hwpt;
	bool attached;
	volatile uint64_t *regs;
	uint8_t *buf;
	size_t regs_len, buf_len;
};

static void *map_region(struct dev *d, unsigned index, size_t *len) {
	struct vfio_region_info ri = {.argsz = sizeof(ri), .index = index};
	CHECK(ioctl(d->vfio, VFIO_DEVICE_GET_REGION_INFO, &ri) == 0, "GET_REGION_INFO %u: %m", index);
	CHECK(ri.flags & VFIO_REGION_INFO_FLAG_MMAP, "region %u cannot be mapped (flags %#x)", index, ri.flags);
	void *p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, d->vfio, (off_t)ri.offset);
	CHECK(p != MAP_FAILED, "mmap of region %u: %m", index);
	*len = ri.size;
	return p;
}

static void bus_master(struct dev *d) {
	struct vfio_region_info ri = {.argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX};
	CHECK(ioctl(d->vfio, VFIO_DEVICE_GET_REGION_INFO, &ri) == 0, "config region: %m");
	uint16_t cmd;
	CHECK(pread(d->vfio, &cmd, 2, (off_t)ri.offset + PCI_COMMAND) == 2, "read PCI_COMMAND: %m");
	cmd |= PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
	CHECK(pwrite(d->vfio, &cmd, 2, (off_t)ri.offset + PCI_COMMAND) == 2, "write PCI_COMMAND: %m");
}

/* Everything up to a device that DMAs through a fault-capable HWPT on PASID. */
static void dev_open(struct dev *d) {
	char cdev[256];
	memset(d, 0, sizeof(*d));
	d->vfio = d->iommufd = d->fault_fd = -1;
	find_device(d->bdf, sizeof(d->bdf));
	show_caps(d->bdf);
	bind_vfio(d->bdf, cdev, sizeof(cdev));
	layer("vfio-pci bound %s: %s", d->bdf, cdev);
	d->vfio = open(cdev, O_RDWR | O_CLOEXEC);
	CHECK(d->vfio >= 0, "open %s: %m", cdev);
	d->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	CHECK(d->iommufd >= 0, "/dev/iommu: %m");
	struct vfio_device_bind_iommufd b = {.argsz = sizeof(b), .iommufd = d->iommufd};
	CHECK(ioctl(d->vfio, VFIO_DEVICE_BIND_IOMMUFD, &b) == 0, "VFIO_DEVICE_BIND_IOMMUFD: %m");
	d->devid = b.out_devid;
	struct iommu_ioas_alloc a = {.size = sizeof(a)};
	CHECK(ioctl(d->iommufd, IOMMU_IOAS_ALLOC, &a) == 0, "IOMMU_IOAS_ALLOC: %m");
	d->ioas = a.out_ioas_id;
	struct iommu_fault_alloc f = {.size = sizeof(f)};
	CHECK(ioctl(d->iommufd, IOMMU_FAULT_QUEUE_ALLOC, &f) == 0, "IOMMU_FAULT_QUEUE_ALLOC: %m");
	d->fault_id = f.out_fault_id;
	d->fault_fd = (int)f.out_fault_fd;
	layer("bound to iommufd: dev_id %u, IOAS %u, fault queue %u", d->devid, d->ioas, d->fault_id);
	/* A paging HWPT on the IOAS itself (faults on it are demand paging of
	 * the IOAS: 6.13+), usable on a PASID (IOMMU_HWPT_ALLOC_PASID). On
	 * VT-d with first-stage support, the driver makes it a first-stage
	 * domain: only those can be attached to a PASID with page requests. */
	struct iommu_hwpt_alloc h = {.size = sizeof(h),
	                             .flags = IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID,
	                             .dev_id = d->devid, .pt_id = d->ioas, .fault_id = d->fault_id};
	CHECK(ioctl(d->iommufd, IOMMU_HWPT_ALLOC, &h) == 0, "IOMMU_HWPT_ALLOC (paging, FAULT_ID_VALID|ALLOC_PASID): %m");
	d->hwpt = h.out_hwpt_id;
	layer("fault-capable paging HWPT %u", d->hwpt);
	/* PASID 1 only: the RID stays in the blocking domain, whose RID_PASID
	 * entry Linux clears. QEMU 10.2.2's VT-d refused every translation of
	 * such a function, even with a PASID (vtd_dev_to_context_entry →
	 * vtd_ce_rid2pasid_check, fault 0x5b); the patch in tools/qemu-pri
	 * checks that entry only for requests without PASID, as hardware
	 * does. docs/real-iommu.md has the story. */
	struct vfio_device_attach_iommufd_pt at = {.argsz = sizeof(at), .flags = VFIO_DEVICE_ATTACH_PASID,
	                                           .pt_id = d->hwpt, .pasid = PASID};
	CHECK(ioctl(d->vfio, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at) == 0, "VFIO_DEVICE_ATTACH_IOMMUFD_PT (PASID %u): %m",
	      PASID);
	d->attached = true;
	layer("PASID %u attached to HWPT %u", PASID, d->hwpt);
	d->regs = map_region(d, VFIO_PCI_BAR0_REGION_INDEX, &d->regs_len);
	d->buf = map_region(d, VFIO_PCI_BAR2_REGION_INDEX, &d->buf_len);
	bus_master(d);
	uint64_t id = d->regs[R_ID / 8];
	CHECK((id & 0xffffffff) == 0x49504654, "device ID register reads %#lx", (unsigned long)id);
	show_caps(d->bdf);
	layer("BARs mapped (registers %zu bytes, buffer %zu bytes), bus master on", d->regs_len, d->buf_len);
}

static void dev_detach(struct dev *d) {
	if (d->attached) {
		struct vfio_device_detach_iommufd_pt dt = {.argsz = sizeof(dt), .flags = VFIO_DEVICE_DETACH_PASID,
	                                           .pasid = PASID};
		CHECK(ioctl(d->vfio, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt) == 0, "VFIO_DEVICE_DETACH_IOMMUFD_PT: %m");
		d->attached = false;
	}
}

static void dev_close(struct dev *d) {
	if (d->regs)
		munmap((void *)d->regs, d->regs_len);
	if (d->buf)
		munmap(d->buf, d->buf_len);
	if (d->fault_fd >= 0)
		close(d->fault_fd);
	if (d->vfio >= 0)
		close(d->vfio);
	if (d->iommufd >= 0)
		close(d->iommufd);
	memset(d, 0, sizeof(*d));
	d->vfio = d->iommufd = d->fault_fd = -1;
}

static uint64_t reg(const struct dev *d, unsigned r) {
	return d->regs[r / 8];
}

struct dma_result {
	uint64_t status, resp, err, done, faultaddr;
	uint64_t ns;
};

/* One DMA command; waits for it to end (or `wait_s` seconds). */
static struct dma_result dma(struct dev *d, unsigned cmd, uint64_t iova, uint64_t len, uint64_t bufoff,
                             unsigned wait_s) {
	d->regs[R_PASID / 8] = PASID;
	d->regs[R_IOVA / 8] = iova;
	d->regs[R_LEN / 8] = len;
	d->regs[R_BUFOFF / 8] = bufoff;
	CHECK(reg(d, R_PASID) == PASID && reg(d, R_IOVA) == iova && reg(d, R_LEN) == len,
	      "the device's registers read PASID %#lx IOVA %#lx LEN %#lx after writing them",
	      (unsigned long)reg(d, R_PASID), (unsigned long)reg(d, R_IOVA), (unsigned long)reg(d, R_LEN));
	answered_take();
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)wait_s * 1000000000ull;
	d->regs[R_CMD / 8] = cmd;
	struct dma_result r;
	/* Asleep between looks: woken by each answer, or by the clock. */
	while ((r.status = reg(d, R_STATUS)) == ST_BUSY && now_ns() < deadline)
		nap();
	r.ns = now_ns() - t0;
	r.resp = reg(d, R_RESP);
	r.err = reg(d, R_ERRNO);
	r.done = reg(d, R_DONE);
	r.faultaddr = reg(d, R_FAULTADDR);
	return r;
}

static const char *st(uint64_t s) {
	return s < sizeof(status_name) / sizeof(status_name[0]) ? status_name[s] : "?";
}

#define DMA_OK(r, what)                                                                                              \
	CHECK((r).status == ST_DONE, "%s: device status %s (resp %lu, errno %lu, %lu bytes moved, fault at %#lx)",   \
	      what, st((r).status), (unsigned long)(r).resp, (unsigned long)(r).err, (unsigned long)(r).done,       \
	      (unsigned long)(r).faultaddr)

/* The device's counters, printed. */
static void show_counters(const struct dev *d, const char *what) {
	printf("# %s: device: %lu page requests, %lu SUCCESS, %lu INVALID, %lu FAILURE, %lu stray; %lu translation "
	       "requests, %lu pages moved, %lu commands, %.1f ms waiting\n",
	       what, (unsigned long)reg(d, R_PRQ), (unsigned long)reg(d, R_SUCCESS), (unsigned long)reg(d, R_INVALID),
	       (unsigned long)reg(d, R_FAILURE), (unsigned long)reg(d, R_STRAY), (unsigned long)reg(d, R_ATS),
	       (unsigned long)reg(d, R_PAGES), (unsigned long)reg(d, R_CMDS), (double)reg(d, R_WAIT_NS) / 1e6);
}

static void clear_counters(struct dev *d) {
	d->regs[R_PRQ / 8] = 0;
}

/* --- memory and iopfd ----------------------------------------------------------- */

struct mem {
	int fd;
	uint8_t *va;
	size_t len;
};

static struct mem memfd(size_t len) {
	struct mem m = {.len = len};
	m.fd = memfd_create("vmtest-pri", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(m.fd >= 0 && ftruncate(m.fd, (off_t)len) == 0, "memfd: %m");
	CHECK(fcntl(m.fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0, "seal: %m");
	m.va = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, 0);
	CHECK(m.va != MAP_FAILED, "mmap: %m");
	return m;
}

static void mem_free(struct mem *m) {
	if (m->va)
		munmap(m->va, m->len);
	if (m->fd > 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
}

/* A byte that depends on where it is and on a seed. */
static uint8_t pat(uint64_t off, unsigned seed) {
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)seed * 0xbf58476d1ce4e5b9ull;
	return (uint8_t)(x >> 29);
}

static void fill(uint8_t *p, uint64_t len, uint64_t base, unsigned seed) {
	for (uint64_t i = 0; i < len; i++)
		p[i] = pat(base + i, seed);
}

/* Offset of the first byte that differs from the pattern, or -1. */
static long check(const uint8_t *p, uint64_t len, uint64_t base, unsigned seed) {
	for (uint64_t i = 0; i < len; i++)
		if (p[i] != pat(base + i, seed))
			return (long)i;
	return -1;
}

static const char *err;

#define OK(call) CHECK((call) == 0, "%s: %s", #call, err ? err : strerror(errno))

static sd_varlink *daemon_start(void) {
	unlink(SOCKET);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		if (answered_efd >= 0) {
			char n[16];
			snprintf(n, sizeof(n), "%d", answered_efd);
			fcntl(answered_efd, F_SETFD, 0);
			setenv("IOPFD_TEST_ANSWERED_EVENTFD", n, 1);
		}
		execl(iopfd_bin, iopfd_bin, "--socket", SOCKET, "--workers", "1", (char *)NULL);
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

static int daemon_stop(void) {
	if (daemon_pid <= 0)
		return -1;
	kill(daemon_pid, SIGCONT);
	kill(daemon_pid, SIGTERM);
	int st;
	waitpid(daemon_pid, &st, 0);
	daemon_pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static sd_json_variant *stats(sd_varlink *v) {
	sd_json_variant *s;
	OK(iopfc_statistics(v, &s, &err));
	return s;
}

static uint64_t invalid_of(sd_json_variant *s, const char *why) {
	return iopfc_u64(sd_json_variant_by_key(s, "invalid"), why);
}

static uint64_t space_of(sd_varlink *v, int iommufd, uint32_t ioas, uint64_t quota, uint64_t window) {
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

struct setup {
	struct dev d;
	sd_varlink *v;
	struct mem mem;
	uint64_t space;
	uint32_t queue;
};

/* The scenario's setup, for the clean-up after a failed check. */
static struct setup *current;

/* The device, iopfd, one address space with one region of `pages` pages
 * at IOVA_BASE, the queue registered and bound to (dev_id, PASID). */
static void setup(struct setup *s, size_t pages, uint64_t quota, uint64_t window, uint32_t access) {
	current = s;
	dev_open(&s->d);
	s->v = daemon_start();
	s->mem = memfd(pages * PG);
	s->space = space_of(s->v, s->d.iommufd, s->d.ioas, quota, window);
	OK(iopfc_add_region(s->v, s->space, IOVA_BASE, pages * PG, s->mem.fd, 0, access, NULL, &err));
	OK(iopfc_register_queue(s->v, s->d.fault_fd, "iommufd", "pri", &s->queue, &err));
	OK(iopfc_bind(s->v, s->queue, s->d.devid, PASID, s->space, &err));
	layer("iopfd serves fault queue %u (dev_id %u, PASID %u) from a %zu-page memfd", s->d.fault_id, s->d.devid,
	      PASID, pages);
}

static void teardown(struct setup *s) {
	current = NULL;
	if (s->v)
		sd_varlink_unref(s->v);
	s->v = NULL;
	daemon_stop();
	dev_detach(&s->d);
	dev_close(&s->d);
	mem_free(&s->mem);
}

/* --- scenarios ------------------------------------------------------------------- */

/* The device writes 64 pages it has never touched, then reads them back:
 * every page faults once, iopfd maps it, and the data lands in the right
 * memfd pages. */
static void demand_mapping(void) {
	enum { PAGES = 64 };
	static struct setup s; /* static: main cleans it up after a longjmp */
	memset(&s, 0, sizeof(s));
	setup(&s, PAGES, PAGES * PG, PG, ACC_RW);
	clear_counters(&s.d);
	fill(s.d.buf, PAGES * PG, 0, 7);
	struct dma_result r = dma(&s.d, CMD_WRITE, IOVA_BASE, PAGES * PG, 0, 60);
	DMA_OK(r, "DMA write of 64 pages");
	long bad = check(s.mem.va, PAGES * PG, 0, 7);
	CHECK(bad < 0, "memfd byte %ld (page %ld) is not what the device wrote", bad, bad / (long)PG);
	uint64_t prq = reg(&s.d, R_PRQ);
	CHECK(prq == PAGES, "%lu page requests for %d untouched pages", (unsigned long)prq, PAGES);
	/* Read back into the other half of the buffer: mapped now, no faults. */
	memset(s.d.buf + PAGES * PG, 0, PAGES * PG);
	r = dma(&s.d, CMD_READ, IOVA_BASE, PAGES * PG, PAGES * PG, 60);
	DMA_OK(r, "DMA read back");
	bad = check(s.d.buf + PAGES * PG, PAGES * PG, 0, 7);
	CHECK(bad < 0, "byte %ld read back differs", bad);
	CHECK(reg(&s.d, R_PRQ) == PAGES, "the read back faulted again");
	/* The memfd written by the CPU, read by the device at an offset that
	 * is not page aligned, across pages it has mapped. */
	fill(s.mem.va, PAGES * PG, 0, 9);
	r = dma(&s.d, CMD_READ, IOVA_BASE + 100, 3 * PG, 0, 60);
	DMA_OK(r, "DMA read of CPU-written memory");
	bad = check(s.d.buf, 3 * PG, 100, 9);
	CHECK(bad < 0, "byte %ld read from the CPU's pattern differs", bad);
	sd_json_variant *st = stats(s.v);
	printf("# demand mapping: iopfd %lu groups, %lu SUCCESS, %lu INVALID (no region %lu), %lu reads, %lu writes, "
	       "%lu write rejects\n",
	       (unsigned long)iopfc_u64(st, "groups"), (unsigned long)iopfc_u64(st, "success"),
	       (unsigned long)(iopfc_u64(st, "groups") - iopfc_u64(st, "success")),
	       (unsigned long)invalid_of(st, "no_region"), (unsigned long)iopfc_u64(st, "reads"),
	       (unsigned long)iopfc_u64(st, "writes"), (unsigned long)iopfc_u64(st, "writeRejects"));
	show_counters(&s.d, "demand mapping");
	CHECK(iopfc_u64(st, "success") == reg(&s.d, R_SUCCESS), "iopfd answered %lu SUCCESS, the device saw %lu",
	      (unsigned long)iopfc_u64(st, "success"), (unsigned long)reg(&s.d, R_SUCCESS));
	CHECK(iopfc_u64(st, "success") == PAGES, "iopfd answered %lu SUCCESS", (unsigned long)iopfc_u64(st, "success"));
	teardown(&s);
}

/* Outside every region, and a write to a read-only region: the device gets
 * INVALID, moves nothing there, and iopfd maps nothing. */
static void refusal(void) {
	enum { PAGES = 16 };
	static struct setup s; /* static: main cleans it up after a longjmp */
	memset(&s, 0, sizeof(s));
	setup(&s, PAGES, PAGES * PG, PG, ACC_R);
	clear_counters(&s.d);
	fill(s.mem.va, PAGES * PG, 0, 3);
	fill(s.d.buf, 2 * PG, 0, 4);
	struct dma_result r = dma(&s.d, CMD_WRITE, IOVA_BASE + 64 * PG, PG, 0, 60);
	CHECK(r.status == ST_REFUSED && r.resp == 1, "a write outside every region: status %s, response %lu",
	      st(r.status), (unsigned long)r.resp);
	CHECK(r.done == 0, "%lu bytes moved outside every region", (unsigned long)r.done);
	/* Nothing was mapped there: the same write without page requests
	 * finds no translation. */
	r = dma(&s.d, CMD_WRITE | CMD_NO_PRI, IOVA_BASE + 64 * PG, PG, 0, 60);
	CHECK(r.status == ST_ERROR && r.err == EFAULT && r.done == 0,
	      "after the refusal, a write without page requests: status %s, errno %lu, %lu bytes moved", st(r.status),
	      (unsigned long)r.err, (unsigned long)r.done);
	r = dma(&s.d, CMD_WRITE, IOVA_BASE + 2 * PG, PG, 0, 60);
	CHECK(r.status == ST_REFUSED && r.resp == 1, "a write to a read-only region: status %s, response %lu",
	      st(r.status), (unsigned long)r.resp);
	CHECK(check(s.mem.va, PAGES * PG, 0, 3) < 0, "the read-only region changed");
	/* The same page read: fine. */
	r = dma(&s.d, CMD_READ, IOVA_BASE + 2 * PG, PG, PG, 60);
	DMA_OK(r, "a read of the read-only region");
	CHECK(check(s.d.buf + PG, PG, 2 * PG, 3) < 0, "the read of the read-only page returned other data");
	/* Still nothing mapped for writing: a write after the read is refused
	 * by the IOMMU's page table, faults, and iopfd refuses it again. */
	r = dma(&s.d, CMD_WRITE, IOVA_BASE + 2 * PG, PG, 0, 60);
	CHECK(r.status == ST_REFUSED && r.resp == 1, "a write to the page mapped read-only: status %s",
	      st(r.status));
	CHECK(check(s.mem.va, PAGES * PG, 0, 3) < 0, "the read-only region changed");
	sd_json_variant *st_ = stats(s.v);
	printf("# refusal: iopfd no_region %lu, permission %lu, success %lu\n",
	       (unsigned long)invalid_of(st_, "no_region"), (unsigned long)invalid_of(st_, "permission"),
	       (unsigned long)iopfc_u64(st_, "success"));
	show_counters(&s.d, "refusal");
	CHECK(invalid_of(st_, "no_region") == 1 && invalid_of(st_, "permission") == 2,
	      "iopfd counted no_region %lu, permission %lu", (unsigned long)invalid_of(st_, "no_region"),
	      (unsigned long)invalid_of(st_, "permission"));
	CHECK(reg(&s.d, R_INVALID) == 3, "the device saw %lu INVALID", (unsigned long)reg(&s.d, R_INVALID));
	teardown(&s);
}

/* 64 pages through a 16-page quota: the early pages are evicted (unmapped
 * in the IOMMU), and the device faults on them again when it comes back. */
static void quota_eviction(void) {
	enum { PAGES = 64, QUOTA = 16 };
	static struct setup s; /* static: main cleans it up after a longjmp */
	memset(&s, 0, sizeof(s));
	setup(&s, PAGES, QUOTA * PG, PG, ACC_RW);
	clear_counters(&s.d);
	fill(s.d.buf, PAGES * PG, 0, 11);
	struct dma_result r = dma(&s.d, CMD_WRITE, IOVA_BASE, PAGES * PG, 0, 60);
	DMA_OK(r, "DMA write of 64 pages under a 16-page quota");
	CHECK(check(s.mem.va, PAGES * PG, 0, 11) < 0, "the data of the 64 pages is not in the memfd");
	uint64_t first = reg(&s.d, R_PRQ);
	CHECK(first == PAGES, "%lu page requests for 64 pages", (unsigned long)first);
	/* Page 0 was evicted long ago: the device faults again. */
	fill(s.d.buf, PG, 0, 12);
	r = dma(&s.d, CMD_WRITE, IOVA_BASE, PG, 0, 60);
	DMA_OK(r, "DMA write of the evicted page 0");
	CHECK(reg(&s.d, R_PRQ) == first + 1, "page 0 did not fault again after eviction (%lu page requests)",
	      (unsigned long)reg(&s.d, R_PRQ));
	CHECK(check(s.mem.va, PG, 0, 12) < 0, "page 0's new data is not in the memfd");
	sd_json_variant *rep;
	OK(iopfc_call(s.v, "io.iopfd.ListSpaces", NULL, NULL, 0, &rep, &err));
	sd_json_variant *sp = sd_json_variant_by_index(sd_json_variant_by_key(rep, "spaces"), 0);
	uint64_t peak = iopfc_u64(sp, "pinnedPeak"), ev = iopfc_u64(sp, "evictions");
	printf("# quota eviction: %d pages through a %d-page quota: peak pinned %lu pages, %lu evictions, the evicted "
	       "page faulted again\n",
	       PAGES, QUOTA, (unsigned long)(peak / PG), (unsigned long)ev);
	show_counters(&s.d, "quota eviction");
	CHECK(peak <= QUOTA * PG, "peak %lu bytes over the quota", (unsigned long)peak);
	CHECK(ev >= PAGES - QUOTA, "%lu evictions", (unsigned long)ev);
	teardown(&s);
}

/* iopfd stopped, the device waits on a page request; the client detaches
 * the PASID: the kernel answers INVALID for the pending group, the device
 * ends its command (no stuck device); then everything is closed. */
static void teardown_pending(void) {
	enum { PAGES = 8 };
	static struct setup s; /* static: main cleans it up after a longjmp */
	memset(&s, 0, sizeof(s));
	setup(&s, PAGES, PAGES * PG, PG, ACC_RW);
	clear_counters(&s.d);
	kill(daemon_pid, SIGSTOP);
	int wst; /* stopped for sure: kill() returns before every thread has */
	CHECK(waitpid(daemon_pid, &wst, WUNTRACED) == daemon_pid && WIFSTOPPED(wst), "iopfd did not stop");
	s.d.regs[R_PASID / 8] = PASID;
	s.d.regs[R_IOVA / 8] = IOVA_BASE;
	s.d.regs[R_LEN / 8] = PG;
	s.d.regs[R_BUFOFF / 8] = 0;
	s.d.regs[R_CMD / 8] = CMD_WRITE;
	uint64_t deadline = now_ns() + 60ull * 1000000000;
	while (reg(&s.d, R_PRQ) == 0 && now_ns() < deadline)
		usleep(1000);
	CHECK(reg(&s.d, R_STATUS) == ST_BUSY && reg(&s.d, R_PRQ) == 1, "the device is not waiting on a page request");
	usleep(100000);
	CHECK(reg(&s.d, R_STATUS) == ST_BUSY, "answered while iopfd is stopped");
	dev_detach(&s.d);
	deadline = now_ns() + 60ull * 1000000000;
	while (reg(&s.d, R_STATUS) == ST_BUSY && now_ns() < deadline)
		usleep(1000);
	uint64_t status = reg(&s.d, R_STATUS), resp = reg(&s.d, R_RESP);
	printf("# teardown: detaching the PASID with a page request pending: device status %s, response %lu\n",
	       st(status), (unsigned long)resp);
	CHECK(status == ST_REFUSED && resp == 1, "after detach the device reads status %s, response %lu", st(status),
	      (unsigned long)resp);
	kill(daemon_pid, SIGCONT);
	/* iopfd may still hold the group it read; the kernel refuses its late
	 * answer, and iopfd counts it. Everything closes without a hang. */
	show_counters(&s.d, "teardown");
	teardown(&s);
}

/* The one-in-flight figures of both paths, for their ratio. */
static double real_fault_us, real_fault_rate;

/* Functional figures (TCG): faults per second and the service time of one
 * fault on the real VT-d path: the device sends one page request at a
 * time and retries when it is answered, the client asleep meanwhile. */
static void figures(void) {
	enum { N = 512 };
	static struct setup s; /* static: main cleans it up after a longjmp */
	memset(&s, 0, sizeof(s));
	setup(&s, N, N * PG, PG, ACC_RW);
	clear_counters(&s.d);
	fill(s.d.buf, N * PG, 0, 21);
	struct dma_result r = dma(&s.d, CMD_WRITE, IOVA_BASE, N * PG, 0, 300);
	DMA_OK(r, "DMA write of 512 pages");
	CHECK(check(s.mem.va, N * PG, 0, 21) < 0, "the data is not in the memfd");
	double secs = (double)r.ns / 1e9;
	uint64_t prq = reg(&s.d, R_PRQ), wait = reg(&s.d, R_WAIT_NS);
	sd_json_variant *st_ = stats(s.v);
	double p50 = sd_json_variant_real(sd_json_variant_by_key(st_, "p50us"));
	uint64_t groups = iopfc_u64(st_, "groups"), success = iopfc_u64(st_, "success");
	uint64_t reads = iopfc_u64(st_, "reads"), writes = iopfc_u64(st_, "writes");
	/* The same pages again, mapped: the cost of the device without faults. */
	r = dma(&s.d, CMD_WRITE, IOVA_BASE, N * PG, 0, 300);
	DMA_OK(r, "DMA write of 512 mapped pages");
	double mapped_secs = (double)r.ns / 1e9;
	real_fault_us = secs * 1e6 / (double)prq;
	real_fault_rate = (double)prq / secs;
	printf("# pri-figures (TCG, functional, client asleep): real VT-d path, one fault in flight: %lu faults in "
	       "%.3f s = %.0f faults/s, %.1f us per fault (the device's own wait per page request %.1f us; the same "
	       "DMA without faults %.1f us per page); iopfd: %lu groups, %lu SUCCESS, in %lu reads, %lu writes, "
	       "service p50 %.1f us\n",
	       (unsigned long)prq, secs, real_fault_rate, real_fault_us, (double)wait / 1e3 / (double)prq,
	       mapped_secs * 1e6 / N, (unsigned long)groups, (unsigned long)success, (unsigned long)reads,
	       (unsigned long)writes, p50);
	CHECK(prq == N, "%lu page requests for %d pages", (unsigned long)prq, N);
	CHECK(success == N && reg(&s.d, R_SUCCESS) == N, "iopfd answered %lu SUCCESS, the device saw %lu",
	      (unsigned long)success, (unsigned long)reg(&s.d, R_SUCCESS));
	teardown(&s);
}

/* The mock device's path in the same boot, one fault in flight at a time:
 * trigger, then sleep in poll() until iopfd has written its answer (the
 * answered eventfd), as the real path's client sleeps while the device
 * waits. Then N faults queued while iopfd is stopped, drained at once.
 * Every page is checked mapped afterwards (MD_CHECK_MAP); the figures are
 * printed, never asserted. */
static void figures_mock(void) {
	enum { N = 512 };
	CHECK(answered_efd >= 0, "no answered eventfd");
	int iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	CHECK(iommufd >= 0, "/dev/iommu: %m");
	struct iommu_ioas_alloc a = {.size = sizeof(a)};
	CHECK(ioctl(iommufd, IOMMU_IOAS_ALLOC, &a) == 0, "IOAS_ALLOC: %m");
	struct iommu_fault_alloc f = {.size = sizeof(f)};
	CHECK(ioctl(iommufd, IOMMU_FAULT_QUEUE_ALLOC, &f) == 0, "FAULT_QUEUE_ALLOC: %m");
	struct iommu_test_cmd md = {.size = sizeof(md), .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = a.out_ioas_id};
	CHECK(ioctl(iommufd, IOMMU_TEST_CMD, &md) == 0, "MOCK_DOMAIN: %m");
	struct iommu_hwpt_alloc h = {.size = sizeof(h), .flags = IOMMU_HWPT_FAULT_ID_VALID,
	                             .dev_id = md.mock_domain.out_idev_id, .pt_id = a.out_ioas_id,
	                             .fault_id = f.out_fault_id};
	CHECK(ioctl(iommufd, IOMMU_HWPT_ALLOC, &h) == 0, "HWPT_ALLOC: %m");
	struct iommu_test_cmd rp = {.size = sizeof(rp), .op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
	                            .id = md.mock_domain.out_stdev_id,
	                            .mock_domain_replace.pt_id = h.out_hwpt_id};
	CHECK(ioctl(iommufd, IOMMU_TEST_CMD, &rp) == 0, "MOCK_DOMAIN_REPLACE: %m");
	sd_varlink *v = daemon_start();
	struct mem m = memfd(2 * N * PG);
	uint64_t space = space_of(v, iommufd, a.out_ioas_id, 2 * N * PG, PG);
	uint32_t q;
	OK(iopfc_add_region(v, space, MOCK_APERTURE_START, 2 * N * PG, m.fd, 0, ACC_RW, NULL, &err));
	OK(iopfc_register_queue(v, (int)f.out_fault_fd, "iommufd", "mock", &q, &err));
	OK(iopfc_bind(v, q, md.mock_domain.out_idev_id, IOPFC_PASID_NONE, space, &err));
	answered_take();
	/* One at a time: trigger, then asleep until it is answered. */
	uint64_t answered = 0, t0 = now_ns();
	for (uint64_t p = 0; p < N; p++) {
		struct iommu_test_cmd t = {.size = sizeof(t), .op = IOMMU_TEST_OP_TRIGGER_IOPF,
		                           .trigger_iopf = {.dev_id = md.mock_domain.out_idev_id, .grpid = 1,
		                                            .perm = IOMMU_PGFAULT_PERM_READ,
		                                            .addr = MOCK_APERTURE_START + p * PG}};
		CHECK(ioctl(iommufd, IOMMU_TEST_CMD, &t) == 0, "TRIGGER_IOPF: %m");
		struct pollfd pf = {.fd = answered_efd, .events = POLLIN};
		int pr = poll(&pf, 1, 60000);
		CHECK(pr == 1, "mock fault %lu not answered within 60 s", (unsigned long)p);
		answered += answered_take();
	}
	double serial = (double)(now_ns() - t0) / 1e9;
	sd_json_variant *st_ = stats(v);
	double p50 = sd_json_variant_real(sd_json_variant_by_key(st_, "p50us"));
	uint64_t success = iopfc_u64(st_, "success"), reads = iopfc_u64(st_, "reads");
	CHECK(answered == N && success == N, "%d faults one at a time: %lu answers written, %lu SUCCESS", N,
	      (unsigned long)answered, (unsigned long)success);
	struct iommu_test_cmd c = {.size = sizeof(c), .op = IOMMU_TEST_OP_MD_CHECK_MAP, .id = h.out_hwpt_id,
	                           .check_map = {.iova = MOCK_APERTURE_START, .length = N * PG, .uptr = (uintptr_t)m.va}};
	CHECK(ioctl(iommufd, IOMMU_TEST_CMD, &c) == 0, "MD_CHECK_MAP of the %d pages answered: %m", N);
	/* Queued: N faults triggered while iopfd is stopped (for sure: kill()
	 * returns before every thread has stopped), then served. */
	kill(daemon_pid, SIGSTOP);
	int wst;
	CHECK(waitpid(daemon_pid, &wst, WUNTRACED) == daemon_pid && WIFSTOPPED(wst), "iopfd did not stop");
	for (uint64_t p = N; p < 2 * N; p++) {
		struct iommu_test_cmd t = {.size = sizeof(t), .op = IOMMU_TEST_OP_TRIGGER_IOPF,
		                           .trigger_iopf = {.dev_id = md.mock_domain.out_idev_id, .grpid = 1,
		                                            .perm = IOMMU_PGFAULT_PERM_READ,
		                                            .addr = MOCK_APERTURE_START + p * PG}};
		CHECK(ioctl(iommufd, IOMMU_TEST_CMD, &t) == 0, "TRIGGER_IOPF: %m");
	}
	answered = 0; /* nothing was answered since the last take: iopfd was stopped */
	t0 = now_ns();
	kill(daemon_pid, SIGCONT);
	while (answered < N) {
		struct pollfd pf = {.fd = answered_efd, .events = POLLIN};
		CHECK(poll(&pf, 1, 60000) == 1, "queued mock faults: %lu of %d answered after 60 s", (unsigned long)answered,
		      N);
		answered += answered_take();
	}
	double queued = (double)(now_ns() - t0) / 1e9;
	st_ = stats(v);
	CHECK(iopfc_u64(st_, "success") == 2 * N, "%lu SUCCESS for %d faults", (unsigned long)iopfc_u64(st_, "success"),
	      2 * N);
	c.check_map.iova = MOCK_APERTURE_START + N * PG;
	c.check_map.uptr = (uintptr_t)(m.va + N * PG);
	CHECK(ioctl(iommufd, IOMMU_TEST_CMD, &c) == 0, "MD_CHECK_MAP of the %d queued pages: %m", N);
	double mock_us = serial * 1e6 / N;
	printf("# mock-figures (TCG, functional, same boot, client asleep): one fault in flight: %d faults in %.3f s = "
	       "%.0f faults/s, %.1f us per fault (trigger to answer written); iopfd: %lu reads, service p50 %.1f us; "
	       "%d queued: %.0f faults/s, %.1f us per fault\n",
	       N, serial, N / serial, mock_us, (unsigned long)reads, p50, N, N / queued, queued * 1e6 / N);
	if (real_fault_us > 0)
		printf("# real-vs-mock (same boot, one fault in flight): real VT-d %.0f faults/s, %.1f us per fault; mock "
		       "%.0f faults/s, %.1f us per fault; real/mock per fault %.2f\n",
		       real_fault_rate, real_fault_us, N / serial, mock_us, real_fault_us / mock_us);
	sd_varlink_unref(v);
	daemon_stop();
	mem_free(&m);
	close((int)f.out_fault_fd);
	close(iommufd);
}

/* --- under systemd ------------------------------------------------------------------ */

/* iopfd.service killed with SIGKILL three times while the device writes
 * page after page, each a new fault: a persistent queue and space (their fds
 * in systemd's fd store) carry the faults across; every DMA command ends
 * DONE, none waits for ever (the device gives up after 120 s of virtual
 * time and would say so), and every byte lands. */
static void kill9_under_load(void) {
	enum { PAGES = 384, KILLS = 3 };
	static struct setup s; /* static: main cleans it up after a longjmp */
	memset(&s, 0, sizeof(s));
	current = &s;
	dev_open(&s.d);
	OK(iopfc_connect(SYSTEM_SOCKET, &s.v));
	s.mem = memfd(PAGES * PG);
	sd_json_variant *p = NULL, *rep;
	int fd = s.d.iommufd;
	OK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_STRING("backend", "iommufd"),
	                  SD_JSON_BUILD_PAIR_UNSIGNED("quota", PAGES * PG), SD_JSON_BUILD_PAIR_UNSIGNED("windowMin", PG),
	                  SD_JSON_BUILD_PAIR_UNSIGNED("windowMax", PG), SD_JSON_BUILD_PAIR_INTEGER("iommufdIndex", 0),
	                  SD_JSON_BUILD_PAIR_UNSIGNED("ioasId", s.d.ioas), SD_JSON_BUILD_PAIR_STRING("name", "pri-space"),
	                  SD_JSON_BUILD_PAIR_STRING("faultAround", "fixed"),
	                  SD_JSON_BUILD_PAIR_BOOLEAN("persistent", true)) < 0);
	OK(iopfc_call(s.v, "io.iopfd.CreateSpace", p, &fd, 1, &rep, &err));
	sd_json_variant_unref(p);
	s.space = iopfc_u64(rep, "space");
	OK(iopfc_add_region(s.v, s.space, IOVA_BASE, PAGES * PG, s.mem.fd, 0, ACC_RW, NULL, &err));
	p = NULL;
	OK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_INTEGER("fdIndex", 0), SD_JSON_BUILD_PAIR_STRING("name", "pri-queue"),
	                  SD_JSON_BUILD_PAIR_BOOLEAN("persistent", true)) < 0);
	OK(iopfc_call(s.v, "io.iopfd.RegisterQueue", p, &s.d.fault_fd, 1, &rep, &err));
	sd_json_variant_unref(p);
	s.queue = (uint32_t)iopfc_u64(rep, "queue");
	OK(iopfc_bind(s.v, s.queue, s.d.devid, PASID, s.space, &err));
	sd_varlink_unref(s.v);
	s.v = NULL;
	clear_counters(&s.d);
	/* A bound, not a figure: a restart took 4 s on a loaded machine. */
	s.d.regs[R_TIMEOUT / 8] = 120ull * 1000000000;
	fill(s.d.buf, PAGES * PG, 0, 31);

	/* A child kills iopfd while the parent drives the device, when told
	 * (at a quarter, half and three quarters of the pages: by progress,
	 * not by the clock, so that the kills land under load however fast
	 * the machine is). Each time it kills a running iopfd that is not the
	 * one it killed before (waiting for the restart, however long a loaded
	 * machine takes), so that every kill is one restart. */
	int go[2];
	CHECK(pipe(go) == 0, "pipe: %m");
	fflush(NULL);
	pid_t killer = fork();
	if (killer == 0) {
		close(go[1]);
		unsigned long last = 0;
		for (int k = 0; k < KILLS; k++) {
			char c;
			if (read(go[0], &c, 1) != 1)
				_exit(1);
			unsigned long pid = 0;
			for (int i = 0; i < 1200; i++) {
				pid = main_pid();
				if (pid && pid != last && !strcmp(sh("systemctl is-active iopfd.service"), "active"))
					break;
				pid = 0;
				usleep(50000);
			}
			if (!pid) {
				printf("# kill -9 under load: no running iopfd to kill after 60 s\n");
				_exit(1);
			}
			kill((pid_t)pid, SIGKILL);
			last = pid;
			printf("# kill -9 under load: killed iopfd (pid %lu)\n", pid);
			fflush(stdout);
		}
		_exit(0);
	}
	close(go[0]);
	unsigned long slow = 0;
	uint64_t worst = 0;
	for (uint64_t pg = 0; pg < PAGES; pg++) {
		if (pg && pg % (PAGES / (KILLS + 1)) == 0 && pg / (PAGES / (KILLS + 1)) <= KILLS)
			(void)!write(go[1], "k", 1);
		struct dma_result r = dma(&s.d, CMD_WRITE, IOVA_BASE + pg * PG, PG, pg * PG, 180);
		if (r.ns > worst)
			worst = r.ns;
		slow += r.ns > 500000000ull;
		if (r.status != ST_DONE) {
			kill(killer, SIGKILL);
			waitpid(killer, NULL, 0);
		}
		DMA_OK(r, "a DMA write while iopfd is being killed");
	}
	close(go[1]);
	int ks;
	waitpid(killer, &ks, 0);
	CHECK(WIFEXITED(ks) && WEXITSTATUS(ks) == 0, "the killer did not kill %d times", KILLS);
	long bad = check(s.mem.va, PAGES * PG, 0, 31);
	sd_varlink *v = await_service(0);
	sd_json_variant *st_ = stats(v);
	unsigned long restarts = strtoul(sh("systemctl show -p NRestarts --value iopfd.service"), NULL, 10);
	printf("# kill -9 under load: %d pages written, each a fault, across %d kills (%lu restarts): every command "
	       "DONE, %lu took over 0.5 s (worst %.2f s); this iopfd: %lu restored objects, %lu recovered groups, %lu "
	       "SUCCESS, %lu write rejects\n",
	       PAGES, KILLS, restarts, slow, (double)worst / 1e9, (unsigned long)iopfc_u64(st_, "restoredObjects"),
	       (unsigned long)iopfc_u64(st_, "recoveredGroups"), (unsigned long)iopfc_u64(st_, "success"),
	       (unsigned long)iopfc_u64(st_, "writeRejects"));
	show_counters(&s.d, "kill -9 under load");
	CHECK(bad < 0, "byte %ld (page %ld) is not what the device wrote", bad, bad / (long)PG);
	CHECK(reg(&s.d, R_PRQ) >= PAGES, "%lu page requests for %d pages", (unsigned long)reg(&s.d, R_PRQ), PAGES);
	CHECK(reg(&s.d, R_INVALID) == 0 && reg(&s.d, R_FAILURE) == 0, "the device was refused %lu times",
	      (unsigned long)(reg(&s.d, R_INVALID) + reg(&s.d, R_FAILURE)));
	CHECK(restarts >= KILLS, "iopfd restarted %lu times for %d kills", restarts, KILLS);
	/* Tear down: the queue and the space go, then the device. */
	OK(iopfc_unregister_queue(v, s.queue, &err));
	OK(iopfc_destroy_space(v, s.space, &err));
	sd_varlink_unref(v);
	current = NULL;
	dev_detach(&s.d);
	dev_close(&s.d);
	mem_free(&s.mem);
}

struct scenario {
	const char *name;
	void (*fn)(void);
};

static const struct scenario scenarios[] = {
	{"pri_demand_mapping", demand_mapping},
	{"pri_refusal", refusal},
	{"pri_quota_eviction_refault", quota_eviction},
	{"pri_teardown_pending", teardown_pending},
	{"pri_figures", figures},
	{"mock_figures_same_boot", figures_mock},
};

static const struct scenario systemd_scenarios[] = {
	{"pri_kill9_under_load", kill9_under_load},
};

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: iopfd-vmtest-pri IOPFD_BINARY [SCENARIO...]\n");
		return 2;
	}
	iopfd_bin = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	int failed = 0, ran = 0;
	const struct scenario *list = scenarios;
	size_t n = sizeof(scenarios) / sizeof(scenarios[0]);
	if (!strcmp(argv[1], "--systemd")) {
		list = systemd_scenarios;
		n = sizeof(systemd_scenarios) / sizeof(systemd_scenarios[0]);
	} else {
		answered_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (answered_efd < 0) {
			fprintf(stderr, "eventfd: %m\n");
			return 1;
		}
	}
	printf("TAP version 13\n");
	for (size_t i = 0; i < n; i++) {
		bool wanted = argc == 2;
		for (int a = 2; a < argc; a++)
			wanted |= !strcmp(argv[a], list[i].name);
		if (!wanted)
			continue;
		uint64_t t0 = now_ns();
		if (setjmp(fail_jmp) == 0) {
			list[i].fn();
			printf("ok %d - %s (%.1f s)\n", ++ran, list[i].name, (double)(now_ns() - t0) / 1e9);
		} else {
			printf("not ok %d - %s # %s\n", ++ran, list[i].name, fail_msg);
			failed++;
			if (current && current->d.regs)
				show_counters(&current->d, "at the failure");
			if (current && current->v) {
				/* What iopfd saw: did the fault reach the queue? */
				sd_json_variant *st_ = NULL;
				const char *e = NULL;
				if (iopfc_statistics(current->v, &st_, &e) == 0) {
					printf("# at the failure: iopfd statistics: ");
					fflush(stdout);
					sd_json_variant_dump(st_, SD_JSON_FORMAT_NEWLINE, stdout, NULL);
				}
			}
			daemon_stop();
			if (current) {
				/* Closing the fds detaches and unbinds everything. */
				struct setup *s = current;
				current = NULL;
				if (s->v)
					sd_varlink_unref(s->v);
				dev_close(&s->d);
				mem_free(&s->mem);
			}
		}
	}
	printf("1..%d\n", ran);
	return failed ? 1 : 0;
}
