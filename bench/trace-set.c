/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim-trace.h"
#include "trace-set.h"

/* Room for one more; the slot is filled by the caller, and counted only
 * when that worked. */
static struct sim_trace *slot(struct trace_set *ts) {
	if (ts->n == ts->cap) {
		size_t cap = ts->cap ? 2 * ts->cap : 16;
		struct sim_trace *t = realloc(ts->t, cap * sizeof(*t));
		if (!t)
			return NULL;
		ts->t = t;
		ts->cap = cap;
	}
	return &ts->t[ts->n];
}

int trace_set_file(struct trace_set *ts, const char *path, const char **why) {
	struct sim_trace *t = slot(ts);
	*why = NULL;
	if (!t)
		return -ENOMEM;
	int r = sim_trace_load(path, t, why);
	if (r == 0)
		ts->n++;
	return r;
}

static int cmp_str(const void *a, const void *b) {
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int trace_set_dir(struct trace_set *ts, const char *dir, size_t *found, const char **why) {
	*found = 0;
	*why = NULL;
	DIR *d = opendir(dir);
	if (!d) {
		*why = "cannot open the directory";
		return -errno;
	}
	char **names = NULL;
	size_t n = 0;
	int r = 0;
	struct dirent *e;
	while (r == 0 && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len <= 10 || strcmp(e->d_name + len - 10, ".trace.zst") != 0)
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn) {
			r = -ENOMEM;
			break;
		}
		names = nn;
		if (asprintf(&names[n], "%s/%s", dir, e->d_name) < 0)
			r = -ENOMEM;
		else
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (r == 0) {
			r = trace_set_file(ts, names[i], why);
			*found += r == 0;
			if (r < 0) {
				/* Which of the files it was. */
				static char msg[512];
				snprintf(msg, sizeof(msg), "%s: %s", names[i], *why ? *why : strerror(-r));
				*why = msg;
			}
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int trace_set_synth(struct trace_set *ts, const char *name, const struct synth_size *size, const char **why) {
	struct sim_trace *t = slot(ts);
	struct trace tr;
	*why = NULL;
	if (!t)
		return -ENOMEM;
	int r = trace_synth(name, size, &tr);
	if (r == -EINVAL)
		*why = "no such synthetic trace (--list shows them)";
	if (r < 0)
		return r;
	r = sim_trace_prepare(&tr, name, t);
	trace_free(&tr);
	if (r == 0)
		ts->n++;
	return r;
}

int trace_set_load(struct trace_set *ts, const char *const *files, size_t n_files, const char *dir,
                   const char *const *synth, size_t n_synth, const struct synth_size *size, const char *prog,
                   const char **what, const char **why) {
	int r;
	*why = NULL;
	for (size_t i = 0; i < n_files; i++)
		if ((r = trace_set_file(ts, *what = files[i], why)) < 0)
			return r;
	if (dir) {
		size_t found;
		if ((r = trace_set_dir(ts, *what = dir, &found, why)) < 0)
			return r;
		if (found == 0)
			fprintf(stderr, "%s: no *.trace.zst in %s\n", prog, dir);
	}
	if (!n_files && !dir && !n_synth)
		synth = trace_synth_names(&n_synth);
	for (size_t i = 0; i < n_synth; i++)
		if ((r = trace_set_synth(ts, *what = synth[i], size, why)) < 0)
			return r;
	return 0;
}

void trace_set_free(struct trace_set *ts) {
	for (size_t i = 0; i < ts->n; i++)
		sim_trace_free(&ts->t[i]);
	free(ts->t);
	*ts = (struct trace_set){0};
}
