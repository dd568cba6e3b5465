/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "sim-baselines.h"
#include "sim-policies.h"
#include "sim-space.h"

#define KiB(n) ((uint64_t)(n) << 10)

/*
 * iopfd's policies are space configurations: whatever the daemon's space
 * code does with them is what the simulator runs. A new policy in space.c
 * (a new field of struct iopf_space_config) is one more line here. The
 * backend, quota and page size are the run's; a window of 0 is the
 * daemon's default (one page).
 */
static const struct sim_policy policies[] = {
	{"default", &sim_pager_iopfd, {0}, "iopfd as configured by default"},
	{"noprefetch", &sim_pager_iopfd, {.fault_around = IOPF_FAULT_AROUND_FIXED},
	 "iopfd's default eviction, one page per fault (prefetch off)"},
	{"fixed", &sim_pager_iopfd, {.fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = IOPF_EVICTION_CLOCK},
	 "iopfd before the policy work: one page per fault, clock eviction"},
	{"adaptive", &sim_pager_iopfd, {.fault_around = IOPF_FAULT_AROUND_ADAPTIVE, .eviction = IOPF_EVICTION_CLOCK},
	 "iopfd, adaptive fault-around per device (up to 256 KiB), clock eviction"},
	{"2q", &sim_pager_iopfd, {.fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = IOPF_EVICTION_2Q},
	 "iopfd, one page per fault, 2q eviction (probation FIFO, ghosts, main clock)"},
	{"density-2q", &sim_pager_iopfd, {.fault_around = IOPF_FAULT_AROUND_DENSITY, .eviction = IOPF_EVICTION_2Q},
	 "iopfd, adaptive fault-around with density guesses into free room, 2q eviction"},
	{"adaptive-2q", &sim_pager_iopfd, {.fault_around = IOPF_FAULT_AROUND_ADAPTIVE, .eviction = IOPF_EVICTION_2Q},
	 "iopfd, adaptive fault-around and 2q eviction"},
	{"window-16k", &sim_pager_iopfd, {.window_min = KiB(16), .window_max = KiB(16), .fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = IOPF_EVICTION_CLOCK},
	 "iopfd, fixed 16 KiB fault-around windows"},
	{"window-64k", &sim_pager_iopfd, {.window_min = KiB(64), .window_max = KiB(64), .fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = IOPF_EVICTION_CLOCK},
	 "iopfd, fixed 64 KiB fault-around windows"},
	{"window-256k", &sim_pager_iopfd, {.window_min = KiB(256), .window_max = KiB(256), .fault_around = IOPF_FAULT_AROUND_FIXED, .eviction = IOPF_EVICTION_CLOCK},
	 "iopfd, fixed 256 KiB fault-around windows"},

	/* Baselines: not iopfd code (sim-baselines.c). */
	{"lru", &sim_pager_lru, {0}, "baseline: one page per fault, exact LRU eviction"},
	{"min", &sim_pager_min, {0}, "baseline: one page per fault, Belady's MIN (fewest faults possible)"},
	{"uvm-density", &sim_pager_uvm_density, {0},
	 "baseline: UVM's density prefetcher over 2 MiB blocks, LRU eviction per page"},
};

const struct sim_policy *sim_policies(size_t *n) {
	*n = sizeof(policies) / sizeof(policies[0]);
	return policies;
}

const struct sim_policy *sim_policy_find(const char *name) {
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
		if (strcmp(policies[i].name, name) == 0)
			return &policies[i];
	return NULL;
}

bool sim_policy_is_iopfd(const struct sim_policy *p) {
	return p->pager == &sim_pager_iopfd;
}
