/* SPDX-License-Identifier: MIT */
/*
 * The policies the simulator knows, by name: iopfd's own code under named
 * space configurations, and the baselines.
 */
#pragma once

#include <stddef.h>

#include "sim.h"

/* The policy of that name, or NULL. */
const struct sim_policy *sim_policy_find(const char *name);
/* All of them, in the order the table shows them. */
const struct sim_policy *sim_policies(size_t *n);
