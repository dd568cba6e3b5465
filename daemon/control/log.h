/* SPDX-License-Identifier: MIT */
/*
 * Logging for the daemon and its tools. Under systemd (JOURNAL_STREAM names
 * our stderr) messages go to the journal with structured fields; otherwise to
 * stderr. The *_errno variants log `error` (as %m too) and return -|error|,
 * so an edge can say: return log_error_errno(r, "Failed to ...: %m");
 * The fault path never logs; it counts.
 */
#pragma once

#include <syslog.h>

void log_setup(const char *ident);
void log_set_max_level(int level);
int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

#define log_full_errno(level, error, ...) log_internal(level, error, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)
