/* SPDX-License-Identifier: MIT */
/*
 * iopf-bench: emulated devices against the fault engine, and against the
 * baseline handlers on the same transport and load, in one run.
 *
 *   iopfd        the engine in this process (N workers, batched reads, one
 *                write per batch);
 *   naive        one thread, one group per read (record by record), one write
 *                per response, the same resolution code;
 *   perqueue     one blocking thread per queue, batched reads, one write per
 *                group, the same resolution code;
 *   echo         a do-nothing epoll handler (batched reads, one write per
 *                batch, no lookup): the transport's throughput floor;
 *   pingpong     the do-nothing handler with one queue and one group in
 *                flight: the transport's latency floor;
 *   iopfd-poll   the engine with busy polling (--busy-poll-us), for hosts
 *                that give fault handling cores of their own;
 *   mlock-floor  (with --backend mlock and iopfd) mlock/munlock of the same
 *                windows of the same mapping in a tight loop;
 *   daemon       a real iopfd process through its Varlink socket (--socket
 *                PATH of a running one, or --spawn BINARY to start one).
 *
 * --suite quick|standard runs the standard scenarios and checks the
 * performance targets (README, "Performance"). Prints a table and one
 * SUMMARY line; --json prints one JSON object instead, --json-out FILE
 * writes it to FILE as well as printing the table.
 *
 * This file is the harness only, the top of the layers: the baselines are
 * in baselines.c, the load they and iopfd run on in load.c, the clocks and
 * bench_die in util.c, and none of those calls back up into this file.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "baselines.h"
#include "gaps.h"
#include "knee.h"
#include "bench.h"
#include "load.h"
#include "util.h"
#include "engine/bindings.h"
#include "iopfd/client.h"
#include "engine/engine.h"
#include "engine/resolve.h"
#include "engine/space-internal.h"
#include "control/config.h"

/* The names --modes takes and the table and the JSON show. */
static const char *const bench_mode_name[_MODE_MAX] = {
	[MODE_IOPFD] = "iopfd",      [MODE_NAIVE] = "naive",       [MODE_PERQUEUE] = "perqueue",
	[MODE_ECHO] = "echo",        [MODE_PINGPONG] = "pingpong", [MODE_MLOCK_FLOOR] = "mlock-floor",
	[MODE_DAEMON] = "daemon",    [MODE_IOPFD_POLL] = "iopfd-poll",
};

static bool has_mode(const struct bench_cfg *c, enum bench_mode m) {
	return c->modes & (1u << m);
}

/* --- iopfd: the engine ------------------------------------------------------------------ */

/* The mlock backend maps windows of the configured size rounded up to a
 * power of two of pages (see fault_slow in daemon/space.c). */
static uint64_t backend_window(const struct bench_cfg *c) {
	uint64_t pages = (c->window + 4095) / 4096;
	if (pages < 1)
		pages = 1;
	uint64_t p2 = 1;
	while (p2 < pages)
		p2 <<= 1;
	return p2 * 4096;
}

/* The engine as the daemon configures it by default (answer slices), with
 * busy polling for iopfd-poll. floor: when not NULL (mlock backend), also
 * measure the mlock floor on the same mapping once the engine is done with
 * it. */
static void run_engine(const struct bench_cfg *c, bool poll, struct bench_result *res, struct bench_result *floor) {
	struct iopf_engine_config ec = {
		.workers = c->workers, .slice_groups = IOPFD_ANSWER_SLICE_GROUPS,
		.slice_ns = IOPFD_ANSWER_SLICE_USEC * 1000ull, .busy_poll_ns = poll ? c->busy_poll_ns : 0,
	};
	struct iopf_engine *e;
	int r = iopf_engine_new(&ec, &e);
	if (r < 0)
		bench_die("engine", r);
	struct bench_load l;
	bench_load_new(c, iopf_engine_bindings(e), &l);
	struct iopf_queue **qs = calloc(c->queues, sizeof(*qs));
	for (unsigned q = 0; q < c->queues; q++) {
		if ((r = iopf_queue_new(q, l.dfd[q], IOPF_TRANSPORT_RELAY, &qs[q])) < 0)
			bench_die("queue", r);
		if ((r = iopf_engine_add_queue(e, qs[q])) < 0)
			bench_die("add queue", r);
	}
	struct iopf_counters before, after;
	struct iopf_space_stats sb, sa;
	iopf_engine_counters(e, &before);
	iopf_space_get_stats(l.space, &sb);
	bench_load_drive(c, &l, res);
	iopf_engine_counters(e, &after);
	iopf_space_get_stats(l.space, &sa);
	bench_load_collect(c, &l, res);
	/* Busy polling's empty rounds (epoll_wait without a timeout) are
	 * counted apart, in polls: the CPU figures show what they cost. */
	res->syscalls = (after.reads - before.reads) + (after.writes - before.writes) +
	                (after.epoll_waits - before.epoll_waits);
	res->polls = after.polls - before.polls;
	res->maps = sa.maps - sb.maps;
	res->unmaps = sa.unmaps - sb.unmaps;
	res->mapped_bytes = sa.mapped_bytes - sb.mapped_bytes;
	for (unsigned q = 0; q < c->queues; q++) {
		iopf_engine_remove_queue(e, qs[q], IOPF_RELEASE_TO_HOLDER);
		iopf_queue_free(qs[q]);
	}
	free(qs);
	if (floor && c->backend == IOPF_BACKEND_MLOCK) {
		struct iopf_region *reg = bench_load_region(&l);
		iopf_space_evict_all(l.space);
		unsigned ms = c->duration_ms / 2 > 500 ? c->duration_ms / 2 : 500;
		bench_run_mlock_floor(reg->backend_data, reg->length, backend_window(c), c->quota, ms, c->seed + 7,
		                      floor);
		floor->ran = true;
	}
	bench_load_free(c, iopf_engine_bindings(e), &l);
	iopf_engine_free(e);
}

/*
 * Memory an idle queue costs the engine: n relay queues (sockets made
 * beforehand), each bound to a device, added to a one-worker engine; the
 * growth of this process's resident set and of malloc's heap, per queue.
 * The kernel's side (socket buffers, epoll items) is not included.
 */
struct idle_mem {
	unsigned queues;
	double rss_per_queue, heap_per_queue;
};

static uint64_t rss_bytes(void) {
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, resident = 0;
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t heap_bytes(void) {
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static void measure_idle(unsigned n, struct idle_mem *out) {
	struct iopf_engine_config ec = {.workers = 1};
	struct iopf_engine *e;
	int r = iopf_engine_new(&ec, &e);
	if (r < 0)
		bench_die("engine", r);
	struct iopf_space_config sc = {.backend = IOPF_BACKEND_NONE, .quota = 1ull << 40, .page_size = 4096,
	                               .iommufd = -1};
	struct iopf_space *s;
	if ((r = iopf_space_new(1, &sc, &s)) < 0)
		bench_die("space", r);
	int *fds = malloc(2 * n * sizeof(int));
	struct iopf_queue **qs = calloc(n, sizeof(*qs));
	if (!fds || !qs)
		bench_die("idle", -ENOMEM);
	for (unsigned i = 0; i < n; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, &fds[2 * i]) < 0)
			bench_die("socketpair", errno);
	malloc_trim(0);
	uint64_t rss0 = rss_bytes(), heap0 = heap_bytes();
	for (unsigned i = 0; i < n; i++) {
		if ((r = iopf_queue_new(i, fds[2 * i], IOPF_TRANSPORT_RELAY, &qs[i])) < 0)
			bench_die("queue", r);
		if ((r = iopf_engine_add_queue(e, qs[i])) < 0)
			bench_die("add queue", r);
		struct iopf_binding_key k = {i, i, IOPF_PASID_NONE};
		if ((r = iopf_bindings_add(iopf_engine_bindings(e), &k, s)) < 0)
			bench_die("bind", r);
	}
	uint64_t rss1 = rss_bytes(), heap1 = heap_bytes();
	out->queues = n;
	out->rss_per_queue = rss1 > rss0 ? (double)(rss1 - rss0) / n : 0;
	out->heap_per_queue = heap1 > heap0 ? (double)(heap1 - heap0) / n : 0;
	for (unsigned i = 0; i < n; i++) {
		iopf_engine_remove_queue(e, qs[i], IOPF_RELEASE_TO_HOLDER);
		iopf_queue_free(qs[i]);
		close(fds[2 * i + 1]);
	}
	iopf_bindings_remove_space(iopf_engine_bindings(e), s);
	iopf_space_destroy(s);
	free(qs);
	free(fds);
	iopf_engine_free(e);
}

/* --- daemon: a real iopfd over Varlink -------------------------------------------------- */

static pid_t spawn_daemon(const struct bench_cfg *c, char *path, size_t n) {
	snprintf(path, n, "/tmp/iopf-bench-%d.sock", (int)getpid());
	pid_t pid = fork();
	if (pid < 0)
		bench_die("fork", errno);
	if (pid == 0) {
		char workers[16];
		snprintf(workers, sizeof(workers), "%u", c->workers);
		execl(c->spawn, c->spawn, "--socket", path, "--workers", workers, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static sd_varlink *connect_daemon(const char *path) {
	sd_varlink *v = NULL;
	for (int i = 0; i < 200; i++) {
		if (iopfc_connect(path, &v) == 0)
			return v;
		usleep(20000);
	}
	fprintf(stderr, "iopf-bench: cannot connect to %s\n", path);
	exit(1);
}

static void check(int r, const char *what, const char *err) {
	if (r < 0) {
		fprintf(stderr, "iopf-bench: %s: %s\n", what, r == -EREMOTEIO ? err : strerror(-r));
		exit(1);
	}
}

struct progress {
	const struct bench_cfg *c;
	struct bench_load *l;
	sd_varlink *v;
};

static void show_progress(void *ud, unsigned ms) {
	struct progress *p = ud;
	uint64_t answered = 0, violations = 0;
	for (unsigned q = 0; q < p->c->queues; q++) {
		struct emu_stats st;
		emu_queue_stats(p->l->emu[q], &st);
		answered += st.success + st.invalid;
		violations += emu_violations(&st);
	}
	sd_json_variant *s;
	const char *err;
	uint64_t pinned = iopfc_statistics(p->v, &s, &err) == 0 ? iopfc_u64(s, "pinned") : 0;
	printf("%4.1f s: %12lu groups answered, %8.1f MiB pinned, %lu violations\n", ms / 1000.0,
	       (unsigned long)answered, (double)pinned / (1 << 20), (unsigned long)violations);
	fflush(stdout);
}

static void run_daemon(const struct bench_cfg *c, struct bench_result *res) {
	char path[108];
	pid_t pid = 0;
	if (c->spawn)
		pid = spawn_daemon(c, path, sizeof(path));
	else
		snprintf(path, sizeof(path), "%s", c->socket);
	sd_varlink *v = connect_daemon(path);
	const char *err;
	sd_json_variant *st0;
	check(iopfc_statistics(v, &st0, &err), "GetStatistics", err);
	uint64_t sys0 = iopfc_u64(st0, "syscalls");

	struct bench_load l;
	bench_load_new(c, NULL, &l);
	int memfd = l.memfd >= 0 ? l.memfd : bench_load_memfd(c->pages * 4096, false);
	uint64_t space;
	check(iopfc_create_space(v, c->backend == IOPF_BACKEND_MLOCK ? "mlock" : "none", c->quota, c->window, c->window,
	                         -1, 0, &space, &err), "CreateSpace", err);
	check(iopfc_add_region(v, space, BENCH_LOAD_IOVA, c->pages * 4096, memfd, 0, IOPF_PERM_READ | IOPF_PERM_WRITE,
	                       NULL, &err),
	      "AddRegion", err);
	for (unsigned q = 0; q < c->queues; q++) {
		uint32_t qid;
		check(iopfc_register_queue(v, l.dfd[q], "relay", "iopf-bench", &qid, &err), "RegisterQueue", err);
		close(l.dfd[q]);
		for (unsigned d = 0; d < c->devices; d++)
			for (unsigned p = 0; p < (c->pasids ? c->pasids : 1); p++)
				check(iopfc_bind(v, qid, q * c->devices + d, c->pasids ? p : IOPFC_PASID_NONE, space, &err),
				      "Bind", err);
	}
	if (memfd != l.memfd)
		close(memfd);

	struct progress pr = {.c = c, .l = &l, .v = v};
	double e0 = bench_cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
	uint64_t t0 = bench_now_ns();
	int r = emu_run_progress(l.emu, c->queues, c->duration_ms, c->duration_ms + 10000, 2000,
	                         c->demo ? show_progress : NULL, &pr, 1000);
	if (r < 0)
		bench_die("emulator run", r);
	res->seconds = (double)(bench_now_ns() - t0) / 1e9;
	res->emu_cpu = bench_cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - e0;
	sd_json_variant *st1;
	check(iopfc_statistics(v, &st1, &err), "GetStatistics", err);
	bench_load_collect(c, &l, res);
	res->syscalls = iopfc_u64(st1, "syscalls") - sys0;
	if (c->then) {
		/* While our objects still exist: e.g. iopfctl status. */
		fflush(stdout);
		setenv("IOPFD_SOCKET", path, 1);
		if (system(c->then) != 0)
			fprintf(stderr, "iopf-bench: '%s' failed\n", c->then);
	}
	/* Objects go with the connection. */
	sd_varlink_flush_close_unref(v);
	bench_load_free(c, NULL, &l);
	if (pid > 0) {
		kill(pid, SIGTERM);
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fprintf(stderr, "iopf-bench: iopfd did not exit cleanly (status %#x)\n", status);
	}
}

/* --- one mode on one load ------------------------------------------------------------------ */

/* The ping-pong floor's load: one queue, one device, one single-fault group
 * in flight, closed loop. */
static struct bench_cfg pingpong_cfg(const struct bench_cfg *c) {
	struct bench_cfg p = *c;
	p.queues = p.devices = p.outstanding = 1;
	p.pasids = 0;
	p.group_min = p.group_max = 1;
	p.sizes = EMU_SIZE_UNIFORM;
	p.rate = 0;
	return p;
}

static void run_mode(const struct bench_cfg *c, enum bench_mode m, struct bench_result *res) {
	memset(res, 0, sizeof(*res));
	res->mode = m;
	/* The handler's threads start on its CPU (they inherit it); the
	 * emulator moves to its own once they exist (bench_load_drive). */
	if (c->cpu_handler >= 0)
		bench_pin(c->cpu_handler);
	switch (m) {
	case MODE_IOPFD:
	case MODE_IOPFD_POLL:
		run_engine(c, m == MODE_IOPFD_POLL, res, NULL);
		break;
	case MODE_NAIVE:
		bench_run_naive(c, res);
		break;
	case MODE_PERQUEUE:
		bench_run_perqueue(c, res);
		break;
	case MODE_ECHO:
		bench_run_echo(c, res);
		break;
	case MODE_PINGPONG: {
		struct bench_cfg p = pingpong_cfg(c);
		bench_run_echo(&p, res);
		break;
	}
	case MODE_DAEMON:
		run_daemon(c, res);
		break;
	case MODE_MLOCK_FLOOR: /* measured with iopfd, on its mapping */
	case _MODE_MAX:
		break;
	}
	if (c->cpu_handler >= 0 || c->cpu_emu >= 0)
		bench_pin(-1);
}

/* --- output --------------------------------------------------------------------------------- */

static double rate_of(const struct bench_result *r) {
	return r->seconds > 0 ? (double)r->groups / r->seconds : 0;
}

static double faults_rate(const struct bench_result *r) {
	return r->seconds > 0 ? (double)r->faults / r->seconds : 0;
}

static double maps_rate(const struct bench_result *r) {
	return r->seconds > 0 ? (double)r->maps / r->seconds : 0;
}

static double spg(const struct bench_result *r) {
	return r->groups ? (double)r->syscalls / (double)r->groups : 0;
}

static double us(uint64_t ns) {
	return (double)ns / 1000.0;
}

static double pct_us(const struct bench_result *r, double q) {
	return us(iopf_hist_quantile(&r->lat, q));
}

/* The tail an open-loop target judges: the median of the run's windows'
 * p99 (bench.h says why), or the run's own p99 when it had no windows. */
static double tail_us(const struct bench_result *r) {
	return r->windows ? r->p99_window_us : pct_us(r, 0.99);
}

static double ratio(double a, double b) {
	return b > 0 ? a / b : 0;
}

struct machine {
	char cpu[128];
	long cores;
	char kernel[3 * 65 + 3];
	double load; /* 1-minute load average: how shared the machine was */
	bool have_gaps;
	struct bench_gaps gaps; /* how often the host took a CPU away, before the runs */
};

static double loadavg(void) {
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static void machine_get(struct machine *m) {
	snprintf(m->cpu, sizeof(m->cpu), "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) != 0)
			continue;
		char *p = strchr(line, ':');
		if (!p)
			continue;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		p[strcspn(p, "\n")] = 0;
		snprintf(m->cpu, sizeof(m->cpu), "%s", p);
		break;
	}
	if (f)
		fclose(f);
	m->cores = sysconf(_SC_NPROCESSORS_ONLN);
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof(m->kernel), "%s %s %s", u.sysname, u.release, u.machine);
	else
		snprintf(m->kernel, sizeof(m->kernel), "unknown");
	m->load = loadavg();
}

static void json_str(FILE *f, const char *s) {
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* JSON has no NaN or infinity. */
static void json_num(FILE *f, double v) {
	if (!isfinite(v))
		fputs("null", f);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.6g", v);
}

static void json_machine(FILE *f, const struct machine *m) {
	fputs("\"machine\":{\"cpu\":", f);
	json_str(f, m->cpu);
	fprintf(f, ",\"cores\":%ld,\"kernel\":", m->cores);
	json_str(f, m->kernel);
	fputs(",\"loadavg_start\":", f);
	json_num(f, m->load);
	fputs(",\"loadavg_end\":", f);
	json_num(f, loadavg());
	if (m->have_gaps) {
		fputs(",\"gaps\":{\"seconds_per_cpu\":", f);
		json_num(f, m->gaps.seconds);
		fputs(",\"per_s_over_100us\":", f);
		json_num(f, m->gaps.per_s_100us);
		fputs(",\"per_s_over_1ms\":", f);
		json_num(f, m->gaps.per_s_1ms);
		fputs(",\"lost\":", f);
		json_num(f, m->gaps.lost);
		fputs(",\"longest_us\":", f);
		json_num(f, m->gaps.longest_us);
		fputs("}", f);
	}
	fputs("}", f);
}

static const char *pattern_str(enum emu_pattern p) {
	static const char *const n[] = {"seq", "random", "hot", "zipf"};
	return (unsigned)p < 4 ? n[p] : "?";
}

static void json_load(FILE *f, const struct bench_cfg *c) {
	fprintf(f, "\"queues\":%u,\"devices\":%u,\"pasids\":%u,\"outstanding\":%u,\"workers\":%u,"
	           "\"group_min\":%u,\"group_max\":%u,\"sizes\":\"%s\",",
	        c->queues, c->devices, c->pasids, c->outstanding, c->workers, c->group_min, c->group_max,
	        c->sizes == EMU_SIZE_GEOMETRIC ? "geometric" : "uniform");
	if (c->sizes == EMU_SIZE_GEOMETRIC) {
		fputs("\"group_mean\":", f);
		json_num(f, c->group_mean);
		fputc(',', f);
	}
	fprintf(f, "\"pattern\":\"%s\",", pattern_str(c->pattern));
	if (c->pattern == EMU_ZIPF) {
		fputs("\"zipf_s\":", f);
		json_num(f, c->zipf_s > 0 ? c->zipf_s : 0.99);
		fputc(',', f);
	}
	fprintf(f, "\"pages\":%lu,\"backend\":\"%s\",\"quota\":%lu,\"window\":%lu,\"loop\":\"%s\",\"rate\":",
	        (unsigned long)c->pages, iopf_backend_kind_to_string(c->backend), (unsigned long)c->quota,
	        (unsigned long)c->window, c->rate > 0 ? "open" : "closed");
	json_num(f, c->rate);
	fprintf(f, ",\"duration_ms\":%u,\"pinned\":%s", c->duration_ms, c->cpu_emu >= 0 ? "true" : "false");
}

/* A latency CDF as [microseconds, fraction] points, for bench/report. */
static void json_cdf(FILE *f, const struct iopf_hist *h) {
	static const double tail[] = {0.995, 0.999, 0.9995, 0.9999, 1.0};
	fputs("[", f);
	bool first = true;
	if (h->count) {
		for (int i = 1; i <= 104; i++) {
			double q = i <= 99 ? i / 100.0 : tail[i - 100];
			fprintf(f, "%s[%.3f,%g]", first ? "" : ",", us(iopf_hist_quantile(h, q)), q);
			first = false;
		}
	}
	fputs("]", f);
}

static void json_result(FILE *f, const struct bench_cfg *c, const struct bench_result *r, bool cdf) {
	fputs("{", f);
	if (c->scenario) {
		fputs("\"scenario\":", f);
		json_str(f, c->scenario);
		fputc(',', f);
	}
	fprintf(f, "\"mode\":\"%s\",", bench_mode_name[r->mode]);
	if (r->mode == MODE_MLOCK_FLOOR) {
		fprintf(f, "\"window\":%lu,\"quota\":%lu,\"seconds\":", (unsigned long)r->window_bytes,
		        (unsigned long)c->quota);
		json_num(f, r->seconds);
		fprintf(f, ",\"maps\":%lu,\"unmaps\":%lu,\"maps_per_s\":", (unsigned long)r->maps,
		        (unsigned long)r->unmaps);
		json_num(f, maps_rate(r));
		fputs(",\"violations\":0}", f);
		return;
	}
	struct bench_cfg shown = r->mode == MODE_PINGPONG ? pingpong_cfg(c) : *c;
	json_load(f, &shown);
	fputs(",\"seconds\":", f);
	json_num(f, r->seconds);
	fprintf(f, ",\"groups\":%lu,\"faults\":%lu,\"invalid\":%lu,\"groups_per_s\":", (unsigned long)r->groups,
	        (unsigned long)r->faults, (unsigned long)r->invalid);
	json_num(f, round(rate_of(r)));
	fputs(",\"faults_per_s\":", f);
	json_num(f, round(faults_rate(r)));
	fputs(",\"syscalls_per_group\":", f);
	if (r->syscalls)
		json_num(f, round(spg(r) * 1e4) / 1e4);
	else
		fputs("null", f);
	fputs(",\"p50_us\":", f);
	json_num(f, pct_us(r, 0.5));
	fputs(",\"p99_us\":", f);
	json_num(f, pct_us(r, 0.99));
	fputs(",\"p999_us\":", f);
	json_num(f, pct_us(r, 0.999));
	fputs(",\"max_us\":", f);
	json_num(f, us(r->lat.max));
	if (r->windows) {
		fputs(",\"p99_window_us\":", f);
		json_num(f, r->p99_window_us);
		fprintf(f, ",\"windows\":%u", r->windows);
	}
	/* Where the time went: microseconds of CPU per group on each side. */
	fputs(",\"emulator_cpu_us_per_group\":", f);
	json_num(f, r->groups ? round(r->emu_cpu * 1e6 / (double)r->groups * 1e4) / 1e4 : 0);
	fputs(",\"emulator_busy\":", f);
	json_num(f, r->seconds > 0 ? round(r->emu_cpu / r->seconds * 1e3) / 1e3 : 0);
	if (r->mode != MODE_DAEMON) {
		fputs(",\"handler_cpu_us_per_group\":", f);
		json_num(f, r->groups ? round(r->handler_cpu * 1e6 / (double)r->groups * 1e4) / 1e4 : 0);
		fputs(",\"handler_busy\":", f);
		json_num(f, r->seconds > 0 ? round(r->handler_cpu / r->seconds * 1e3) / 1e3 : 0);
	}
	if (c->backend == IOPF_BACKEND_MLOCK && r->mode == MODE_IOPFD) {
		fprintf(f, ",\"maps\":%lu,\"unmaps\":%lu,\"maps_per_s\":", (unsigned long)r->maps,
		        (unsigned long)r->unmaps);
		json_num(f, maps_rate(r));
	}
	if (r->mode == MODE_ECHO && c->echo_visit_ns)
		fprintf(f, ",\"echo_visit_ns\":%lu", (unsigned long)c->echo_visit_ns);
	if (r->mode == MODE_IOPFD_POLL) {
		fputs(",\"busy_poll_us\":", f);
		json_num(f, c->busy_poll_ns / 1e3);
		fprintf(f, ",\"polls\":%lu", (unsigned long)r->polls);
	}
	fprintf(f, ",\"violations\":%lu", (unsigned long)r->violations);
	if (cdf) {
		fputs(",\"cdf\":", f);
		json_cdf(f, &r->lat);
	}
	fputs("}", f);
}

static void table_header(FILE *f) {
	fprintf(f, "%-14s %-12s %-22s %12s %9s %9s %9s %9s %5s %9s %8s\n", "scenario", "mode", "load", "groups/s",
	        "sys/group", "p50 us", "p99 us", "p99.9 us", "viol", "busy e/h", "h us/g");
}

static void table_row(FILE *f, const struct bench_cfg *c, const struct bench_result *r) {
	char load[48];
	if (r->mode == MODE_MLOCK_FLOOR) {
		fprintf(f, "%-14s %-12s %-22s %12s %9s %9s %9s %9s %5s %9s %8s  %.0f mlock+munlock/s of %lu KiB\n",
		        c->scenario ? c->scenario : "-", "mlock-floor", "-", "-", "-", "-", "-", "-", "0", "-", "-",
		        maps_rate(r), (unsigned long)(r->window_bytes >> 10));
		return;
	}
	struct bench_cfg s = r->mode == MODE_PINGPONG ? pingpong_cfg(c) : *c;
	char rate[24] = "";
	if (s.rate >= 1e6)
		snprintf(rate, sizeof(rate), " open %.2fM", s.rate / 1e6);
	else if (s.rate > 0)
		snprintf(rate, sizeof(rate), " open %.1fk", s.rate / 1e3);
	snprintf(load, sizeof(load), "%ux%u%s%s%s", s.queues * s.devices, s.outstanding, rate,
	         s.backend == IOPF_BACKEND_MLOCK ? " mlock" : "", s.cpu_emu >= 0 ? " pin" : "");
	char sys[16];
	if (r->syscalls)
		snprintf(sys, sizeof(sys), "%.4f", spg(r));
	else
		snprintf(sys, sizeof(sys), "-");
	/* CPU busy of the emulator / the handler (100: a whole core), and
	 * the handler's CPU per group. */
	char busy[24] = "-", hus[16] = "-";
	if (r->seconds > 0)
		snprintf(busy, sizeof(busy), r->mode == MODE_DAEMON ? "%.0f/-" : "%.0f/%.0f",
		         100 * r->emu_cpu / r->seconds, 100 * r->handler_cpu / r->seconds);
	if (r->groups && r->mode != MODE_DAEMON)
		snprintf(hus, sizeof(hus), "%.3f", r->handler_cpu * 1e6 / (double)r->groups);
	fprintf(f, "%-14s %-12s %-22s %12.0f %9s %9.1f %9.1f %9.1f %5lu %9s %8s", c->scenario ? c->scenario : "-",
	        bench_mode_name[r->mode], load, rate_of(r), sys, pct_us(r, 0.5), pct_us(r, 0.99), pct_us(r, 0.999),
	        (unsigned long)r->violations, busy, hus);
	if (r->mode == MODE_IOPFD && c->backend == IOPF_BACKEND_MLOCK)
		fprintf(f, "  %.0f maps/s", maps_rate(r));
	if (r->windows)
		fprintf(f, "  p99 %.1f us (median of %u windows)", r->p99_window_us, r->windows);
	if (r->mode == MODE_ECHO && c->echo_visit_ns)
		fprintf(f, "  (+%lu ns a visit)", (unsigned long)c->echo_visit_ns);
	if (r->invalid)
		fprintf(f, "  (%lu INVALID)", (unsigned long)r->invalid);
	fputc('\n', f);
}

/* --- the suite ------------------------------------------------------------------------------ */

struct run_rec {
	struct bench_cfg c;
	struct bench_result r;
};

struct target {
	char *key;  /* the SUMMARY line's name for it */
	char *name; /* what the table says */
	double measured, goal; /* measured: NAN when it could not be measured */
	bool at_least;         /* measured >= goal; else measured <= goal */
	bool report_only;
	const char *unit;
};

/*
 * The open-loop knee of one shape of load: the highest offered rate at
 * which a handler's p99 stays under KNEE_FACTOR times the do-nothing
 * handler's p50 at a low load (KNEE_LOW_RATE). iopfd is held to the same
 * bound as the do-nothing handler, so that its knee is the load up to
 * which it keeps the tail the floor keeps.
 */
#define KNEE_FACTOR 10
#define KNEE_LOW_RATE 5000.0
#define KNEE_MAX_RATE 16e6
#define KNEE_RUN_MS 500
/* Each run's p99 rests on at least this many groups (it is then the
 * 100th slowest): at a low rate, one spell of other work on a shared
 * machine delays a few dozen groups in a row, which would be the p99 of a
 * short run. A run lasts at most KNEE_LONGEST_RUN_MS all the same. */
#define KNEE_MIN_GROUPS 10000
#define KNEE_LONGEST_RUN_MS 4000
/* Rates between two of the climb's steps (a factor of 2) tried near the
 * knee: 2^(1/4) apart. */
#define KNEE_FINE_STEPS 4

enum { KNEE_ECHO, KNEE_IOPFD, _KNEE_MAX };

struct knee {
	char shape[24]; /* "64x32": queues x groups outstanding per queue */
	unsigned queues, outstanding;
	double low_rate, p50_low_us, limit_us;
	double rate[_KNEE_MAX];     /* the knee, groups/s; 0: over the limit at the low load already */
	bool open_ended[_KNEE_MAX]; /* still under the limit at the highest rate tried */
	/* the rates tried next to the crossing: the last under the limit and
	 * the first over it (0: none) */
	double below[_KNEE_MAX], above[_KNEE_MAX];
};

/* Both handlers at a fraction of the do-nothing handler's knee. */
struct lat_point {
	const struct knee *k;
	double fraction, rate;
	struct bench_result iopfd, echo;
};

struct suite {
	FILE *out; /* the table */
	unsigned repeat;
	bool quick;
	struct run_rec *runs; /* the runs kept */
	size_t n, cap;
	unsigned n_runs;     /* every run made, kept or not */
	uint64_t violations; /* over every run made */
	struct idle_mem idle;
	struct target *tg;
	size_t n_tg, cap_tg;
	struct knee knees[3];
	size_t n_knees;
	struct lat_point *points;
	size_t n_points;
	/* busy polling, at 10 % of the one-queue knee */
	double poll_rate;
	struct bench_result poll[3]; /* iopfd-poll, iopfd, pingpong */
};

static void *xrealloc(void *p, size_t n) {
	p = realloc(p, n);
	if (!p)
		bench_die("suite", -ENOMEM);
	return p;
}

static struct bench_result *suite_add(struct suite *s, const struct bench_cfg *c, const struct bench_result *r) {
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 32;
		s->runs = xrealloc(s->runs, s->cap * sizeof(*s->runs));
	}
	s->runs[s->n] = (struct run_rec){.c = *c, .r = *r};
	table_row(s->out, c, r);
	fflush(s->out);
	return &s->runs[s->n++].r;
}

static void __attribute__((format(printf, 7, 8)))
target_add(struct suite *s, const char *key, double measured, double goal, int op, const char *unit, const char *fmt,
           ...) {
	if (s->n_tg == s->cap_tg) {
		s->cap_tg = s->cap_tg ? 2 * s->cap_tg : 32;
		s->tg = xrealloc(s->tg, s->cap_tg * sizeof(*s->tg));
	}
	va_list ap;
	va_start(ap, fmt);
	char *name = NULL;
	if (vasprintf(&name, fmt, ap) < 0)
		bench_die("suite", -ENOMEM);
	va_end(ap);
	char *k = strdup(key);
	if (!k)
		bench_die("suite", -ENOMEM);
	/* op: '>' at least, '<' at most, 0 reported only */
	s->tg[s->n_tg++] = (struct target){.key = k, .name = name, .measured = measured, .goal = goal,
	                                   .at_least = op == '>', .report_only = op == 0, .unit = unit};
}

static bool target_met(const struct target *t) {
	if (t->report_only)
		return true;
	if (isnan(t->measured))
		return false;
	return t->at_least ? t->measured >= t->goal : t->measured <= t->goal;
}

/* What makes one run of a mode better than another. */
enum best {
	BEST_RATE,     /* more groups/s */
	BEST_P50,      /* lower median latency */
	BEST_P99,      /* lower p99 latency */
	BEST_MAPS,     /* more maps/s (mlock) */
	BEST_SYSCALLS, /* fewer system calls per group */
};

static bool better(enum best how, const struct bench_result *a, const struct bench_result *b) {
	if (!b->ran)
		return true;
	switch (how) {
	case BEST_P50:
		return pct_us(a, 0.5) < pct_us(b, 0.5);
	case BEST_P99:
		return tail_us(a) < tail_us(b);
	case BEST_MAPS:
		return maps_rate(a) > maps_rate(b);
	case BEST_SYSCALLS:
		return spg(a) < spg(b);
	case BEST_RATE:
	default:
		return rate_of(a) > rate_of(b);
	}
}

/* One mode on one load, within a round of interleaved runs. */
struct trial {
	const struct bench_cfg *c;
	enum bench_mode m;
};

/*
 * Each trial s->repeat times, interleaved, keeping each trial's best run.
 * On a shared machine other work only ever makes a run slower, so the best
 * of a few is the closest to what the code can do, and interleaving lets a
 * slow spell hit every trial alike rather than one. Violations count over
 * every run.
 */
static void suite_best_of(struct suite *s, const struct trial *t, size_t n, enum best how, struct bench_result *best) {
	for (size_t i = 0; i < n; i++)
		memset(&best[i], 0, sizeof(best[i]));
	struct bench_result *r = malloc(sizeof(*r));
	if (!r)
		bench_die("suite", -ENOMEM);
	for (unsigned rep = 0; rep < s->repeat; rep++)
		for (size_t i = 0; i < n; i++) {
			run_mode(t[i].c, t[i].m, r);
			s->n_runs++;
			s->violations += r->violations;
			if (better(how, r, &best[i]))
				best[i] = *r;
		}
	free(r);
	for (size_t i = 0; i < n; i++)
		suite_add(s, t[i].c, &best[i]);
}

/* The same, every mode on one load. */
static void suite_best(struct suite *s, const struct bench_cfg *c, const enum bench_mode *modes, size_t n,
                       enum best how, struct bench_result *best) {
	struct trial t[8];
	if (n > 8)
		bench_die("suite: too many modes at once", -EINVAL);
	for (size_t i = 0; i < n; i++)
		t[i] = (struct trial){c, modes[i]};
	suite_best_of(s, t, n, how, best);
}

static bool under_limit(const struct knee *k, const struct bench_result *r) {
	return tail_us(r) <= k->limit_us;
}

/* How long a run at `rate` lasts: min_ms, or long enough for
 * KNEE_MIN_GROUPS groups, up to KNEE_LONGEST_RUN_MS. */
static unsigned run_ms_at(double rate, unsigned min_ms) {
	double ms = rate > 0 ? 1e3 * KNEE_MIN_GROUPS / rate : min_ms;
	if (ms > KNEE_LONGEST_RUN_MS)
		ms = KNEE_LONGEST_RUN_MS;
	return ms > min_ms ? (unsigned)ceil(ms) : min_ms;
}

static void curve_add(struct knee_curve *cv, double rate, const struct bench_result *r) {
	if (knee_curve_add(cv, rate, tail_us(r)) < 0)
		bench_die("knee: too many rates", -E2BIG);
}

/*
 * A handler's climb through the offered rates: it leaves after two rates
 * in a row over the limit. One rate over it can be a spell of other work
 * on a shared machine, two in a row is a queue that grows.
 */
struct climb {
	double pass, fail; /* the last rate under the limit; the first over it after that (0: none) */
	int streak;
};

static void climb_judge(struct climb *cl, double rate, bool under) {
	if (under)
		*cl = (struct climb){.pass = rate};
	else if (cl->streak++ == 0)
		cl->fail = rate;
}

/* Both handlers at one rate, interleaved, each judged on its best p99. */
static void knee_round(struct suite *s, struct bench_cfg *c, double rate, const bool *which, struct knee_curve *cv,
                       struct bench_result *b) {
	static const enum bench_mode modes[_KNEE_MAX] = {[KNEE_ECHO] = MODE_ECHO, [KNEE_IOPFD] = MODE_IOPFD};
	struct trial t[_KNEE_MAX] = {0};
	int idx[_KNEE_MAX];
	size_t n = 0;
	c->rate = rate;
	c->duration_ms = run_ms_at(rate, KNEE_RUN_MS);
	for (int h = 0; h < _KNEE_MAX; h++)
		if (which[h]) {
			t[n] = (struct trial){c, modes[h]};
			idx[n++] = h;
		}
	struct bench_result r[_KNEE_MAX];
	suite_best_of(s, t, n, BEST_P99, r);
	for (size_t i = 0; i < n; i++) {
		curve_add(&cv[idx[i]], rate, &r[i]);
		b[idx[i]] = r[i];
	}
}

/*
 * The knee of both handlers on one shape. The low load first: its p50
 * sets the limit. Then the offered rate doubles until each handler has
 * been over the limit twice in a row. Then both handlers run at rates
 * 2^(1/4) apart over the octaves where either crossed, so that near the
 * knee the two curves have the same points, each measured in the same
 * rounds. Every rate tried is a point of the curve of latency against
 * offered load; the knee is where the curve's fit crosses the limit.
 */
static void find_knee(struct suite *s, const struct bench_cfg *base, unsigned queues, unsigned outstanding,
                      struct knee *k) {
	static const enum bench_mode modes[_KNEE_MAX] = {[KNEE_ECHO] = MODE_ECHO, [KNEE_IOPFD] = MODE_IOPFD};
	*k = (struct knee){.queues = queues, .outstanding = outstanding, .low_rate = KNEE_LOW_RATE};
	snprintf(k->shape, sizeof(k->shape), "%ux%u", queues, outstanding);
	struct bench_cfg c = *base;
	c.scenario = "knee";
	c.queues = queues;
	c.outstanding = outstanding;
	c.rate = KNEE_LOW_RATE;
	c.duration_ms = run_ms_at(c.rate, KNEE_RUN_MS);
	struct bench_result b[_KNEE_MAX];
	suite_best(s, &c, modes, _KNEE_MAX, BEST_P50, b);
	k->p50_low_us = pct_us(&b[KNEE_ECHO], 0.5);
	k->limit_us = KNEE_FACTOR * k->p50_low_us;

	struct knee_curve cv[_KNEE_MAX] = {0};
	struct climb cl[_KNEE_MAX] = {0};
	for (int h = 0; h < _KNEE_MAX; h++) {
		/* The run kept for its p50 is one draw of the p99: judged as at
		 * every other rate, on the best p99 of its runs. */
		if (!under_limit(k, &b[h]))
			suite_best_of(s, &(struct trial){&c, modes[h]}, 1, BEST_P99, &b[h]);
		curve_add(&cv[h], c.rate, &b[h]);
		climb_judge(&cl[h], c.rate, under_limit(k, &b[h]));
	}

	double step = s->quick ? 4 : 2;
	for (double r = KNEE_LOW_RATE * step; r <= KNEE_MAX_RATE; r *= step) {
		bool in[_KNEE_MAX];
		bool any = false;
		for (int h = 0; h < _KNEE_MAX; h++)
			any |= in[h] = cl[h].streak < 2;
		if (!any)
			break;
		knee_round(s, &c, r, in, cv, b);
		for (int h = 0; h < _KNEE_MAX; h++)
			if (in[h])
				climb_judge(&cl[h], r, under_limit(k, &b[h]));
	}

	/* The octaves where a handler crossed: from its last rate under the
	 * limit to the first over it, both handlers at every fine rate. */
	double lo = 0, hi = 0;
	for (int h = 0; h < _KNEE_MAX; h++)
		if (cl[h].pass > 0 && cl[h].fail > 0) {
			lo = lo > 0 && lo < cl[h].pass ? lo : cl[h].pass;
			hi = hi > cl[h].fail ? hi : cl[h].fail;
		}
	if (!s->quick && lo > 0) {
		const bool both[_KNEE_MAX] = {true, true};
		double f = pow(step, 1.0 / KNEE_FINE_STEPS);
		for (unsigned j = 1; lo * pow(f, j) < hi; j++)
			if (j % KNEE_FINE_STEPS) /* the climb's own rates are on the curve already */
				knee_round(s, &c, lo * pow(f, j), both, cv, b);
	}
	for (int h = 0; h < _KNEE_MAX; h++) {
		struct knee_crossing x = knee_crossing(&cv[h], k->limit_us);
		k->rate[h] = x.knee;
		k->open_ended[h] = x.open_ended;
		k->below[h] = x.below;
		k->above[h] = x.above;
	}
	fprintf(s->out,
	        "%-14s %s: limit %.1f us (%d x the do-nothing p50 at %.0f/s); knee: do-nothing %.0f/s%s (tried %.0f and "
	        "%.0f), iopfd %.0f/s%s (tried %.0f and %.0f)\n",
	        "knee", k->shape, k->limit_us, KNEE_FACTOR, k->low_rate, k->rate[KNEE_ECHO],
	        k->open_ended[KNEE_ECHO] ? " (or more)" : "", k->below[KNEE_ECHO], k->above[KNEE_ECHO],
	        k->rate[KNEE_IOPFD], k->open_ended[KNEE_IOPFD] ? " (or more)" : "", k->below[KNEE_IOPFD],
	        k->above[KNEE_IOPFD]);
}

static const char *kilo(double v, char *buf, size_t n) {
	if (v >= 1e6)
		snprintf(buf, n, "%.2f M", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, n, "%.1f k", v / 1e3);
	else
		snprintf(buf, n, "%.0f", v);
	return buf;
}

/*
 * The emulator on a CPU and the handler on another, where there are two.
 * The emulator stands in for a device, which takes no CPU of the host;
 * left to the scheduler, a waking handler is often placed on the CPU of the
 * emulator that woke it, and the two then share one CPU for milliseconds
 * while the other idles (on two CPUs: open-loop p99 of 1 to 2 ms at a third
 * of the knee, for either handler, in runs that pinned did not have).
 */
static void pin_apart(struct bench_cfg *c) {
	bool pin = sysconf(_SC_NPROCESSORS_ONLN) >= 2;
	c->cpu_emu = pin ? 0 : -1;
	c->cpu_handler = pin ? 1 : -1;
}

/* The knee, its targets, and iopfd against the do-nothing handler at 10,
 * 25 and 50 % of it, the emulator and the handler pinned apart. */
static void latency_shape(struct suite *s, const struct bench_cfg *unpinned, unsigned queues, unsigned outstanding,
                          unsigned run_ms) {
	struct bench_cfg pinned = *unpinned, *base = &pinned;
	pin_apart(&pinned);
	struct knee *k = &s->knees[s->n_knees++];
	find_knee(s, base, queues, outstanding, k);
	char key[64], b1[32], b2[32];
	snprintf(key, sizeof(key), "knee_do_nothing_%s", k->shape);
	target_add(s, key, k->rate[KNEE_ECHO], 0, 0, "groups/s",
	           "open loop %s: the do-nothing handler's knee (p99 <= %.1f us = %dx its p50 at %s/s)%s", k->shape,
	           k->limit_us, KNEE_FACTOR, kilo(k->low_rate, b1, sizeof(b1)),
	           k->open_ended[KNEE_ECHO] ? ", or more" : "");
	snprintf(key, sizeof(key), "knee_iopfd_%s", k->shape);
	target_add(s, key, k->rate[KNEE_IOPFD], 0, 0, "groups/s", "open loop %s: iopfd's knee (the same limit)%s",
	           k->shape, k->open_ended[KNEE_IOPFD] ? ", or more" : "");
	snprintf(key, sizeof(key), "knee_ratio_%s", k->shape);
	target_add(s, key, k->rate[KNEE_ECHO] > 0 ? k->rate[KNEE_IOPFD] / k->rate[KNEE_ECHO] : NAN, 0.9, '>', "x",
	           "open loop %s: iopfd's knee / the do-nothing handler's", k->shape);

	static const double fractions[] = {0.10, 0.25, 0.50};
	enum { N_FRACTIONS = sizeof(fractions) / sizeof(fractions[0]) };
	if (k->rate[KNEE_ECHO] <= 0) {
		for (size_t i = 0; i < N_FRACTIONS; i++) {
			snprintf(key, sizeof(key), "p99_ratio_%s_%.0f", k->shape, 100 * fractions[i]);
			target_add(s, key, NAN, 1.25, '<', "x",
			           "open loop %s at %.0f%% of the knee: not measured (no knee)", k->shape, 100 * fractions[i]);
		}
		return;
	}
	/* All three points in one round of interleaved runs: a point's runs
	 * are then spread over the time of all three, so that a spell of the
	 * machine lasting a few seconds spoils one of them, not all. */
	struct bench_cfg c[N_FRACTIONS];
	struct trial t[2 * N_FRACTIONS];
	for (size_t i = 0; i < N_FRACTIONS; i++) {
		c[i] = *base;
		c[i].scenario = "latency";
		c[i].queues = queues;
		c[i].outstanding = outstanding;
		c[i].rate = fractions[i] * k->rate[KNEE_ECHO];
		c[i].duration_ms = run_ms_at(c[i].rate, run_ms);
		t[2 * i] = (struct trial){&c[i], MODE_IOPFD};
		t[2 * i + 1] = (struct trial){&c[i], MODE_ECHO};
	}
	struct bench_result *b = calloc(2 * N_FRACTIONS, sizeof(*b));
	if (!b)
		bench_die("suite", -ENOMEM);
	suite_best_of(s, t, 2 * N_FRACTIONS, BEST_P99, b);
	for (size_t i = 0; i < N_FRACTIONS; i++) {
		const struct bench_result *bi = &b[2 * i], *be = &b[2 * i + 1];
		s->points = xrealloc(s->points, (s->n_points + 1) * sizeof(*s->points));
		s->points[s->n_points++] =
			(struct lat_point){.k = k, .fraction = fractions[i], .rate = c[i].rate, .iopfd = *bi, .echo = *be};
		snprintf(key, sizeof(key), "p99_ratio_%s_%.0f", k->shape, 100 * fractions[i]);
		target_add(s, key, ratio(tail_us(bi), tail_us(be)), 1.25, '<', "x",
		           "open loop %s at %.0f%% of the knee (%s/s): iopfd p99 / do-nothing p99 (%.0f vs %.0f us; "
		           "whole runs %.0f vs %.0f)",
		           k->shape, 100 * fractions[i], kilo(c[i].rate, b2, sizeof(b2)), tail_us(bi), tail_us(be),
		           pct_us(bi, 0.99), pct_us(be, 0.99));
	}
	free(b);
}

/* Busy polling on one queue, the emulator and the handler each on a CPU
 * of their own: at 10 % of the one-queue knee against blocking mode and
 * the ping-pong floor; then one queue, 8 outstanding, closed loop, against
 * the naive handler. */
static void busy_polling(struct suite *s, const struct bench_cfg *base, const struct knee *k1, unsigned run_ms) {
	struct bench_cfg c = *base;
	pin_apart(&c);
	c.queues = 1;
	c.duration_ms = run_ms;
	c.scenario = "busy-poll";
	c.outstanding = 32;
	c.rate = k1->rate[KNEE_ECHO] > 0 ? 0.10 * k1->rate[KNEE_ECHO] : KNEE_LOW_RATE;
	s->poll_rate = c.rate;
	static const enum bench_mode lat_modes[] = {MODE_IOPFD_POLL, MODE_IOPFD, MODE_PINGPONG};
	struct bench_result *b = s->poll;
	suite_best(s, &c, lat_modes, 3, BEST_P99, b);
	const struct bench_result *poll = &b[0], *blocking = &b[1], *floor_pp = &b[2];
	char r1[32];
	target_add(s, "busy_p50_vs_floor", ratio(pct_us(poll, 0.5), pct_us(floor_pp, 0.5)), 0.5, '<', "x",
	           "busy poll 1x32 open at 10%% of the knee (%s/s), pinned: iopfd p50 / ping-pong floor p50 "
	           "(%.1f vs %.1f us)",
	           kilo(c.rate, r1, sizeof(r1)), pct_us(poll, 0.5), pct_us(floor_pp, 0.5));
	target_add(s, "busy_p99_vs_floor", ratio(pct_us(poll, 0.99), pct_us(floor_pp, 0.99)), 1.0, '<', "x",
	           "busy poll, the same: iopfd p99 / ping-pong floor p99 (%.1f vs %.1f us)", pct_us(poll, 0.99),
	           pct_us(floor_pp, 0.99));
	target_add(s, "blocking_p50_vs_floor", ratio(pct_us(blocking, 0.5), pct_us(floor_pp, 0.5)), 0, 0, "x",
	           "blocking iopfd, the same load: p50 / floor p50 (%.1f us; p99 %.1f us, %.2fx the floor's)",
	           pct_us(blocking, 0.5), pct_us(blocking, 0.99), ratio(pct_us(blocking, 0.99), pct_us(floor_pp, 0.99)));
	target_add(s, "busy_cpu", poll->seconds > 0 ? poll->handler_cpu / poll->seconds : 0, 0, 0, "CPUs",
	           "busy poll: CPU the worker burns (blocking: %.3f; busy-poll budget %.0f us)",
	           blocking->seconds > 0 ? blocking->handler_cpu / blocking->seconds : 0, c.busy_poll_ns / 1e3);

	c.scenario = "one-queue";
	c.outstanding = 8;
	c.rate = 0;
	static const enum bench_mode thr_modes[] = {MODE_IOPFD_POLL, MODE_NAIVE, MODE_IOPFD, MODE_ECHO};
	struct bench_result t[4];
	suite_best(s, &c, thr_modes, 4, BEST_RATE, t);
	target_add(s, "poll_vs_naive_1x8", ratio(rate_of(&t[0]), rate_of(&t[1])), 1.0, '>', "x",
	           "one queue x 8 outstanding, closed loop, pinned: busy-polling iopfd / naive (groups/s, %.0f vs %.0f; "
	           "CPU %.2f vs %.2f)",
	           rate_of(&t[0]), rate_of(&t[1]), t[0].seconds > 0 ? t[0].handler_cpu / t[0].seconds : 0,
	           t[1].seconds > 0 ? t[1].handler_cpu / t[1].seconds : 0);
	target_add(s, "blocking_vs_naive_1x8", ratio(rate_of(&t[2]), rate_of(&t[1])), 0, 0, "x",
	           "the same, blocking iopfd / naive (do-nothing handler / naive: %.2f)",
	           ratio(rate_of(&t[3]), rate_of(&t[1])));
}

static int run_suite(const struct bench_cfg *defaults, bool quick, unsigned repeat, FILE *json, FILE *tab) {
	struct suite s = {.out = tab, .repeat = repeat ? repeat : quick ? 1 : 3, .quick = quick};
	unsigned d = quick ? 1000 : 2000;
	struct machine mach;
	machine_get(&mach);
	fprintf(tab, "machine: %s, %ld cores, %s, load average %.2f at the start\n", mach.cpu, mach.cores, mach.kernel,
	        mach.load);
	/* What the tails below stand on: a CPU taken away for a millisecond
	 * delays every group in flight then. */
	mach.have_gaps = bench_gaps_measure(2.0, &mach.gaps) == 0;
	if (mach.have_gaps)
		fprintf(tab,
		        "gaps: every CPU spun on the clock for %.0f s: %.1f gaps over 100 us and %.2f over 1 ms per second "
		        "and CPU, the longest %.0f us, %.2f %% of the time lost\n",
		        mach.gaps.seconds, mach.gaps.per_s_100us, mach.gaps.per_s_1ms, mach.gaps.longest_us,
		        100 * mach.gaps.lost);
	fprintf(tab,
	        "suite: %s, %u ms per run, best of %u interleaved runs per mode (ratios are between runs of this one "
	        "invocation)\n",
	        quick ? "quick" : "standard", d, s.repeat);
	table_header(tab);

	/* The standard load: relay sockets, one device per queue, one fault per
	 * group, random pages, backend none, one worker. */
	struct bench_cfg base = *defaults;
	base.queues = 64;
	base.devices = 1;
	base.pasids = 0;
	base.outstanding = 32;
	base.workers = 1;
	base.group_min = base.group_max = 1;
	base.sizes = EMU_SIZE_UNIFORM;
	base.pattern = EMU_RANDOM;
	base.pages = 4096;
	base.backend = IOPF_BACKEND_NONE;
	base.quota = 1ull << 40;
	base.window = 0;
	base.rate = 0;
	base.duration_ms = d;
	base.cpu_emu = base.cpu_handler = -1;

	/* 1. Throughput against the handlers people write. */
	struct bench_cfg c = base;
	c.scenario = "throughput";
	static const enum bench_mode thr_modes[] = {MODE_IOPFD, MODE_NAIVE, MODE_PERQUEUE, MODE_ECHO};
	struct bench_result thr[4];
	suite_best(&s, &c, thr_modes, 4, BEST_RATE, thr);
	const struct bench_result *t_iopfd = &thr[0], *t_naive = &thr[1], *t_pq = &thr[2];
	target_add(&s, "ratio", ratio(rate_of(t_iopfd), rate_of(t_naive)), 10, '>', "x",
	           "throughput 64x32 none 1 worker: iopfd / naive (groups/s)");
	target_add(&s, "perqueue_ratio", ratio(rate_of(t_iopfd), rate_of(t_pq)), 3, '>', "x",
	           "throughput 64x32 none 1 worker: iopfd / perqueue-thread (groups/s)");

	/* 2. System calls per group with deeper queues, answer slices as the
	 * daemon sets them by default. */
	c = base;
	c.scenario = "syscalls";
	c.outstanding = 64;
	static const enum bench_mode iopfd_only[] = {MODE_IOPFD};
	struct bench_result sys64;
	suite_best(&s, &c, iopfd_only, 1, BEST_SYSCALLS, &sys64);
	target_add(&s, "syscalls_per_group_64x64", spg(&sys64), 0.05, '<', "syscalls",
	           "syscalls per group at 64x64 (reads+writes+epoll_wait; answer slices %u groups / %u us)",
	           IOPFD_ANSWER_SLICE_GROUPS, IOPFD_ANSWER_SLICE_USEC);

	/* 3. Latency against the floor at the same load: the open-loop knee
	 * of the do-nothing handler and of iopfd, and both at 10, 25 and 50 %
	 * of the former, on the standard load, on one queue and on 4096
	 * queues of one group (the quick suite: one queue only). */
	if (!quick)
		latency_shape(&s, &base, 64, 32, d / 2);
	latency_shape(&s, &base, 1, 32, d / 2);
	const struct knee *k1 = &s.knees[s.n_knees - 1];
	if (!quick)
		latency_shape(&s, &base, 4096, 1, d / 2);

	/* 4. Busy polling. */
	busy_polling(&s, &base, k1, d / 2);

	/* 5. mlock: a 64 MiB region under a 16 MiB quota, 64 KiB windows,
	 * random pages: most groups miss, map a window and evict one. The
	 * floor runs on the same mapping right after each iopfd run. */
	c = base;
	c.scenario = "mlock";
	c.backend = IOPF_BACKEND_MLOCK;
	c.pages = 16384;
	c.quota = 16ull << 20;
	c.window = 64 * 1024;
	struct bench_result *m = calloc(4, sizeof(*m)), *m_iopfd = &m[0], *m_floor = &m[1];
	if (!m)
		bench_die("suite", -ENOMEM);
	for (unsigned rep = 0; rep < s.repeat; rep++) {
		memset(&m[2], 0, 2 * sizeof(*m));
		m[2].mode = MODE_IOPFD;
		m[3].mode = MODE_MLOCK_FLOOR;
		run_engine(&c, false, &m[2], &m[3]);
		s.n_runs += 2;
		s.violations += m[2].violations;
		if (better(BEST_MAPS, &m[2], m_iopfd))
			*m_iopfd = m[2];
		if (better(BEST_MAPS, &m[3], m_floor))
			*m_floor = m[3];
	}
	suite_add(&s, &c, m_iopfd);
	suite_add(&s, &c, m_floor);
	target_add(&s, "mlock_floor_ratio", ratio(maps_rate(m_iopfd), maps_rate(m_floor)), 0.8, '>', "x",
	           "mlock backend: iopfd / mlock floor (maps/s)");
	free(m);

	/* 6. Scaling: 4096 queues, one group each, against the do-nothing
	 * handler; then what an idle queue costs. */
	c = base;
	c.scenario = "scaling";
	c.queues = 4096;
	c.outstanding = 1;
	static const enum bench_mode scale_modes[] = {MODE_IOPFD, MODE_ECHO};
	struct bench_result sc[2];
	suite_best(&s, &c, scale_modes, 2, BEST_RATE, sc);
	const struct bench_result *sc_iopfd = &sc[0], *sc_echo = &sc[1];
	measure_idle(4096, &s.idle);
	fprintf(tab, "%-14s idle queues: %u, %.0f bytes resident and %.0f bytes of heap per queue\n", "scaling",
	        s.idle.queues, s.idle.rss_per_queue, s.idle.heap_per_queue);
	target_add(&s, "scaling_ratio", ratio(rate_of(sc_iopfd), rate_of(sc_echo)), 0.8, '>', "x",
	           "scaling 4096x1: iopfd / do-nothing epoll handler (groups/s)");
	target_add(&s, "scaling_efficiency",
	           ratio(sc_echo->handler_cpu / (double)(sc_echo->groups ? sc_echo->groups : 1),
	                 sc_iopfd->handler_cpu / (double)(sc_iopfd->groups ? sc_iopfd->groups : 1)),
	           0, 0, "x", "scaling 4096x1: do-nothing handler's CPU per group / iopfd's (efficiency)");
	target_add(&s, "idle_queue_bytes", s.idle.rss_per_queue, 0, 0, "bytes", "memory per idle queue (resident bytes)");

	/* 7. Throughput from 1 to 4096 queues, 8 outstanding each: every point
	 * interleaved, the best kept; iopfd against the do-nothing handler
	 * from 4 queues up (on one queue the blocking naive handler's
	 * pipelining wins: busy polling is the answer there, above). */
	if (!quick) {
		static const unsigned qn[] = {1, 4, 16, 64, 256, 1024, 4096};
		static const enum bench_mode sweep_modes[] = {MODE_IOPFD, MODE_NAIVE, MODE_PERQUEUE, MODE_ECHO};
		for (size_t i = 0; i < sizeof(qn) / sizeof(qn[0]); i++) {
			c = base;
			c.scenario = "sweep";
			c.queues = qn[i];
			c.outstanding = 8;
			c.duration_ms = d / 4;
			struct bench_result sw[4];
			suite_best(&s, &c, sweep_modes, 4, BEST_RATE, sw);
			char key[32];
			snprintf(key, sizeof(key), "sweep_%u", qn[i]);
			target_add(&s, key, ratio(rate_of(&sw[0]), rate_of(&sw[3])), 0.9, qn[i] >= 4 ? '>' : 0, "x",
			           "sweep %ux8: iopfd / do-nothing epoll handler (groups/s, %.0f vs %.0f)", qn[i],
			           rate_of(&sw[0]), rate_of(&sw[3]));
		}
	}

	uint64_t violations = s.violations;
	target_add(&s, "violations", (double)violations, 0, '<', "violations", "violations in every run");
	size_t met = 0;
	fprintf(tab, "\nload average %.2f at the end (%ld cores: above that, other work shared them)\ntargets:\n",
	        loadavg(), mach.cores);
	for (size_t i = 0; i < s.n_tg; i++) {
		const struct target *t = &s.tg[i];
		bool ok = target_met(t);
		met += ok;
		if (t->report_only)
			fprintf(tab, "  %-100s %10.4g %-10s (reported)\n", t->name, t->measured, t->unit);
		else
			fprintf(tab, "  %-100s %10.4g %s %-7g %s\n", t->name, t->measured, t->at_least ? ">=" : "<=", t->goal,
			        ok ? "met" : "NOT MET");
	}
	/* One parseable line: the engine's own figures, then every target. */
	fprintf(tab, "SUMMARY suite=%s targets_met=%zu/%zu groups_per_s=%.0f syscalls_per_group=%.4f naive_groups_per_s=%.0f",
	        quick ? "quick" : "standard", met, s.n_tg, rate_of(t_iopfd), spg(t_iopfd), rate_of(t_naive));
	for (size_t i = 0; i < s.n_tg; i++)
		fprintf(tab, " %s=%.4g", s.tg[i].key, s.tg[i].measured);
	fputc('\n', tab);
	fflush(tab);

	if (json) {
		fprintf(json, "{\"suite\":\"%s\",", quick ? "quick" : "standard");
		json_machine(json, &mach);
		fputs(",\"runs\":[", json);
		for (size_t i = 0; i < s.n; i++) {
			fputs(i ? ",\n" : "\n", json);
			json_result(json, &s.runs[i].c, &s.runs[i].r, true);
		}
		fprintf(json, "],\n\"idle\":{\"queues\":%u,\"rss_bytes_per_queue\":", s.idle.queues);
		json_num(json, round(s.idle.rss_per_queue));
		fputs(",\"heap_bytes_per_queue\":", json);
		json_num(json, round(s.idle.heap_per_queue));
		fputs("},\n\"knees\":[", json);
		for (size_t i = 0; i < s.n_knees; i++) {
			const struct knee *k = &s.knees[i];
			fprintf(json, "%s{\"shape\":\"%s\",\"queues\":%u,\"outstanding\":%u,\"factor\":%d,\"low_rate\":",
			        i ? "," : "", k->shape, k->queues, k->outstanding, KNEE_FACTOR);
			json_num(json, k->low_rate);
			fputs(",\"p50_low_us\":", json);
			json_num(json, k->p50_low_us);
			fputs(",\"limit_us\":", json);
			json_num(json, k->limit_us);
			fputs(",\"echo\":", json);
			json_num(json, round(k->rate[KNEE_ECHO]));
			fputs(",\"iopfd\":", json);
			json_num(json, round(k->rate[KNEE_IOPFD]));
			fprintf(json, ",\"echo_open_ended\":%s,\"iopfd_open_ended\":%s",
			        k->open_ended[KNEE_ECHO] ? "true" : "false", k->open_ended[KNEE_IOPFD] ? "true" : "false");
			/* the rates tried on either side of each crossing */
			fprintf(json, ",\"echo_between\":[%.0f,%.0f],\"iopfd_between\":[%.0f,%.0f]}", k->below[KNEE_ECHO],
			        k->above[KNEE_ECHO], k->below[KNEE_IOPFD], k->above[KNEE_IOPFD]);
		}
		fputs("],\n\"latency_points\":[", json);
		for (size_t i = 0; i < s.n_points; i++) {
			const struct lat_point *p = &s.points[i];
			fprintf(json, "%s{\"shape\":\"%s\",\"fraction\":", i ? "," : "", p->k->shape);
			json_num(json, p->fraction);
			fputs(",\"rate\":", json);
			json_num(json, round(p->rate));
			const struct bench_result *pr[] = {&p->iopfd, &p->echo};
			for (int j = 0; j < 2; j++) {
				fprintf(json, ",\"%s\":{\"p50_us\":", j ? "echo" : "iopfd");
				json_num(json, pct_us(pr[j], 0.5));
				fputs(",\"p99_us\":", json);
				json_num(json, pct_us(pr[j], 0.99));
				fputs(",\"p999_us\":", json);
				json_num(json, pct_us(pr[j], 0.999));
				fputs(",\"p99_window_us\":", json);
				json_num(json, tail_us(pr[j])); /* what the target judges */
				fputs("}", json);
			}
			fputs("}", json);
		}
		fputs("],\n\"busy_poll\":{\"rate\":", json);
		json_num(json, round(s.poll_rate));
		fprintf(json, ",\"busy_poll_us\":");
		json_num(json, base.busy_poll_ns / 1e3);
		static const char *const poll_names[] = {"iopfd_poll", "iopfd", "pingpong"};
		for (int j = 0; j < 3; j++) {
			const struct bench_result *r = &s.poll[j];
			fprintf(json, ",\"%s\":{\"p50_us\":", poll_names[j]);
			json_num(json, pct_us(r, 0.5));
			fputs(",\"p99_us\":", json);
			json_num(json, pct_us(r, 0.99));
			fputs(",\"p999_us\":", json);
			json_num(json, pct_us(r, 0.999));
			fputs(",\"handler_cpu\":", json);
			json_num(json, r->seconds > 0 ? round(r->handler_cpu / r->seconds * 1e3) / 1e3 : 0);
			fputs("}", json);
		}
		fputs("},\n\"targets\":[", json);
		for (size_t i = 0; i < s.n_tg; i++) {
			const struct target *t = &s.tg[i];
			fputs(i ? ",\n" : "\n", json);
			fputs("{\"key\":", json);
			json_str(json, t->key);
			fputs(",\"name\":", json);
			json_str(json, t->name);
			fputs(",\"measured\":", json);
			json_num(json, round(t->measured * 1e4) / 1e4);
			fputs(",\"goal\":", json);
			if (t->report_only)
				fputs("null", json);
			else
				json_num(json, t->goal);
			fprintf(json, ",\"op\":\"%s\",\"unit\":\"%s\",\"met\":%s}",
			        t->report_only ? "report" : t->at_least ? ">=" : "<=", t->unit, target_met(t) ? "true" : "false");
		}
		fprintf(json, "],\n\"targets_met\":%zu,\"targets_total\":%zu,\"repeat\":%u,\"runs_made\":%u,"
		              "\"violations\":%lu}\n",
		        met, s.n_tg, s.repeat, s.n_runs, (unsigned long)violations);
		fflush(json);
	}
	for (size_t i = 0; i < s.n_tg; i++) {
		free(s.tg[i].key);
		free(s.tg[i].name);
	}
	free(s.tg);
	free(s.points);
	free(s.runs);
	return violations ? 1 : 0;
}

/* --- one invocation, one load ---------------------------------------------------------------- */

static int run_single(const struct bench_cfg *c, bool json_only, FILE *json) {
	struct bench_result rs[_MODE_MAX];
	memset(rs, 0, sizeof(rs));
	for (int m = 0; m < _MODE_MAX; m++)
		rs[m].mode = (enum bench_mode)m;
	if (has_mode(c, MODE_IOPFD) && has_mode(c, MODE_MLOCK_FLOOR))
		run_engine(c, false, &rs[MODE_IOPFD], &rs[MODE_MLOCK_FLOOR]);
	else if (has_mode(c, MODE_IOPFD))
		run_mode(c, MODE_IOPFD, &rs[MODE_IOPFD]);
	static const enum bench_mode others[] = {MODE_IOPFD_POLL, MODE_NAIVE,    MODE_PERQUEUE,
	                                         MODE_ECHO,       MODE_PINGPONG, MODE_DAEMON};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		if (has_mode(c, others[i]))
			run_mode(c, others[i], &rs[others[i]]);
	if (c->demo) {
		printf("demo: %lu fault groups served, %lu violations\n", (unsigned long)rs[MODE_DAEMON].groups,
		       (unsigned long)rs[MODE_DAEMON].violations);
		return rs[MODE_DAEMON].violations || !rs[MODE_DAEMON].groups ? 1 : 0;
	}

	/* The run the SUMMARY line speaks of: iopfd's, or, when it was not
	 * asked for, the first handler's that ran (a baseline on its own). */
	const struct bench_result *main_run = rs[MODE_IOPFD].ran        ? &rs[MODE_IOPFD]
	                                      : rs[MODE_IOPFD_POLL].ran ? &rs[MODE_IOPFD_POLL]
	                                                                : &rs[MODE_DAEMON];
	for (int m = 0; !main_run->ran && m < _MODE_MAX; m++)
		main_run = &rs[m];
	uint64_t violations = 0;
	for (int m = 0; m < _MODE_MAX; m++)
		violations += rs[m].violations;
	double r_naive = ratio(rate_of(main_run), rate_of(&rs[MODE_NAIVE]));
	double r_pq = ratio(rate_of(main_run), rate_of(&rs[MODE_PERQUEUE]));
	double r_echo = ratio(rate_of(main_run), rate_of(&rs[MODE_ECHO]));
	double r_p99 = ratio(pct_us(main_run, 0.99), pct_us(&rs[MODE_PINGPONG], 0.99));
	double r_mlock = ratio(maps_rate(main_run), maps_rate(&rs[MODE_MLOCK_FLOOR]));

	if (json) {
		struct machine mach;
		machine_get(&mach);
		fputs("{", json);
		json_machine(json, &mach);
		fputs(",\"load\":{", json);
		json_load(json, c);
		fprintf(json, "},\"mode\":\"%s\",\"groups_per_s\":", bench_mode_name[main_run->mode]);
		json_num(json, round(rate_of(main_run)));
		fputs(",\"faults_per_s\":", json);
		json_num(json, round(faults_rate(main_run)));
		fputs(",\"syscalls_per_group\":", json);
		json_num(json, round(spg(main_run) * 1e4) / 1e4);
		fputs(",\"p50_us\":", json);
		json_num(json, pct_us(main_run, 0.5));
		fputs(",\"p99_us\":", json);
		json_num(json, pct_us(main_run, 0.99));
		fputs(",\"p999_us\":", json);
		json_num(json, pct_us(main_run, 0.999));
		fprintf(json, ",\"violations\":%lu,\"baselines\":{", (unsigned long)violations);
		bool first = true;
		for (int m = MODE_NAIVE; m <= MODE_MLOCK_FLOOR; m++) {
			if (!rs[m].ran || &rs[m] == main_run)
				continue;
			fprintf(json, "%s\"%s\":{", first ? "" : ",", bench_mode_name[m]);
			first = false;
			if (m == MODE_MLOCK_FLOOR) {
				fputs("\"maps_per_s\":", json);
				json_num(json, round(maps_rate(&rs[m])));
			} else {
				fputs("\"groups_per_s\":", json);
				json_num(json, round(rate_of(&rs[m])));
				fputs(",\"p99_us\":", json);
				json_num(json, pct_us(&rs[m], 0.99));
			}
			fputs("}", json);
		}
		fputs("},\"ratios\":{", json);
		first = true;
		const struct {
			enum bench_mode m;
			const char *name;
			double v;
		} rat[] = {
			{MODE_NAIVE, "vs_naive", r_naive},
			{MODE_PERQUEUE, "vs_perqueue", r_pq},
			{MODE_ECHO, "vs_echo", r_echo},
			{MODE_PINGPONG, "p99_vs_pingpong", r_p99},
			{MODE_MLOCK_FLOOR, "maps_vs_mlock_floor", r_mlock},
		};
		for (size_t i = 0; i < sizeof(rat) / sizeof(rat[0]); i++) {
			if (!rs[rat[i].m].ran)
				continue;
			fprintf(json, "%s\"%s\":", first ? "" : ",", rat[i].name);
			json_num(json, round(rat[i].v * 1e4) / 1e4);
			first = false;
		}
		fputs("},\"ratio\":", json);
		json_num(json, round(r_naive * 100) / 100);
		fputs(",\"runs\":[", json);
		first = true;
		for (int m = 0; m < _MODE_MAX; m++) {
			if (!rs[m].ran)
				continue;
			fputs(first ? "" : ",", json);
			json_result(json, c, &rs[m], true);
			first = false;
		}
		fputs("]}\n", json);
		fflush(json);
	}
	if (json_only)
		return violations ? 1 : 0;

	printf("load: %u queues x %u devices x %u PASIDs, %u outstanding/device, %u..%u faults/group (%s), "
	       "%s pages, %s loop%s, %s backend, %u worker(s), %u ms\n",
	       c->queues, c->devices, c->pasids, c->outstanding, c->group_min, c->group_max,
	       c->sizes == EMU_SIZE_GEOMETRIC ? "geometric" : "uniform", pattern_str(c->pattern),
	       c->rate > 0 ? "open" : "closed", c->rate > 0 ? " at the --rate" : "", iopf_backend_kind_to_string(c->backend),
	       c->workers, c->duration_ms);
	table_header(stdout);
	for (int m = 0; m < _MODE_MAX; m++)
		if (rs[m].ran)
			table_row(stdout, c, &rs[m]);
	printf("SUMMARY groups_per_s=%.0f faults_per_s=%.0f syscalls_per_group=%.4f p50_us=%.1f p99_us=%.1f "
	       "p999_us=%.1f naive_groups_per_s=%.0f ratio=%.2f",
	       rate_of(main_run), faults_rate(main_run), spg(main_run), pct_us(main_run, 0.5), pct_us(main_run, 0.99),
	       pct_us(main_run, 0.999), rate_of(&rs[MODE_NAIVE]), r_naive);
	if (rs[MODE_PERQUEUE].ran)
		printf(" perqueue_ratio=%.2f", r_pq);
	if (rs[MODE_ECHO].ran)
		printf(" echo_ratio=%.2f", r_echo);
	if (rs[MODE_PINGPONG].ran)
		printf(" p99_floor_ratio=%.2f", r_p99);
	if (rs[MODE_MLOCK_FLOOR].ran)
		printf(" mlock_floor_ratio=%.2f", r_mlock);
	printf(" violations=%lu\n", (unsigned long)violations);
	return violations ? 1 : 0;
}

/* --- command line ------------------------------------------------------------------------------ */

static void usage(void) {
	fprintf(stderr,
	        "usage: iopf-bench [--queues N] [--devices N] [--pasids N] [--outstanding N] [--workers N]\n"
	        "                  [--group-min N] [--group-max N] [--group-size N]\n"
	        "                  [--sizes uniform|geometric] [--group-mean X]\n"
	        "                  [--pattern seq|random|hot|zipf] [--zipf-s X] [--pages N]\n"
	        "                  [--rate GROUPS_PER_S] [--duration-ms N] [--seed N]\n"
	        "                  [--backend none|mlock] [--quota BYTES] [--window BYTES]\n"
	        "                  [--modes iopfd,iopfd-poll,naive,perqueue,echo,pingpong,mlock-floor,daemon]\n"
	        "                  [--busy-poll-us N] [--echo-visit-ns N] [--pin EMULATOR_CPU,HANDLER_CPU]\n"
	        "                  [--socket PATH | --spawn IOPFD] [--then CMD] [--demo]\n"
	        "                  [--suite quick|standard [--repeat N]] [--json] [--json-out FILE]\n"
	        "\n"
	        "  --rate R        open loop: R groups/s over all queues on a fixed schedule, latency\n"
	        "                  from the scheduled time (default: closed loop)\n"
	        "  --busy-poll-us  iopfd-poll: a worker polls this long before it sleeps (default 1000)\n"
	        "  --echo-visit-ns echo: spin this long on each queue visit, as a handler's own work\n"
	        "  --pin E,H       the emulator's thread on CPU E, the handler's threads on CPU H\n"
	        "  --sizes         faults per group: uniform in min..max, or min + geometric with\n"
	        "                  mean --group-mean, clipped at max; --group-size N fixes it\n"
	        "  --suite         the standard scenarios and the performance targets in one run;\n"
	        "                  --repeat: runs per mode, the best kept (quick 1, standard 3)\n");
	exit(2);
}

static unsigned parse_modes(const char *s) {
	unsigned modes = 0;
	char *copy = strdup(s), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int m;
		for (m = 0; m < _MODE_MAX; m++)
			if (!strcmp(t, bench_mode_name[m]))
				break;
		if (m == _MODE_MAX && !strcmp(t, "perqueue-thread"))
			m = MODE_PERQUEUE;
		if (m == _MODE_MAX) {
			fprintf(stderr, "iopf-bench: unknown mode '%s'\n", t);
			exit(2);
		}
		modes |= 1u << m;
	}
	free(copy);
	return modes;
}

/* Thousands of queues need twice as many descriptors. */
static void raise_fd_limit(void) {
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv) {
	struct bench_cfg c = {
		.queues = 64, .devices = 1, .pasids = 0, .outstanding = 32, .group_min = 1, .group_max = 1,
		.workers = 1, .duration_ms = 2000, .pages = 4096, .pattern = EMU_RANDOM,
		.modes = (1u << MODE_IOPFD) | (1u << MODE_NAIVE), .backend = IOPF_BACKEND_NONE, .quota = 1ull << 40,
		.busy_poll_ns = 1000000, .cpu_emu = -1, .cpu_handler = -1,
	};
	bool json = false;
	const char *json_out = NULL, *suite = NULL;
	unsigned repeat = 0;
	static const struct option opts[] = {
		{"queues", required_argument, NULL, 'q'},     {"devices", required_argument, NULL, 'd'},
		{"pasids", required_argument, NULL, 'p'},     {"outstanding", required_argument, NULL, 'o'},
		{"group-min", required_argument, NULL, 'm'},  {"group-max", required_argument, NULL, 'M'},
		{"group-size", required_argument, NULL, 'G'}, {"sizes", required_argument, NULL, 'z'},
		{"group-mean", required_argument, NULL, 'E'}, {"workers", required_argument, NULL, 'w'},
		{"duration-ms", required_argument, NULL, 't'}, {"pattern", required_argument, NULL, 'P'},
		{"zipf-s", required_argument, NULL, 'Z'},     {"pages", required_argument, NULL, 'g'},
		{"rate", required_argument, NULL, 'r'},       {"seed", required_argument, NULL, 'e'},
		{"modes", required_argument, NULL, 'x'},      {"json", no_argument, NULL, 'j'},
		{"json-out", required_argument, NULL, 'J'},   {"suite", required_argument, NULL, 'U'},
		{"backend", required_argument, NULL, 'b'},    {"quota", required_argument, NULL, 'Q'},
		{"window", required_argument, NULL, 'W'},     {"socket", required_argument, NULL, 'S'},
		{"spawn", required_argument, NULL, 'X'},      {"then", required_argument, NULL, 'T'},
		{"demo", no_argument, NULL, 'D'},             {"repeat", required_argument, NULL, 'R'},
		{"busy-poll-us", required_argument, NULL, 'B'}, {"pin", required_argument, NULL, 'C'},
		{"echo-visit-ns", required_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'q': c.queues = (unsigned)atoi(optarg); break;
		case 'd': c.devices = (unsigned)atoi(optarg); break;
		case 'p': c.pasids = (unsigned)atoi(optarg); break;
		case 'o': c.outstanding = (unsigned)atoi(optarg); break;
		case 'm': c.group_min = (unsigned)atoi(optarg); break;
		case 'M': c.group_max = (unsigned)atoi(optarg); break;
		case 'G': c.group_min = c.group_max = (unsigned)atoi(optarg); break;
		case 'z':
			if (!strcmp(optarg, "uniform"))
				c.sizes = EMU_SIZE_UNIFORM;
			else if (!strcmp(optarg, "geometric"))
				c.sizes = EMU_SIZE_GEOMETRIC;
			else
				usage();
			break;
		case 'E': c.group_mean = atof(optarg); break;
		case 'w': c.workers = (unsigned)atoi(optarg); break;
		case 't': c.duration_ms = (unsigned)atoi(optarg); break;
		case 'P':
			if (!strcmp(optarg, "seq"))
				c.pattern = EMU_SEQUENTIAL;
			else if (!strcmp(optarg, "random"))
				c.pattern = EMU_RANDOM;
			else if (!strcmp(optarg, "hot"))
				c.pattern = EMU_HOT;
			else if (!strcmp(optarg, "zipf"))
				c.pattern = EMU_ZIPF;
			else
				usage();
			break;
		case 'Z': c.zipf_s = atof(optarg); break;
		case 'g': c.pages = strtoull(optarg, NULL, 0); break;
		case 'r': c.rate = atof(optarg); break;
		case 'e': c.seed = strtoull(optarg, NULL, 0); break;
		case 'x': c.modes = parse_modes(optarg); break;
		case 'j': json = true; break;
		case 'J': json_out = optarg; break;
		case 'U': suite = optarg; break;
		case 'b':
			if (!strcmp(optarg, "mlock"))
				c.backend = IOPF_BACKEND_MLOCK;
			else if (!strcmp(optarg, "none"))
				c.backend = IOPF_BACKEND_NONE;
			else
				usage();
			break;
		case 'Q': c.quota = strtoull(optarg, NULL, 0); break;
		case 'W': c.window = strtoull(optarg, NULL, 0); break;
		case 'S': c.socket = optarg; break;
		case 'X': c.spawn = optarg; break;
		case 'T': c.then = optarg; break;
		case 'D': c.demo = true; break;
		case 'R': repeat = (unsigned)atoi(optarg); break;
		case 'B': c.busy_poll_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'V': c.echo_visit_ns = strtoull(optarg, NULL, 0); break;
		case 'C':
			if (sscanf(optarg, "%d,%d", &c.cpu_emu, &c.cpu_handler) != 2 || c.cpu_emu < 0 || c.cpu_handler < 0)
				usage();
			break;
		default: usage();
		}
	}
	if (optind < argc || !c.queues || !c.devices || !c.outstanding || c.group_min < 1 ||
	    c.group_max < c.group_min || c.group_max > 64 || c.rate < 0 ||
	    (c.sizes == EMU_SIZE_GEOMETRIC && c.group_mean < c.group_min) || (suite && strcmp(suite, "quick") &&
	                                                                      strcmp(suite, "standard")))
		usage();
	if (has_mode(&c, MODE_DAEMON) && !c.socket && !c.spawn) {
		fprintf(stderr, "iopf-bench: mode daemon needs --socket or --spawn\n");
		return 2;
	}
	if (has_mode(&c, MODE_MLOCK_FLOOR) && (c.backend != IOPF_BACKEND_MLOCK || !has_mode(&c, MODE_IOPFD))) {
		fprintf(stderr, "iopf-bench: mode mlock-floor needs --backend mlock and mode iopfd\n");
		return 2;
	}
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);

	/* The JSON is built in memory, then goes to stdout (--json) and/or to
	 * a file (--json-out); with --json the table goes to stderr. */
	char *jbuf = NULL;
	size_t jlen = 0;
	FILE *jm = (json || json_out) ? open_memstream(&jbuf, &jlen) : NULL;
	if ((json || json_out) && !jm)
		bench_die("memstream", errno);
	iopf_rcu_register();
	int rc;
	if (suite)
		rc = run_suite(&c, !strcmp(suite, "quick"), repeat, jm, json ? stderr : stdout);
	else
		rc = run_single(&c, json, jm);
	iopf_rcu_unregister();
	if (jm) {
		fclose(jm);
		if (json_out) {
			FILE *f = fopen(json_out, "w");
			if (!f || fwrite(jbuf, 1, jlen, f) != jlen || fclose(f) != 0)
				bench_die(json_out, errno);
		}
		if (json)
			fwrite(jbuf, 1, jlen, stdout);
		free(jbuf);
	}
	return rc;
}
