/* SPDX-License-Identifier: MIT */
/*
 * The engine as the control side sees it: starting and stopping workers,
 * giving queues to them and taking them back, and the figures. Every call
 * here that needs a worker posts a command and waits for its answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "carry.h"
#include "engine-internal.h"
#include "rcu.h"
#include "shared/time-util.h"
#include "test-hooks.h"

/* Queue a command without waiting for it (the worker frees it). */
static void post_cmd(struct iopf_worker *w, struct iopf_cmd *cmd) {
	cds_wfcq_node_init(&cmd->node);
	IOPF_TSAN_PUBLISH(cmd);
	cds_wfcq_enqueue(&w->cmd_head, &w->cmd_tail, &cmd->node);
	uint64_t one = 1;
	if (write(w->evfd, &one, sizeof(one)) < 0) {
		/* Only an eventfd at its limit refuses, and then it is readable
		 * anyway: the worker will see the command. */
	}
}

static int send_cmd(struct iopf_worker *w, struct iopf_cmd *cmd) {
	sem_init(&cmd->done, 0, 0);
	post_cmd(w, cmd);
	while (sem_wait(&cmd->done) < 0 && errno == EINTR)
		;
	sem_destroy(&cmd->done);
	return cmd->result;
}

/* A command about one queue, to the worker that has it. Pausing or taking
 * a queue back stops the worker reading it before the command reaches it:
 * it may be in the middle of several reads of the queue right now. */
static int queue_cmd(struct iopf_queue *q, enum iopf_cmd_type type, enum iopf_release release) {
	struct iopf_worker *w = q->worker;
	if (!w)
		return -ENOENT;
	if (type != CMD_RESUME)
		__atomic_store_n(&q->stop_reading, 1, __ATOMIC_RELEASE);
	struct iopf_cmd cmd = {.type = type, .q = q, .release = release};
	return send_cmd(w, &cmd);
}

/* --- lifecycle ------------------------------------------------------------------------- */

unsigned iopf_engine_default_workers(unsigned requested) {
	if (requested)
		return requested;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static int config_check(struct iopf_engine_config *c) {
	c->workers = iopf_engine_default_workers(c->workers);
	if (!c->read_bytes)
		c->read_bytes = IOPF_ENGINE_READ_BYTES;
	if (!c->fairness_reads)
		c->fairness_reads = 8;
	if (!c->max_group_faults)
		c->max_group_faults = IOPF_ENGINE_MAX_GROUP_FAULTS;
	if (!c->leave_ms)
		c->leave_ms = 200;
	/* A group must fit in one read, or the kernel refuses the read (EINVAL)
	 * and a relay's group could never complete. */
	if (c->read_bytes / IOPF_RECORD_SIZE < c->max_group_faults || c->workers > 1024)
		return -EINVAL;
	const struct iopf_journal *j = c->journal;
	if (j && (j->shape.workers < c->workers || j->shape.slot_bytes < c->read_bytes ||
	          j->shape.carry_bytes < c->max_group_faults * IOPF_RECORD_SIZE))
		return -EINVAL;
	return 0;
}

int iopf_engine_new(const struct iopf_engine_config *cfg, struct iopf_engine **out) {
	struct iopf_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	int r = config_check(&e->cfg);
	if (r < 0) {
		free(e);
		return r;
	}
	r = iopf_bindings_new(&e->bindings);
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
		r = iopf_worker_init(e, &e->w[i], i);
		if (r < 0)
			goto fail;
	}
	for (unsigned i = 0; i < e->cfg.workers; i++) {
		r = -pthread_create(&e->w[i].thread, NULL, iopf_worker_main, &e->w[i]);
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
		iopf_worker_fini(&e->w[i]);
	if (e->recovery_ready)
		iopf_answerer_fini(&e->recovery);
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

/* --- queues ----------------------------------------------------------------------------- */

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

int iopf_engine_remove_queue(struct iopf_engine *e, struct iopf_queue *q, enum iopf_release release) {
	return queue_cmd(q, CMD_REMOVE, release);
}

int iopf_engine_pause_queue(struct iopf_engine *e, struct iopf_queue *q) {
	return queue_cmd(q, CMD_PAUSE, IOPF_RELEASE_TO_HOLDER);
}

int iopf_engine_resume_queue(struct iopf_engine *e, struct iopf_queue *q) {
	return queue_cmd(q, CMD_RESUME, IOPF_RELEASE_TO_HOLDER);
}

int iopf_engine_drain(struct iopf_engine *e) {
	for (unsigned i = 0; i < e->n_workers; i++) {
		struct iopf_cmd cmd = {.type = CMD_DRAIN};
		send_cmd(&e->w[i], &cmd);
	}
	return 0;
}

/* --- what a previous daemon left ------------------------------------------------------- */

int iopf_engine_recover(struct iopf_engine *e, struct iopf_queue *q, const struct iopf_journal_entry *entry,
                        struct iopf_recovery *out) {
	*out = (struct iopf_recovery){0};
	if (q->worker)
		return -EBUSY;
	if (!e->recovery_ready) {
		int r = iopf_answerer_init(&e->recovery, e->bindings, e->cfg.read_bytes, e->cfg.max_group_faults,
		                           &e->recovery_counters, NULL);
		if (r < 0)
			return r;
		e->recovery_ready = true;
	}
	struct iopf_counters *c = &e->recovery_counters;
	uint64_t rejects = c->write_rejects;
	size_t n = 0;
	enum iopf_queue_close why = IOPF_QUEUE_OPEN;
	switch (entry->kind) {
	case IOPF_JOURNAL_ANSWERS:
		n = entry->len / sizeof(iopf_response);
		if (q->ops->respond(q, (const iopf_response *)entry->data, n, c) < 0)
			why = IOPF_QUEUE_IO_ERROR;
		break;
	case IOPF_JOURNAL_BATCH:
	case IOPF_JOURNAL_REANSWER:
		if (entry->len > e->cfg.read_bytes)
			return -EMSGSIZE;
		why = iopf_answer_batch(&e->recovery, q, NULL, entry->data, entry->len, now_ns(), &n);
		break;
	case IOPF_JOURNAL_PARTIAL:
		if (iopf_partial_keep(q, NULL, entry->data, entry->len, c) < 0)
			return -ENOMEM;
		break;
	}
	out->answered = n;
	out->refused = c->write_rejects - rejects;
	out->closed = why;
	return 0;
}

/* --- figures and liveness ---------------------------------------------------------------- */

void iopf_engine_counters(struct iopf_engine *e, struct iopf_counters *out) {
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < e->n_workers; i++)
		iopf_counters_merge(out, &e->w[i].c);
}

int iopf_engine_service_time(struct iopf_engine *e, struct iopf_hist *out) {
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < e->n_workers; i++) {
		struct iopf_cmd cmd = {.type = CMD_STATS, .hist = out};
		send_cmd(&e->w[i], &cmd);
	}
	return 0;
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

#if IOPFD_TEST_HOOKS
static int post_hook(struct iopf_worker *w, enum iopf_cmd_type type) {
	struct iopf_cmd *cmd = calloc(1, sizeof(*cmd));
	if (!cmd)
		return -ENOMEM;
	cmd->type = type;
	post_cmd(w, cmd);
	return 0;
}

int iopf_engine_test_hang(struct iopf_engine *e, unsigned index) {
	if (index >= e->n_workers)
		return -EINVAL;
	return post_hook(&e->w[index], CMD_HANG);
}

int iopf_engine_test_die_answering(struct iopf_engine *e) {
	for (unsigned i = 0; i < e->n_workers; i++) {
		int r = post_hook(&e->w[i], CMD_DIE_ANSWERING);
		if (r < 0)
			return r;
	}
	return 0;
}
#endif
