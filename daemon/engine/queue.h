/* SPDX-License-Identifier: MIT */
/*
 * Queues: sources of fault groups, behind a small transport ops struct.
 *
 *  - iommufd: a kernel fault queue fd (anon inode "[iommufd-pgfault]"). A read
 *    returns whole groups; an empty queue reads as 0, which is not end of
 *    file; a response write stops at the first bad response.
 *  - relay: an AF_UNIX SOCK_STREAM socket carrying the same 40-byte records
 *    (device -> daemon) and 8-byte responses (daemon -> device). A read may
 *    end inside a record or a group; the reader keeps the rest. The device
 *    side keeps the kernel's rules (cookie allocation, response checks).
 *
 * A queue belongs to exactly one worker once added to the engine; the worker
 * is then the only thread touching its I/O state.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <urcu/list.h>

#include "iopf_abi.h"
#include "bindings.h"
#include "stats.h"

struct iopf_cmd;
struct iopf_queue;
struct iopf_worker;

enum iopf_transport_kind {
	IOPF_TRANSPORT_IOMMUFD,
	IOPF_TRANSPORT_RELAY,
	_IOPF_TRANSPORT_MAX,
};

const char *iopf_transport_kind_str(enum iopf_transport_kind k);
int iopf_transport_kind_from_str(const char *s); /* kind, or -EINVAL */

/* Why a worker let go of a queue by itself. */
enum iopf_queue_close {
	IOPF_QUEUE_OPEN = 0,
	IOPF_QUEUE_HANGUP,     /* relay peer went away */
	IOPF_QUEUE_PROTOCOL,   /* relay peer broke the protocol (garbage, duplicate cookie) */
	IOPF_QUEUE_IO_ERROR,   /* reads or writes fail persistently */
	IOPF_QUEUE_REMOVED,    /* the control side removed it */
	_IOPF_QUEUE_CLOSE_MAX,
};

const char *iopf_queue_close_str(enum iopf_queue_close c);

struct iopf_transport_ops {
	const char *name;
	/* Partial records/groups may be split across reads (relay). */
	bool stream;
	/* Read into buf[0..cap): bytes read, 0 when nothing is queued, -EPIPE
	 * when the peer is gone, or a negative errno. */
	ssize_t (*read)(struct iopf_queue *q, void *buf, size_t cap);
	/* Stream transports: copy what is queued into buf[0..cap) without
	 * taking it; the same returns as read(). */
	ssize_t (*peek)(struct iopf_queue *q, void *buf, size_t cap);
	/* Send n responses. Everything is either delivered, buffered in the
	 * queue (relay backpressure), or counted as rejected. Returns 0, or a
	 * negative errno when the queue cannot go on. */
	int (*respond)(struct iopf_queue *q, const iopf_response *r, size_t n, struct iopf_counters *c);
	/* Send what respond() buffered; 0 when all is out, -EAGAIN when some
	 * remains, another negative errno when the queue cannot go on. */
	int (*flush)(struct iopf_queue *q, struct iopf_counters *c);
};

/* Per-queue figures for listings (single writer: the owning worker). */
struct iopf_queue_stats {
	uint64_t groups;
	uint64_t faults;
	uint64_t invalid;
};

struct iopf_queue {
	uint32_t id;
	int fd; /* owned */
	enum iopf_transport_kind kind;
	const struct iopf_transport_ops *ops;
	void *userdata; /* the control side's */
	bool hand_on;   /* set before removal: the queue goes on in the next
	                 * daemon, which takes its carries from the journal */
	int stop_reading; /* set by the control side before it pauses or takes
	                   * back the queue: the worker reads no more batches */

	/* Owned by the worker once added. */
	struct iopf_worker *worker;
	struct iopf_binding_cache bcache; /* the last binding its groups used */
	struct cds_list_head node; /* in the worker's list of queues */
	uint32_t events;           /* epoll interest */
	uint8_t *rem;              /* relay: start of a partial group, carried to the next read */
	size_t rem_len, rem_cap;   /* (in the worker's journal carry slot `carry` when it has one) */
	int carry;                 /* journal carry slot holding the partial group, or -1 */
	int out_carry;             /* journal carry slot mirroring the unsent responses, or -1 */
	uint8_t *out;              /* relay: responses not yet sent */
	size_t out_off, out_len, out_cap;
	int closed;                /* enum iopf_queue_close, written by the worker */
	bool paused;               /* out of epoll until resumed */
	struct iopf_cmd *leaving;  /* the removal being finished (see engine.c) */
	uint64_t leave_deadline;   /* CLOCK_MONOTONIC ns */
	struct iopf_queue_stats st;
};

/*
 * Check what fd is: an iommufd fault queue or a connected AF_UNIX stream
 * socket. Returns the transport kind, -EBADF (not open), -ENOTSOCK /
 * -EPROTOTYPE / -EAFNOSUPPORT (a socket of the wrong kind), -ENOTCONN (an
 * AF_UNIX stream socket that is listening or was never connected) or
 * -EBADFD (anything else: a regular file, a pipe, another device).
 */
int iopf_queue_fd_kind(int fd);

/* Make a queue from a borrowed fd (duplicated). `kind` must match what the
 * fd is (see iopf_queue_fd_kind); mismatch gives -EBADFD. */
int iopf_queue_new(uint32_t id, int fd, enum iopf_transport_kind kind, struct iopf_queue **out);
/* The queue must not belong to a worker any more. */
void iopf_queue_free(struct iopf_queue *q);

extern const struct iopf_transport_ops iopf_transport_iommufd;
extern const struct iopf_transport_ops iopf_transport_relay;
