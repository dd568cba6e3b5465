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

#include "iopfd/engine.h"
#include "iopfd/space.h"

#define IOPFD_SOCKET_DEFAULT "/run/iopfd/io.iopfd"

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

struct queue_obj {
	uint32_t id;
	char *name;
	struct iopf_queue *q;
	struct client *owner;
	uid_t uid;
	struct cds_list_head node;
};

struct space_obj {
	uint64_t id;
	char *name;
	struct iopf_space *s;
	struct client *owner;
	uid_t uid;
	struct cds_list_head node;
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

	sd_event_source *status_timer;
	uint64_t status_last_groups, status_last_usec;
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
int queue_obj_add(struct manager *m, struct client *owner, struct iopf_queue *q, const char *name,
                  struct queue_obj **out);
void queue_obj_destroy(struct manager *m, struct queue_obj *qo);
int space_obj_add(struct manager *m, struct client *owner, struct iopf_space *s, const char *name,
                  struct space_obj **out);
void space_obj_destroy(struct manager *m, struct space_obj *so);
void client_destroy_objects(struct manager *m, struct client *c);

/* varlink-server.c */
int varlink_server_setup(struct manager *m);
/* The caller of a method; made on first use for connections the server was
 * handed directly (manager_add_connection), which skip the connect hook.
 * NULL only when out of memory or the peer cannot be identified. */
struct client *vl_client(sd_varlink *link);
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
