/* SPDX-License-Identifier: MIT */
/*
 * The kernel fault queue. read() returns whole groups only; the size asked
 * for must be a multiple of the record size (ESPIPE otherwise). A first
 * group that does not fit gives EINVAL on kernels with the 2026 stable fix
 * and 0 on 6.12 and 6.13, the same as an empty queue: the engine's read
 * holds 1,638 records, more than any group it accepts. An empty queue reads
 * as 0: that is not end of file, the queue lives as long as the fd. write() takes an array
 * of responses, handles them in order and stops at the first bad one
 * (unknown cookie or code): it returns the bytes accepted before it, or
 * EINVAL when the very first was bad.
 */
#include <errno.h>
#include <unistd.h>

#include "queue-internal.h"

static ssize_t iommufd_read(struct iopf_queue *q, void *buf, size_t cap) {
	cap -= cap % IOPF_RECORD_SIZE;
	for (;;) {
		ssize_t n = read(q->fd, buf, cap);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

static int iommufd_respond(struct iopf_queue *q, const iopf_response *r, size_t n, struct iopf_counters *c) {
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(q->fd, r + done, (n - done) * sizeof(*r));
		IOPF_STAT_INC(c->writes);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EINVAL) {
			/* The queue itself is broken (EBADF, EFAULT): what is left
			 * cannot be answered through it. */
			IOPF_STAT_INC(c->write_errors);
			return -errno;
		}
		if (w > 0)
			done += (size_t)w / sizeof(*r);
		if (done < n) {
			/* Response `done` was refused: a cookie the kernel does not
			 * know or a bad code. That is our bug, never the device's;
			 * count it, skip it, send the rest. */
			IOPF_STAT_INC(c->write_rejects);
			done++;
		}
	}
	return 0;
}

static int iommufd_flush(struct iopf_queue *q, struct iopf_counters *c) {
	return 0; /* responses are never buffered */
}

const struct iopf_transport_ops iopf_transport_iommufd = {
	.stream = false,
	.read = iommufd_read,
	.respond = iommufd_respond,
	.flush = iommufd_flush,
};
