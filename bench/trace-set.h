/* SPDX-License-Identifier: MIT */
/*
 * The traces a run names, made ready for replay: trace files, every
 * *.trace.zst of a directory, synthetic traces by name. What iopf-sim and
 * iopf-replay take on their command lines.
 */
#pragma once

#include <stddef.h>

#include "sim.h"
#include "trace-synth.h"

struct trace_set {
	struct sim_trace *t; /* moves as traces are added */
	size_t n, cap;
};

/* Each: 0, or a negative errno with *why saying more when it can. */
int trace_set_file(struct trace_set *ts, const char *path, const char **why);
/* Every *.trace.zst in dir, in name order; *found says how many. */
int trace_set_dir(struct trace_set *ts, const char *dir, size_t *found, const char **why);
/* -EINVAL: no synthetic trace of that name. */
int trace_set_synth(struct trace_set *ts, const char *name, const struct synth_size *size, const char **why);
/* Everything a command line names, in that order: files, the directory's
 * traces, synthetic ones; with none of them, every synthetic trace. On
 * failure *what is the name that failed. `prog` prefixes the warning for
 * a directory without traces. */
int trace_set_load(struct trace_set *ts, const char *const *files, size_t n_files, const char *dir,
                   const char *const *synth, size_t n_synth, const struct synth_size *size, const char *prog,
                   const char **what, const char **why);
void trace_set_free(struct trace_set *ts);
