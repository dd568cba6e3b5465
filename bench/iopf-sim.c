/* SPDX-License-Identifier: MIT */
/*
 * iopf-sim: the policy simulator. Access traces are replayed by modelled
 * devices (sim-device.c) against iopfd's own space, fault-around and
 * eviction code on a counting backend (sim-space.c) and against baselines
 * (sim-baselines.c), at quotas that are fractions of each trace's
 * footprint. It prints what each run cost: faults (device stalls), map and
 * unmap calls, bytes mapped, the pinned peak and the prefetch waste. Only
 * counts, so the figures are the same on every machine, however many jobs
 * run them.
 *
 *   iopf-sim                                   the synthetic traces, every policy
 *   iopf-sim --trace app.trace.zst --policies default,window-64k,min
 *   iopf-sim --traces-dir /var/cache/iopfd/traces --json out.json
 *   iopf-sim --write-synth zipf zipf.trace     a synthetic trace as a file
 *
 * This file is options and output only; sim-policies.c names the policies.
 */
#include <limits.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/rcu.h"
#include "sim-device.h"
#include "sim-policies.h"
#include "sim-trace.h"
#include "trace-set.h"
#include "trace-synth.h"

#define MAX_LIST 64

static _Noreturn void die(const char *what, int r, const char *why) {
	fprintf(stderr, "iopf-sim: %s: %s\n", what, why ? why : strerror(r < 0 ? -r : r));
	exit(1);
}

static _Noreturn void usage(int status) {
	fprintf(status ? stderr : stdout,
	        "usage: iopf-sim [--trace FILE]... [--synth NAME]... [--traces-dir DIR]\n"
	        "                [--policies a,b,c] [--quotas 100,50,25] [--inflight 1,32]\n"
	        "                [--quick] [--pages N] [--accesses N] [--seed N]\n"
	        "                [--jobs N] [--json FILE] [--list]\n"
	        "       iopf-sim --write-synth NAME FILE [--quick] [--pages N] [--accesses N] [--seed N]\n"
	        "\n"
	        "Without a trace, every synthetic one. FILE.zst is read and written through zstd.\n");
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
	unsigned jobs;
	const char *json;
	const char *write_synth, *write_file;
};

/* "a,b,c" -> each item through fn. */
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
		fprintf(stderr, "iopf-sim: %s: '%s' is not a number in %lu..%lu\n", what, s, min, max);
		exit(2);
	}
	return v;
}

static void add_policy(const char *name, void *ud) {
	struct options *o = ud;
	const struct sim_policy *p = sim_policy_find(name);
	if (!p) {
		fprintf(stderr, "iopf-sim: no policy '%s' (--list shows them)\n", name);
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
	o->inflight[o->n_inflight++] = (unsigned)number(s, "--inflight", 1, 1u << 16);
}

static void list(void) {
	size_t n;
	const struct sim_policy *p = sim_policies(&n);
	printf("policies:\n");
	for (size_t i = 0; i < n; i++)
		printf("  %-12s %s\n", p[i].name, p[i].what);
	const char *const *names = trace_synth_names(&n);
	printf("synthetic traces:");
	for (size_t i = 0; i < n; i++)
		printf(" %s", names[i]);
	printf("\n");
}

static void parse(int argc, char **argv, struct options *o) {
	enum { OPT_TRACE = 256, OPT_SYNTH, OPT_DIR, OPT_POLICIES, OPT_QUOTAS, OPT_INFLIGHT, OPT_QUICK, OPT_PAGES,
	       OPT_ACCESSES, OPT_SEED, OPT_JOBS, OPT_JSON, OPT_LIST, OPT_WRITE };
	static const struct option opts[] = {
		{"trace", required_argument, NULL, OPT_TRACE},
		{"synth", required_argument, NULL, OPT_SYNTH},
		{"traces-dir", required_argument, NULL, OPT_DIR},
		{"policies", required_argument, NULL, OPT_POLICIES},
		{"quotas", required_argument, NULL, OPT_QUOTAS},
		{"inflight", required_argument, NULL, OPT_INFLIGHT},
		{"quick", no_argument, NULL, OPT_QUICK},
		{"pages", required_argument, NULL, OPT_PAGES},
		{"accesses", required_argument, NULL, OPT_ACCESSES},
		{"seed", required_argument, NULL, OPT_SEED},
		{"jobs", required_argument, NULL, OPT_JOBS},
		{"json", required_argument, NULL, OPT_JSON},
		{"list", no_argument, NULL, OPT_LIST},
		{"write-synth", required_argument, NULL, OPT_WRITE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *policies = NULL, *quotas = "100,50,25", *inflight = "1,32";
	bool quick = false;
	size_t pages = 0, accesses = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	o->jobs = cpus > 0 ? (unsigned)cpus : 1;
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
		case OPT_QUICK: quick = true; break;
		case OPT_PAGES: pages = number(optarg, "--pages", 16, 1ul << 30); break;
		case OPT_ACCESSES: accesses = number(optarg, "--accesses", 1, 0xfffffffeul); break;
		case OPT_SEED: o->size.seed = number(optarg, "--seed", 1, ULONG_MAX); break;
		case OPT_JOBS: o->jobs = (unsigned)number(optarg, "--jobs", 1, 1024); break;
		case OPT_JSON: o->json = optarg; break;
		case OPT_LIST: list(); exit(0);
		case OPT_WRITE:
			if (optind >= argc)
				usage(2);
			o->write_synth = optarg;
			o->write_file = argv[optind++];
			break;
		case 'h': usage(0);
		default: usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	o->size.pages = pages ? pages : quick ? SYNTH_QUICK_PAGES : SYNTH_PAGES;
	o->size.accesses = accesses ? accesses : quick ? SYNTH_QUICK_ACCESSES : SYNTH_ACCESSES;
	if (policies) {
		split(policies, add_policy, o);
	} else {
		size_t n;
		const struct sim_policy *all = sim_policies(&n);
		for (size_t i = 0; i < n; i++)
			o->policies[o->n_policies++] = &all[i];
	}
	split(quotas, add_quota, o);
	split(inflight, add_inflight, o);
	if (!o->n_policies || !o->n_quotas || !o->n_inflight)
		usage(2);
}

/* --- the traces -------------------------------------------------------------- */

static void load_traces(const struct options *o, struct trace_set *ts) {
	const char *what, *why;
	int r = trace_set_load(ts, o->trace_files, o->n_trace_files, o->traces_dir, o->synth, o->n_synth, &o->size,
	                       "iopf-sim", &what, &why);
	if (r < 0)
		die(what, r, why);
}

static void write_synth(const struct options *o) {
	struct trace tr;
	const char *why;
	int r = trace_synth(o->write_synth, &o->size, &tr);
	if (r < 0)
		die(o->write_synth, r, r == -EINVAL ? "no such synthetic trace (--list shows them)" : NULL);
	r = sim_trace_save(&tr, o->write_file, &why);
	if (r < 0)
		die(o->write_file, r, why);
	fprintf(stderr, "iopf-sim: %s: %zu accesses, %zu pages\n", o->write_file, tr.n, trace_footprint(&tr));
	trace_free(&tr);
}

/* --- the runs ---------------------------------------------------------------- */

struct job {
	const struct sim_trace *t;
	unsigned quota_pct;
	struct sim_run run;
	struct sim_counts c;
	int err;
};

struct pool {
	struct job *jobs;
	size_t n;
	size_t next; /* atomic */
};

/* Runs share nothing but the traces they read: one job per run, any
 * number of threads, the same counts. */
static void *worker(void *arg) {
	struct pool *p = arg;
	iopf_rcu_register();
	for (;;) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		if (i >= p->n)
			break;
		p->jobs[i].err = sim_replay(&p->jobs[i].run, &p->jobs[i].c);
	}
	iopf_rcu_unregister();
	return NULL;
}

static void run_all(struct pool *p, unsigned jobs) {
	pthread_t th[1024];
	if (jobs > p->n)
		jobs = p->n ? (unsigned)p->n : 1;
	for (unsigned i = 0; i < jobs; i++) {
		int r = pthread_create(&th[i], NULL, worker, p);
		if (r)
			die("pthread_create", -r, NULL);
	}
	for (unsigned i = 0; i < jobs; i++)
		pthread_join(th[i], NULL);
}

/* --- output -------------------------------------------------------------------- */

static double mib(uint64_t bytes) {
	return (double)bytes / (1 << 20);
}

static double waste_pct(const struct sim_counts *c) {
	return c->mapped_bytes ? 100.0 * (double)c->waste_bytes / (double)c->mapped_bytes : 0;
}

static void print_table(const struct pool *p) {
	const struct sim_trace *last = NULL;
	for (size_t i = 0; i < p->n; i++) {
		const struct job *j = &p->jobs[i];
		if (j->t != last) {
			last = j->t;
			printf("%s# %s: %zu accesses, %zu pages (%.1f MiB), %zu stream%s\n", i ? "\n" : "", last->name,
			       last->n, last->footprint, mib((uint64_t)last->footprint << last->page_shift), last->streams,
			       last->streams == 1 ? "" : "s");
			printf("%-12s %5s %7s %4s %-12s %9s %8s %9s %9s %9s %8s %9s %7s\n", "trace", "quota", "pages", "N",
			       "policy", "faults", "batches", "maps", "unmaps", "MiB-map", "peak-KiB", "evictions",
			       "waste%");
		}
		const struct sim_counts *c = &j->c;
		printf("%-12s %4u%% %7" PRIu64 " %4u %-12s %9" PRIu64 " %8" PRIu64 " %9" PRIu64 " %9" PRIu64
		       " %9.1f %8" PRIu64 " %9" PRIu64 " %7.1f\n",
		       j->t->name, j->quota_pct, j->run.quota_pages, j->run.inflight, j->run.policy->name, c->faults,
		       c->batches, c->maps, c->unmaps, mib(c->mapped_bytes), c->pinned_peak >> 10, c->evictions,
		       waste_pct(c));
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

static void write_json(const char *path, const struct trace_set *ts, const struct pool *p) {
	FILE *f = fopen(path, "we");
	if (!f)
		die(path, -errno, NULL);
	fputs("{\"traces\":[", f);
	for (size_t i = 0; i < ts->n; i++) {
		const struct sim_trace *t = &ts->t[i];
		fprintf(f, "%s{\"name\":", i ? "," : "");
		json_str(f, t->name);
		fprintf(f, ",\"accesses\":%zu,\"footprint_pages\":%zu,\"page_size\":%llu,\"streams\":%zu}", t->n,
		        t->footprint, 1ull << t->page_shift, t->streams);
	}
	fputs("],\"runs\":[", f);
	for (size_t i = 0; i < p->n; i++) {
		const struct job *j = &p->jobs[i];
		const struct sim_counts *c = &j->c;
		fprintf(f, "%s{\"trace\":", i ? "," : "");
		json_str(f, j->t->name);
		fprintf(f, ",\"policy\":");
		json_str(f, j->run.policy->name);
		fprintf(f,
		        ",\"quota_percent\":%u,\"quota_pages\":%" PRIu64 ",\"inflight\":%u,\"accesses\":%" PRIu64
		        ",\"faults\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"maps\":%" PRIu64 ",\"unmaps\":%" PRIu64
		        ",\"mapped_bytes\":%" PRIu64 ",\"pinned_peak\":%" PRIu64 ",\"evictions\":%" PRIu64
		        ",\"waste_bytes\":%" PRIu64 ",\"quota_refusals\":%" PRIu64 "}",
		        j->quota_pct, j->run.quota_pages, j->run.inflight, c->accesses, c->faults, c->batches, c->maps,
		        c->unmaps, c->mapped_bytes, c->pinned_peak, c->evictions, c->waste_bytes, c->quota_refusals);
	}
	fputs("]}\n", f);
	if (fclose(f) != 0)
		die(path, -EIO, NULL);
}

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	struct options o = {0};
	parse(argc, argv, &o);
	if (o.write_synth) {
		write_synth(&o);
		return 0;
	}

	iopf_rcu_register(); /* for the barrier at the end */
	double t0 = now_s();
	struct trace_set ts = {0};
	load_traces(&o, &ts);

	struct pool p = {.n = ts.n * o.n_quotas * o.n_inflight * o.n_policies};
	p.jobs = calloc(p.n ? p.n : 1, sizeof(*p.jobs));
	if (!p.jobs)
		die("runs", -ENOMEM, NULL);
	size_t k = 0;
	for (size_t t = 0; t < ts.n; t++)
		for (size_t q = 0; q < o.n_quotas; q++)
			for (size_t n = 0; n < o.n_inflight; n++)
				for (size_t pol = 0; pol < o.n_policies; pol++) {
					uint64_t pages = (uint64_t)ts.t[t].footprint * o.quotas[q] / 100;
					p.jobs[k++] = (struct job){
						.t = &ts.t[t], .quota_pct = o.quotas[q],
						.run = {.t = &ts.t[t], .policy = o.policies[pol],
						        .quota_pages = pages ? pages : 1, .inflight = o.inflight[n]},
					};
				}
	double t1 = now_s();
	run_all(&p, o.jobs);
	double t2 = now_s();

	int status = 0;
	uint64_t refusals = 0;
	for (size_t i = 0; i < p.n; i++) {
		const struct job *j = &p.jobs[i];
		if (j->err < 0) {
			fprintf(stderr, "iopf-sim: %s, %s, quota %u%%, N=%u: %s\n", j->t->name, j->run.policy->name,
			        j->quota_pct, j->run.inflight,
			        j->err == -EPROTO ? "the books and the pager disagree" : strerror(-j->err));
			status = 1;
		}
		refusals += j->c.quota_refusals;
	}
	print_table(&p);
	if (o.json)
		write_json(o.json, &ts, &p);
	printf("\nSUMMARY traces=%zu runs=%zu quota_refusals=%" PRIu64 " errors=%d\n", ts.n, p.n, refusals, status);
	fprintf(stderr, "iopf-sim: %zu runs in %.2f s on %u jobs (traces made in %.2f s)\n", p.n, t2 - t1, o.jobs,
	        t1 - t0);
	if (refusals)
		status = 1;

	trace_set_free(&ts);
	free(p.jobs);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
	return status;
}
