/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "fdstore.h"
#include "log.h"

const char *fdstore_name(char buf[static FDSTORE_NAME_MAX], enum fdstore_kind k, uint64_t id, uint64_t sub) {
	switch (k) {
	case FDSTORE_STATE:
		snprintf(buf, FDSTORE_NAME_MAX, "state-%" PRIu64, id);
		break;
	case FDSTORE_JOURNAL:
		snprintf(buf, FDSTORE_NAME_MAX, "journal");
		break;
	case FDSTORE_QUEUE:
		snprintf(buf, FDSTORE_NAME_MAX, "queue-%" PRIu64, id);
		break;
	case FDSTORE_QUEUE_CREATOR:
		snprintf(buf, FDSTORE_NAME_MAX, "queue-%" PRIu64 "-creator", id);
		break;
	case FDSTORE_SPACE_IOMMUFD:
		snprintf(buf, FDSTORE_NAME_MAX, "space-%" PRIu64 "-iommufd", id);
		break;
	case FDSTORE_SPACE_CREATOR:
		snprintf(buf, FDSTORE_NAME_MAX, "space-%" PRIu64 "-creator", id);
		break;
	case FDSTORE_REGION_MEMFD:
		snprintf(buf, FDSTORE_NAME_MAX, "space-%" PRIu64 "-region-%" PRIu64 "-memfd", id, sub);
		break;
	default:
		snprintf(buf, FDSTORE_NAME_MAX, "unknown");
	}
	return buf;
}

/* The names iopfd 0.1.0 stored fds under. */
static const char *legacy_name(char buf[static FDSTORE_NAME_MAX], enum fdstore_kind k, uint64_t id, uint64_t sub) {
	static const char *const prefix[_FDSTORE_KIND_MAX] = {
		[FDSTORE_STATE] = "state", [FDSTORE_QUEUE] = "q", [FDSTORE_QUEUE_CREATOR] = "pq",
		[FDSTORE_SPACE_IOMMUFD] = "s", [FDSTORE_SPACE_CREATOR] = "ps", [FDSTORE_REGION_MEMFD] = "m",
	};
	if ((unsigned)k >= _FDSTORE_KIND_MAX || !prefix[k])
		return NULL;
	if (k == FDSTORE_REGION_MEMFD)
		snprintf(buf, FDSTORE_NAME_MAX, "m%" PRIu64 ".%" PRIu64, id, sub);
	else
		snprintf(buf, FDSTORE_NAME_MAX, "%s%" PRIu64, prefix[k], id);
	return buf;
}

bool fdstore_available(void) {
	const char *e = getenv("NOTIFY_SOCKET");
	return e && *e;
}

int fdstore_put(enum fdstore_kind k, uint64_t id, uint64_t sub, int fd) {
	if (!fdstore_available())
		return 0;
	char name[FDSTORE_NAME_MAX], msg[FDSTORE_NAME_MAX + 48];
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s\nFDPOLL=0", fdstore_name(name, k, id, sub));
	int r = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	if (r < 0)
		return log_warning_errno(r, "Failed to keep fd %s in the fd store: %m", name);
	return 0;
}

static int remove_name(const char *name) {
	char msg[FDSTORE_NAME_MAX + 32];
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	int r = sd_notify(0, msg);
	return r < 0 ? r : 0;
}

int fdstore_remove(enum fdstore_kind k, uint64_t id, uint64_t sub) {
	if (!fdstore_available())
		return 0;
	char name[FDSTORE_NAME_MAX];
	return remove_name(fdstore_name(name, k, id, sub));
}

int fdstore_collect(struct fdstore_passed *p) {
	char **names = NULL;
	*p = (struct fdstore_passed){0};
	/* listen_auto leaves $LISTEN_FDS set for us; unset it now that we
	 * take the rest. */
	int n = sd_listen_fds_with_names(1, &names);
	if (n <= 0) {
		free(names);
		return n;
	}
	struct fdstore_entry *e = calloc((size_t)n, sizeof(*e));
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (!e || !names || !names[i] || strcmp(names[i], "varlink") == 0) {
			if (names)
				free(names[i]);
			continue;
		}
		e[k++] = (struct fdstore_entry){.name = names[i], .fd = SD_LISTEN_FDS_START + i};
	}
	free(names);
	if (!e)
		return -ENOMEM;
	*p = (struct fdstore_passed){.e = e, .n = k};
	return k;
}

static int take_name(struct fdstore_passed *p, const char *name) {
	for (int i = 0; name && i < p->n; i++)
		if (p->e[i].fd >= 0 && strcmp(p->e[i].name, name) == 0) {
			int fd = p->e[i].fd;
			p->e[i].fd = -1;
			return fd;
		}
	return -ENOENT;
}

int fdstore_take(struct fdstore_passed *p, enum fdstore_kind k, uint64_t id, uint64_t sub) {
	char name[FDSTORE_NAME_MAX];
	int fd = take_name(p, fdstore_name(name, k, id, sub));
	if (fd == -ENOENT && (fd = take_name(p, legacy_name(name, k, id, sub))) >= 0) {
		/* Under its new name from here on. */
		remove_name(name);
		fdstore_put(k, id, sub, fd);
	}
	return fd;
}

void fdstore_release_rest(struct fdstore_passed *p) {
	for (int i = 0; i < p->n; i++) {
		if (p->e[i].fd >= 0) {
			log_info("fd store: %s is no longer needed", p->e[i].name);
			if (fdstore_available())
				remove_name(p->e[i].name);
			close(p->e[i].fd);
		}
		free(p->e[i].name);
	}
	free(p->e);
	*p = (struct fdstore_passed){0};
}
