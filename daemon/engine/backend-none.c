/* SPDX-License-Identifier: MIT */
/*
 * Backends that touch no memory.
 *
 * none: regions and permissions are checked, nothing is pinned, so there is
 * nothing to count against a quota or to evict. It measures the daemon's own
 * cost per fault, and serves devices whose memory needs no pinning.
 *
 * simulated: the books are kept as if windows were pinned and mapped (the
 * quota, the fault-around windows, eviction, the map and unmap counts), but
 * no call reaches the kernel. The policy simulator and the tests of the
 * space's accounting run on it; clients cannot choose it (it has no name).
 */
#include <errno.h>
#include <unistd.h>

#include "backend.h"
#include "space-internal.h"

static int nothing_init(struct iopf_space *s, int fd) {
	if (fd >= 0)
		close(fd);
	return fd >= 0 ? -EINVAL : 0;
}

static int nothing_attach(struct iopf_space *s, struct iopf_region *r) {
	return 0;
}

static void nothing_detach(struct iopf_space *s, struct iopf_region *r) {
}

static int nothing_map(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	return 0;
}

static void nothing_destroy(struct iopf_space *s) {
}

const struct iopf_backend_ops iopf_backend_none = {
	.pins = false,
	.init = nothing_init,
	.attach_region = nothing_attach,
	.detach_region = nothing_detach,
	.map = nothing_map,
	.unmap = nothing_map,
	.destroy = nothing_destroy,
};

const struct iopf_backend_ops iopf_backend_simulated = {
	.pins = true,
	.init = nothing_init,
	.attach_region = nothing_attach,
	.detach_region = nothing_detach,
	.map = nothing_map,
	.unmap = nothing_map,
	.destroy = nothing_destroy,
};
