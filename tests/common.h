/* SPDX-License-Identifier: MIT */
/* Small helpers the test suites share. */
#pragma once

#ifdef IOPFD_TEST_LITE
#include "harness/lite.h"
#else
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* A memfd of `size` bytes, sealed against shrinking (what iopfd requires). */
static inline int sealed_memfd(size_t size) {
	int fd = memfd_create("iopfd-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert(fd >= 0, "memfd_create: %s", strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	return fd;
}

/* The process's locked memory (VmLck in /proc/self/status), in bytes. */
static inline long locked_bytes(void) {
	FILE *f = fopen("/proc/self/status", "r");
	cr_assert(f);
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	cr_assert(kb >= 0, "no VmLck line");
	return kb * 1024;
}

/* A connected AF_UNIX stream pair: sv[0] for the daemon, sv[1] for the device. */
static inline void relay_pair(int sv[2]) {
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}
