/* SPDX-License-Identifier: MIT */
/*
 * The relay: an AF_UNIX stream socket with fault records one way and
 * responses the other. A stream rather than one packet per group, so that
 * one read can carry hundreds of groups. All I/O is non-blocking
 * (MSG_DONTWAIT) without changing the file's flags, which the peer that
 * passed the socket may share.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "queue-internal.h"

static ssize_t relay_recv(struct iopf_queue *q, void *buf, size_t cap, int flags) {
	for (;;) {
		ssize_t n = recv(q->fd, buf, cap, MSG_DONTWAIT | flags);
		if (n > 0)
			return n;
		if (n == 0)
			return -EPIPE; /* the device side closed */
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		if (errno == ECONNRESET)
			return -EPIPE;
		return -errno;
	}
}

static ssize_t relay_read(struct iopf_queue *q, void *buf, size_t cap) {
	return relay_recv(q, buf, cap, 0);
}

static ssize_t relay_peek(struct iopf_queue *q, void *buf, size_t cap) {
	return relay_recv(q, buf, cap, MSG_PEEK);
}

static int backlog_append(struct iopf_backlog *b, const void *p, size_t len) {
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len)
			cap *= 2;
		uint8_t *n = realloc(b->buf, cap);
		if (!n)
			return -ENOMEM;
		b->buf = n;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	return 0;
}

static int send_some(struct iopf_queue *q, const void *p, size_t len, size_t *sent, struct iopf_counters *c) {
	*sent = 0;
	while (*sent < len) {
		ssize_t n = send(q->fd, (const uint8_t *)p + *sent, len - *sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		IOPF_STAT_INC(c->writes);
		if (n >= 0) {
			*sent += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return -EAGAIN;
		IOPF_STAT_INC(c->write_errors);
		return errno == ECONNRESET ? -EPIPE : -errno;
	}
	return 0;
}

static int relay_flush(struct iopf_queue *q, struct iopf_counters *c) {
	struct iopf_backlog *b = &q->backlog;
	if (b->off == b->len)
		return 0;
	size_t sent;
	int r = send_some(q, b->buf + b->off, b->len - b->off, &sent, c);
	b->off += sent;
	if (b->off == b->len)
		b->off = b->len = 0;
	return r;
}

/* Keep what the peer cannot take yet. Responses that can be neither sent
 * nor kept end the queue: count them as a failed write. */
static int keep(struct iopf_queue *q, const void *p, size_t len, struct iopf_counters *c) {
	int r = backlog_append(&q->backlog, p, len);
	if (r < 0)
		IOPF_STAT_INC(c->write_errors);
	return r;
}

static int relay_respond(struct iopf_queue *q, const iopf_response *r, size_t n, struct iopf_counters *c) {
	size_t len = n * sizeof(*r);
	if (!iopf_backlog_empty(q)) /* keep the order: behind what is waiting */
		return keep(q, r, len, c);
	size_t sent;
	int ret = send_some(q, r, len, &sent, c);
	if (ret == -EAGAIN)
		return keep(q, (const uint8_t *)r + sent, len - sent, c);
	return ret;
}

const struct iopf_transport_ops iopf_transport_relay = {
	.stream = true,
	.read = relay_read,
	.peek = relay_peek,
	.respond = relay_respond,
	.flush = relay_flush,
};
