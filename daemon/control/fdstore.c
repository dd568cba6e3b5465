/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "fdstore.h"
#include "log.h"

bool fdstore_available(void) {
	const char *e = getenv("NOTIFY_SOCKET");
	return e && *e;
}

int fdstore_put(const char *name, int fd) {
	if (!fdstore_available())
		return 0;
	char msg[300];
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s\nFDPOLL=0", name);
	int r = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	if (r < 0)
		return log_warning_errno(r, "Failed to keep fd %s in the fd store: %m", name);
	return 0;
}

int fdstore_remove(const char *name) {
	if (!fdstore_available())
		return 0;
	char msg[300];
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	int r = sd_notify(0, msg);
	return r < 0 ? r : 0;
}

int fdstore_collect(struct fdstore_entry **out) {
	char **names = NULL;
	/* The Varlink server took its sockets already (listen_auto leaves
	 * $LISTEN_FDS set for us); unset it now that we take the rest. */
	int n = sd_listen_fds_with_names(1, &names);
	*out = NULL;
	if (n <= 0) {
		free(names);
		return n;
	}
	struct fdstore_entry *e = calloc((size_t)n, sizeof(*e));
	int k = 0;
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (!e || !names || !names[i] || strcmp(names[i], "varlink") == 0) {
			if (names)
				free(names[i]);
			continue;
		}
		e[k].name = names[i];
		e[k].fd = fd;
		k++;
	}
	free(names);
	if (!e)
		return -ENOMEM;
	*out = e;
	return k;
}

int fdstore_take(struct fdstore_entry *e, int n, const char *name) {
	for (int i = 0; i < n; i++)
		if (e[i].fd >= 0 && e[i].name && strcmp(e[i].name, name) == 0) {
			int fd = e[i].fd;
			e[i].fd = -1;
			return fd;
		}
	return -ENOENT;
}

void fdstore_release_rest(struct fdstore_entry *e, int n) {
	for (int i = 0; i < n; i++) {
		if (e[i].fd >= 0) {
			log_info("fd store: %s is no longer needed", e[i].name);
			fdstore_remove(e[i].name);
			close(e[i].fd);
		}
		free(e[i].name);
	}
	free(e);
}
