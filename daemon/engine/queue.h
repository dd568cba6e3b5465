/* SPDX-License-Identifier: MIT */
/*
 * Queues: sources of fault groups, as the control side sees them.
 *
 *  - iommufd: a kernel fault queue fd (anon inode "[iommufd-pgfault]").
 *  - relay: an AF_UNIX SOCK_STREAM socket carrying the same 40-byte records
 *    (device -> daemon) and 8-byte responses (daemon -> device). The device
 *    side keeps the kernel's rules (cookie allocation, response checks).
 *
 * Once given to the engine a queue belongs to one worker, the only thread
 * that touches its I/O state (queue-internal.h); the control side sees its
 * id, kind, fd and figures.
 */
#pragma once

#include <stdint.h>

enum iopf_transport_kind {
	IOPF_TRANSPORT_IOMMUFD,
	IOPF_TRANSPORT_RELAY,
	_IOPF_TRANSPORT_MAX,
};

const char *iopf_transport_kind_to_string(enum iopf_transport_kind k);
int iopf_transport_kind_from_string(const char *s); /* kind, or -EINVAL */

/* Why a worker let go of a queue by itself. */
enum iopf_queue_close {
	IOPF_QUEUE_OPEN = 0,
	IOPF_QUEUE_HANGUP,   /* relay peer went away */
	IOPF_QUEUE_PROTOCOL, /* relay peer broke the protocol (garbage, duplicate cookie) */
	IOPF_QUEUE_IO_ERROR, /* reads or writes fail persistently */
	IOPF_QUEUE_REMOVED,  /* the control side removed it */
	_IOPF_QUEUE_CLOSE_MAX,
};

const char *iopf_queue_close_to_string(enum iopf_queue_close c);

/* Per-queue figures for listings. */
struct iopf_queue_stats {
	uint64_t groups;  /* answered */
	uint64_t faults;  /* in those groups */
	uint64_t invalid; /* answered INVALID */
};

struct iopf_queue;

/*
 * Check what fd is: an iommufd fault queue or a connected AF_UNIX stream
 * socket. Returns the transport kind, -EBADF (not open), -ENOTSOCK /
 * -EPROTOTYPE / -EAFNOSUPPORT (a socket of the wrong kind), -ENOTCONN (an
 * AF_UNIX stream socket that is listening or was never connected) or
 * -EBADFD (anything else: a regular file, a pipe, another device).
 */
int iopf_queue_fd_kind(int fd);

/* Make a queue of fd, which is the queue's from here on (also when this
 * fails). `kind` must match what the fd is (see iopf_queue_fd_kind);
 * mismatch gives -EBADFD. */
int iopf_queue_new(uint32_t id, int fd, enum iopf_transport_kind kind, struct iopf_queue **out);
/* The queue must not belong to a worker any more. */
void iopf_queue_free(struct iopf_queue *q);

uint32_t iopf_queue_id(const struct iopf_queue *q);
enum iopf_transport_kind iopf_queue_kind(const struct iopf_queue *q);
/* Its fd, or -1 once a worker closed it (peer gone, protocol error). */
int iopf_queue_fd(const struct iopf_queue *q);
/* Why the worker let go of it by itself, or IOPF_QUEUE_OPEN. */
enum iopf_queue_close iopf_queue_closed(const struct iopf_queue *q);
/* Figures so far (read while the worker writes them). */
void iopf_queue_get_stats(const struct iopf_queue *q, struct iopf_queue_stats *out);
