/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <urcu/wfcqueue.h>

#include "batch.h"
#include "bindings.h"
#include "engine.h"
#include "rcu.h"
#include "resolve.h"

enum cmd_type {
	CMD_ADD,
	CMD_REMOVE,
	CMD_PAUSE,
	CMD_RESUME,
	CMD_DRAIN,
	CMD_STATS,
	CMD_QUIT,
	CMD_PING, /* asynchronous: the worker counts it and frees it */
	CMD_HANG, /* fault injection: the worker stops for good */
	CMD_DIE_ANSWERING, /* fault injection: the process dies in the ANSWERING window */
};

struct iopf_cmd {
	struct cds_wfcq_node node;
	enum cmd_type type;
	struct iopf_queue *q;
	struct iopf_hist *hist; /* CMD_STATS: merged into */
	int result;
	sem_t done;
};

struct iopf_worker {
	struct iopf_engine *e;
	unsigned index;
	pthread_t thread;
	int epfd;
	int evfd;
	struct cds_wfcq_head cmd_head;
	struct cds_wfcq_tail cmd_tail;
	unsigned n_queues; /* read by the control side to balance */
	unsigned n_leaving; /* queues whose removal waits on their peer */
	uint64_t pings;    /* control side only */
	uint64_t pongs;    /* written by the worker, read by the control side */
	struct cds_list_head queues;
	bool quit;
	bool die_answering; /* CMD_DIE_ANSWERING came */

	struct iopf_counters c;
	struct iopf_hist service; /* per group: read returned -> response written */

	uint8_t *rbuf; /* the journal slot's data, or private */
	size_t rcap;   /* whole records */
	struct iopf_jslot *slot; /* NULL without a journal */
	struct iopf_group *groups;
	size_t max_groups;
	iopf_response *resp;
	struct iopf_resolver res;
	uint8_t *peek; /* a partial group and what follows it (see complete_group) */
	size_t peek_cap;
};

struct iopf_engine {
	struct iopf_engine_config cfg;
	struct iopf_bindings *bindings;
	unsigned n_workers;
	struct iopf_worker *w;
};

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --- queue I/O on the worker ---------------------------------------------------- */

static int set_interest(struct iopf_worker *w, struct iopf_queue *q, uint32_t events) {
	if (q->events == events)
		return 0;
	struct epoll_event ev = {.events = events, .data.ptr = q};
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, q->fd, &ev) < 0)
		return -errno;
	q->events = events;
	return 0;
}

/* --- partial groups carried between reads ----------------------------------------------- */

static const uint8_t *carried_bytes(struct iopf_worker *w, struct iopf_queue *q) {
	if (q->carry >= 0)
		return iopf_journal_carry(w->e->cfg.journal, w->index, (uint32_t)q->carry)->data;
	return q->rem;
}

/* The carried bytes are now in the journal slot (or dropped): free the carry. */
static void drop_remainder(struct iopf_worker *w, struct iopf_queue *q) {
	if (q->carry >= 0) {
		struct iopf_jcarry *c = iopf_journal_carry(w->e->cfg.journal, w->index, (uint32_t)q->carry);
		__atomic_store_n(&c->queue_id, 0, __ATOMIC_RELEASE);
		q->carry = -1;
	}
	q->rem_len = 0;
}

/* Keep a partial group for the next read: in a journal carry slot when there
 * is one (it survives a crash), else in the queue's own memory. */
static int keep_remainder(struct iopf_worker *w, struct iopf_queue *q, const uint8_t *p, size_t len) {
	const struct iopf_journal *j = w->e->cfg.journal;
	if (j && len <= j->h->carry_bytes) {
		for (uint32_t i = 0; i < j->h->carry_slots; i++) {
			struct iopf_jcarry *c = iopf_journal_carry(j, w->index, i);
			if (__atomic_load_n(&c->queue_id, __ATOMIC_RELAXED) != 0)
				continue;
			memcpy(c->data, p, len);
			c->len = (uint32_t)len;
			c->kind = IOPF_JCARRY_RECORDS;
			/* Owner last: a carry with an owner is whole. */
			__atomic_store_n(&c->queue_id, q->id, __ATOMIC_RELEASE);
			q->carry = (int)i;
			q->rem_len = len;
			return 0;
		}
	}
	if (j)
		IOPF_STAT_INC(w->c.carry_overflows);
	if (len > q->rem_cap) {
		uint8_t *n = realloc(q->rem, len);
		if (!n)
			return -ENOMEM;
		q->rem = n;
		q->rem_cap = len;
	}
	memcpy(q->rem, p, len);
	q->rem_len = len;
	return 0;
}

/* Mirror a relay's unsent responses into a journal carry slot, so that a
 * restarted daemon sends them; free the slot once nothing waits. */
static void journal_backlog(struct iopf_worker *w, struct iopf_queue *q) {
	const struct iopf_journal *j = w->e->cfg.journal;
	if (!j)
		return;
	size_t len = q->out_len - q->out_off;
	struct iopf_jcarry *c = q->out_carry >= 0 ? iopf_journal_carry(j, w->index, (uint32_t)q->out_carry) : NULL;
	if (len == 0 || len > j->h->carry_bytes) {
		if (len)
			IOPF_STAT_INC(w->c.carry_overflows);
		if (c)
			__atomic_store_n(&c->queue_id, 0, __ATOMIC_RELEASE);
		q->out_carry = -1;
		return;
	}
	if (!c) {
		for (uint32_t i = 0; i < j->h->carry_slots && !c; i++) {
			struct iopf_jcarry *t = iopf_journal_carry(j, w->index, i);
			if (__atomic_load_n(&t->queue_id, __ATOMIC_RELAXED) == 0) {
				c = t;
				q->out_carry = (int)i;
			}
		}
		if (!c) {
			IOPF_STAT_INC(w->c.carry_overflows);
			return;
		}
	} else {
		/* Rewritten in place: off while it changes. */
		__atomic_store_n(&c->queue_id, 0, __ATOMIC_RELEASE);
	}
	memcpy(c->data, q->out + q->out_off, len);
	c->len = (uint32_t)len;
	c->kind = IOPF_JCARRY_RESPONSES;
	__atomic_store_n(&c->queue_id, q->id, __ATOMIC_RELEASE);
}

/* The batch's responses are about to be written. */
static void journal_answering(struct iopf_worker *w, const struct iopf_queue *q) {
	if (!w->slot)
		return;
	__atomic_store_n(&w->slot->state, IOPF_JSLOT_ANSWERING, __ATOMIC_RELEASE);
	if (w->die_answering && !q->ops->stream)
		kill(getpid(), SIGKILL); /* the window journal.h describes, made wide */
}

/* A read into the slot after its first `have` bytes is about to start. */
static void journal_reading(struct iopf_worker *w, struct iopf_queue *q, size_t have) {
	if (!w->slot)
		return;
	w->slot->queue_id = q->id;
	w->slot->len = (uint32_t)have;
	w->slot->stream = q->ops->stream;
	__atomic_store_n(&w->slot->state, IOPF_JSLOT_READING, __ATOMIC_RELEASE);
}

/* The batch in the slot is read and not yet answered. */
static void journal_read(struct iopf_worker *w, size_t len) {
	if (!w->slot)
		return;
	w->slot->len = (uint32_t)len;
	__atomic_store_n(&w->slot->state, IOPF_JSLOT_READ, __ATOMIC_RELEASE);
}

/* Done with the slot's first len bytes: empty, and poison again for the
 * next read (see journal.h). */
static void journal_answered(struct iopf_worker *w, size_t len) {
	if (!w->slot)
		return;
	__atomic_store_n(&w->slot->state, IOPF_JSLOT_EMPTY, __ATOMIC_RELEASE);
	memset(w->slot->data, IOPF_JOURNAL_POISON, len);
}

/* Let go of a queue: out of epoll and out of this worker's list. */
static void detach_queue(struct iopf_worker *w, struct iopf_queue *q, enum iopf_queue_close why) {
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, q->fd, NULL);
	drop_remainder(w, q);
	if (q->out_carry >= 0) {
		__atomic_store_n(&iopf_journal_carry(w->e->cfg.journal, w->index, (uint32_t)q->out_carry)->queue_id, 0,
		                 __ATOMIC_RELEASE);
		q->out_carry = -1;
	}
	cds_list_del(&q->node);
	__atomic_store_n(&w->n_queues, w->n_queues - 1, __ATOMIC_RELAXED);
	__atomic_store_n(&q->closed, why, __ATOMIC_RELEASE);
}

/* The worker drops a queue by itself. Closing our fd lets a relay peer see
 * the end at once; a kernel fault queue lives on in the client's fd. */
static void close_queue(struct iopf_worker *w, struct iopf_queue *q, enum iopf_queue_close why) {
	detach_queue(w, q, why);
	close(q->fd);
	q->fd = -1;
	if (w->e->cfg.on_queue_closed)
		w->e->cfg.on_queue_closed(q, why, w->e->cfg.userdata);
}

static void count_group(struct iopf_queue *q, const struct iopf_group *g, uint32_t code) {
	IOPF_STAT_INC(q->st.groups);
	IOPF_STAT_ADD(q->st.faults, g->n_faults);
	if (code != IOMMUFD_PAGE_RESP_SUCCESS)
		IOPF_STAT_INC(q->st.invalid);
}

/*
 * Parse, resolve and answer len bytes at w->rbuf. Returns 0, or why the
 * queue must be closed (after everything parsed has been answered).
 */
static enum iopf_queue_close process(struct iopf_worker *w, struct iopf_queue *q, size_t len, uint64_t t_read) {
	struct iopf_batch b;
	enum iopf_queue_close why = IOPF_QUEUE_OPEN;
	int pr = iopf_batch_parse(w->rbuf, len, w->e->cfg.max_group_faults, w->groups, w->max_groups, &b);
	if (pr < 0) {
		/* Mixed cookies or an endless group: the stream cannot be
		 * resynchronized. Answer what came before, then drop it. */
		IOPF_STAT_INC(w->c.protocol_errors);
		why = IOPF_QUEUE_PROTOCOL;
	} else if (!q->ops->stream && b.consumed != len) {
		/* The kernel returns whole groups only; count, never guess. */
		IOPF_STAT_INC(w->c.read_errors);
	}

	/* A trailing partial group goes to a carry slot first: from here on a
	 * crash finds it either there or in the batch slot. */
	if (why == IOPF_QUEUE_OPEN && q->ops->stream && b.consumed < len &&
	    keep_remainder(w, q, w->rbuf + b.consumed, len - b.consumed) < 0) {
		/* Out of memory for the partial group: the stream cannot go on. */
		IOPF_STAT_INC(w->c.read_errors);
		why = IOPF_QUEUE_IO_ERROR;
	}

	iopf_rcu_read_lock();
	iopf_resolver_begin(&w->res);
	iopf_resolver_use_cache(&w->res, &q->bcache);
	size_t n = 0;
	bool dup = false;
	for (size_t i = 0; i < b.n_groups; i++) {
		const struct iopf_group *g = &w->groups[i];
		uint32_t code;
		if (!iopf_resolver_claim_cookie(&w->res, g->cookie)) {
			/* A second group with a cookie still in flight: only a
			 * broken relay does that. It gets no second answer; the
			 * rest of the batch is answered INVALID and the peer goes. */
			if (!dup)
				IOPF_STAT_INC(w->c.protocol_errors);
			dup = true;
			continue;
		}
		if (dup) {
			IOPF_STAT_INC(w->c.groups);
			IOPF_STAT_ADD(w->c.faults, g->n_faults);
			IOPF_STAT_INC(w->c.invalid[IOPF_INVALID_DROPPED]);
			code = IOMMUFD_PAGE_RESP_INVALID;
		} else {
			code = iopf_resolve_group(&w->res, q->id, g);
		}
		count_group(q, g, code);
		w->resp[n++] = (iopf_response){.cookie = g->cookie, .code = code};
	}
	/* ANSWERING before the write: a kill during the write lets it finish
	 * (see journal.h); whatever the peer did not take is journaled next. */
	journal_answering(w, q);
	int wr = n ? q->ops->respond(q, w->resp, n, &w->c) : 0;
	if (q->out_len != q->out_off || q->out_carry >= 0)
		journal_backlog(w, q);
	journal_answered(w, len);
	iopf_resolver_end(&w->res);
	iopf_rcu_read_unlock();
	if (n)
		iopf_hist_add_n(&w->service, now_ns() - t_read, n);

	if (dup)
		why = IOPF_QUEUE_PROTOCOL;
	if (wr < 0 && why == IOPF_QUEUE_OPEN)
		why = wr == -EPIPE ? IOPF_QUEUE_HANGUP : IOPF_QUEUE_IO_ERROR;
	return why;
}

/*
 * One read of at most `want` bytes behind what the queue carries, then
 * resolve and answer it. Returns the bytes read, 0 when nothing was queued,
 * or -1 when the queue had to be closed.
 */
static ssize_t read_batch(struct iopf_worker *w, struct iopf_queue *q, size_t want) {
	size_t have = q->rem_len;
	if (have)
		memcpy(w->rbuf, carried_bytes(w, q), have);
	journal_reading(w, q, have);
	ssize_t n = q->ops->read(q, w->rbuf + have, want);
	IOPF_STAT_INC(w->c.reads);
	if (n <= 0)
		journal_answered(w, have); /* the carried bytes stay where they are */
	if (n == 0) {
		IOPF_STAT_INC(w->c.empty_reads);
		return 0;
	}
	if (n < 0) {
		if (n == -EPIPE) {
			IOPF_STAT_INC(w->c.hangups);
			close_queue(w, q, IOPF_QUEUE_HANGUP);
		} else {
			IOPF_STAT_INC(w->c.read_errors);
			close_queue(w, q, IOPF_QUEUE_IO_ERROR);
		}
		return -1;
	}
	/* Journal the batch, then let go of the carried bytes it now holds. */
	journal_read(w, have + (size_t)n);
	drop_remainder(w, q);
	enum iopf_queue_close why = process(w, q, have + (size_t)n, now_ns());
	if (why != IOPF_QUEUE_OPEN) {
		if (why == IOPF_QUEUE_HANGUP)
			IOPF_STAT_INC(w->c.hangups);
		close_queue(w, q, why);
		return -1;
	}
	return n;
}

/* Send what a relay peer has not taken yet. Returns 0 when all is out,
 * -EAGAIN when some remains (EPOLLOUT is then wanted), or -1 when the queue
 * had to be closed. */
static int flush_backlog(struct iopf_worker *w, struct iopf_queue *q) {
	int r = q->ops->flush(q, &w->c);
	journal_backlog(w, q);
	if (r == 0 || r == -EAGAIN)
		return r;
	close_queue(w, q, r == -EPIPE ? IOPF_QUEUE_HANGUP : IOPF_QUEUE_IO_ERROR);
	return -1;
}

static void leave_step(struct iopf_worker *w, struct iopf_queue *q);

static void serve_queue(struct iopf_worker *w, struct iopf_queue *q) {
	if (q->closed)
		return; /* dropped earlier in this round of events */
	IOPF_STAT_INC(w->c.wakeups);
	if (q->leaving) {
		leave_step(w, q);
		return;
	}

	if (q->out_len) {
		if (flush_backlog(w, q) != 0)
			return; /* still backed up (EPOLLOUT is on), or closed */
		set_interest(w, q, EPOLLIN);
	}

	for (unsigned round = 0; round < w->e->cfg.fairness_reads; round++) {
		/* Being paused or taken back: what is not read yet stays in
		 * the queue, for whoever holds it next. */
		if (__atomic_load_n(&q->stop_reading, __ATOMIC_ACQUIRE))
			return;
		size_t want = w->rcap - q->rem_len;
		ssize_t n = read_batch(w, q, want);
		if (n <= 0)
			return;
		if (q->out_len) {
			/* The peer is not reading: stop reading from it too. */
			set_interest(w, q, EPOLLOUT);
			return;
		}
		if ((size_t)n < want)
			return; /* took all there was */
	}
}

/* Everything a queue holds that a restarted daemon must finish, in the
 * journal: the partial group (moved into a carry slot if it sits in the
 * queue's own memory, e.g. restored from the journal or carried while the
 * slots were full) and the unsent responses. */
static void journal_hold(struct iopf_worker *w, struct iopf_queue *q) {
	const struct iopf_journal *j = w->e->cfg.journal;
	if (!j)
		return;
	if (q->carry < 0 && q->rem_len) {
		uint8_t *heap = q->rem;
		size_t len = q->rem_len;
		q->rem = NULL;
		q->rem_cap = q->rem_len = 0;
		/* Into a free slot; when none is free it goes back to the heap. */
		if (keep_remainder(w, q, heap, len) < 0) {
			q->rem = heap;
			q->rem_len = q->rem_cap = len;
			heap = NULL;
		}
		free(heap);
	}
	if (q->out_len != q->out_off)
		journal_backlog(w, q);
}

/* --- commands ---------------------------------------------------------------------- */

static void cmd_add(struct iopf_worker *w, struct iopf_cmd *cmd) {
	struct iopf_queue *q = cmd->q;
	/* A queue may come with answers still to send (restored after a
	 * restart): then it waits to be writable first. */
	uint32_t events = q->out_len ? EPOLLOUT : EPOLLIN;
	struct epoll_event ev = {.events = events, .data.ptr = q};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, q->fd, &ev) < 0) {
		cmd->result = -errno;
		return;
	}
	q->events = events;
	q->worker = w;
	journal_hold(w, q);
	cds_list_add_tail(&q->node, &w->queues);
	__atomic_store_n(&w->n_queues, w->n_queues + 1, __ATOMIC_RELAXED);
	cmd->result = 0;
}

/* Whatever was read has been answered already (resolution is synchronous);
 * what may remain are responses a relay peer has not taken yet. */
static void flush_queue(struct iopf_worker *w, struct iopf_queue *q) {
	if (q->out_len)
		q->ops->flush(q, &w->c);
}

/*
 * Taking a queue back. The control side has set stop_reading, so no new
 * batch is read, and everything read so far has been answered (resolution
 * is synchronous). A relay may still hold two things that belong to groups
 * it read: the start of a group whose rest the peer has not sent yet, and
 * answers the peer has not taken. The queue stays with the worker until
 * both are done or the grace period ends, so that the stream is left at a
 * group boundary for whoever reads it next and every group read is answered.
 */
static void leave_done(struct iopf_worker *w, struct iopf_queue *q) {
	struct iopf_cmd *cmd = q->leaving;
	if (!q->closed) {
		if (q->rem_len)
			IOPF_STAT_INC(w->c.cut_groups);
		if (q->out_len != q->out_off)
			/* One sent in part is as good as lost. */
			IOPF_STAT_ADD(w->c.unsent_responses,
			              (q->out_len - q->out_off + sizeof(iopf_response) - 1) / sizeof(iopf_response));
		detach_queue(w, q, IOPF_QUEUE_REMOVED);
	}
	q->leaving = NULL;
	q->worker = NULL;
	w->n_leaving--;
	cmd->result = 0;
	sem_post(&cmd->done);
}

/* Read exactly the rest of the group the queue carries the start of, if the
 * peer has sent it. Returns 1 when the group was read and answered, 0 when
 * its rest has not all come, -1 when the queue was closed, -2 when the
 * peer went away (the rest can never come). */
static int complete_group(struct iopf_worker *w, struct iopf_queue *q) {
	size_t have = q->rem_len;
	memcpy(w->peek, carried_bytes(w, q), have);
	ssize_t n = q->ops->peek(q, w->peek + have, w->peek_cap - have);
	if (n < 0)
		return -2; /* the peer is gone: the rest can never come */
	struct iopf_group g;
	struct iopf_batch b;
	int r = iopf_batch_parse(w->peek, have + (size_t)n, w->e->cfg.max_group_faults, &g, 1, &b);
	if (r == 0 && b.n_groups == 0)
		return 0;
	/* The whole group, or bytes that break the protocol: reading them
	 * answers the first and drops the peer for the second. */
	size_t want = r == 0 ? b.consumed - have : (size_t)n;
	return read_batch(w, q, want) < 0 ? -1 : 1;
}

static void leave_step(struct iopf_worker *w, struct iopf_queue *q) {
	bool gone = false;
	if (q->rem_len && !q->closed) {
		int r = complete_group(w, q);
		gone = r == -2;
	}
	if (!q->closed && !gone && q->out_len != q->out_off)
		flush_backlog(w, q);
	if (q->closed || gone || (!q->rem_len && q->out_len == q->out_off)) {
		leave_done(w, q);
		return;
	}
	/* Edge-triggered: a peek takes nothing, so the socket stays readable
	 * while the group's rest is still on its way. */
	set_interest(w, q, EPOLLET | (q->rem_len ? EPOLLIN : 0) | (q->out_len != q->out_off ? EPOLLOUT : 0));
}

/* Back into epoll after a pause, waiting for what the queue needs next. */
static int epoll_readd(struct iopf_worker *w, struct iopf_queue *q) {
	uint32_t events = q->out_len != q->out_off ? EPOLLOUT : EPOLLIN;
	struct epoll_event ev = {.events = events, .data.ptr = q};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, q->fd, &ev) < 0)
		return -errno;
	q->events = events;
	q->paused = false;
	return 0;
}

static int cmd_resume(struct iopf_worker *w, struct iopf_queue *q) {
	if (q->closed || !q->paused)
		return 0;
	__atomic_store_n(&q->stop_reading, 0, __ATOMIC_RELAXED);
	int r = epoll_readd(w, q);
	if (r < 0)
		close_queue(w, q, IOPF_QUEUE_IO_ERROR); /* it could never be read again */
	return r;
}

static void cmd_remove(struct iopf_worker *w, struct iopf_cmd *cmd) {
	struct iopf_queue *q = cmd->q;
	if (!__atomic_load_n(&q->closed, __ATOMIC_ACQUIRE)) {
		if (q->hand_on) {
			/* It goes on in the next daemon: its carries stay in the
			 * journal, no longer this queue's to drop. */
			flush_queue(w, q);
			journal_hold(w, q);
			q->carry = q->out_carry = -1;
		} else if (q->rem_len || q->out_len != q->out_off) {
			if (q->paused && epoll_readd(w, q) < 0) {
				detach_queue(w, q, IOPF_QUEUE_REMOVED);
				goto done;
			}
			q->leaving = cmd;
			q->leave_deadline = now_ns() + (uint64_t)w->e->cfg.leave_ms * 1000000;
			w->n_leaving++;
			leave_step(w, q);
			return; /* leave_done() answers the command */
		}
		detach_queue(w, q, IOPF_QUEUE_REMOVED);
	}
done:
	q->worker = NULL;
	cmd->result = 0;
	sem_post(&cmd->done);
}

/* The grace period of queues being taken back ran out. */
static void leave_expired(struct iopf_worker *w) {
	uint64_t now = now_ns();
	struct iopf_queue *q, *tmp;
	cds_list_for_each_entry_safe(q, tmp, &w->queues, node)
		if (q->leaving && now >= q->leave_deadline)
			leave_done(w, q);
}

/* epoll_wait's timeout: until the nearest grace period ends, or forever. */
static int leave_timeout_ms(struct iopf_worker *w) {
	if (!w->n_leaving)
		return -1;
	uint64_t now = now_ns(), next = UINT64_MAX;
	struct iopf_queue *q;
	cds_list_for_each_entry(q, &w->queues, node)
		if (q->leaving && q->leave_deadline < next)
			next = q->leave_deadline;
	if (next <= now)
		return 0;
	return (int)((next - now + 999999) / 1000000);
}

/* Out of epoll while paused: what is queued stays there. */
static void cmd_pause(struct iopf_worker *w, struct iopf_queue *q) {
	if (q->closed || q->paused)
		return;
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, q->fd, NULL);
	q->paused = true;
}

static void handle_commands(struct iopf_worker *w) {
	uint64_t v;
	if (read(w->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		IOPF_STAT_INC(w->c.read_errors);
	for (;;) {
		struct cds_wfcq_node *node = __cds_wfcq_dequeue_blocking(&w->cmd_head, &w->cmd_tail);
		if (!node)
			return;
		struct iopf_cmd *cmd = caa_container_of(node, struct iopf_cmd, node);
		IOPF_TSAN_CONSUME(cmd);
		switch (cmd->type) {
		case CMD_ADD:
			cmd_add(w, cmd);
			break;
		case CMD_REMOVE:
			cmd_remove(w, cmd);
			continue; /* answered when the queue is let go */
		case CMD_PAUSE:
			cmd_pause(w, cmd->q);
			cmd->result = 0;
			break;
		case CMD_RESUME:
			cmd->result = cmd_resume(w, cmd->q);
			break;
		case CMD_DRAIN: {
			struct iopf_queue *q;
			cds_list_for_each_entry(q, &w->queues, node)
				flush_queue(w, q);
			cmd->result = 0;
			break;
		}
		case CMD_STATS:
			iopf_hist_merge(cmd->hist, &w->service);
			cmd->result = 0;
			break;
		case CMD_QUIT:
			w->quit = true;
			cmd->result = 0;
			break;
		case CMD_PING:
			__atomic_store_n(&w->pongs, w->pongs + 1, __ATOMIC_RELEASE);
			free(cmd);
			continue;
		case CMD_HANG:
			free(cmd);
			for (;;)
				pause();
		case CMD_DIE_ANSWERING:
			w->die_answering = true;
			free(cmd);
			continue;
		}
		sem_post(&cmd->done);
	}
}

static void *worker_main(void *arg) {
	struct iopf_worker *w = arg;
	struct epoll_event ev[64];

	iopf_rcu_register();
	while (!w->quit) {
		/* Offline while blocked, so a QSBR grace period never waits
		 * for an idle worker. */
		iopf_rcu_offline();
		int n = epoll_wait(w->epfd, ev, 64, leave_timeout_ms(w));
		iopf_rcu_online();
		IOPF_STAT_INC(w->c.epoll_waits);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		/* Commands last: a removal lets the control side free the
		 * queue, and a later event of this same batch may name it. */
		bool commands = false;
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr == w)
				commands = true;
			else
				serve_queue(w, ev[i].data.ptr);
		}
		if (commands)
			handle_commands(w);
		if (w->n_leaving)
			leave_expired(w);
		iopf_rcu_quiescent();
	}
	struct iopf_queue *q, *tmp;
	cds_list_for_each_entry_safe(q, tmp, &w->queues, node) {
		flush_queue(w, q);
		detach_queue(w, q, IOPF_QUEUE_REMOVED);
		q->worker = NULL;
	}
	iopf_rcu_unregister();
	return NULL;
}

/* Queue a command without waiting for it (the worker frees it). */
static void post_cmd(struct iopf_worker *w, struct iopf_cmd *cmd) {
	cds_wfcq_node_init(&cmd->node);
	IOPF_TSAN_PUBLISH(cmd);
	cds_wfcq_enqueue(&w->cmd_head, &w->cmd_tail, &cmd->node);
	uint64_t one = 1;
	if (write(w->evfd, &one, sizeof(one)) < 0) {
		/* Only an eventfd at its limit refuses, and then it is readable. */
	}
}

static int send_cmd(struct iopf_worker *w, struct iopf_cmd *cmd) {
	sem_init(&cmd->done, 0, 0);
	cds_wfcq_node_init(&cmd->node);
	IOPF_TSAN_PUBLISH(cmd);
	cds_wfcq_enqueue(&w->cmd_head, &w->cmd_tail, &cmd->node);
	uint64_t one = 1;
	if (write(w->evfd, &one, sizeof(one)) < 0) {
		/* Only an eventfd at its limit refuses, and then it is readable
		 * anyway: the worker will see the command. */
	}
	while (sem_wait(&cmd->done) < 0 && errno == EINTR)
		;
	sem_destroy(&cmd->done);
	return cmd->result;
}

/* --- engine ------------------------------------------------------------------------- */

static void worker_fini(struct iopf_worker *w) {
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->evfd >= 0)
		close(w->evfd);
	cds_wfcq_destroy(&w->cmd_head, &w->cmd_tail);
	iopf_resolver_fini(&w->res);
	if (!w->slot)
		free(w->rbuf);
	free(w->groups);
	free(w->resp);
	free(w->peek);
}

static int worker_init(struct iopf_engine *e, struct iopf_worker *w, unsigned index) {
	w->e = e;
	w->index = index;
	w->epfd = -1;
	w->evfd = -1;
	CDS_INIT_LIST_HEAD(&w->queues);
	cds_wfcq_init(&w->cmd_head, &w->cmd_tail);

	w->rcap = e->cfg.read_bytes - e->cfg.read_bytes % IOPF_RECORD_SIZE;
	w->max_groups = w->rcap / IOPF_RECORD_SIZE;
	if (e->cfg.journal) {
		/* Batches are read straight into the journal: no copy, and
		 * they are there for the next daemon if this one dies. */
		w->slot = iopf_journal_slot(e->cfg.journal, index);
		w->rbuf = w->slot->data;
	} else {
		/* Records hold a u64, so the buffer is at least 8-byte aligned. */
		w->rbuf = aligned_alloc(64, (w->rcap + 63) & ~(size_t)63);
	}
	w->groups = calloc(w->max_groups, sizeof(*w->groups));
	w->resp = calloc(w->max_groups, sizeof(*w->resp));
	/* A carried partial group and at most one whole group behind it. */
	w->peek_cap = 2 * (size_t)e->cfg.max_group_faults * IOPF_RECORD_SIZE;
	w->peek = aligned_alloc(64, w->peek_cap);
	if (!w->rbuf || !w->groups || !w->resp || !w->peek)
		return -ENOMEM;
	int r = iopf_resolver_init(&w->res, e->bindings, w->max_groups, &w->c);
	if (r < 0)
		return r;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->epfd < 0 || w->evfd < 0)
		return -errno;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0)
		return -errno;
	return 0;
}

int iopf_engine_new(const struct iopf_engine_config *cfg, struct iopf_engine **out) {
	struct iopf_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	if (!e->cfg.workers) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		e->cfg.workers = n > 0 ? (unsigned)n : 1;
	}
	if (!e->cfg.read_bytes)
		e->cfg.read_bytes = 64 * 1024;
	if (!e->cfg.fairness_reads)
		e->cfg.fairness_reads = 8;
	if (!e->cfg.max_group_faults)
		e->cfg.max_group_faults = 512;
	if (!e->cfg.leave_ms)
		e->cfg.leave_ms = 200;
	/* A group must fit in one read, or the kernel refuses the read (EINVAL)
	 * and a relay's group could never complete. */
	if (e->cfg.read_bytes / IOPF_RECORD_SIZE < e->cfg.max_group_faults || e->cfg.workers > 1024) {
		free(e);
		return -EINVAL;
	}
	const struct iopf_journal *j = e->cfg.journal;
	if (j && (j->h->workers < e->cfg.workers || j->h->slot_bytes < e->cfg.read_bytes ||
	          j->h->carry_bytes < e->cfg.max_group_faults * IOPF_RECORD_SIZE)) {
		free(e);
		return -EINVAL;
	}

	int r = iopf_bindings_new(&e->bindings);
	if (r < 0) {
		free(e);
		return r;
	}
	e->w = calloc(e->cfg.workers, sizeof(*e->w));
	if (!e->w) {
		iopf_bindings_free(e->bindings);
		free(e);
		return -ENOMEM;
	}
	/* Every worker's fds read "none" before any is set up, so that a
	 * failure part way leaves nothing for the cleanup to close twice. */
	for (unsigned i = 0; i < e->cfg.workers; i++)
		e->w[i].epfd = e->w[i].evfd = -1;
	for (unsigned i = 0; i < e->cfg.workers; i++) {
		r = worker_init(e, &e->w[i], i);
		if (r < 0)
			goto fail;
	}
	for (unsigned i = 0; i < e->cfg.workers; i++) {
		r = -pthread_create(&e->w[i].thread, NULL, worker_main, &e->w[i]);
		if (r < 0)
			goto fail;
		e->n_workers++;
	}
	*out = e;
	return 0;
fail:
	iopf_engine_free(e);
	return r;
}

void iopf_engine_free(struct iopf_engine *e) {
	if (!e)
		return;
	for (unsigned i = 0; i < e->n_workers; i++) {
		struct iopf_cmd cmd = {.type = CMD_QUIT};
		send_cmd(&e->w[i], &cmd);
		pthread_join(e->w[i].thread, NULL);
	}
	for (unsigned i = 0; i < e->cfg.workers; i++)
		worker_fini(&e->w[i]);
	free(e->w);
	iopf_bindings_free(e->bindings);
	free(e);
}

struct iopf_bindings *iopf_engine_bindings(struct iopf_engine *e) {
	return e->bindings;
}

unsigned iopf_engine_workers(struct iopf_engine *e) {
	return e->n_workers;
}

int iopf_engine_add_queue_to(struct iopf_engine *e, struct iopf_queue *q, unsigned index) {
	if (index >= e->n_workers || q->worker || q->fd < 0)
		return -EINVAL;
	struct iopf_cmd cmd = {.type = CMD_ADD, .q = q};
	return send_cmd(&e->w[index], &cmd);
}

int iopf_engine_add_queue(struct iopf_engine *e, struct iopf_queue *q) {
	unsigned best = 0;
	for (unsigned i = 1; i < e->n_workers; i++)
		if (__atomic_load_n(&e->w[i].n_queues, __ATOMIC_RELAXED) <
		    __atomic_load_n(&e->w[best].n_queues, __ATOMIC_RELAXED))
			best = i;
	return iopf_engine_add_queue_to(e, q, best);
}

/* Stop the worker reading the queue before the command reaches it: it
 * may be in the middle of several reads of the queue right now. */
static int queue_cmd(struct iopf_queue *q, enum cmd_type type) {
	struct iopf_worker *w = q->worker;
	if (!w)
		return -ENOENT;
	if (type != CMD_RESUME)
		__atomic_store_n(&q->stop_reading, 1, __ATOMIC_RELEASE);
	struct iopf_cmd cmd = {.type = type, .q = q};
	return send_cmd(w, &cmd);
}

int iopf_engine_remove_queue(struct iopf_engine *e, struct iopf_queue *q) {
	return queue_cmd(q, CMD_REMOVE);
}

int iopf_engine_pause_queue(struct iopf_engine *e, struct iopf_queue *q) {
	return queue_cmd(q, CMD_PAUSE);
}

int iopf_engine_resume_queue(struct iopf_engine *e, struct iopf_queue *q) {
	return queue_cmd(q, CMD_RESUME);
}

int iopf_engine_drain(struct iopf_engine *e) {
	for (unsigned i = 0; i < e->n_workers; i++) {
		struct iopf_cmd cmd = {.type = CMD_DRAIN};
		send_cmd(&e->w[i], &cmd);
	}
	return 0;
}

void iopf_engine_counters(struct iopf_engine *e, struct iopf_counters *out) {
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < e->n_workers; i++)
		iopf_counters_merge(out, &e->w[i].c);
}

unsigned iopf_engine_ping(struct iopf_engine *e) {
	unsigned stuck = 0;
	for (unsigned i = 0; i < e->n_workers; i++) {
		struct iopf_worker *w = &e->w[i];
		if (__atomic_load_n(&w->pongs, __ATOMIC_ACQUIRE) < w->pings) {
			stuck++; /* the previous ping is still unanswered */
			continue;
		}
		struct iopf_cmd *cmd = calloc(1, sizeof(*cmd));
		if (!cmd)
			continue;
		cmd->type = CMD_PING;
		w->pings++;
		post_cmd(w, cmd);
	}
	return stuck;
}

int iopf_engine_inject_hang(struct iopf_engine *e, unsigned index) {
	if (index >= e->n_workers)
		return -EINVAL;
	struct iopf_cmd *cmd = calloc(1, sizeof(*cmd));
	if (!cmd)
		return -ENOMEM;
	cmd->type = CMD_HANG;
	post_cmd(&e->w[index], cmd);
	return 0;
}

int iopf_engine_inject_die_answering(struct iopf_engine *e) {
	for (unsigned i = 0; i < e->n_workers; i++) {
		struct iopf_cmd *cmd = calloc(1, sizeof(*cmd));
		if (!cmd)
			return -ENOMEM;
		cmd->type = CMD_DIE_ANSWERING;
		post_cmd(&e->w[i], cmd);
	}
	return 0;
}

int iopf_engine_service_time(struct iopf_engine *e, struct iopf_hist *out) {
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < e->n_workers; i++) {
		struct iopf_cmd cmd = {.type = CMD_STATS, .hist = out};
		send_cmd(&e->w[i], &cmd);
	}
	return 0;
}
