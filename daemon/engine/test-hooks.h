/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for the tests that widen the daemon's crash windows
 * (docs/restart.md). Built only with -Dtest_hooks=true: a release daemon
 * has none of it.
 */
#pragma once

#if IOPFD_TEST_HOOKS
struct iopf_engine;

/* Worker `index` stops for good (the watchdog must notice). */
int iopf_engine_test_hang(struct iopf_engine *e, unsigned index);
/* The next batch of a kernel queue that a journaled worker answers kills
 * the process (SIGKILL) right after it turns ANSWERING, before the write. */
int iopf_engine_test_die_answering(struct iopf_engine *e);
/* An eventfd that gets the number of responses after every write of
 * answers (-1: none), so that a test's client can sleep until its fault is
 * answered instead of spinning on the page tables (tests/vm/realiommu.c). */
extern int iopf_test_answered_fd;
#endif
