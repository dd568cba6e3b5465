/* SPDX-License-Identifier: MIT */
/*
 * systemd's fd store: fds kept by the service manager across restarts of
 * the daemon, handed back with $LISTEN_FDS under the names they were stored
 * with. iopfd keeps there every fd a persistent object needs (fault queues,
 * relay sockets, iommufds, memfds, creators' pidfds), its object state and
 * its journal, each under a name that says what it holds (fdstore_name()).
 *
 * Stored with FDPOLL=0: systemd would otherwise drop an fd on POLLHUP (a
 * relay whose peer hung up) behind the daemon's back; the daemon removes
 * what it no longer needs itself. Needs FileDescriptorStoreMax= in the unit;
 * without a service manager these calls do nothing.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum fdstore_kind {
	FDSTORE_STATE,         /* "state-<n>": one of the two state memfds */
	FDSTORE_JOURNAL,       /* "journal" */
	FDSTORE_QUEUE,         /* "queue-<id>": a fault queue or relay socket */
	FDSTORE_QUEUE_CREATOR, /* "queue-<id>-creator": its creator's pidfd */
	FDSTORE_SPACE_IOMMUFD, /* "space-<id>-iommufd" */
	FDSTORE_SPACE_CREATOR, /* "space-<id>-creator" */
	FDSTORE_REGION_MEMFD,  /* "space-<id>-region-<sub>-memfd" */
	_FDSTORE_KIND_MAX,
};

#define FDSTORE_NAME_MAX 64

/* The name an fd of that kind is stored under (`sub`: the region's id). */
const char *fdstore_name(char buf[static FDSTORE_NAME_MAX], enum fdstore_kind k, uint64_t id, uint64_t sub);

/* True when a service manager listens (NOTIFY_SOCKET is set). */
bool fdstore_available(void);
int fdstore_put(enum fdstore_kind k, uint64_t id, uint64_t sub, int fd);
int fdstore_remove(enum fdstore_kind k, uint64_t id, uint64_t sub);

/* The fds passed at start-up other than the listening sockets. */
struct fdstore_entry {
	char *name;
	int fd;
};

struct fdstore_passed {
	struct fdstore_entry *e;
	int n;
};

/* Take them out of $LISTEN_FDS (sd_varlink_server_listen_auto() has taken
 * its "varlink" sockets already). Returns how many, or a negative errno. */
int fdstore_collect(struct fdstore_passed *p);
/* Take the fd of that kind (the list forgets it); -ENOENT if none. Also
 * finds fds stored under the names of iopfd 0.1.0 (q3, pq3, s2, ps2, m2.5,
 * state0), so that an upgrade keeps persistent objects. */
int fdstore_take(struct fdstore_passed *p, enum fdstore_kind k, uint64_t id, uint64_t sub);
/* Close what nobody took, and tell the service manager to forget it. */
void fdstore_release_rest(struct fdstore_passed *p);
