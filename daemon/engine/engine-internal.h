/* SPDX-License-Identifier: MIT */
/*
 * The engine's inside: the engine (engine.c, the control side's API) and
 * its workers (worker.c, one thread each), which talk only through each
 * worker's command queue.
 */
#pragma once

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>

#include <urcu/list.h>
#include <urcu/wfcqueue.h>

#include "answer.h"
#include "engine.h"
#include "journal.h"

enum iopf_cmd_type {
	CMD_ADD,
	CMD_REMOVE,
	CMD_PAUSE,
	CMD_RESUME,
	CMD_DRAIN,
	CMD_STATS,
	CMD_QUIT,
	CMD_PING, /* asynchronous: the worker counts it and frees it */
#if IOPFD_TEST_HOOKS
	CMD_HANG,          /* the worker stops for good */
	CMD_DIE_ANSWERING, /* the process dies in the ANSWERING window */
#endif
};

struct iopf_cmd {
	struct cds_wfcq_node node;
	enum iopf_cmd_type type;
	struct iopf_queue *q;
	enum iopf_release release; /* CMD_REMOVE */
	struct iopf_hist *hist;    /* CMD_STATS: merged into */
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
	unsigned n_queues;  /* read by the control side to balance */
	unsigned n_leaving; /* queues whose removal waits on their peer */
	uint64_t pings;     /* control side only */
	uint64_t pongs;     /* written by the worker, read by the control side */
	struct cds_list_head queues;
	bool quit;

	struct iopf_counters c;
	struct iopf_hist service; /* per group: read returned -> response written */

	uint8_t *rbuf;            /* the journal's buffer, or private */
	size_t rcap;              /* whole records */
	bool journaled;
	struct iopf_jwriter jw;   /* when journaled */
	struct iopf_answerer ans;
	uint8_t *peek;            /* a partial group and what follows it (see complete_group) */
	size_t peek_cap;
};

struct iopf_engine {
	struct iopf_engine_config cfg;
	struct iopf_bindings *bindings;
	unsigned n_workers;
	struct iopf_worker *w;
	/* Batches a restarted daemon answers on the control thread. */
	struct iopf_answerer recovery;
	struct iopf_counters recovery_counters;
	bool recovery_ready;
};

int iopf_worker_init(struct iopf_engine *e, struct iopf_worker *w, unsigned index);
void iopf_worker_fini(struct iopf_worker *w);
void *iopf_worker_main(void *arg);
/* The jwriter of a worker's journal, or NULL when it has none. */
static inline struct iopf_jwriter *iopf_worker_jw(struct iopf_worker *w) {
	return w->journaled ? &w->jw : NULL;
}
