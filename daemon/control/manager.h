/* SPDX-License-Identifier: MIT */
/*
 * The daemon's control side: one thread running sd-event, the Varlink
 * server, signals, sd_notify and the watchdog, and the registry of what
 * clients created. It builds objects, hands queues to the engine, publishes
 * bindings and regions, and tears everything down when a client goes.
 *
 *   manager.c          lifecycle, signals, notify, the closed-queue hand-off
 *   objects.c          queues, address spaces, ownership, per-uid limits
 *   varlink-server.c   listening, connections, error replies
 *   varlink-queues.c   RegisterQueue, UnregisterQueue, Bind, Unbind, lists
 *   varlink-spaces.c   CreateSpace, DestroySpace, AddRegion, RemoveRegion
 *   varlink-stats.c    GetStatistics, Monitor
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>
#include <systemd/sd-json.h>
#include <systemd/sd-varlink.h>
#include <urcu/list.h>

#include "engine/engine.h"
#include "engine/journal.h"
#include "engine/space.h"
#include "iopfd/client.h"

struct iopfd_limits {
	unsigned connections_per_uid;
	unsigned queues_per_uid;
	unsigned spaces_per_uid;
	unsigned regions_per_uid;
	uint64_t quota_per_uid; /* sum of the quotas of a uid's address spaces */
};

struct manager_config {
	const char *socket_path; /* NULL: socket activation, else IOPFD_SOCKET_DEFAULT */
	bool no_listen;          /* connections only through manager_add_connection() (fuzzers) */
	unsigned workers;        /* 0: online CPUs */
	struct iopfd_limits limits;
};

/* Errors a request can get, counted by name. */
enum vl_error {
	VL_NO_SUCH_QUEUE,
	VL_NO_SUCH_SPACE,
	VL_NO_SUCH_REGION,
	VL_NO_SUCH_BINDING,
	VL_BINDING_EXISTS,
	VL_BAD_FD,
	VL_UNSEALED_MEMORY,
	VL_REGION_OVERLAP,
	VL_REGION_OUT_OF_RANGE,
	VL_INVALID_REGION,
	VL_INVALID_CONFIGURATION,
	VL_LIMIT_REACHED,
	VL_PERMISSION_DENIED,
	VL_BACKEND_FAILED,
	VL_SHUTTING_DOWN,
	VL_INVALID_PARAMETER,
	_VL_ERROR_MAX,
};

struct client {
	struct manager *m;
	sd_varlink *link;
	uid_t uid;
	pid_t pid;
	struct cds_list_head node;
};

/* Persistent objects outlive their connection and daemon restarts (their
 * fds and state in systemd's fd store) until destroyed or until the process
 * that created them exits (watched through its pidfd). */
struct queue_obj {
	struct manager *m;
	uint32_t id;
	char *name;
	struct iopf_queue *q;
	struct client *owner; /* NULL once a persistent object's client is gone */
	uid_t uid;
	bool persistent;
	int pidfd;            /* the creator's, for a persistent object; else -1 */
	sd_event_source *pid_source;
	struct cds_list_head node;
};

struct space_obj {
	struct manager *m;
	uint64_t id;
	char *name;
	struct iopf_space *s;
	struct client *owner;
	uid_t uid;
	bool persistent;
	int pidfd;
	sd_event_source *pid_source;
	struct cds_list_head node;
};

struct obj_opts {
	struct client *owner; /* NULL when restored */
	uid_t uid;
	const char *name;
	bool persistent;
	int pidfd; /* taken; -1 for none */
};

/* How an object ends: gone for good, or only out of this process (SIGTERM
 * of a daemon that will be started again: its fds stay in the store). */
enum obj_end {
	OBJ_FORGET,
	OBJ_KEEP_STORED,
};

struct uid_usage {
	uid_t uid;
	unsigned queues, spaces, regions;
	uint64_t quota;
	struct cds_list_head node;
};

struct monitor {
	struct manager *m;
	sd_varlink *link;
	sd_event_source *timer;
	uint64_t interval_us;
	struct cds_list_head node;
};

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

	struct cds_list_head clients, queues, spaces, uids, monitors;
	unsigned n_clients, n_queues, n_spaces;
	uint32_t next_queue_id;
	uint64_t next_space_id;
	uint64_t request_errors[_VL_ERROR_MAX];

	/* Queues a worker dropped by itself, handed to the control thread. */
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

	/* Restart without loss (persist.c). */
	int state_fd[2]; /* two memfds written in turn: one is always whole */
	unsigned state_next;
	uint64_t state_gen;
	int journal_fd;
	void *journal_map;
	size_t journal_size;
	bool journal_deferred; /* the old journal is formatted only once answered */
	bool restoring;        /* persist_restore() runs: the state is saved once, at its end */
	struct iopf_journal journal;
	uint64_t restored_objects, recovered_groups;
	uint64_t reanswered_groups; /* kernel groups answered again after a kill while answering */
};

/* manager.c */
int manager_new(const struct manager_config *cfg, struct manager **out);
int manager_startup(struct manager *m);
int manager_run(struct manager *m);
/* Serve a connected socket as a client connection (tests, fuzzers). */
int manager_add_connection(struct manager *m, int fd);
void manager_free(struct manager *m);
/* Answer everything in flight, unmap everything, drop every object. */
void manager_drain(struct manager *m);

/* objects.c */
bool client_may_touch(const struct client *c, uid_t owner);
struct uid_usage *uid_usage_get(struct manager *m, uid_t uid); /* NULL on ENOMEM */
struct queue_obj *queue_obj_find(struct manager *m, uint32_t id);
struct space_obj *space_obj_find(struct manager *m, uint64_t id);
struct space_obj *space_obj_by_space(struct manager *m, const struct iopf_space *s);
int queue_obj_add(struct manager *m, struct iopf_queue *q, const struct obj_opts *o, struct queue_obj **out);
/* final (optional): the queue's figures once everything it read is answered. */
void queue_obj_destroy(struct manager *m, struct queue_obj *qo, enum obj_end how, struct iopf_queue_stats *final);
int space_obj_add(struct manager *m, struct iopf_space *s, const struct obj_opts *o, struct space_obj **out);
void space_obj_destroy(struct manager *m, struct space_obj *so, enum obj_end how);
/* A client left: its objects go, but persistent ones only lose their owner. */
void client_destroy_objects(struct manager *m, struct client *c);
/* A persistent space's region was added or removed: keep its memfd in the
 * store (or drop it) and the state in step. */
void space_obj_region_added(struct manager *m, struct space_obj *so, uint64_t region_id);
void space_obj_region_removed(struct manager *m, struct space_obj *so, uint64_t region_id);

/* persist.c */
/* Before the engine starts: take back what the fd store kept, set up the
 * journal, and keep what a restart needs to recover. */
int persist_prepare(struct manager *m);
/* After the engine started: restore persistent objects, answer every group
 * the journal holds, then hand the queues to the workers. */
int persist_restore(struct manager *m);
/* Write the persistent objects' state (after any change to them). */
void state_save(struct manager *m);

/* varlink-server.c */
int varlink_server_setup(struct manager *m);
/* A connected socket as a client connection, set up as if accepted. */
int varlink_server_add_connection(struct manager *m, int fd);
/* The queue or space of that id if the caller may touch it; else the call
 * has been answered (NoSuchQueue/NoSuchSpace or PermissionDenied), NULL. */
struct queue_obj *vl_touch_queue(sd_varlink *link, struct client *c, uint64_t id);
struct space_obj *vl_touch_space(sd_varlink *link, struct client *c, uint64_t id);
/* Reply InvalidParameter naming `name` (counted). */
int vl_invalid_parameter(sd_varlink *link, struct manager *m, const char *name);
/* The caller of a method; made on first use for connections the server was
 * handed directly (manager_add_connection), which skip the connect hook.
 * NULL only when out of memory or the peer cannot be identified. */
struct client *vl_client(sd_varlink *link);
/* A pidfd of the caller's process (ours to close), or -1 if the kernel or
 * the connection cannot give one. */
int vl_peer_pidfd(sd_varlink *link);
/* Reply with a named io.iopfd error (counted); parameters may be NULL. */
int vl_reply_error(sd_varlink *link, struct manager *m, enum vl_error e, sd_json_variant *parameters);
int vl_reply_errorb(sd_varlink *link, struct manager *m, enum vl_error e, ...);
const char *vl_error_name(enum vl_error e);
/* Dispatch a parameter table; replies InvalidParameter (counted) itself.
 * Returns 0 to go on, non-zero when the call has been answered. */
int vl_dispatch(sd_varlink *link, struct manager *m, sd_json_variant *parameters,
                const sd_json_dispatch_field table[], void *userdata);
/* Take the fd at index `idx` passed with the call, or reply
 * BadFileDescriptor naming `param` and return a negative errno. */
int vl_take_fd(sd_varlink *link, struct manager *m, int64_t idx, const char *param);

/* Handlers. */
int vl_method_register_queue(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_unregister_queue(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_bind(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_unbind(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_list_queues(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_list_bindings(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_create_space(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_destroy_space(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_add_region(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_remove_region(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_list_spaces(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_get_statistics(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
int vl_method_monitor(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud);
void monitors_drop_link(struct manager *m, sd_varlink *link);
/* The Statistics object (varlink-stats.c). */
int stats_build(struct manager *m, sd_json_variant **ret);
