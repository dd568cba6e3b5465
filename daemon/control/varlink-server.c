/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <grp.h>
#include <unistd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients.h"
#include "iopfd/client.h"
#include "log.h"
#include "manager.h"
#include "varlink-idl.h"
#include "varlink-methods.h"
#include "varlink-server.h"

static int on_connect(sd_varlink_server *s, sd_varlink *link, void *userdata) {
	return client_attach(userdata, link);
}

static void on_disconnect(sd_varlink_server *s, sd_varlink *link, void *userdata) {
	struct manager *m = userdata;
	struct client *c = sd_varlink_get_userdata(link);
	if (!c)
		return;
	monitors_drop_link(m, link);
	/* Everything the client made goes with it: its queues given back,
	 * every mapping unmapped. */
	objects_drop_client(m, c);
	client_detach(c);
}

int varlink_server_add_connection(struct manager *m, int fd) {
	sd_varlink *link = NULL;
	int r = sd_varlink_server_add_connection(m->server, fd, &link);
	if (r < 0)
		return r;
	/* The server runs its connect hook only for sockets it accepted; this
	 * one must allow fds before its first message is read. */
	r = client_attach(m, link);
	if (r < 0)
		sd_varlink_close(link);
	return r;
}

static int bind_methods(sd_varlink_server *s, const struct vl_method *table) {
	for (; table->name; table++) {
		int r = sd_varlink_server_bind_method(s, table->name, table->fn);
		if (r < 0)
			return log_error_errno(r, "Failed to bind %s: %m", table->name);
	}
	return 0;
}

static int listen_socket(struct manager *m) {
	int r;
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
	/* As iopfd.socket does it: root and the members of the socket's group
	 * may connect. The group is set after the bind, so that until then
	 * the socket is root's alone. */
	mode_t mode = m->cfg.socket_mode ? m->cfg.socket_mode : 0660;
	const char *group = m->cfg.socket_group ? m->cfg.socket_group : IOPFD_SOCKET_GROUP;
	r = sd_varlink_server_listen_address(m->server, path, mode);
	if (r < 0)
		return log_error_errno(r, "Failed to listen on %s: %m", path);
	struct group *g = getgrnam(group);
	if (!g)
		log_notice("no group %s: only root may connect to %s unless its mode lets others", group, path);
	else if (chown(path, (uid_t)-1, g->gr_gid) < 0)
		return log_error_errno(errno, "Failed to give %s to group %s: %m", path, group);
	log_info("listening on %s (mode %04o, group %s)", path, (unsigned)mode, g ? group : "root");
	return 0;
}

int varlink_server_setup(struct manager *m) {
	/* No SD_VARLINK_SERVER_ACCOUNT_UID: its per-uid connection limit
	 * would apply to root as well; client_attach() counts instead. The
	 * server's own total (4096 connections) still holds everyone. */
	int r = sd_varlink_server_new(&m->server, 0);
	if (r < 0)
		return log_error_errno(r, "Failed to allocate the Varlink server: %m");
	sd_varlink_server_set_userdata(m->server, m);
	r = sd_varlink_server_set_info(m->server, "iopfd", "iopfd", PROJECT_VERSION, "man:io.iopfd(7)");
	if (r < 0)
		return log_error_errno(r, "Failed to set server info: %m");
	r = sd_varlink_server_add_interface(m->server, &vl_interface_io_iopfd);
	if (r < 0)
		return log_error_errno(r, "Failed to add the io.iopfd interface: %m");
	const struct vl_method *tables[] = {vl_queue_methods, vl_space_methods, vl_stats_methods, vl_metrics_methods};
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if ((r = bind_methods(m->server, tables[i])) < 0)
			return r;
	sd_varlink_server_bind_connect(m->server, on_connect);
	sd_varlink_server_bind_disconnect(m->server, on_disconnect);
	r = sd_varlink_server_attach_event(m->server, m->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		return log_error_errno(r, "Failed to attach the Varlink server: %m");
	return m->cfg.no_listen ? 0 : listen_socket(m);
}
