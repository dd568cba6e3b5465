/* SPDX-License-Identifier: MIT */
/* Who is connected: one client per Varlink connection, with its peer's
 * uid. Control thread only. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-varlink.h>
#include <urcu/list.h>

struct manager;

struct client {
	struct manager *m;
	sd_varlink *link;
	uid_t uid;
	pid_t pid;
	struct cds_list_head node;
};

/* A new connection: identify its peer and let fds pass with its calls.
 * Refused (negative errno) when the peer cannot be identified. */
int client_attach(struct manager *m, sd_varlink *link);
/* The connection's client, made on first use for connections handed to the
 * server directly (they skip its connect hook). NULL only when out of
 * memory or the peer cannot be identified. */
struct client *client_of(sd_varlink *link);
/* The connection is gone (its objects are the caller's to drop first). */
void client_detach(struct client *c);

/* Root touches everything; a client its own uid's objects. */
static inline bool client_may_touch(const struct client *c, uid_t owner) {
	return c->uid == 0 || c->uid == owner;
}

/* A pidfd of the caller's process (ours to close), or -1 if the kernel or
 * the connection cannot give one. */
int client_pidfd(const struct client *c);
