/* SPDX-License-Identifier: MIT */
/*
 * The Varlink server: where it listens, who connects, and how refusals are
 * worded and counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "varlink-idl.h"

static const char *const error_names[_VL_ERROR_MAX] = {
	[VL_NO_SUCH_QUEUE] = "io.iopfd.NoSuchQueue",
	[VL_NO_SUCH_SPACE] = "io.iopfd.NoSuchSpace",
	[VL_NO_SUCH_REGION] = "io.iopfd.NoSuchRegion",
	[VL_NO_SUCH_BINDING] = "io.iopfd.NoSuchBinding",
	[VL_BINDING_EXISTS] = "io.iopfd.BindingExists",
	[VL_BAD_FD] = "io.iopfd.BadFileDescriptor",
	[VL_UNSEALED_MEMORY] = "io.iopfd.UnsealedMemory",
	[VL_REGION_OVERLAP] = "io.iopfd.RegionOverlap",
	[VL_REGION_OUT_OF_RANGE] = "io.iopfd.RegionOutOfRange",
	[VL_INVALID_REGION] = "io.iopfd.InvalidRegion",
	[VL_INVALID_CONFIGURATION] = "io.iopfd.InvalidConfiguration",
	[VL_LIMIT_REACHED] = "io.iopfd.LimitReached",
	[VL_PERMISSION_DENIED] = "io.iopfd.PermissionDenied",
	[VL_BACKEND_FAILED] = "io.iopfd.BackendFailed",
	[VL_SHUTTING_DOWN] = "io.iopfd.ShuttingDown",
	[VL_INVALID_PARAMETER] = "org.varlink.service.InvalidParameter",
};

const char *vl_error_name(enum vl_error e) {
	return (unsigned)e < _VL_ERROR_MAX ? error_names[e] : "io.iopfd.Unknown";
}

int vl_reply_error(sd_varlink *link, struct manager *m, enum vl_error e, sd_json_variant *parameters) {
	m->request_errors[e]++;
	return sd_varlink_error(link, error_names[e], parameters);
}

int vl_reply_errorb(sd_varlink *link, struct manager *m, enum vl_error e, ...) {
	sd_json_variant *v = NULL;
	va_list ap;
	va_start(ap, e);
	int r = sd_json_buildv(&v, ap);
	va_end(ap);
	if (r < 0)
		return r;
	r = vl_reply_error(link, m, e, v);
	sd_json_variant_unref(v);
	return r;
}

int vl_dispatch(sd_varlink *link, struct manager *m, sd_json_variant *parameters,
                const sd_json_dispatch_field table[], void *userdata) {
	const char *bad = NULL;
	int r = sd_json_dispatch_full(parameters, table, NULL, 0, userdata, &bad);
	if (r >= 0)
		return 0;
	m->request_errors[VL_INVALID_PARAMETER]++;
	if (bad)
		return sd_varlink_error_invalid_parameter_name(link, bad);
	return sd_varlink_error_invalid_parameter(link, parameters);
}

int vl_invalid_parameter(sd_varlink *link, struct manager *m, const char *name) {
	m->request_errors[VL_INVALID_PARAMETER]++;
	return sd_varlink_error_invalid_parameter_name(link, name);
}

int vl_take_fd(sd_varlink *link, struct manager *m, int64_t idx, const char *param) {
	int fd = idx < 0 ? -EBADF : sd_varlink_take_fd(link, (size_t)idx);
	if (fd < 0) {
		vl_reply_errorb(link, m, VL_BAD_FD,
		                SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("parameter", param),
		                                     SD_JSON_BUILD_PAIR_STRING("reason", "no fd passed at that index")));
		return -EBADF;
	}
	return fd;
}

static int on_connect(sd_varlink_server *s, sd_varlink *link, void *userdata) {
	struct manager *m = userdata;
	struct client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->m = m;
	c->link = link;
	int r = sd_varlink_get_peer_uid(link, &c->uid);
	if (r < 0) {
		free(c);
		return log_warning_errno(r, "Refusing a connection whose peer is unknown: %m");
	}
	sd_varlink_get_peer_pid(link, &c->pid);
	/* fds travel with the calls; sd-varlink 257 enables that per link. */
	r = sd_varlink_set_allow_fd_passing_input(link, true);
	if (r < 0) {
		free(c);
		return log_warning_errno(r, "Failed to allow fd passing: %m");
	}
	sd_varlink_set_userdata(link, c);
	cds_list_add_tail(&c->node, &m->clients);
	m->n_clients++;
	log_debug("client connected: uid %u pid %d", (unsigned)c->uid, (int)c->pid);
	return 0;
}

static int reply_no_queue(sd_varlink *link, struct manager *m, uint64_t id) {
	return vl_reply_errorb(link, m, VL_NO_SUCH_QUEUE,
	                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_UNSIGNED("queue", id)));
}

static int reply_no_space(sd_varlink *link, struct manager *m, uint64_t id) {
	return vl_reply_errorb(link, m, VL_NO_SUCH_SPACE,
	                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_UNSIGNED("space", id)));
}

/* Find a queue the caller may touch, or reply with why not. */
struct queue_obj *vl_touch_queue(sd_varlink *link, struct client *c, uint64_t id) {
	struct queue_obj *qo = id <= UINT32_MAX ? queue_obj_find(c->m, (uint32_t)id) : NULL;
	if (!qo) {
		reply_no_queue(link, c->m, id);
		return NULL;
	}
	if (!client_may_touch(c, qo->uid)) {
		vl_reply_error(link, c->m, VL_PERMISSION_DENIED, NULL);
		return NULL;
	}
	return qo;
}

struct space_obj *vl_touch_space(sd_varlink *link, struct client *c, uint64_t id) {
	struct space_obj *so = space_obj_find(c->m, id);
	if (!so) {
		reply_no_space(link, c->m, id);
		return NULL;
	}
	if (!client_may_touch(c, so->uid)) {
		vl_reply_error(link, c->m, VL_PERMISSION_DENIED, NULL);
		return NULL;
	}
	return so;
}

int vl_peer_pidfd(sd_varlink *link) {
	/* The link owns its pidfd: keep a copy of our own. */
	int fd = sd_varlink_get_peer_pidfd(link);
	if (fd < 0) {
		log_debug("no pidfd for the peer: %s", strerror(-fd));
		return -1;
	}
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

int varlink_server_add_connection(struct manager *m, int fd) {
	sd_varlink *link = NULL;
	int r = sd_varlink_server_add_connection(m->server, fd, &link);
	if (r < 0)
		return r;
	/* The server runs its connect hook only for sockets it accepted; this
	 * one must allow fds before its first message is read. */
	r = on_connect(m->server, link, m);
	if (r < 0)
		sd_varlink_close(link);
	return r;
}

struct client *vl_client(sd_varlink *link) {
	struct client *c = sd_varlink_get_userdata(link);
	if (c)
		return c;
	struct manager *m = sd_varlink_server_get_userdata(sd_varlink_get_server(link));
	if (!m || on_connect(NULL, link, m) < 0)
		return NULL;
	return sd_varlink_get_userdata(link);
}

static void on_disconnect(sd_varlink_server *s, sd_varlink *link, void *userdata) {
	struct manager *m = userdata;
	struct client *c = sd_varlink_get_userdata(link);
	if (!c || c == (void *)m)
		return;
	monitors_drop_link(m, link);
	/* Everything the client made goes with it: in-flight groups answered,
	 * every mapping unmapped. */
	client_destroy_objects(m, c);
	cds_list_del(&c->node);
	m->n_clients--;
	sd_varlink_set_userdata(link, NULL);
	log_debug("client disconnected: uid %u pid %d", (unsigned)c->uid, (int)c->pid);
	free(c);
}

int varlink_server_setup(struct manager *m) {
	int r = sd_varlink_server_new(&m->server, SD_VARLINK_SERVER_ACCOUNT_UID);
	if (r < 0)
		return log_error_errno(r, "Failed to allocate the Varlink server: %m");
	sd_varlink_server_set_userdata(m->server, m);
	r = sd_varlink_server_set_info(m->server, "iopfd", "iopfd", "0.1.0", "https://iopfd.invalid/");
	if (r < 0)
		return log_error_errno(r, "Failed to set server info: %m");
	r = sd_varlink_server_add_interface(m->server, &vl_interface_io_iopfd);
	if (r < 0)
		return log_error_errno(r, "Failed to add the io.iopfd interface: %m");
	r = sd_varlink_server_bind_method_many(
		m->server,
		"io.iopfd.RegisterQueue", vl_method_register_queue,
		"io.iopfd.UnregisterQueue", vl_method_unregister_queue,
		"io.iopfd.CreateSpace", vl_method_create_space,
		"io.iopfd.DestroySpace", vl_method_destroy_space,
		"io.iopfd.AddRegion", vl_method_add_region,
		"io.iopfd.RemoveRegion", vl_method_remove_region,
		"io.iopfd.Bind", vl_method_bind,
		"io.iopfd.Unbind", vl_method_unbind,
		"io.iopfd.ListQueues", vl_method_list_queues,
		"io.iopfd.ListSpaces", vl_method_list_spaces,
		"io.iopfd.ListBindings", vl_method_list_bindings,
		"io.iopfd.GetStatistics", vl_method_get_statistics,
		"io.iopfd.Monitor", vl_method_monitor);
	if (r < 0)
		return log_error_errno(r, "Failed to bind methods: %m");
	sd_varlink_server_bind_connect(m->server, on_connect);
	sd_varlink_server_bind_disconnect(m->server, on_disconnect);
	if (m->cfg.limits.connections_per_uid)
		sd_varlink_server_set_connections_per_uid_max(m->server, m->cfg.limits.connections_per_uid);

	r = sd_varlink_server_attach_event(m->server, m->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		return log_error_errno(r, "Failed to attach the Varlink server: %m");

	if (m->cfg.no_listen)
		return 0;
	/* A socket systemd passes (FileDescriptorName=varlink) comes first;
	 * without one, listen on the path given or the default. */
	if (!m->cfg.socket_path) {
		r = sd_varlink_server_listen_auto(m->server);
		if (r < 0)
			return log_error_errno(r, "Failed to take the sockets passed by systemd: %m");
		if (r > 0) {
			log_info("listening on the socket passed by systemd");
			return 0;
		}
	}
	const char *path = m->cfg.socket_path ? m->cfg.socket_path : IOPFD_SOCKET_DEFAULT;
	if (!m->cfg.socket_path)
		mkdir("/run/iopfd", 0755);
	/* A stale socket from an earlier run would make bind() fail. */
	unlink(path);
	/* Anyone may connect: each client sees and touches only its own
	 * objects (root all), and per-uid limits bound what it can take. */
	r = sd_varlink_server_listen_address(m->server, path, 0666);
	if (r < 0)
		return log_error_errno(r, "Failed to listen on %s: %m", path);
	log_info("listening on %s", path);
	return 0;
}
