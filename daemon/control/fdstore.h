/* SPDX-License-Identifier: MIT */
/*
 * systemd's fd store: fds kept by the service manager across restarts of
 * the daemon, handed back with $LISTEN_FDS under the names they were stored
 * with. iopfd keeps there every fd a persistent object needs (fault queues,
 * relay sockets, iommufds, memfds, creators' pidfds), its object state and
 * its journal.
 *
 * Stored with FDPOLL=0: systemd would otherwise drop an fd on POLLHUP (a
 * relay whose peer hung up) behind the daemon's back; the daemon removes
 * what it no longer needs itself. Needs FileDescriptorStoreMax= in the unit;
 * without a service manager these calls do nothing.
 */
#pragma once

#include <stdbool.h>

struct fdstore_entry {
	char *name;
	int fd;
};

/* True when a service manager listens (NOTIFY_SOCKET is set). */
bool fdstore_available(void);
int fdstore_put(const char *name, int fd);
int fdstore_remove(const char *name);

/* The fds passed at start-up other than the listening sockets ("varlink"),
 * taken out of $LISTEN_FDS. Returns how many, or a negative errno. */
int fdstore_collect(struct fdstore_entry **out);
/* Take the fd stored under name (the entry forgets it); -ENOENT if none. */
int fdstore_take(struct fdstore_entry *e, int n, const char *name);
/* Close what nobody took, and tell the service manager to forget it. */
void fdstore_release_rest(struct fdstore_entry *e, int n);
