/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for the tests that widen the restart's crash windows
 * (docs/restart.md), armed by environment variables. Built only with
 * -Dtest_hooks=true: a release daemon has none of it.
 */
#pragma once

struct manager;

#if IOPFD_TEST_HOOKS
/* Signals that arm the engine's hooks (hang a worker, die answering). */
int test_hooks_setup(struct manager *m);
/* Die (once per fd store) before answering a journal that holds a batch
 * whose answers were being written. */
void test_hook_before_recovery(struct manager *m);
#else
static inline int test_hooks_setup(struct manager *m) {
	return 0;
}
static inline void test_hook_before_recovery(struct manager *m) {
}
#endif
