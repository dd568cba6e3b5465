/* SPDX-License-Identifier: MIT */
/*
 * iopfd-example: a device's I/O page faults handed to iopfd, as a VMM or a
 * userspace driver does it. Copy what you need.
 *
 *   1. Open /dev/iommu: the iommufd that owns everything below.
 *   2. Allocate an IOAS (the device's I/O address space) and a fault queue.
 *   3. Bind the device to the iommufd: a VFIO device cdev
 *      (VFIO_DEVICE_BIND_IOMMUFD), or the kernel's mock device
 *      (CONFIG_IOMMUFD_TEST, for trying this without hardware).
 *   4. Allocate a HWPT on the IOAS that reports its faults to the queue, and
 *      attach the device to it. Linux 6.13 and later take a fault queue on
 *      such a plain paging HWPT; 6.11 and 6.12 only on a nested one.
 *   5. Make the memory the device may reach: a memfd sealed against
 *      shrinking (a VMM's guest RAM), mapped here as the VMM's own view.
 *   6. Hand it to iopfd through libiopfd: an address space on the IOAS
 *      (backend iommufd, the iommufd passed along), the memfd as a region,
 *      the fault queue, and a binding of the device to the space.
 *
 * From then on iopfd maps pages into the IOAS as the device faults on them,
 * never pinning more than the quota, and answers every fault. Nothing is
 * mapped up front. The objects belong to this connection: when the program
 * exits, iopfd takes the queue back (answering what it read) and unmaps
 * everything. A VMM that must survive its own restarts or iopfd's makes
 * them persistent ("persistent": true, through iopfc_call(); io.iopfd(7)).
 *
 *   iopfd-example --vfio /dev/vfio/devices/vfio0 [--iova ADDR] [--size BYTES] [--quota BYTES]
 *       serve the device's faults until interrupted
 *   iopfd-example --mock [--faults N]
 *       make the mock device fault on N pages, then check in the IOMMU's
 *       page table that each is mapped to its memfd page
 *
 * Build against the installed library (package libiopfd-dev):
 *   cc -o iopfd-example iopfd-example.c $(pkg-config --cflags --libs iopfd)
 * With --mock, also -DEXAMPLE_MOCK and the mock's header from the kernel
 * tree (drivers/iommu/iommufd/iommufd_test.h) with that kernel's uapi
 * headers (make headers_install): see examples/Makefile.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create, and sd-varlink's headers */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include <iopfd/client.h>

#ifdef EXAMPLE_MOCK
#include "iommufd_test.h"
#endif

#define PAGE 4096ull
#define ACCESS_RW 3u /* iopfc_add_region(): read 1, write 2 */

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("iopfd-example: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* A libiopfd call that failed: the daemon's error name, or the errno. */
static void check(int r, const char *what, const char *error) {
	if (r == -EREMOTEIO)
		die("%s: iopfd refused: %s", what, error ? error : "(no error name)");
	if (r < 0)
		die("%s: %s", what, strerror(-r));
}

/* --- the iommufd side ------------------------------------------------------------------ */

struct device {
	int fd;          /* the VFIO cdev (-1 for the mock) */
	uint32_t dev_id; /* the device's id in the iommufd: dev_id in the fault records */
	uint32_t stdev;  /* the mock's selftest object */
};

static uint32_t ioas_alloc(int iommufd) {
	struct iommu_ioas_alloc a = {.size = sizeof(a)};
	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &a))
		die("IOMMU_IOAS_ALLOC: %m");
	return a.out_ioas_id;
}

static int fault_queue_alloc(int iommufd, uint32_t *fault_id) {
	struct iommu_fault_alloc f = {.size = sizeof(f)};
	if (ioctl(iommufd, IOMMU_FAULT_QUEUE_ALLOC, &f))
		die("IOMMU_FAULT_QUEUE_ALLOC: %m (Linux 6.11 or later)");
	*fault_id = f.out_fault_id;
	return (int)f.out_fault_fd;
}

/* A paging HWPT on the IOAS whose faults go to the queue. */
static uint32_t fault_hwpt_alloc(int iommufd, uint32_t dev_id, uint32_t ioas, uint32_t fault_id) {
	struct iommu_hwpt_alloc h = {
		.size = sizeof(h),
		.flags = IOMMU_HWPT_FAULT_ID_VALID,
		.dev_id = dev_id,
		.pt_id = ioas,
		.fault_id = fault_id,
	};
	if (ioctl(iommufd, IOMMU_HWPT_ALLOC, &h))
		die("IOMMU_HWPT_ALLOC with a fault queue: %m%s",
		    errno == EOPNOTSUPP ? " (before Linux 6.13 only a nested HWPT takes a fault queue)" : "");
	return h.out_hwpt_id;
}

static void vfio_bind(struct device *d, const char *path, int iommufd) {
	d->fd = open(path, O_RDWR | O_CLOEXEC);
	if (d->fd < 0)
		die("%s: %m", path);
	struct vfio_device_bind_iommufd bind = {.argsz = sizeof(bind), .iommufd = iommufd};
	if (ioctl(d->fd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		die("VFIO_DEVICE_BIND_IOMMUFD: %m");
	d->dev_id = bind.out_devid;
}

static void vfio_attach(const struct device *d, uint32_t hwpt) {
	struct vfio_device_attach_iommufd_pt at = {.argsz = sizeof(at), .pt_id = hwpt};
	if (ioctl(d->fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at))
		die("VFIO_DEVICE_ATTACH_IOMMUFD_PT: %m");
}

#ifdef EXAMPLE_MOCK
static int test_cmd(int iommufd, struct iommu_test_cmd *c) {
	c->size = sizeof(*c);
	return ioctl(iommufd, IOMMU_TEST_CMD, c);
}

/* The mock device comes into being attached to a mock domain of the IOAS. */
static void mock_bind(struct device *d, int iommufd, uint32_t ioas) {
	struct iommu_test_cmd md = {.op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas};
	if (test_cmd(iommufd, &md))
		die("IOMMU_TEST_OP_MOCK_DOMAIN: %m (a kernel with CONFIG_IOMMUFD_TEST?)");
	d->fd = -1;
	d->stdev = md.mock_domain.out_stdev_id;
	d->dev_id = md.mock_domain.out_idev_id;
}

static void mock_attach(const struct device *d, int iommufd, uint32_t hwpt) {
	struct iommu_test_cmd rp = {.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, .id = d->stdev,
	                            .mock_domain_replace.pt_id = hwpt};
	if (test_cmd(iommufd, &rp))
		die("IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: %m");
}

/* What a device does on its own: touch an address that is not mapped. */
static void mock_fault(const struct device *d, int iommufd, uint64_t iova) {
	struct iommu_test_cmd t = {
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = {.dev_id = d->dev_id,
		                 .grpid = 1,
		                 .perm = IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE,
		                 .addr = iova},
	};
	if (test_cmd(iommufd, &t))
		die("IOMMU_TEST_OP_TRIGGER_IOPF: %m");
}

/* Whether the IOMMU's page table maps [iova, iova + len) to the pages
 * behind va. */
static int mock_check_map(int iommufd, uint32_t hwpt, uint64_t iova, uint64_t len, const void *va) {
	struct iommu_test_cmd c = {.op = IOMMU_TEST_OP_MD_CHECK_MAP, .id = hwpt,
	                           .check_map = {.iova = iova, .length = len, .uptr = (uintptr_t)va}};
	return test_cmd(iommufd, &c) ? -errno : 0;
}
#endif

/* --- memory ----------------------------------------------------------------------------- */

/* iopfd takes memory only as memfds sealed against shrinking: a truncation
 * could otherwise pull pages out from under a mapping. */
static int memory_create(uint64_t size, uint8_t **va) {
	int fd = memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK))
		die("memfd: %m");
	*va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*va == MAP_FAILED)
		die("mmap: %m");
	return fd;
}

/* --- iopfd -------------------------------------------------------------------------------- */

struct served {
	sd_varlink *v;
	uint64_t space;
	uint32_t queue;
};

/* Step 6: everything iopfd needs, passed with the calls. libiopfd sends
 * duplicates of the fds; ours stay open and ours to close. */
static struct served hand_to_iopfd(const char *sock_path, int iommufd, uint32_t ioas, int fault_fd,
                                   const struct device *d, int memfd, uint64_t iova, uint64_t size,
                                   uint64_t quota) {
	struct served s;
	const char *error = NULL;
	check(iopfc_connect(sock_path, &s.v), sock_path, NULL);
	/* Pages are mapped one at a time (window 0: the default); a wider
	 * window maps around each fault, up to windowMax. */
	check(iopfc_create_space(s.v, "iommufd", quota, 0, 0, iommufd, ioas, &s.space, &error), "CreateSpace", error);
	check(iopfc_add_region(s.v, s.space, iova, size, memfd, 0, ACCESS_RW, NULL, &error), "AddRegion", error);
	check(iopfc_register_queue(s.v, fault_fd, "iommufd", "iopfd-example", &s.queue, &error), "RegisterQueue",
	      error);
	check(iopfc_bind(s.v, s.queue, d->dev_id, IOPFC_PASID_NONE, s.space, &error), "Bind", error);
	return s;
}

/* Fault groups iopfd has answered on our queue. */
static uint64_t groups_answered(const struct served *s) {
	sd_json_variant *reply;
	const char *error = NULL;
	check(iopfc_call(s->v, "io.iopfd.ListQueues", NULL, NULL, 0, &reply, &error), "ListQueues", error);
	sd_json_variant *queues = sd_json_variant_by_key(reply, "queues");
	for (size_t i = 0; i < sd_json_variant_elements(queues); i++) {
		sd_json_variant *q = sd_json_variant_by_index(queues, i);
		if (iopfc_u64(q, "id") == s->queue)
			return iopfc_u64(q, "groups");
	}
	die("our queue is gone");
}

/* --- main ----------------------------------------------------------------------------------- */

static int usage(FILE *f, int status) {
	fprintf(f, "usage: iopfd-example --vfio /dev/vfio/devices/vfioN [--iova ADDR] [--size BYTES] [--quota BYTES]\n"
	           "       iopfd-example --mock [--faults N]\n"
	           "       (iopfd's socket: --socket PATH, else $IOPFD_SOCKET, else " IOPFD_SOCKET_DEFAULT ")\n");
	return status;
}

static uint64_t number(const char *s) {
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		die("not a number: %s", s);
	return v;
}

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{"vfio", required_argument, NULL, 'v'}, {"mock", no_argument, NULL, 'm'},
		{"iova", required_argument, NULL, 'i'}, {"size", required_argument, NULL, 's'},
		{"quota", required_argument, NULL, 'q'}, {"faults", required_argument, NULL, 'f'},
		{"socket", required_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'}, {},
	};
	const char *vfio = NULL, *sock_path = getenv("IOPFD_SOCKET");
	int mock = 0;
	uint64_t iova = 0, size = 64ull << 20, quota = 0, faults = 256;
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (o) {
		case 'v': vfio = optarg; break;
		case 'm': mock = 1; break;
		case 'i': iova = number(optarg); break;
		case 's': size = number(optarg); break;
		case 'q': quota = number(optarg); break;
		case 'f': faults = number(optarg); break;
		case 'S': sock_path = optarg; break;
		case 'h': return usage(stdout, 0);
		default: return usage(stderr, 2);
		}
	}
	if (!!vfio == mock || optind < argc)
		return usage(stderr, 2);
#ifndef EXAMPLE_MOCK
	if (mock)
		die("built without the mock device (-DEXAMPLE_MOCK)");
	(void)faults;
#else
	if (mock) {
		iova = MOCK_APERTURE_START;
		size = faults * PAGE;
	}
#endif
	if (!sock_path)
		sock_path = IOPFD_SOCKET_DEFAULT;
	if (!quota)
		quota = size;
	if (!size || size % PAGE || iova % PAGE)
		die("--iova and --size must be multiples of %llu", PAGE);

	/* Steps 1-4. */
	int iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (iommufd < 0)
		die("/dev/iommu: %m");
	uint32_t ioas = ioas_alloc(iommufd), fault_id;
	int fault_fd = fault_queue_alloc(iommufd, &fault_id);
	struct device dev = {.fd = -1};
#ifdef EXAMPLE_MOCK
	if (mock)
		mock_bind(&dev, iommufd, ioas);
	else
#endif
		vfio_bind(&dev, vfio, iommufd);
	uint32_t hwpt = fault_hwpt_alloc(iommufd, dev.dev_id, ioas, fault_id);
#ifdef EXAMPLE_MOCK
	if (mock)
		mock_attach(&dev, iommufd, hwpt);
	else
#endif
		vfio_attach(&dev, hwpt);

	/* Step 5. */
	uint8_t *va;
	int memfd = memory_create(size, &va);

	/* Step 6. */
	struct served s = hand_to_iopfd(sock_path, iommufd, ioas, fault_fd, &dev, memfd, iova, size, quota);
	printf("iopfd-example: device %" PRIu32 " on IOAS %" PRIu32 " (HWPT %" PRIu32 "): iopfd queue %" PRIu32
	       ", space %" PRIu64 ", %" PRIu64 " bytes at 0x%" PRIx64 ", quota %" PRIu64 "\n",
	       dev.dev_id, ioas, hwpt, s.queue, s.space, size, iova, quota);
	fflush(stdout);

	int status = 0;
#ifdef EXAMPLE_MOCK
	if (mock) {
		/* The device touches every page once; each fault is a group. */
		for (uint64_t p = 0; p < faults; p++) {
			va[p * PAGE] = (uint8_t)p; /* what the device must see there */
			mock_fault(&dev, iommufd, iova + p * PAGE);
		}
		struct timespec wait = {0, 10 * 1000 * 1000};
		uint64_t answered = 0;
		for (int i = 0; i < 1000 && (answered = groups_answered(&s)) < faults; i++)
			nanosleep(&wait, NULL);
		uint64_t mapped = 0;
		for (uint64_t p = 0; p < faults; p++)
			mapped += mock_check_map(iommufd, hwpt, iova + p * PAGE, PAGE, va + p * PAGE) == 0;
		printf("iopfd-example: %" PRIu64 " of %" PRIu64 " faults answered by iopfd, %" PRIu64
		       " pages mapped into the IOAS to their memfd pages\n",
		       answered, faults, mapped);
		status = answered == faults && mapped == faults ? 0 : 1;
	} else
#endif
	{
		/* Serve until told to stop; iopfd does the work. */
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigprocmask(SIG_BLOCK, &set, NULL);
		printf("iopfd-example: serving the device's faults; interrupt to stop\n");
		fflush(stdout);
		int sig;
		sigwait(&set, &sig);
		printf("iopfd-example: %" PRIu64 " fault groups answered\n", groups_answered(&s));
	}

	/* Closing the connection takes everything back from iopfd. */
	sd_varlink_flush_close_unref(s.v);
	munmap(va, size);
	close(memfd);
	close(fault_fd);
	if (dev.fd >= 0)
		close(dev.fd);
	close(iommufd);
	return status;
}
