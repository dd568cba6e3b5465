/* SPDX-License-Identifier: MIT */
/*
 * The none backend: regions and permissions are checked, nothing is pinned,
 * so there is nothing to count against a quota or to evict. It measures the
 * daemon's own cost per fault, and serves devices whose memory needs no
 * pinning.
 */
#include <errno.h>
#include <unistd.h>

#include "backend.h"
#include "space-internal.h"

static int none_init(struct iopf_space *s, int fd) {
	if (fd >= 0)
		close(fd);
	return fd >= 0 ? -EINVAL : 0;
}

static int none_attach(struct iopf_space *s, struct iopf_region *r) {
	return 0;
}

static void none_detach(struct iopf_space *s, struct iopf_region *r) {
}

static int none_map(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	return 0;
}

static void none_destroy(struct iopf_space *s) {
}

const struct iopf_backend_ops iopf_backend_none = {
	.pins = false,
	.init = none_init,
	.attach_region = none_attach,
	.detach_region = none_detach,
	.map = none_map,
	.unmap = none_map,
	.destroy = none_destroy,
};
