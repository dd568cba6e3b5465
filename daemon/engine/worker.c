/* SPDX-License-Identifier: MIT */
/*
 * A worker: one thread with its own epoll fd and its own queues, reading
 * batches of fault groups, answering them, and taking commands from the
 * control side through a wait-free queue and an eventfd.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "carry.h"
#include "engine-internal.h"
#include "rcu.h"
#include "shared/time-util.h"

/* --- queues in epoll ------------------------------------------------------------- */

static int set_interest(struct iopf_worker *w, struct iopf_queue *q, uint32_t events) {
	if (q->events == events)
		return 0;
	struct epoll_event ev = {.events = events, .data.ptr = q};
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, q->fd, &ev) < 0)
		return -errno;
	q->events = events;
	return 0;
}

/* Into epoll, waiting for what the queue needs first: answers restored
 * after a restart (or held back before a pause) wait for it to be writable. */
static int epoll_add(struct iopf_worker *w, struct iopf_queue *q) {
	uint32_t events = iopf_backlog_empty(q) ? EPOLLIN : EPOLLOUT;
	struct epoll_event ev = {.events = events, .data.ptr = q};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, q->fd, &ev) < 0)
		return -errno;
	q->events = events;
	q->paused = false;
	return 0;
}

/* Let go of a queue: out of epoll and out of this worker's list. */
static void detach_queue(struct iopf_worker *w, struct iopf_queue *q, enum iopf_queue_close why) {
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, q->fd, NULL);
	iopf_carries_release(q, iopf_worker_jw(w));
	cds_list_del(&q->node);
	__atomic_store_n(&w->n_queues, w->n_queues - 1, __ATOMIC_RELAXED);
	__atomic_store_n(&q->closed, why, __ATOMIC_RELEASE);
}

/* The worker drops a queue by itself. Closing our fd lets a relay peer see
 * the end at once; a kernel fault queue lives on in the client's fd. */
static void close_queue(struct iopf_worker *w, struct iopf_queue *q, enum iopf_queue_close why) {
	if (why == IOPF_QUEUE_HANGUP)
		IOPF_STAT_INC(w->c.hangups);
	detach_queue(w, q, why);
	close(q->fd);
	q->fd = -1;
	if (w->e->cfg.on_queue_closed)
		w->e->cfg.on_queue_closed(q, why, w->e->cfg.userdata);
}

/* --- reading and answering ----------------------------------------------------------- */

/*
 * One read of at most `want` bytes behind the partial group the queue
 * carries, then resolve and answer it. Returns the bytes read, 0 when
 * nothing was queued, or -1 when the queue had to be closed.
 */
static ssize_t read_batch(struct iopf_worker *w, struct iopf_queue *q, size_t want) {
	struct iopf_jwriter *jw = iopf_worker_jw(w);
	size_t have = q->partial.len;
	if (have)
		memcpy(w->rbuf, iopf_partial_bytes(q, jw), have);
	if (jw)
		iopf_jwriter_reading(jw, q->id, have, q->ops->stream);
	ssize_t n = q->ops->read(q, w->rbuf + have, want);
	IOPF_STAT_INC(w->c.reads);
	if (n <= 0 && jw)
		iopf_jwriter_answered(jw, have); /* the partial group stays where it is */
	if (n == 0) {
		IOPF_STAT_INC(w->c.empty_reads);
		return 0;
	}
	if (n < 0) {
		if (n != -EPIPE)
			IOPF_STAT_INC(w->c.read_errors);
		close_queue(w, q, n == -EPIPE ? IOPF_QUEUE_HANGUP : IOPF_QUEUE_IO_ERROR);
		return -1;
	}
	/* Journal the batch, then let go of the partial group it now holds. */
	if (jw)
		iopf_jwriter_read(jw, have + (size_t)n);
	iopf_partial_drop(q, jw);
	size_t answered;
	enum iopf_queue_close why = iopf_answer_batch(&w->ans, q, jw, w->rbuf, have + (size_t)n, now_ns(), &answered);
	if (why != IOPF_QUEUE_OPEN) {
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
	iopf_backlog_mirror(q, iopf_worker_jw(w), &w->c);
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

	if (!iopf_backlog_empty(q)) {
		if (flush_backlog(w, q) != 0)
			return; /* still backed up (EPOLLOUT is on), or closed */
		set_interest(w, q, EPOLLIN);
	}

	for (unsigned round = 0; round < w->e->cfg.fairness_reads; round++) {
		/* Being paused or taken back: what is not read yet stays in
		 * the queue, for whoever holds it next. */
		if (__atomic_load_n(&q->stop_reading, __ATOMIC_ACQUIRE))
			return;
		size_t want = w->rcap - q->partial.len;
		ssize_t n = read_batch(w, q, want);
		if (n <= 0)
			return;
		if (!iopf_backlog_empty(q)) {
			/* The peer is not reading: stop reading from it too. */
			set_interest(w, q, EPOLLOUT);
			return;
		}
		if ((size_t)n < want)
			return; /* took all there was */
	}
}

/* --- taking a queue back ---------------------------------------------------------- */

/*
 * The control side has set stop_reading, so no new batch is read, and
 * everything read so far has been answered (resolution is synchronous). A
 * relay may still hold two things that belong to groups it read: the start
 * of a group whose rest the peer has not sent yet, and answers the peer has
 * not taken. The queue stays with the worker until both are done or the
 * grace period ends, so that the stream is left at a group boundary for
 * whoever reads it next and every group read is answered.
 */
static void leave_done(struct iopf_worker *w, struct iopf_queue *q) {
	struct iopf_cmd *cmd = q->leaving;
	if (!q->closed) {
		if (q->partial.len)
			IOPF_STAT_INC(w->c.cut_groups);
		if (!iopf_backlog_empty(q))
			/* One sent in part is as good as lost. */
			IOPF_STAT_ADD(w->c.unsent_responses,
			              (q->backlog.len - q->backlog.off + sizeof(iopf_response) - 1) / sizeof(iopf_response));
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
	size_t have = q->partial.len;
	memcpy(w->peek, iopf_partial_bytes(q, iopf_worker_jw(w)), have);
	ssize_t n = q->ops->peek(q, w->peek + have, w->peek_cap - have);
	if (n < 0)
		return -2;
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
	if (q->partial.len && !q->closed)
		gone = complete_group(w, q) == -2;
	if (!q->closed && !gone && !iopf_backlog_empty(q))
		flush_backlog(w, q);
	if (q->closed || gone || (!q->partial.len && iopf_backlog_empty(q))) {
		leave_done(w, q);
		return;
	}
	/* Edge-triggered: a peek takes nothing, so the socket stays readable
	 * while the group's rest is still on its way. */
	set_interest(w, q, EPOLLET | (q->partial.len ? EPOLLIN : 0) | (iopf_backlog_empty(q) ? 0 : EPOLLOUT));
}

static void cmd_remove(struct iopf_worker *w, struct iopf_cmd *cmd) {
	struct iopf_queue *q = cmd->q;
	if (!__atomic_load_n(&q->closed, __ATOMIC_ACQUIRE)) {
		if (cmd->release == IOPF_RELEASE_TO_NEXT_DAEMON) {
			/* It goes on in the next daemon, with its carries. */
			if (!iopf_backlog_empty(q))
				q->ops->flush(q, &w->c);
			iopf_carries_hand_on(q, iopf_worker_jw(w), &w->c);
		} else if (q->partial.len || !iopf_backlog_empty(q)) {
			if (!q->paused || epoll_add(w, q) == 0) {
				q->leaving = cmd;
				q->leave_deadline = now_ns() + (uint64_t)w->e->cfg.leave_ms * 1000000;
				w->n_leaving++;
				leave_step(w, q);
				return; /* leave_done() answers the command */
			}
		}
		detach_queue(w, q, IOPF_QUEUE_REMOVED);
	}
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

/* --- commands ---------------------------------------------------------------------- */

static void cmd_add(struct iopf_worker *w, struct iopf_cmd *cmd) {
	struct iopf_queue *q = cmd->q;
	cmd->result = epoll_add(w, q);
	if (cmd->result < 0)
		return;
	q->worker = w;
	iopf_carries_journal(q, iopf_worker_jw(w), &w->c);
	cds_list_add_tail(&q->node, &w->queues);
	__atomic_store_n(&w->n_queues, w->n_queues + 1, __ATOMIC_RELAXED);
}

/* Out of epoll while paused: what is queued stays there. */
static void cmd_pause(struct iopf_worker *w, struct iopf_queue *q) {
	if (q->closed || q->paused)
		return;
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, q->fd, NULL);
	q->paused = true;
}

static int cmd_resume(struct iopf_worker *w, struct iopf_queue *q) {
	if (q->closed || !q->paused)
		return 0;
	__atomic_store_n(&q->stop_reading, 0, __ATOMIC_RELAXED);
	int r = epoll_add(w, q);
	if (r < 0)
		close_queue(w, q, IOPF_QUEUE_IO_ERROR); /* it could never be read again */
	return r;
}

/* Whatever was read has been answered already (resolution is synchronous);
 * what may remain are answers a relay peer has not taken yet. */
static void flush_queue(struct iopf_worker *w, struct iopf_queue *q) {
	if (!iopf_backlog_empty(q))
		q->ops->flush(q, &w->c);
}

/* Returns false when the command is answered later (or freed already). */
static bool handle_command(struct iopf_worker *w, struct iopf_cmd *cmd) {
	switch (cmd->type) {
	case CMD_ADD:
		cmd_add(w, cmd);
		return true;
	case CMD_REMOVE:
		cmd_remove(w, cmd);
		return false; /* answered when the queue is let go */
	case CMD_PAUSE:
		cmd_pause(w, cmd->q);
		cmd->result = 0;
		return true;
	case CMD_RESUME:
		cmd->result = cmd_resume(w, cmd->q);
		return true;
	case CMD_DRAIN: {
		struct iopf_queue *q;
		cds_list_for_each_entry(q, &w->queues, node)
			flush_queue(w, q);
		cmd->result = 0;
		return true;
	}
	case CMD_STATS:
		iopf_hist_merge(cmd->hist, &w->service);
		cmd->result = 0;
		return true;
	case CMD_QUIT:
		w->quit = true;
		cmd->result = 0;
		return true;
	case CMD_PING:
		__atomic_store_n(&w->pongs, w->pongs + 1, __ATOMIC_RELEASE);
		free(cmd);
		return false;
#if IOPFD_TEST_HOOKS
	case CMD_HANG:
		free(cmd);
		for (;;)
			pause();
	case CMD_DIE_ANSWERING:
		w->ans.die_answering = true;
		free(cmd);
		return false;
#endif
	}
	return true;
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
		if (handle_command(w, cmd))
			sem_post(&cmd->done);
	}
}

/* Events, or -1 with errno. With busy polling, epoll_wait() without a
 * timeout again and again for up to busy_poll_ns, then sleep in it. */
static int wait_events(struct iopf_worker *w, struct epoll_event *ev, int max) {
	uint64_t budget = w->e->cfg.busy_poll_ns, until = 0;
	while (budget && !w->n_leaving) {
		int n = epoll_wait(w->epfd, ev, max, 0);
		if (n != 0) {
			IOPF_STAT_INC(w->c.epoll_waits);
			return n;
		}
		IOPF_STAT_INC(w->c.polls);
		uint64_t now = now_ns();
		if (!until)
			until = now + budget;
		else if (now >= until)
			break;
		iopf_rcu_quiescent();
	}
	/* Offline while blocked, so a QSBR grace period never waits for an
	 * idle worker. */
	iopf_rcu_offline();
	int n = epoll_wait(w->epfd, ev, max, leave_timeout_ms(w));
	iopf_rcu_online();
	IOPF_STAT_INC(w->c.epoll_waits);
	return n;
}

void *iopf_worker_main(void *arg) {
	struct iopf_worker *w = arg;
	struct epoll_event ev[64];

	iopf_rcu_register();
	while (!w->quit) {
		int n = wait_events(w, ev, 64);
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

/* --- set-up ---------------------------------------------------------------------------- */

/* Each page written once, with what it holds (the read buffer may be the
 * journal's, whose poison must stay), then locked if the limit allows. */
static void resident(void *p, size_t len) {
	volatile uint8_t *b = p;
	long page = sysconf(_SC_PAGESIZE);
	for (size_t i = 0; i < len; i += (size_t)page)
		b[i] = b[i];
	if (len)
		b[len - 1] = b[len - 1];
	(void)mlock(p, len);
}

void iopf_worker_fini(struct iopf_worker *w) {
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->evfd >= 0)
		close(w->evfd);
	cds_wfcq_destroy(&w->cmd_head, &w->cmd_tail);
	iopf_answerer_fini(&w->ans);
	if (!w->journaled)
		free(w->rbuf);
	free(w->peek);
}

int iopf_worker_init(struct iopf_engine *e, struct iopf_worker *w, unsigned index) {
	w->e = e;
	w->index = index;
	w->epfd = -1;
	w->evfd = -1;
	CDS_INIT_LIST_HEAD(&w->queues);
	cds_wfcq_init(&w->cmd_head, &w->cmd_tail);

	w->rcap = e->cfg.read_bytes - e->cfg.read_bytes % IOPF_RECORD_SIZE;
	if (e->cfg.journal) {
		/* Batches are read straight into the journal: no copy, and
		 * they are there for the next daemon if this one dies. */
		iopf_jwriter_init(&w->jw, e->cfg.journal, index);
		w->journaled = true;
		w->rbuf = iopf_jwriter_buffer(&w->jw);
	} else {
		/* Records hold a u64, so the buffer is at least 8-byte aligned. */
		w->rbuf = aligned_alloc(64, (w->rcap + 63) & ~(size_t)63);
	}
	/* A partial group and at most one whole group behind it. */
	w->peek_cap = 2 * (size_t)e->cfg.max_group_faults * IOPF_RECORD_SIZE;
	w->peek = aligned_alloc(64, (w->peek_cap + 63) & ~(size_t)63); /* a multiple of the alignment */
	if (!w->rbuf || !w->peek)
		return -ENOMEM;
	int r = iopf_answerer_init(&w->ans, e->bindings, w->rcap, e->cfg.max_group_faults, &w->c, &w->service);
	if (r < 0)
		return r;
	w->ans.slice_groups = e->cfg.slice_groups;
	w->ans.slice_ns = e->cfg.slice_ns;
	/* Resident before the first fault: a copy to or from user memory that
	 * faults inside the fault fd's read or write is a path older kernels
	 * get wrong. Locked where the limit allows; touched in any case. */
	resident(w->rbuf, w->rcap);
	resident(w->peek, w->peek_cap);
	resident(w->ans.resp, w->ans.max_groups * sizeof(*w->ans.resp));
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->epfd < 0 || w->evfd < 0)
		return -errno;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0)
		return -errno;
	return 0;
}
