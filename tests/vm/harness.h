/* SPDX-License-Identifier: MIT */
/*
 * What the two VM suites (vmtest.c on the mock device, realiommu.c on the
 * PRI test device) share: a failed check that ends the scenario, the clock,
 * a shell's one-line answer, and the iopfd.service that systemd runs.
 */
#ifndef IOPFD_TESTS_VM_HARNESS_H
#define IOPFD_TESTS_VM_HARNESS_H

#include <setjmp.h>
#include <stdint.h>

#include <systemd/sd-varlink.h>

#define SYSTEM_SOCKET "/run/iopfd/io.iopfd"

/* A failed check ends the scenario: main's setjmp(fail_jmp) gets control
 * back, with the message in fail_msg. */
extern jmp_buf fail_jmp;
extern char fail_msg[1024];
void __attribute__((format(printf, 1, 2), noreturn)) fail(const char *fmt, ...);

#define CHECK(cond, ...)                 \
	do {                             \
		if (!(cond))             \
			fail(__VA_ARGS__); \
	} while (0)

uint64_t now_ns(void);

/* The first line a shell command prints, without its newline ("" if
 * none); valid until the next call. */
const char *__attribute__((format(printf, 1, 2))) sh(const char *fmt, ...);

/* iopfd.service's main process, 0 when it has none. */
unsigned long main_pid(void);

/* Wait (60 s at most, else fail) for iopfd.service to run a main process
 * other than `old` that answers Statistics on the system socket; the
 * connection, for the caller to unref. */
sd_varlink *await_service(unsigned long old);

#endif
