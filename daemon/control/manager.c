/* SPDX-License-Identifier: MIT */
/*
 * The daemon's lifecycle: sd-event on the control thread, the engine's
 * workers, signals as event sources, READY/STATUS/WATCHDOG to systemd, and a
 * drain that answers everything in flight before the daemon exits.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "clients.h"
#include "engine/rcu.h"
#include "log.h"
#include "manager.h"
#include "shared/time-util.h"
#include "test-hooks.h"
#include "varlink-methods.h"
#include "varlink-server.h"

/* --- queues a worker dropped by itself ------------------------------------------------ */

/* On a worker thread: a queue was dropped (peer gone, protocol error, I/O
 * error). The control thread tears it down; hand it over. */
static void on_queue_closed(struct iopf_queue *q, enum iopf_queue_close why, void *userdata) {
	struct manager *m = userdata;
	pthread_mutex_lock(&m->closed_lock);
	if (m->n_closed == m->cap_closed) {
		size_t cap = m->cap_closed ? 2 * m->cap_closed : 16;
		struct closed_note *n = realloc(m->closed, cap * sizeof(*n));
		if (n) {
			m->closed = n;
			m->cap_closed = cap;
		}
	}
	if (m->n_closed < m->cap_closed)
		m->closed[m->n_closed++] = (struct closed_note){.queue_id = iopf_queue_id(q), .why = why};
	else
		m->closed_overflow = true; /* the control thread looks at every queue */
	pthread_mutex_unlock(&m->closed_lock);
	uint64_t one = 1;
	if (write(m->closed_efd, &one, sizeof(one)) < 0) {
		/* Only a saturated counter refuses, and then it is readable. */
	}
}

static void drop_closed(struct object *o, enum iopf_queue_close why) {
	if (why == IOPF_QUEUE_HANGUP)
		log_info("queue %lu: peer hung up", (unsigned long)o->id);
	else
		log_warning("queue %lu dropped: %s", (unsigned long)o->id, iopf_queue_close_to_string(why));
	object_destroy(o, OBJECT_FORGET, NULL);
}

static int on_closed_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	struct manager *m = userdata;
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return log_error_errno(errno, "Failed to read the closed-queue eventfd: %m");
	pthread_mutex_lock(&m->closed_lock);
	bool overflow = m->closed_overflow;
	m->closed_overflow = false;
	pthread_mutex_unlock(&m->closed_lock);
	if (overflow) {
		/* Out of memory for the notes: find the dropped queues by their
		 * own mark instead. */
		struct object *o, *t;
		cds_list_for_each_entry_safe(o, t, &m->objects[OBJECT_QUEUE], node)
			if (iopf_queue_closed(o->q) != IOPF_QUEUE_OPEN)
				drop_closed(o, iopf_queue_closed(o->q));
	}
	for (;;) {
		struct closed_note note;
		pthread_mutex_lock(&m->closed_lock);
		bool have = m->n_closed > 0;
		if (have)
			note = m->closed[--m->n_closed];
		pthread_mutex_unlock(&m->closed_lock);
		if (!have)
			break;
		struct object *o = object_find(m, OBJECT_QUEUE, note.queue_id);
		if (o) /* else unregistered meanwhile */
			drop_closed(o, note.why);
	}
	return 0;
}

/* --- timers and signals ---------------------------------------------------------------- */

/* Time sources fire once; arm it again. */
static int rearm(sd_event_source *s, uint64_t usec) {
	int r = sd_event_source_set_time_relative(s, usec);
	return r < 0 ? r : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	struct manager *m = userdata;
	struct iopf_counters c;
	iopf_engine_counters(m->engine, &c);
	uint64_t now = now_usec();
	double secs = (double)(now - m->status_last_usec) / 1e6;
	double rate = secs > 0 ? (double)(c.groups - m->status_last_groups) / secs : 0;
	m->status_last_groups = c.groups;
	m->status_last_usec = now;
	sd_notifyf(0, "STATUS=%u queues, %u spaces, %u clients; %lu groups answered (%.0f/s), %lu invalid",
	           m->n_objects[OBJECT_QUEUE], m->n_objects[OBJECT_SPACE], m->n_clients, (unsigned long)c.groups, rate,
	           (unsigned long)iopf_counters_invalid_total(&c));
	return rearm(s, 5 * 1000000ull);
}

/* Workers never take the control thread's locks, so a hung worker would go
 * unseen by the event loop's own watchdog pings: ask them to answer, and
 * fire the watchdog when one stays silent. */
static int on_liveness_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	struct manager *m = userdata;
	unsigned stuck = iopf_engine_ping(m->engine);
	if (stuck) {
		log_error("%u worker(s) stopped answering: firing the watchdog", stuck);
		sd_notify(0, "WATCHDOG=trigger");
	}
	return rearm(s, m->liveness_usec);
}

static void drain(struct manager *m) {
	m->shutting_down = true;
	monitors_drop_link(m, NULL);
	objects_drain(m);
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	struct manager *m = userdata;
	log_info("received %s: answering everything in flight and stopping",
	         si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
	sd_notify(0, "STOPPING=1\nSTATUS=Draining");
	drain(m);
	return sd_event_exit(m->event, 0);
}

/* Persistent objects changed in this turn of the loop: save once. Not
 * while stopping: what is kept for the next start is the state as it was. */
static int on_save(sd_event_source *s, void *userdata) {
	struct manager *m = userdata;
	if (!m->shutting_down)
		restart_save_state(m);
	return 0;
}

/* --- lifecycle -------------------------------------------------------------------------- */

int manager_new(const struct manager_config *cfg, struct manager **out) {
	struct manager *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	m->cfg.workers = iopf_engine_default_workers(cfg->workers ? cfg->workers : cfg->config.workers.workers);
	m->closed_efd = -1;
	restart_init(&m->restart);
	accounting_init(&m->acct, &m->cfg.config);
	CDS_INIT_LIST_HEAD(&m->clients);
	for (int t = 0; t < _OBJECT_TYPE_MAX; t++)
		CDS_INIT_LIST_HEAD(&m->objects[t]);
	CDS_INIT_LIST_HEAD(&m->monitors);
	pthread_mutex_init(&m->closed_lock, NULL);
	m->started_usec = now_usec();
	*out = m;
	return 0;
}

/* SIGHUP (systemctl reload): the configuration read again. Budgets are
 * worked out again for every user; what is reserved stays, and only new
 * reservations meet the new budgets. A configuration that cannot be read
 * leaves the old one in force. */
static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	struct manager *m = userdata;
	char msg[64];
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_usec());
	sd_notify(0, msg);
	struct iopfd_config c;
	int r = config_load(&c, m->cfg.config_path);
	if (r < 0) {
		config_done(&c);
		log_error("configuration not reloaded: the one in force stays");
	} else {
		config_override(&c, &m->cfg.overrides);
		accounting_reconfigure(&m->acct, &c);
		config_done(&m->cfg.config);
		m->cfg.config = c;
		m->acct.cfg = &m->cfg.config;
		log_info("configuration reloaded (%u lines ignored)", c.warnings);
	}
	sd_notify(0, "READY=1");
	return 0;
}

static int add_signals(struct manager *m) {
	/* Blocked here, before any worker starts, so that every thread
	 * inherits the mask and the signals reach only the event loop. */
	int r = sd_event_add_signal(m->event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_term, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_term, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, NULL, SIGHUP | SD_EVENT_SIGNAL_PROCMASK, on_hup, m);
	if (r < 0)
		return log_error_errno(r, "Failed to watch SIGTERM/SIGINT/SIGHUP: %m");
	signal(SIGPIPE, SIG_IGN);
	return test_hooks_setup(m);
}

static int start_engine(struct manager *m) {
	const struct iopfd_workers *wk = &m->cfg.config.workers;
	struct iopf_engine_config ec = {
		.workers = m->cfg.workers,
		.slice_groups = (unsigned)wk->slice_groups,
		.slice_ns = wk->slice_us * 1000,
		.busy_poll_ns = wk->busy_poll_us * 1000,
		.on_queue_closed = on_queue_closed,
		.userdata = m,
		.journal = &m->restart.journal,
	};
	int r = iopf_engine_new(&ec, &m->engine);
	if (r < 0)
		return log_error_errno(r, "Failed to start the workers: %m");
	m->closed_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->closed_efd < 0)
		return log_error_errno(errno, "Failed to make an eventfd: %m");
	r = sd_event_add_io(m->event, &m->closed_source, m->closed_efd, EPOLLIN, on_closed_event, m);
	if (r < 0)
		return log_error_errno(r, "Failed to watch the eventfd: %m");
	return 0;
}

static int add_timers(struct manager *m) {
	/* Twice per watchdog period at least, so a hung worker fires it well
	 * before the period runs out on its own. */
	uint64_t wd = 0;
	m->liveness_usec = sd_watchdog_enabled(0, &wd) > 0 && wd ? wd / 3 : 5 * 1000000ull;
	int r = sd_event_add_time_relative(m->event, &m->liveness_timer, CLOCK_MONOTONIC, m->liveness_usec, 10000,
	                                   on_liveness_timer, m);
	if (r < 0)
		return log_error_errno(r, "Failed to add the liveness timer: %m");
	m->status_last_usec = now_usec();
	r = sd_event_add_time_relative(m->event, &m->status_timer, CLOCK_MONOTONIC, 5 * 1000000ull, 100000,
	                               on_status_timer, m);
	if (r < 0)
		return log_error_errno(r, "Failed to add the status timer: %m");
	r = sd_event_add_defer(m->event, &m->save_source, on_save, m);
	if (r >= 0)
		r = sd_event_source_set_enabled(m->save_source, SD_EVENT_OFF);
	if (r < 0)
		return log_error_errno(r, "Failed to add the state saver: %m");
	return 0;
}

int manager_startup(struct manager *m) {
	iopf_rcu_register();
	int r = sd_event_default(&m->event);
	if (r < 0)
		return log_error_errno(r, "Failed to get the event loop: %m");
	r = add_signals(m);
	if (r < 0)
		return r;
	/* Pings the watchdog at half of WATCHDOG_USEC while the loop runs: a
	 * control thread stuck (e.g. on a hung worker) stops the pings. */
	r = sd_event_set_watchdog(m->event, true);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the watchdog: %m");
	/* The listening socket first: sd_varlink_server_listen_auto() must see
	 * $LISTEN_FDS before the fd store's fds are taken out of it. */
	r = varlink_server_setup(m);
	if (r >= 0)
		r = restart_prepare(m);
	if (r >= 0)
		r = start_engine(m);
	/* Persistent objects back, journaled groups answered: only then READY
	 * and new faults. */
	if (r >= 0)
		r = restart_restore(m);
	if (r >= 0)
		r = add_timers(m);
	if (r < 0)
		return r;
	log_info("ready: %u workers, RCU flavor %s", iopf_engine_workers(m->engine), IOPF_RCU_NAME);
	sd_notifyf(0, "READY=1\nSTATUS=Serving with %u workers", iopf_engine_workers(m->engine));
	return 0;
}

int manager_add_connection(struct manager *m, int fd) {
	return varlink_server_add_connection(m, fd);
}

int manager_run(struct manager *m) {
	int r = sd_event_loop(m->event);
	if (r < 0)
		return log_error_errno(r, "Event loop failed: %m");
	return r;
}

void manager_free(struct manager *m) {
	if (!m)
		return;
	if (m->engine)
		drain(m);
	if (m->server) {
		/* Disconnect callbacks find nothing left to tear down. */
		sd_varlink_server_shutdown(m->server);
		sd_varlink_server_unref(m->server);
	}
	/* The server's shutdown detached every client; their links are gone. */
	struct client *c, *ct;
	cds_list_for_each_entry_safe(c, ct, &m->clients, node) {
		cds_list_del(&c->node);
		free(c);
	}
	accounting_done(&m->acct);
	config_done(&m->cfg.config);
	iopf_engine_free(m->engine);
	sd_event_source_disable_unref(m->closed_source);
	sd_event_source_disable_unref(m->status_timer);
	sd_event_source_disable_unref(m->liveness_timer);
	sd_event_source_disable_unref(m->save_source);
	if (m->closed_efd >= 0)
		close(m->closed_efd);
	restart_done(&m->restart);
	free(m->closed);
	pthread_mutex_destroy(&m->closed_lock);
	sd_event_unref(m->event);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
	free(m);
}
