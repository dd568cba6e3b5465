/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "queue-internal.h"
#include "shared/cleanup.h"
#include "shared/string-table.h"

static const struct iopf_transport_ops *const transports[_IOPF_TRANSPORT_MAX] = {
	[IOPF_TRANSPORT_IOMMUFD] = &iopf_transport_iommufd,
	[IOPF_TRANSPORT_RELAY] = &iopf_transport_relay,
};

static const char *const iopf_transport_kind_table[_IOPF_TRANSPORT_MAX] = {
	[IOPF_TRANSPORT_IOMMUFD] = "iommufd",
	[IOPF_TRANSPORT_RELAY] = "relay",
};

DEFINE_STRING_TABLE_LOOKUP(iopf_transport_kind, enum iopf_transport_kind)

static const char *const iopf_queue_close_table[_IOPF_QUEUE_CLOSE_MAX] = {
	[IOPF_QUEUE_OPEN] = "open",
	[IOPF_QUEUE_HANGUP] = "hangup",
	[IOPF_QUEUE_PROTOCOL] = "protocol-error",
	[IOPF_QUEUE_IO_ERROR] = "io-error",
	[IOPF_QUEUE_REMOVED] = "removed",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(iopf_queue_close, enum iopf_queue_close)

int iopf_queue_fd_kind(int fd) {
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISSOCK(st.st_mode)) {
		int v;
		socklen_t l = sizeof(v);
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) < 0)
			return -errno;
		if (v != AF_UNIX)
			return -EAFNOSUPPORT;
		l = sizeof(v);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0)
			return -errno;
		if (v != SOCK_STREAM)
			return -EPROTOTYPE;
		/* A relay is one end of a connection: a listening socket, or
		 * one never connected, could only ever fail to read. */
		l = sizeof(v);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0)
			return -errno;
		if (v)
			return -ENOTCONN;
		struct sockaddr_un peer;
		socklen_t pl = sizeof(peer);
		if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0)
			return -errno;
		return IOPF_TRANSPORT_RELAY;
	}
	/* A fault queue is an anonymous inode; its name is the only mark it
	 * carries, visible through the fd's link in /proc. The kernel names
	 * it "[iommufd-pgfault]" (6.11 through 7.x). */
	char path[64], target[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -EBADFD;
	target[n] = '\0';
	if (strcmp(target, "anon_inode:[iommufd-pgfault]") == 0)
		return IOPF_TRANSPORT_IOMMUFD;
	return -EBADFD;
}

int iopf_queue_new(uint32_t id, int fd, enum iopf_transport_kind kind, struct iopf_queue **out) {
	_cleanup_close_ int qfd = fd;
	if ((unsigned)kind >= _IOPF_TRANSPORT_MAX)
		return -EINVAL;
	int k = iopf_queue_fd_kind(qfd);
	if (k < 0)
		return k;
	if ((enum iopf_transport_kind)k != kind)
		return -EBADFD;

	struct iopf_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->fd = TAKE_FD(qfd);
	q->id = id;
	q->partial.slot = -1;
	q->backlog.slot = -1;
	q->kind = kind;
	q->ops = transports[kind];
	*out = q;
	return 0;
}

void iopf_queue_free(struct iopf_queue *q) {
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	free(q->partial.buf);
	free(q->backlog.buf);
	free(q);
}

uint32_t iopf_queue_id(const struct iopf_queue *q) {
	return q->id;
}

enum iopf_transport_kind iopf_queue_kind(const struct iopf_queue *q) {
	return q->kind;
}

int iopf_queue_fd(const struct iopf_queue *q) {
	return q->fd;
}

enum iopf_queue_close iopf_queue_closed(const struct iopf_queue *q) {
	return (enum iopf_queue_close)__atomic_load_n(&q->closed, __ATOMIC_ACQUIRE);
}

void iopf_queue_get_stats(const struct iopf_queue *q, struct iopf_queue_stats *out) {
	out->groups = IOPF_STAT_GET(q->st.groups);
	out->faults = IOPF_STAT_GET(q->st.faults);
	out->invalid = IOPF_STAT_GET(q->st.invalid);
}
