/* SPDX-License-Identifier: MIT */
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iopfd/client.h"

jmp_buf fail_jmp;
char fail_msg[1024];

void fail(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
	va_end(ap);
	longjmp(fail_jmp, 1);
}

uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *sh(const char *fmt, ...) {
	static char out[512];
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	out[0] = '\0';
	FILE *f = popen(cmd, "r");
	if (!f)
		return out;
	if (!fgets(out, sizeof(out), f))
		out[0] = '\0';
	pclose(f);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

unsigned long main_pid(void) {
	return strtoul(sh("systemctl show -p MainPID --value iopfd.service"), NULL, 10);
}

sd_varlink *await_service(unsigned long old) {
	uint64_t deadline = now_ns() + 60ull * 1000000000;
	for (;;) {
		unsigned long pid = main_pid();
		sd_varlink *v;
		if (pid && pid != old && !strcmp(sh("systemctl is-active iopfd.service"), "active") &&
		    iopfc_connect(SYSTEM_SOCKET, &v) == 0) {
			const char *err = NULL;
			if (iopfc_statistics(v, NULL, &err) == 0)
				return v;
			sd_varlink_unref(v);
		}
		CHECK(now_ns() < deadline, "iopfd.service did not come back (pid %lu)", pid);
		usleep(50000);
	}
}
