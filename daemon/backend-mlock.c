/* SPDX-License-Identifier: MIT */
/*
 * The mlock backend: real pinning without an IOMMU, for relayed devices whose
 * memory is touched by a process on this host. Each region's memfd is mapped
 * into the daemon once (shared, so the pages are the client's pages); a
 * window is populated with MADV_POPULATE_{READ,WRITE} and mlock()ed, and
 * munlock()ed on eviction.
 */
#include <errno.h>
#include <sys/mman.h>

#include "iopfd/backend.h"
#include "iopfd/space.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

static int mlock_init(struct iopf_space *s) {
	return 0;
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
	char *p = (char *)r->backend_data + off;
	/* Populate first so that mlock finds the pages present and a missing
	 * page shows up as an error here rather than as SIGBUS later. */
	int advice = (r->perm & IOPF_PERM_WRITE) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
	if (madvise(p, len, advice) < 0)
		return -errno;
	if (mlock(p, len) < 0)
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
	.name = "mlock",
	.init = mlock_init,
	.attach_region = mlock_attach,
	.detach_region = mlock_detach,
	.map = mlock_map,
	.unmap = mlock_unmap,
	.destroy = mlock_destroy,
};
