/* SPDX-License-Identifier: MIT */
/* The methods of io.iopfd, one table per family; varlink-server.c binds
 * them all. */
#pragma once

#include <systemd/sd-json.h>
#include <systemd/sd-varlink.h>

#include "varlink-util.h"

struct manager;

/* RegisterQueue, UnregisterQueue, Bind, Unbind, ListQueues, ListBindings. */
extern const struct vl_method vl_queue_methods[];
/* CreateSpace, DestroySpace, AddRegion, RemoveRegion, ListSpaces. */
extern const struct vl_method vl_space_methods[];
/* GetStatistics, Monitor. */
extern const struct vl_method vl_stats_methods[];
/* io.systemd.Metrics.List and .Describe, for systemd-report. */
extern const struct vl_method vl_metrics_methods[];

struct iopf_hist;

/* Statistics.serviceTime from the workers' histogram: cumulative counts up
 * to 2^k - 1 ns for k = SERVICE_TIME_FIRST_POW2 .. _LAST_POW2, exactly
 * (those are boundaries of the finer histogram), and an estimated sum. */
#define SERVICE_TIME_FIRST_POW2 8
#define SERVICE_TIME_LAST_POW2 34
int stats_service_time(const struct iopf_hist *h, sd_json_variant **ret);

/* The Statistics object, as `viewer` may see it. */
int stats_build(struct manager *m, uid_t viewer, sd_json_variant **ret);
/* Stop the monitors of a connection (of all, with NULL). */
void monitors_drop_link(struct manager *m, sd_varlink *link);
