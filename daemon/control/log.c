/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

static const char *ident = "iopfd";
static int max_level = LOG_INFO;
static int to_journal;

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected to our
 * stderr; only when it still is our stderr do we talk to the journal. */
static int stderr_is_journal(void) {
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;
	if (!e || sscanf(e, "%lu:%lu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return st.st_dev == dev && st.st_ino == ino;
}

void log_setup(const char *name) {
	ident = name;
	to_journal = stderr_is_journal();
	const char *lvl = getenv("IOPFD_LOG_LEVEL");
	if (lvl && !strcmp(lvl, "debug"))
		max_level = LOG_DEBUG;
}

void log_set_max_level(int level) {
	max_level = level;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...) {
	int e = error < 0 ? -error : error;
	if (level > max_level)
		return -e;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	errno = e; /* for %m */
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (to_journal) {
		char lines[32];
		snprintf(lines, sizeof(lines), "%d", line);
		if (e)
			sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, "ERRNO=%d", e, "CODE_FILE=%s", file,
			                "CODE_LINE=%s", lines, "CODE_FUNC=%s", func, "SYSLOG_IDENTIFIER=%s", ident, NULL);
		else
			sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, "CODE_FILE=%s", file, "CODE_LINE=%s",
			                lines, "CODE_FUNC=%s", func, "SYSLOG_IDENTIFIER=%s", ident, NULL);
	} else {
		fprintf(stderr, "%s: %s\n", ident, msg);
	}
	return -e;
}
