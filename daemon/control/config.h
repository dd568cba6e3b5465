/* SPDX-License-Identifier: MIT */
/*
 * The daemon's configuration: the per-user limits and the pin budgets, read
 * in the systemd style from /etc/iopfd/iopfd.conf and then the drop-ins
 * iopfd.conf.d/ *.conf beside it (and in /run/iopfd and /usr/lib/iopfd; a
 * drop-in in /etc overrides one of the same name further down), over the
 * defaults compiled in. Later assignments win; a grant for a user or group
 * given again replaces the earlier one.
 *
 *   [Limits]
 *   ConnectionsPerUser=64
 *   QueuesPerUser=4096
 *   SpacesPerUser=1024
 *   RegionsPerUser=4096
 *
 *   [Workers]             read at start only
 *   Workers=0             0: one per online CPU
 *   BusyPollUsec=0        poll this long before sleeping (dedicated cores)
 *   AnswerSliceGroups=64  answer a batch every so many groups (0: whole)
 *   AnswerSliceUsec=0     ... or every so much resolving time (0: never)
 *
 *   [PinBudget]
 *   Default=8M            what a user without a grant may pin
 *   User=root infinity    a user, by name or uid
 *   Group=kvm 16G         the members of a group, by name or gid
 *   RequireAllocated=no   regions of users other than root must be
 *                         allocated in their memfd (charged to them)
 *
 * A user's budget is its own grant, else the largest grant among its
 * groups, else Default. Root's is the same rule; the compiled-in
 * "User=root infinity" can be overridden like any other grant. The per-user
 * counts in [Limits] do not apply to root.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "accounting.h"
#include "shared/size-util.h"

#ifndef IOPFD_CONFIG_DIR
#define IOPFD_CONFIG_DIR "/etc/iopfd"
#endif
#define IOPFD_CONFIG_FILE IOPFD_CONFIG_DIR "/iopfd.conf"
#define IOPFD_PIN_UNLIMITED SIZE_INFINITY
/* The default answer slices. Named here so that the benchmark runs the
 * engine as the daemon does. Measured on the real kernel path (the VM
 * suite's service_time, IOPFD_SERVICE_TIME_SLICES): with slices of 64
 * groups half of a 1,600-group read is answered at about 70 % of its time
 * rather than at its end; 256 answer later (about 80 % in most boots),
 * and 16 no sooner than 64 but at a cost per fault. No time limit: none measured helped (250 us
 * cut the slices to 16 groups under TCG, and 1 ms answered the burst's
 * median later than 64 groups alone in both boots that ran the two). */
#define IOPFD_ANSWER_SLICE_GROUPS 64
#define IOPFD_ANSWER_SLICE_USEC 0

struct pin_grant {
	bool group;
	char *who;      /* as written: a name, or a number */
	uint64_t bytes; /* IOPFD_PIN_UNLIMITED: infinity */
};

struct iopfd_workers {
	unsigned workers;
	uint64_t busy_poll_us;
	uint64_t slice_groups;
	uint64_t slice_us;
};

struct iopfd_config {
	struct iopfd_limits limits;
	struct iopfd_workers workers;
	uint64_t pin_default;
	bool require_allocated; /* regions of non-root users must be allocated already */
	struct pin_grant *grants;
	size_t n_grants;
	unsigned warnings; /* lines ignored while reading */
};

/* Limits given on the command line, which win over the files (also when
 * they are read again). [_ACCT_RESOURCE_MAX] is the connections'. */
struct config_overrides {
	bool given[_ACCT_RESOURCE_MAX + 1];
	uint64_t value[_ACCT_RESOURCE_MAX + 1];
};
void config_override(struct iopfd_config *c, const struct config_overrides *o);

/* The compiled-in defaults. */
int config_defaults(struct iopfd_config *c);
void config_done(struct iopfd_config *c);

/* The defaults, then `path` (IOPFD_CONFIG_FILE when NULL; a missing file is
 * fine) and its drop-ins. Lines that cannot be used are logged with their
 * file and line, counted in c->warnings and skipped. -ENOMEM, or -errno
 * when a file that exists cannot be read. */
int config_load(struct iopfd_config *c, const char *path);
/* One file's text (for the loader and for tests). */
int config_parse(struct iopfd_config *c, FILE *f, const char *name);

/* A user's pin budget and where it comes from ("user root", "group kvm",
 * "default"), resolving names through the user database. */
struct pin_budget {
	uint64_t bytes;
	char source[96];
};
void config_pin_budget(const struct iopfd_config *c, uid_t uid, struct pin_budget *out);
