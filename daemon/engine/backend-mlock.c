/* SPDX-License-Identifier: MIT */
/*
 * The mlock backend: real pinning without an IOMMU, for relayed devices whose
 * memory is touched by a process on this host. Each region's memfd is mapped
 * into the daemon once (shared, so the pages are the client's pages); a
 * window is mlock()ed, which faults every page of it in and keeps it there,
 * and munlock()ed on eviction. mlock() populates by itself: faulting the
 * window in first (MADV_POPULATE_*) would do it twice.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "space-internal.h"

static int mlock_init(struct iopf_space *s, int fd) {
	if (fd >= 0)
		close(fd);
	return fd >= 0 ? -EINVAL : 0;
}

static int mlock_attach(struct iopf_space *s, struct iopf_region *r) {
	int prot = PROT_READ | ((r->perm & IOPF_PERM_WRITE) ? PROT_WRITE : 0);
	void *base = mmap(NULL, r->length, prot, MAP_SHARED, r->memfd, (off_t)r->offset);
	if (base == MAP_FAILED)
		return -errno;
	r->backend_data = base;
	return 0;
}

static void mlock_detach(struct iopf_space *s, struct iopf_region *r) {
	if (r->backend_data)
		munmap(r->backend_data, r->length);
	r->backend_data = NULL;
}

static int mlock_map(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	/* The region lies within the sealed memfd (checked when it was added),
	 * so every page exists; a failure to populate comes back as ENOMEM. */
	if (mlock((char *)r->backend_data + off, len) < 0)
		return -errno;
	return 0;
}

static int mlock_unmap(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	if (munlock((char *)r->backend_data + off, len) < 0)
		return -errno;
	return 0;
}

static void mlock_destroy(struct iopf_space *s) {
}

const struct iopf_backend_ops iopf_backend_mlock = {
	.pins = true,
	.needs_memfd = true,
	.init = mlock_init,
	.attach_region = mlock_attach,
	.detach_region = mlock_detach,
	.map = mlock_map,
	.unmap = mlock_unmap,
	.destroy = mlock_destroy,
};
