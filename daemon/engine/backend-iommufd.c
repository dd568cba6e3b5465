/* SPDX-License-Identifier: MIT */
/*
 * The iommufd backend: real pinning and real IOMMU page tables. A window is
 * mapped into the client's IOAS at its IOVA with IOMMU_IOAS_MAP_FILE (6.13+:
 * the kernel pins the memfd's pages directly) or, where the running kernel
 * lacks it, with IOMMU_IOAS_MAP of the daemon's own shared mapping of the
 * memfd. Eviction is IOMMU_IOAS_UNMAP of exactly what one map call mapped:
 * iommufd cannot unmap part of an area.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "iopf_abi.h"
#include "backend.h"
#include "shared/cleanup.h"
#include "space-internal.h"

struct iommufd_backend {
	int fd;           /* the client's iommufd, passed to us */
	uint32_t ioas_id;
	int map_file;     /* 1 until the kernel says ENOTTY to MAP_FILE, then 0 */
};

static int iommufd_init(struct iopf_space *s, int fd) {
	_cleanup_close_ int iommufd = fd;
	if (iommufd < 0)
		return -EBADF;
	/* Asking for the IOAS's ranges proves both that the fd is an iommufd
	 * (ENOTTY otherwise) and that the IOAS exists (ENOENT). */
	struct iommu_ioas_iova_ranges q = {.size = sizeof(q), .ioas_id = s->cfg.ioas_id};
	if (ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &q) < 0 && errno != EMSGSIZE)
		return errno == ENOTTY || errno == EINVAL ? -ENOTTY : -errno;

	struct iommufd_backend *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = TAKE_FD(iommufd);
	b->ioas_id = s->cfg.ioas_id;
	b->map_file = 1;
	s->backend = b;
	return 0;
}

/* The daemon's own shared mapping of the region: only needed where
 * MAP_FILE is missing, but cheap (nothing is populated until a window is
 * mapped). The mlock backend keeps exactly this mapping. */
static int iommufd_attach(struct iopf_space *s, struct iopf_region *r) {
	return iopf_backend_mlock.attach_region(s, r);
}

static void iommufd_detach(struct iopf_space *s, struct iopf_region *r) {
	iopf_backend_mlock.detach_region(s, r);
}

static uint32_t map_flags(const struct iopf_region *r) {
	uint32_t f = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE;
	if (r->perm & IOPF_PERM_WRITE)
		f |= IOMMU_IOAS_MAP_WRITEABLE;
	return f;
}

static int iommufd_map(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	struct iommufd_backend *b = s->backend;
	if (__atomic_load_n(&b->map_file, __ATOMIC_RELAXED)) {
		struct iommu_ioas_map_file m = {
			.size = sizeof(m),
			.flags = map_flags(r),
			.ioas_id = b->ioas_id,
			.fd = r->memfd,
			.start = r->offset + off,
			.length = len,
			.iova = r->iova + off,
		};
		if (ioctl(b->fd, IOMMU_IOAS_MAP_FILE, &m) == 0)
			return 0;
		if (errno != ENOTTY)
			return -errno;
		__atomic_store_n(&b->map_file, 0, __ATOMIC_RELAXED);
	}
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = map_flags(r),
		.ioas_id = b->ioas_id,
		.user_va = (uintptr_t)r->backend_data + off,
		.length = len,
		.iova = r->iova + off,
	};
	if (ioctl(b->fd, IOMMU_IOAS_MAP, &m) < 0)
		return -errno;
	return 0;
}

static int iommufd_unmap(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	struct iommufd_backend *b = s->backend;
	struct iommu_ioas_unmap u = {
		.size = sizeof(u),
		.ioas_id = b->ioas_id,
		.iova = r->iova + off,
		.length = len,
	};
	if (ioctl(b->fd, IOMMU_IOAS_UNMAP, &u) < 0)
		return -errno;
	return 0;
}

static int iommufd_fd(const struct iopf_space *s) {
	const struct iommufd_backend *b = s->backend;
	return b ? b->fd : -1;
}

static void iommufd_destroy(struct iopf_space *s) {
	struct iommufd_backend *b = s->backend;
	if (!b)
		return;
	close(b->fd);
	free(b);
	s->backend = NULL;
}

const struct iopf_backend_ops iopf_backend_iommufd = {
	.pins = true,
	.needs_memfd = true,
	.init = iommufd_init,
	.attach_region = iommufd_attach,
	.detach_region = iommufd_detach,
	.map = iommufd_map,
	.unmap = iommufd_unmap,
	.destroy = iommufd_destroy,
	.fd = iommufd_fd,
	/* IOMMU_IOAS_UNMAP takes every area wholly inside the range. */
	.unmap_any = iommufd_unmap,
};
