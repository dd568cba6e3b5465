/* SPDX-License-Identifier: MIT */
/*
 * iopfd's figures as metrics text for Prometheus: OpenMetrics 1.0, or the
 * Prometheus text format 0.0.4 that promtool and node_exporter's textfile
 * collector read. Names and units follow Prometheus's conventions: an
 * iopfd_ prefix, base units (bytes, seconds) in the name, _total on
 * counters. The metrics are listed in iopfctl(1).
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include <systemd/sd-json.h>

enum metrics_format {
	METRICS_OPENMETRICS,
	METRICS_PROMETHEUS,
};

/* From a Statistics object, a ListSpaces array and the daemon's version;
 * `now` is the wall clock in seconds (for the start time). */
int metrics_write(FILE *f, enum metrics_format format, sd_json_variant *stats, sd_json_variant *spaces,
                  const char *version, double now);
