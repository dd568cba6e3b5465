/* SPDX-License-Identifier: MIT */
/*
 * The inside of a queue, for the engine and its transports.
 *
 * A stream transport (the relay) may deliver half a group, or half a
 * record: the worker keeps that start of a group, the *partial*, for the
 * next read. And a relay peer may stop taking answers: the worker keeps
 * them, the *backlog*, until the socket is writable. Both are mirrored in
 * the journal (journal.h) when there is one, so that a restarted daemon
 * finds them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <urcu/list.h>

#include "bindings.h"
#include "iopf_abi.h"
#include "queue.h"
#include "stats.h"

struct iopf_cmd;
struct iopf_worker;

struct iopf_transport_ops {
	/* Partial records/groups may be split across reads (relay). */
	bool stream;
	/* Read into buf[0..cap): bytes read, 0 when nothing is queued, -EPIPE
	 * when the peer is gone, or a negative errno. */
	ssize_t (*read)(struct iopf_queue *q, void *buf, size_t cap);
	/* Stream transports: copy what is queued into buf[0..cap) without
	 * taking it; the same returns as read(). */
	ssize_t (*peek)(struct iopf_queue *q, void *buf, size_t cap);
	/* Send n responses. Everything is either delivered, kept in the
	 * backlog (relay backpressure), or counted as rejected. Returns 0, or
	 * a negative errno when the queue cannot go on. */
	int (*respond)(struct iopf_queue *q, const iopf_response *r, size_t n, struct iopf_counters *c);
	/* Send the backlog; 0 when all is out, -EAGAIN when some remains, another
	 * negative errno when the queue cannot go on. */
	int (*flush)(struct iopf_queue *q, struct iopf_counters *c);
};

/* The start of a group carried to the next read: in a journal carry slot
 * when there is one free (it survives a crash), else in `buf`. */
struct iopf_partial {
	size_t len;
	int slot; /* journal carry slot holding the bytes, or -1 */
	uint8_t *buf;
	size_t cap;
};

/* Answers a relay peer has not taken yet: buf[off..len). */
struct iopf_backlog {
	uint8_t *buf;
	size_t off, len, cap;
	int slot; /* journal carry slot mirroring them, or -1 */
};

struct iopf_queue {
	uint32_t id;
	int fd; /* owned */
	enum iopf_transport_kind kind;
	const struct iopf_transport_ops *ops;
	/* Set by the control side before it pauses or takes back the queue:
	 * the worker reads no more batches. */
	int stop_reading;

	/* Owned by the worker once added. */
	struct iopf_worker *worker;
	struct iopf_binding_cache bcache; /* the last binding its groups used */
	struct cds_list_head node;        /* in the worker's list of queues */
	uint32_t events;                  /* epoll interest */
	struct iopf_partial partial;
	struct iopf_backlog backlog;
	int closed;                 /* enum iopf_queue_close, written by the worker */
	bool paused;                /* out of epoll until resumed */
	struct iopf_cmd *leaving;   /* the removal being finished (see worker.c) */
	uint64_t leave_deadline;    /* CLOCK_MONOTONIC ns */
	struct iopf_queue_stats st; /* single writer: the worker */
};

static inline bool iopf_backlog_empty(const struct iopf_queue *q) {
	return q->backlog.off == q->backlog.len;
}

extern const struct iopf_transport_ops iopf_transport_iommufd;
extern const struct iopf_transport_ops iopf_transport_relay;
