/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "answer.h"
#include "carry.h"
#include "rcu.h"
#include "shared/time-util.h"
#include "test-hooks.h"

#if IOPFD_TEST_HOOKS
int iopf_test_answered_fd = -1;
#endif

int iopf_answerer_init(struct iopf_answerer *a, struct iopf_bindings *b, size_t max_bytes, uint32_t max_group_faults,
                       struct iopf_counters *c, struct iopf_hist *service) {
	*a = (struct iopf_answerer){.c = c, .service = service, .max_group_faults = max_group_faults};
	a->max_groups = max_bytes / IOPF_RECORD_SIZE;
	a->groups = calloc(a->max_groups, sizeof(*a->groups));
	a->resp = calloc(a->max_groups, sizeof(*a->resp));
	if (!a->groups || !a->resp) {
		iopf_answerer_fini(a);
		return -ENOMEM;
	}
	int r = iopf_resolver_init(&a->res, b, a->max_groups, c);
	if (r < 0) {
		iopf_answerer_fini(a);
		return r;
	}
	return 0;
}

void iopf_answerer_fini(struct iopf_answerer *a) {
	iopf_resolver_fini(&a->res);
	free(a->groups);
	free(a->resp);
	a->groups = NULL;
	a->resp = NULL;
}

static void count_group(struct iopf_queue *q, const struct iopf_group *g, uint32_t code) {
	IOPF_STAT_INC(q->st.groups);
	IOPF_STAT_ADD(q->st.faults, g->n_faults);
	if (code != IOMMUFD_PAGE_RESP_SUCCESS)
		IOPF_STAT_INC(q->st.invalid);
}

/* A batch being answered, in slices: the responses not written yet. */
struct answering {
	struct iopf_answerer *a;
	struct iopf_queue *q;
	struct iopf_jwriter *jw;
	uint64_t t_read;
	size_t n;        /* responses of the current slice */
	size_t answered; /* responses written before it */
	int wr;          /* the first write that failed: the queue cannot go on */
};

/* Write the current slice's answers, those of the groups that end before
 * byte `end` of the batch. */
static void answer_slice(struct answering *s, size_t end, bool last) {
	struct iopf_queue *q = s->q;
	if (s->jw)
		iopf_jwriter_answering(s->jw, end);
#if IOPFD_TEST_HOOKS
	if (s->a->die_answering && !q->ops->stream)
		kill(getpid(), SIGKILL); /* the window docs/restart.md describes, made wide */
#endif
	if (s->n && s->wr == 0)
		s->wr = q->ops->respond(q, s->a->resp, s->n, s->a->c);
#if IOPFD_TEST_HOOKS
	if (s->n && iopf_test_answered_fd >= 0) {
		uint64_t v = s->n;
		(void)!write(iopf_test_answered_fd, &v, sizeof(v));
	}
#endif
	/* Whatever the peer did not take is journaled before the slice is done. */
	if (!iopf_backlog_empty(q) || q->backlog.slot >= 0)
		iopf_backlog_mirror(q, s->jw, s->a->c);
	if (s->jw && !last)
		iopf_jwriter_sliced(s->jw, end);
	if (s->n && s->a->service)
		iopf_hist_add_n(s->a->service, now_ns() - s->t_read, s->n);
	s->answered += s->n;
	s->n = 0;
}

/*
 * A slice's time. The clock is read every SLICE_CLOCK_STRIDE groups while
 * groups resolve fast (a page already mapped costs about a tenth of a
 * microsecond, and a read of the clock a quarter of that), and after every
 * group once they are slow enough that the stride could overrun the
 * slice's time by more than an eighth.
 */
#define SLICE_CLOCK_STRIDE 16

struct slice_clock {
	uint64_t t0; /* the slice began */
	unsigned since, stride;
};

static void slice_clock_start(struct slice_clock *k, uint64_t now) {
	k->t0 = now;
	k->since = 0;
}

/* After the n-th group of the current slice: has it run for its time? */
static bool slice_clock_due(const struct iopf_answerer *a, struct slice_clock *k, size_t n) {
	if (!a->slice_ns || ++k->since < k->stride)
		return false;
	k->since = 0;
	uint64_t spent = now_ns() - k->t0;
	if (spent >= a->slice_ns)
		return true;
	k->stride = spent * SLICE_CLOCK_STRIDE * 8 > a->slice_ns * n ? 1 : SLICE_CLOCK_STRIDE;
	return false;
}

enum iopf_queue_close iopf_answer_batch(struct iopf_answerer *a, struct iopf_queue *q, struct iopf_jwriter *jw,
                                        uint8_t *buf, size_t len, uint64_t t_read, size_t *answered) {
	struct iopf_batch b;
	enum iopf_queue_close why = IOPF_QUEUE_OPEN;
	/* The group limit is for streams, whose groups we delimit: the kernel
	 * hands over whole groups only, however long. */
	uint32_t longest = q->ops->stream ? a->max_group_faults : (uint32_t)a->max_groups;
	int pr = iopf_batch_parse(buf, len, longest, a->groups, a->max_groups, &b);
	if (pr < 0) {
		/* Mixed cookies or an endless group: the stream cannot be
		 * resynchronized. Answer what came before, then drop it. */
		IOPF_STAT_INC(a->c->protocol_errors);
		why = IOPF_QUEUE_PROTOCOL;
	} else if (!q->ops->stream && b.consumed != len) {
		/* The kernel returns whole groups only; count, never guess. */
		IOPF_STAT_INC(a->c->read_errors);
	}

	/* A trailing partial group goes to a carry first: from here on a
	 * crash finds it either there or in the batch being answered. */
	if (why == IOPF_QUEUE_OPEN && q->ops->stream && b.consumed < len &&
	    iopf_partial_keep(q, jw, buf + b.consumed, len - b.consumed, a->c) < 0) {
		/* Out of memory for the partial group: the stream cannot go on. */
		IOPF_STAT_INC(a->c->read_errors);
		why = IOPF_QUEUE_IO_ERROR;
	}

	struct answering s = {.a = a, .q = q, .jw = jw, .t_read = t_read};
	/* The first slice counts from the read: no clock read for it. */
	struct slice_clock clock = {.t0 = t_read, .stride = SLICE_CLOCK_STRIDE};
	iopf_rcu_read_lock();
	iopf_resolver_begin(&a->res);
	iopf_resolver_use_cache(&a->res, &q->bcache);
	/* Coalescing looks no further than a slice: the maps of later
	 * slices' pages would make this slice's answers wait. */
	iopf_resolver_batch(&a->res, a->groups, b.n_groups, a->slice_groups);
	bool dup = false;
	for (size_t i = 0; i < b.n_groups; i++) {
		const struct iopf_group *g = &a->groups[i];
		uint32_t code;
		if (!iopf_resolver_claim_cookie(&a->res, g->cookie)) {
			/* A second group with a cookie still in flight: only a
			 * broken relay does that. It gets no second answer; the
			 * rest of the batch is answered INVALID and the peer goes. */
			if (!dup)
				IOPF_STAT_INC(a->c->protocol_errors);
			dup = true;
			continue;
		}
		if (dup) {
			IOPF_STAT_INC(a->c->groups);
			IOPF_STAT_ADD(a->c->faults, g->n_faults);
			IOPF_STAT_INC(a->c->invalid[IOPF_INVALID_DROPPED]);
			code = IOMMUFD_PAGE_RESP_INVALID;
		} else {
			code = iopf_resolve_group(&a->res, q->id, g);
			if (code == IOPF_RESOLVE_AGAIN) {
				/* The quota is full of what the groups before this
				 * one hold: answer them, let their pages go, and try
				 * again with room that eviction can make. */
				answer_slice(&s, (size_t)((const uint8_t *)g->faults - buf), false);
				iopf_resolver_release(&a->res);
				code = iopf_resolve_group(&a->res, q->id, g);
			}
		}
		count_group(q, g, code);
		a->resp[s.n++] = (iopf_response){.cookie = g->cookie, .code = code};
		/* Slices: no group waits for a whole batch of maps. The last
		 * group's slice is the batch's own last answer, below. */
		if (i + 1 < b.n_groups &&
		    ((a->slice_groups && s.n >= a->slice_groups) || slice_clock_due(a, &clock, s.n))) {
			answer_slice(&s, (size_t)((const uint8_t *)(g->faults + g->n_faults) - buf), false);
			iopf_resolver_release(&a->res);
			slice_clock_start(&clock, a->slice_ns ? now_ns() : 0);
		}
	}
	answer_slice(&s, b.consumed, true);
	if (jw)
		iopf_jwriter_answered(jw, len);
	iopf_resolver_end(&a->res);
	iopf_rcu_read_unlock();

	*answered = s.answered;
	if (dup)
		why = IOPF_QUEUE_PROTOCOL;
	if (s.wr < 0 && why == IOPF_QUEUE_OPEN)
		why = s.wr == -EPIPE ? IOPF_QUEUE_HANGUP : IOPF_QUEUE_IO_ERROR;
	return why;
}
