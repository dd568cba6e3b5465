/* SPDX-License-Identifier: MIT */
/* Running the real iopfd binary for a test, on a private socket. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "../common.h"
#include "iopfd/client.h"

struct daemon {
	pid_t pid;
	char socket[108];
};

/* Start build/iopfd (IOPFD_BINARY, set by meson) with extra arguments
 * (NULL-terminated) and wait until it accepts connections. Unless the
 * arguments name a --config, it runs on the compiled-in defaults alone, not
 * on whatever /etc/iopfd of the machine says. */
static inline void daemon_start(struct daemon *d, const char *const *extra) {
	const char *bin = getenv("IOPFD_BINARY");
	cr_assert(bin, "IOPFD_BINARY is not set");
	snprintf(d->socket, sizeof(d->socket), "/tmp/iopfd-test-%d-%d.sock", (int)getpid(), rand());
	d->pid = fork();
	cr_assert(d->pid >= 0);
	if (d->pid == 0) {
		/* A test that crashes takes its daemon with it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* An ASan build keeps freed memory in a quarantine (256 MiB by
		 * default) that looks like growth to the rows that judge the
		 * daemon's resident memory: keep it small, as the soak does. */
		const char *asan = getenv("ASAN_OPTIONS");
		char opts[1024];
		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=8:thread_local_quarantine_size_kb=64", asan ? asan : "",
		         asan && *asan ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
		/* Tests connect as other users too. */
		const char *argv[32] = {bin, "--socket", d->socket, "--socket-mode", "0666", "--workers", "2"};
		int n = 7;
		bool config = false;
		for (int i = 0; extra && extra[i] && n < 28; i++) {
			config |= !strcmp(extra[i], "--config");
			argv[n++] = extra[i];
		}
		if (!config) {
			argv[n++] = "--config";
			argv[n++] = "/dev/null";
		}
		argv[n] = NULL;
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		sd_varlink *v;
		if (iopfc_connect(d->socket, &v) == 0) {
			sd_varlink_unref(v);
			return;
		}
		usleep(10000);
	}
	cr_assert_fail("iopfd did not come up on %s", d->socket);
}

/* SIGTERM and wait; returns the exit status (or 128+signal). */
static inline int daemon_stop(struct daemon *d) {
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	int st;
	waitpid(d->pid, &st, 0);
	d->pid = 0;
	unlink(d->socket);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline sd_varlink *daemon_connect(struct daemon *d) {
	sd_varlink *v;
	cr_assert_eq(iopfc_connect(d->socket, &v), 0);
	return v;
}
