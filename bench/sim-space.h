/* SPDX-License-Identifier: MIT */
/*
 * iopfd's own code as a pager: a simulated-backend address space made from
 * the policy's space configuration, one region per run of the trace's
 * chunks, each stream bound as a device, and every batch resolved by the
 * resolver the workers use (batch dedup, quota-pressure retry and all).
 * The calling thread must be registered with RCU.
 */
#pragma once

#include "sim.h"

extern const struct sim_pager_ops sim_pager_iopfd;
