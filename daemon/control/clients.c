/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "log.h"
#include "manager.h"

static unsigned connections_of(const struct manager *m, uid_t uid) {
	unsigned n = 0;
	struct client *c;
	cds_list_for_each_entry(c, &m->clients, node)
		n += c->uid == uid;
	return n;
}

int client_attach(struct manager *m, sd_varlink *link) {
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
	/* ConnectionsPerUser= counted here rather than by sd-varlink, whose
	 * per-uid limit would hold root to it too. */
	unsigned max = m->cfg.config.limits.connections_per_uid;
	if (c->uid != 0 && connections_of(m, c->uid) >= max) {
		log_notice("Refusing a connection of uid %u: it has ConnectionsPerUser=%u already", (unsigned)c->uid, max);
		free(c);
		return -EUSERS;
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

struct client *client_of(sd_varlink *link) {
	struct client *c = sd_varlink_get_userdata(link);
	if (c)
		return c;
	struct manager *m = sd_varlink_server_get_userdata(sd_varlink_get_server(link));
	if (!m || client_attach(m, link) < 0)
		return NULL;
	return sd_varlink_get_userdata(link);
}

void client_detach(struct client *c) {
	cds_list_del(&c->node);
	c->m->n_clients--;
	sd_varlink_set_userdata(c->link, NULL);
	log_debug("client disconnected: uid %u pid %d", (unsigned)c->uid, (int)c->pid);
	free(c);
}

int client_pidfd(const struct client *c) {
	/* The link owns its pidfd: keep a copy of our own. */
	int fd = sd_varlink_get_peer_pidfd(c->link);
	if (fd < 0) {
		log_debug("no pidfd for the peer: %s", strerror(-fd));
		return -1;
	}
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}
