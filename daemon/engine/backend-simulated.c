/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <unistd.h>

#include "backend-simulated.h"
#include "backend.h"
#include "space-internal.h"

static int simulated_init(struct iopf_space *s, int fd) {
	if (fd >= 0)
		close(fd);
	s->backend = NULL; /* the observer, once set */
	return fd >= 0 ? -EINVAL : 0;
}

static int simulated_attach(struct iopf_space *s, struct iopf_region *r) {
	return 0;
}

static void simulated_detach(struct iopf_space *s, struct iopf_region *r) {
}

static int simulated_map(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	const struct iopf_space_observer *o = s->backend;
	if (o && o->map)
		o->map(o->userdata, r->iova + off, len);
	return 0;
}

static int simulated_unmap(struct iopf_space *s, struct iopf_region *r, uint64_t off, uint64_t len) {
	const struct iopf_space_observer *o = s->backend;
	if (o && o->unmap)
		o->unmap(o->userdata, r->iova + off, len);
	return 0;
}

static void simulated_destroy(struct iopf_space *s) {
	s->backend = NULL;
}

const struct iopf_backend_ops iopf_backend_simulated = {
	.pins = true,
	.init = simulated_init,
	.attach_region = simulated_attach,
	.detach_region = simulated_detach,
	.map = simulated_map,
	.unmap = simulated_unmap,
	.destroy = simulated_destroy,
};

int iopf_space_observe(struct iopf_space *s, const struct iopf_space_observer *o) {
	if (s->ops != &iopf_backend_simulated)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	s->backend = (void *)o;
	pthread_mutex_unlock(&s->lock);
	return 0;
}
