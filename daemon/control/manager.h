/* SPDX-License-Identifier: MIT */
/*
 * The daemon's control side: one thread running sd-event, the Varlink
 * server, signals, sd_notify and the watchdog, and the registry of what
 * clients made. It builds objects, hands queues to the engine, publishes
 * bindings and regions, and tears everything down when a client goes.
 *
 *   manager.c          lifecycle, signals, notify, the closed-queue hand-off
 *   objects.c          queues and address spaces (the object core)
 *   accounting.c       per-uid use, limits and pin budgets (config.c: the file)
 *   clients.c          who is connected
 *   restart.c          restart without loss (state.c: the saved state)
 *   varlink-server.c   listening; joins the method tables of
 *   varlink-queues.c, varlink-spaces.c, varlink-stats.c
 *   varlink-util.c     replies, named errors, parameters
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>
#include <systemd/sd-varlink.h>
#include <urcu/list.h>

#include "accounting.h"
#include "config.h"
#include "engine/engine.h"
#include "objects.h"
#include "restart.h"
#include "varlink-util.h"

/* The group whose members may connect (the units' and sysusers.d's too). */
#define IOPFD_SOCKET_GROUP "iopfd"

struct manager_config {
	const char *socket_path; /* NULL: socket activation, else IOPFD_SOCKET_DEFAULT */
	mode_t socket_mode;      /* a socket iopfd makes itself; 0: 0660 */
	const char *socket_group; /* its group; NULL: IOPFD_SOCKET_GROUP */
	bool no_listen;          /* connections only through manager_add_connection() (fuzzers) */
	unsigned workers;        /* 0: online CPUs */
	const char *config_path; /* NULL: IOPFD_CONFIG_FILE */
	struct iopfd_config config; /* the manager's once given to manager_new() */
	struct config_overrides overrides; /* applied again on reload */
};

/* A queue a worker dropped by itself, handed to the control thread. */
struct closed_note {
	uint32_t queue_id;
	enum iopf_queue_close why;
};

struct manager {
	struct manager_config cfg;
	sd_event *event;
	sd_varlink_server *server;
	struct iopf_engine *engine;
	uint64_t started_usec;
	bool shutting_down;

	struct cds_list_head clients; /* struct client */
	unsigned n_clients;
	struct cds_list_head objects[_OBJECT_TYPE_MAX];
	unsigned n_objects[_OBJECT_TYPE_MAX];
	uint64_t next_id[_OBJECT_TYPE_MAX]; /* the last id given out */
	struct accounting acct;
	uint64_t request_errors[_VL_ERROR_MAX];
	struct cds_list_head monitors; /* varlink-stats.c */

	/* Queues a worker dropped by itself (on_queue_closed). */
	int closed_efd;
	sd_event_source *closed_source;
	pthread_mutex_t closed_lock;
	struct closed_note *closed;
	size_t n_closed, cap_closed;
	bool closed_overflow;

	sd_event_source *status_timer;
	uint64_t status_last_groups, status_last_usec;
	sd_event_source *liveness_timer;
	uint64_t liveness_usec;

	struct restart restart;
	sd_event_source *save_source; /* saves the state once per loop turn when it changed */
};

int manager_new(const struct manager_config *cfg, struct manager **out);
int manager_startup(struct manager *m);
int manager_run(struct manager *m);
/* Serve a connected socket as a client connection (tests, fuzzers). */
int manager_add_connection(struct manager *m, int fd);
void manager_free(struct manager *m);

/* What persistent objects are changed: the state is saved once the event
 * loop comes round (many changes in one turn, one save). */
static inline void manager_state_changed(struct manager *m) {
	if (m->save_source)
		sd_event_source_set_enabled(m->save_source, SD_EVENT_ONESHOT);
}
