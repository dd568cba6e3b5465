/* SPDX-License-Identifier: MIT */
/*
 * iopf-replay: access traces replayed through the real engine (replay.c):
 * worker threads, relay queues, one emulated device per stream that learns
 * residency from the space, so that what the engine evicts faults again.
 * Each run is also run through the policy simulator (sim-device.c) on the
 * same trace, policy, quota and N, in this process, and the two are shown
 * side by side: in trace order on one worker the counts are the same, and
 * the engine adds what the simulator cannot tell, the time: stalls and
 * groups per second of replay.
 *
 *   iopf-replay                                  quick synthetic traces, iopfd's policies
 *   iopf-replay --synth zipf --policies default,adaptive --quotas 50 --inflight 1,32
 *   iopf-replay --backend mlock --workers 2 --concurrent --synth streams
 *   iopf-replay --traces-dir /var/cache/iopfd/traces --check
 *
 * This file is options and output only.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/rcu.h"
#include "replay.h"
#include "sim-device.h"
#include "sim-policies.h"
#include "trace-set.h"

#define MAX_LIST 64
#define MAX_INFLIGHT 4096 /* a window's answers must fit in the device's socket buffer */

static _Noreturn void die(const char *what, int r, const char *why) {
	fprintf(stderr, "iopf-replay: %s: %s\n", what, why ? why : strerror(r < 0 ? -r : r));
	exit(1);
}

static _Noreturn void usage(int status) {
	fprintf(status ? stderr : stdout,
	        "usage: iopf-replay [--trace FILE]... [--synth NAME]... [--traces-dir DIR]\n"
	        "                   [--policies a,b,c] [--quotas 100,50,25] [--inflight 1,32]\n"
	        "                   [--backend simulated|mlock] [--workers N] [--concurrent]\n"
	        "                   [--full] [--pages N] [--accesses N] [--seed N]\n"
	        "                   [--check] [--json FILE]\n"
	        "\n"
	        "Without a trace, every synthetic one, at the simulator's --quick size unless --full.\n"
	        "Policies are iopfd's (iopf-sim --list); FILE.zst is read through zstd.\n"
	        "--check: exit status 1 when a run's counts are not the simulator's.\n");
	exit(status);
}

struct options {
	const char *trace_files[MAX_LIST];
	size_t n_trace_files;
	const char *synth[MAX_LIST];
	size_t n_synth;
	const char *traces_dir;
	const struct sim_policy *policies[MAX_LIST];
	size_t n_policies;
	unsigned quotas[MAX_LIST];
	size_t n_quotas;
	unsigned inflight[MAX_LIST];
	size_t n_inflight;
	struct synth_size size;
	enum iopf_backend_kind backend;
	unsigned workers;
	bool concurrent, check;
	const char *json;
};

static void split(const char *list, void (*fn)(const char *item, void *ud), void *ud) {
	char *copy = strdup(list);
	if (!copy)
		die("options", -ENOMEM, NULL);
	char *save = NULL;
	for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save))
		fn(s, ud);
	free(copy);
}

static unsigned long number(const char *s, const char *what, unsigned long min, unsigned long max) {
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || !*s || *end || v < min || v > max) {
		fprintf(stderr, "iopf-replay: %s: '%s' is not a number in %lu..%lu\n", what, s, min, max);
		exit(2);
	}
	return v;
}

static void add_policy(const char *name, void *ud) {
	struct options *o = ud;
	const struct sim_policy *p = sim_policy_find(name);
	if (!p || !sim_policy_is_iopfd(p)) {
		fprintf(stderr, "iopf-replay: '%s' is not one of iopfd's policies (iopf-sim --list shows them)\n", name);
		exit(2);
	}
	if (o->n_policies == MAX_LIST)
		usage(2);
	o->policies[o->n_policies++] = p;
}

static void add_quota(const char *s, void *ud) {
	struct options *o = ud;
	if (o->n_quotas == MAX_LIST)
		usage(2);
	o->quotas[o->n_quotas++] = (unsigned)number(s, "--quotas (percent of the footprint)", 1, 1000);
}

static void add_inflight(const char *s, void *ud) {
	struct options *o = ud;
	if (o->n_inflight == MAX_LIST)
		usage(2);
	o->inflight[o->n_inflight++] = (unsigned)number(s, "--inflight", 1, MAX_INFLIGHT);
}

static void parse(int argc, char **argv, struct options *o) {
	enum { OPT_TRACE = 256, OPT_SYNTH, OPT_DIR, OPT_POLICIES, OPT_QUOTAS, OPT_INFLIGHT, OPT_BACKEND, OPT_WORKERS,
	       OPT_CONCURRENT, OPT_FULL, OPT_PAGES, OPT_ACCESSES, OPT_SEED, OPT_CHECK, OPT_JSON };
	static const struct option opts[] = {
		{"trace", required_argument, NULL, OPT_TRACE},
		{"synth", required_argument, NULL, OPT_SYNTH},
		{"traces-dir", required_argument, NULL, OPT_DIR},
		{"policies", required_argument, NULL, OPT_POLICIES},
		{"quotas", required_argument, NULL, OPT_QUOTAS},
		{"inflight", required_argument, NULL, OPT_INFLIGHT},
		{"backend", required_argument, NULL, OPT_BACKEND},
		{"workers", required_argument, NULL, OPT_WORKERS},
		{"concurrent", no_argument, NULL, OPT_CONCURRENT},
		{"full", no_argument, NULL, OPT_FULL},
		{"pages", required_argument, NULL, OPT_PAGES},
		{"accesses", required_argument, NULL, OPT_ACCESSES},
		{"seed", required_argument, NULL, OPT_SEED},
		{"check", no_argument, NULL, OPT_CHECK},
		{"json", required_argument, NULL, OPT_JSON},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *policies = NULL, *quotas = "100,50,25", *inflight = "1,32";
	bool full = false;
	size_t pages = 0, accesses = 0;
	o->backend = IOPF_BACKEND_SIMULATED;
	o->workers = 1;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_TRACE:
			if (o->n_trace_files == MAX_LIST)
				usage(2);
			o->trace_files[o->n_trace_files++] = optarg;
			break;
		case OPT_SYNTH:
			if (o->n_synth == MAX_LIST)
				usage(2);
			o->synth[o->n_synth++] = optarg;
			break;
		case OPT_DIR: o->traces_dir = optarg; break;
		case OPT_POLICIES: policies = optarg; break;
		case OPT_QUOTAS: quotas = optarg; break;
		case OPT_INFLIGHT: inflight = optarg; break;
		case OPT_BACKEND:
			if (strcmp(optarg, "simulated") == 0)
				o->backend = IOPF_BACKEND_SIMULATED;
			else if (strcmp(optarg, "mlock") == 0)
				o->backend = IOPF_BACKEND_MLOCK;
			else
				usage(2);
			break;
		case OPT_WORKERS: o->workers = (unsigned)number(optarg, "--workers", 1, 256); break;
		case OPT_CONCURRENT: o->concurrent = true; break;
		case OPT_FULL: full = true; break;
		case OPT_PAGES: pages = number(optarg, "--pages", 16, 1ul << 30); break;
		case OPT_ACCESSES: accesses = number(optarg, "--accesses", 1, 0xfffffffeul); break;
		case OPT_SEED: o->size.seed = number(optarg, "--seed", 1, ULONG_MAX); break;
		case OPT_CHECK: o->check = true; break;
		case OPT_JSON: o->json = optarg; break;
		case 'h': usage(0);
		default: usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	o->size.pages = pages ? pages : full ? SYNTH_PAGES : SYNTH_QUICK_PAGES;
	o->size.accesses = accesses ? accesses : full ? SYNTH_ACCESSES : SYNTH_QUICK_ACCESSES;
	if (policies) {
		split(policies, add_policy, o);
	} else {
		size_t n;
		const struct sim_policy *all = sim_policies(&n);
		for (size_t i = 0; i < n; i++)
			if (sim_policy_is_iopfd(&all[i]))
				o->policies[o->n_policies++] = &all[i];
	}
	split(quotas, add_quota, o);
	split(inflight, add_inflight, o);
	if (!o->n_policies || !o->n_quotas || !o->n_inflight)
		usage(2);
}

static void load_traces(const struct options *o, struct trace_set *ts) {
	const char *what, *why;
	int r = trace_set_load(ts, o->trace_files, o->n_trace_files, o->traces_dir, o->synth, o->n_synth, &o->size,
	                       "iopf-replay", &what, &why);
	if (r < 0)
		die(what, r, why);
}

/* --- a run: the engine, then the simulator ------------------------------------------------ */

struct run {
	const struct sim_trace *t;
	const struct sim_policy *policy;
	unsigned quota_pct;
	uint64_t quota_pages;
	unsigned inflight;
	struct replay_result e;
	struct sim_counts s;
	size_t first_diff; /* the first access that stalled in one and not the other, or SIZE_MAX */
	bool engine_stalled; /* at first_diff: in the engine (else in the simulator) */
	bool same;         /* every count and every access as the simulator's */
};

static void run_one(const struct options *o, struct run *run) {
	const struct sim_trace *t = run->t;
	uint8_t *ef = calloc(t->n ? t->n : 1, 1), *sf = calloc(t->n ? t->n : 1, 1);
	if (!ef || !sf)
		die("runs", -ENOMEM, NULL);
	struct replay_config rc = {.t = t, .policy = run->policy, .quota_pages = run->quota_pages,
	                           .inflight = run->inflight, .workers = o->workers, .backend = o->backend,
	                           .concurrent = o->concurrent, .faulted = ef};
	const char *why;
	int r = replay_run(&rc, &run->e, &why);
	if (r < 0) {
		fprintf(stderr, "iopf-replay: %s, %s, quota %u%%, N=%u: %s\n", t->name, run->policy->name, run->quota_pct,
		        run->inflight, why ? why : "");
		die("the engine replay", r, NULL);
	}
	struct sim_run sr = {.t = t, .policy = run->policy, .quota_pages = run->quota_pages, .inflight = run->inflight,
	                     .faulted = sf};
	r = sim_replay(&sr, &run->s);
	if (r < 0)
		die("the simulator", r, r == -EPROTO ? "the books and the pager disagree" : NULL);
	run->first_diff = SIZE_MAX;
	for (size_t i = 0; i < t->n; i++)
		if (ef[i] != sf[i]) {
			run->first_diff = i;
			run->engine_stalled = ef[i];
			break;
		}
	const struct replay_result *e = &run->e;
	const struct sim_counts *s = &run->s;
	run->same = run->first_diff == SIZE_MAX && e->accesses == s->accesses && e->faults == s->faults &&
	            e->windows == s->batches && e->maps == s->maps && e->unmaps == s->unmaps &&
	            e->evictions == s->evictions && e->mapped_bytes == s->mapped_bytes &&
	            e->pinned_peak == s->pinned_peak;
	free(ef);
	free(sf);
}

/* --- output ----------------------------------------------------------------------------------- */

static double ratio(uint64_t a, uint64_t b) {
	return b ? (double)a / (double)b : a ? 0 : 1;
}

static double per_s(uint64_t n, double s) {
	return s > 0 ? (double)n / s : 0;
}

static void print_table(const struct run *runs, size_t n) {
	const struct sim_trace *last = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct run *r = &runs[i];
		if (r->t != last) {
			last = r->t;
			printf("%s# %s: %zu accesses, %zu pages, %zu stream%s\n", i ? "\n" : "", last->name, last->n,
			       last->footprint, last->streams, last->streams == 1 ? "" : "s");
			printf("%-10s %5s %4s %-11s %8s %8s %6s %8s %8s %7s %7s %7s %8s %8s %7s %9s %9s %4s\n", "trace",
			       "quota", "N", "policy", "faults", "sim", "ratio", "maps", "sim", "batches", "reads", "sim",
			       "peak-KiB", "sim", "seconds", "stalls/s", "groups/s", "same");
		}
		const struct replay_result *e = &r->e;
		const struct sim_counts *s = &r->s;
		printf("%-10s %4u%% %4u %-11s %8" PRIu64 " %8" PRIu64 " %6.3f %8" PRIu64 " %8" PRIu64 " %7" PRIu64
		       " %7" PRIu64 " %7" PRIu64 " %8" PRIu64 " %8" PRIu64 " %7.3f %9.0f %9.0f %4s\n",
		       r->t->name, r->quota_pct, r->inflight, r->policy->name, e->faults, s->faults, ratio(e->faults, s->faults),
		       e->maps, s->maps, e->windows, e->reads, s->batches, e->pinned_peak >> 10, s->pinned_peak >> 10,
		       e->seconds, per_s(e->faults, e->seconds), per_s(e->groups, e->seconds), r->same ? "yes" : "no");
		if (r->first_diff != SIZE_MAX)
			printf("#   from access %zu on they differ: it stalled in the %s only\n", r->first_diff,
			       r->engine_stalled ? "engine" : "simulator");
	}
}

static void json_str(FILE *f, const char *s) {
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void write_json(const char *path, const struct options *o, const struct run *runs, size_t n) {
	FILE *f = fopen(path, "we");
	if (!f)
		die(path, -errno, NULL);
	fprintf(f, "{\"backend\":\"%s\",\"workers\":%u,\"order\":\"%s\",\"runs\":[",
	        o->backend == IOPF_BACKEND_MLOCK ? "mlock" : "simulated", o->workers, o->concurrent ? "concurrent" : "trace");
	for (size_t i = 0; i < n; i++) {
		const struct run *r = &runs[i];
		const struct replay_result *e = &r->e;
		const struct sim_counts *s = &r->s;
		fprintf(f, "%s{\"trace\":", i ? "," : "");
		json_str(f, r->t->name);
		fprintf(f, ",\"policy\":");
		json_str(f, r->policy->name);
		fprintf(f,
		        ",\"quota_percent\":%u,\"quota_pages\":%" PRIu64 ",\"inflight\":%u,\"same\":%s"
		        ",\"engine\":{\"accesses\":%" PRIu64 ",\"faults\":%" PRIu64 ",\"batches\":%" PRIu64
		        ",\"reads\":%" PRIu64 ",\"groups\":%" PRIu64 ",\"invalid\":%" PRIu64 ",\"maps\":%" PRIu64
		        ",\"unmaps\":%" PRIu64 ",\"evictions\":%" PRIu64 ",\"mapped_bytes\":%" PRIu64
		        ",\"pinned_peak\":%" PRIu64 ",\"seconds\":%.6f,\"stalls_per_s\":%.1f,\"groups_per_s\":%.1f}"
		        ",\"sim\":{\"accesses\":%" PRIu64 ",\"faults\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"maps\":%" PRIu64
		        ",\"unmaps\":%" PRIu64 ",\"evictions\":%" PRIu64 ",\"mapped_bytes\":%" PRIu64
		        ",\"pinned_peak\":%" PRIu64 "}}",
		        r->quota_pct, r->quota_pages, r->inflight, r->same ? "true" : "false", e->accesses, e->faults,
		        e->windows, e->reads, e->groups, e->invalid, e->maps, e->unmaps, e->evictions, e->mapped_bytes,
		        e->pinned_peak, e->seconds, per_s(e->faults, e->seconds), per_s(e->groups, e->seconds),
		        s->accesses, s->faults, s->batches, s->maps, s->unmaps, s->evictions, s->mapped_bytes,
		        s->pinned_peak);
	}
	fputs("]}\n", f);
	if (fclose(f) != 0)
		die(path, -EIO, NULL);
}

int main(int argc, char **argv) {
	struct options o = {0};
	parse(argc, argv, &o);
	iopf_rcu_register();
	struct trace_set ts = {0};
	load_traces(&o, &ts);

	size_t n = ts.n * o.n_quotas * o.n_inflight * o.n_policies, k = 0;
	struct run *runs = calloc(n ? n : 1, sizeof(*runs));
	if (!runs)
		die("runs", -ENOMEM, NULL);
	for (size_t t = 0; t < ts.n; t++)
		for (size_t q = 0; q < o.n_quotas; q++)
			for (size_t f = 0; f < o.n_inflight; f++)
				for (size_t p = 0; p < o.n_policies; p++) {
					uint64_t pages = (uint64_t)ts.t[t].footprint * o.quotas[q] / 100;
					runs[k] = (struct run){.t = &ts.t[t], .policy = o.policies[p], .quota_pct = o.quotas[q],
					                       .quota_pages = pages ? pages : 1, .inflight = o.inflight[f]};
					run_one(&o, &runs[k++]);
				}
	print_table(runs, n);
	if (o.json)
		write_json(o.json, &o, runs, n);

	size_t same = 0;
	uint64_t faults = 0, sim_faults = 0, groups = 0, invalid = 0;
	double seconds = 0;
	for (size_t i = 0; i < n; i++) {
		same += runs[i].same;
		faults += runs[i].e.faults;
		sim_faults += runs[i].s.faults;
		groups += runs[i].e.groups;
		invalid += runs[i].e.invalid;
		seconds += runs[i].e.seconds;
	}
	printf("\nSUMMARY runs=%zu same=%zu differ=%zu faults=%" PRIu64 " sim_faults=%" PRIu64 " ratio=%.4f"
	       " seconds=%.3f stalls_per_s=%.0f groups_per_s=%.0f invalid=%" PRIu64 "\n",
	       n, same, n - same, faults, sim_faults, ratio(faults, sim_faults), seconds, per_s(faults, seconds),
	       per_s(groups, seconds), invalid);
	int status = invalid || (o.check && same != n) ? 1 : 0;

	free(runs);
	trace_set_free(&ts);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
	return status;
}
