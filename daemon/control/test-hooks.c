/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "engine/test-hooks.h"
#include "log.h"
#include "manager.h"
#include "test-hooks.h"

#define DIED_MARK "test-died-in-recovery"

static int on_hang_request(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	struct manager *m = userdata;
	log_warning("fault injection: worker 0 stops answering");
	return iopf_engine_test_hang(m->engine, 0);
}

static int on_die_answering_request(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	struct manager *m = userdata;
	log_warning("fault injection: the next kernel batch kills iopfd before its answers are written");
	return iopf_engine_test_die_answering(m->engine);
}

int test_hooks_setup(struct manager *m) {
	int r = 0;
	if (getenv("IOPFD_TEST_HANG_ON_SIGUSR2"))
		r = sd_event_add_signal(m->event, NULL, SIGUSR2 | SD_EVENT_SIGNAL_PROCMASK, on_hang_request, m);
	if (r >= 0 && getenv("IOPFD_TEST_DIE_ANSWERING_ON_SIGUSR1"))
		r = sd_event_add_signal(m->event, NULL, SIGUSR1 | SD_EVENT_SIGNAL_PROCMASK, on_die_answering_request, m);
	if (r < 0)
		return log_error_errno(r, "Failed to watch the fault-injection signals: %m");
	/* Not injection but instrumentation: an inherited eventfd told of
	 * every write of answers. */
	const char *efd = getenv("IOPFD_TEST_ANSWERED_EVENTFD");
	if (efd) {
		char *end;
		long fd = strtol(efd, &end, 10);
		if (*end || fd < 3 || fd > 65535 || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)
			return log_error_errno(-EBADF, "IOPFD_TEST_ANSWERED_EVENTFD=%s is no open fd", efd);
		iopf_test_answered_fd = (int)fd;
	}
	return 0;
}

void test_hook_before_recovery(struct manager *m) {
	struct restart *r = &m->restart;
	if (!getenv("IOPFD_TEST_DIE_IN_RECOVERY"))
		return;
	bool reanswer = false;
	for (size_t i = 0; i < r->n_pending; i++)
		reanswer |= r->pending[i].kind == IOPF_JOURNAL_REANSWER;
	if (!reanswer)
		return;
	/* Once: a mark in the fd store (not in the journal, whose format
	 * knows nothing of tests) says it happened. */
	for (int i = 0; i < r->passed.n; i++)
		if (r->passed.e[i].fd >= 0 && strcmp(r->passed.e[i].name, DIED_MARK) == 0) {
			int fd = r->passed.e[i].fd;
			r->passed.e[i].fd = -1;
			sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=" DIED_MARK "\nFDPOLL=0", &fd, 1);
			close(fd);
			return;
		}
	int fd = memfd_create(DIED_MARK, MFD_CLOEXEC);
	if (fd < 0 || sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=" DIED_MARK "\nFDPOLL=0", &fd, 1) <= 0)
		return;
	log_warning("fault injection: dying before the journal is answered");
	kill(getpid(), SIGKILL);
}
