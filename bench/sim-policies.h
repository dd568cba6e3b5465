/* SPDX-License-Identifier: MIT */
/*
 * The policies the simulator knows, by name: iopfd's own code under named
 * space configurations, and the baselines.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "sim.h"

/* The policy of that name, or NULL. */
const struct sim_policy *sim_policy_find(const char *name);
/* Whether it is iopfd's own code (a space configuration), not a baseline:
 * what a daemon, or the engine, can run. */
bool sim_policy_is_iopfd(const struct sim_policy *p);
/* All of them, in the order the table shows them. */
const struct sim_policy *sim_policies(size_t *n);
