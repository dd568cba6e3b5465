/* SPDX-License-Identifier: MIT */
/*
 * iopf-bench: emulated devices against the fault engine, and against the
 * baseline handlers on the same transport and load, in one run.
 *
 *   iopfd  the engine in this process (N workers, batched reads, one write
 *          per batch);
 *   naive  one thread, one group per read (record by record, as the kernel
 *          selftest and early VMM code read), one write per response, the
 *          same resolution code;
 *   daemon a real iopfd process through its Varlink socket (--socket PATH of
 *          a running one, or --spawn BINARY to start one), queues, memory and
 *          bindings registered the way a VMM would.
 *
 * Prints a table and one SUMMARY line; --json prints one JSON object.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "emu.h"
#include "iopfd/bindings.h"
#include "iopfd/client.h"
#include "iopfd/engine.h"
#include "iopfd/resolve.h"
#include "iopfd/space.h"

#define IOVA 0x100000000ull

struct cfg {
	unsigned queues, devices, pasids, outstanding, group_min, group_max, workers;
	unsigned duration_ms;
	uint64_t pages;
	enum emu_pattern pattern;
	bool json;
	const char *modes;
	enum iopf_backend_kind backend;
	uint64_t quota, window;
	const char *socket, *spawn, *then;
	bool demo;
};

struct result {
	const char *mode;
	double seconds;
	uint64_t groups, faults, violations;
	double syscalls_per_group;
	struct iopf_hist lat;
};

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int r) {
	fprintf(stderr, "iopf-bench: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

/* --- the load: spaces, bindings, socket pairs, emulators ----------------------------- */

struct load {
	struct iopf_space *space;
	int memfd;
	int *dfd; /* handler ends */
	struct emu_queue **emu;
};

/* The memory behind the region: a sealed memfd, as a client must pass. */
static int make_memfd(uint64_t bytes) {
	int fd = memfd_create("iopf-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		die("memfd", errno);
	return fd;
}

static void load_new(const struct cfg *c, struct iopf_bindings *b, struct load *l) {
	int r;
	l->memfd = c->backend == IOPF_BACKEND_NONE ? -1 : make_memfd(c->pages * 4096);
	if (b) {
		struct iopf_space_config sc = {
			.backend = c->backend, .quota = c->quota, .page_size = 4096, .window_min = c->window,
			.window_max = c->window, .iommufd = -1,
		};
		if ((r = iopf_space_new(1, &sc, &l->space)) < 0)
			die("space", r);
		struct iopf_region_config rc = {.iova = IOVA, .length = c->pages * 4096, .memfd = l->memfd,
		                                .perm = IOPF_PERM_READ | IOPF_PERM_WRITE};
		if ((r = iopf_space_add_region(l->space, &rc, NULL)) < 0)
			die("region", r);
	}
	l->dfd = calloc(c->queues, sizeof(int));
	l->emu = calloc(c->queues, sizeof(*l->emu));
	for (unsigned q = 0; q < c->queues; q++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			die("socketpair", errno);
		l->dfd[q] = sv[0];
		struct emu_config ec = {
			.devices = c->devices, .dev_id_base = q * c->devices, .pasids = c->pasids,
			.outstanding = c->outstanding, .group_min = c->group_min, .group_max = c->group_max,
			.iova_base = IOVA, .iova_pages = c->pages, .pattern = c->pattern,
			.perm = IOPF_PERM_READ, .seed = q + 1,
		};
		if ((r = emu_queue_new(&ec, sv[1], &l->emu[q])) < 0)
			die("emulator", r);
		if (!b)
			continue;
		for (unsigned d = 0; d < c->devices; d++)
			for (unsigned p = 0; p < (c->pasids ? c->pasids : 1); p++) {
				struct iopf_binding_key k = {q, q * c->devices + d, c->pasids ? p : IOPF_PASID_NONE};
				if ((r = iopf_bindings_add(b, &k, l->space)) < 0)
					die("bind", r);
			}
	}
}

static void load_collect(const struct cfg *c, struct load *l, struct result *res) {
	for (unsigned q = 0; q < c->queues; q++) {
		struct emu_stats st;
		emu_queue_finish(l->emu[q]);
		emu_queue_stats(l->emu[q], &st);
		res->groups += st.success + st.invalid;
		res->faults += st.faults;
		res->violations += emu_violations(&st);
		iopf_hist_merge(&res->lat, emu_queue_latency(l->emu[q]));
	}
}

static void load_free(const struct cfg *c, struct iopf_bindings *b, struct load *l) {
	for (unsigned q = 0; q < c->queues; q++)
		emu_queue_free(l->emu[q]);
	if (b) {
		iopf_bindings_remove_space(b, l->space);
		iopf_space_destroy(l->space);
	}
	if (l->memfd >= 0)
		close(l->memfd);
	free(l->emu);
	free(l->dfd);
}

/* --- iopfd: the engine ------------------------------------------------------------------ */

static void run_engine(const struct cfg *c, struct result *res) {
	struct iopf_engine_config ec = {.workers = c->workers};
	struct iopf_engine *e;
	int r = iopf_engine_new(&ec, &e);
	if (r < 0)
		die("engine", r);
	struct load l;
	load_new(c, iopf_engine_bindings(e), &l);
	struct iopf_queue **qs = calloc(c->queues, sizeof(*qs));
	for (unsigned q = 0; q < c->queues; q++) {
		if ((r = iopf_queue_new(q, l.dfd[q], IOPF_TRANSPORT_RELAY, &qs[q])) < 0)
			die("queue", r);
		close(l.dfd[q]);
		if ((r = iopf_engine_add_queue(e, qs[q])) < 0)
			die("add queue", r);
	}
	struct iopf_counters before, after;
	iopf_engine_counters(e, &before);
	uint64_t t0 = now_ns();
	emu_run(l.emu, c->queues, c->duration_ms, c->duration_ms + 10000, 2000);
	res->seconds = (double)(now_ns() - t0) / 1e9;
	iopf_engine_counters(e, &after);
	load_collect(c, &l, res);
	uint64_t sys = (after.reads - before.reads) + (after.writes - before.writes) +
	               (after.epoll_waits - before.epoll_waits);
	res->syscalls_per_group = res->groups ? (double)sys / (double)res->groups : 0;
	for (unsigned q = 0; q < c->queues; q++) {
		iopf_engine_remove_queue(e, qs[q]);
		iopf_queue_free(qs[q]);
	}
	free(qs);
	load_free(c, iopf_engine_bindings(e), &l);
	iopf_engine_free(e);
}

/* --- naive: one group per read, one write per response ------------------------------- */

struct naive {
	const struct cfg *c;
	struct load *l;
	struct iopf_bindings *b;
	volatile int stop;
	uint64_t syscalls;
};

static void *naive_main(void *arg) {
	struct naive *n = arg;
	iopf_rcu_register();
	struct iopf_counters cnt = {0};
	struct iopf_resolver res;
	iopf_resolver_init(&res, n->b, 1024, &cnt);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned q = 0; q < n->c->queues; q++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = q};
		epoll_ctl(ep, EPOLL_CTL_ADD, n->l->dfd[q], &ev);
	}
	/* Per queue: the records of the group being read so far. */
	iopf_record(*cur)[64] = calloc(n->c->queues, sizeof(*cur));
	unsigned *have = calloc(n->c->queues, sizeof(unsigned));
	struct epoll_event ev[64];
	while (!__atomic_load_n(&n->stop, __ATOMIC_RELAXED)) {
		int k = epoll_wait(ep, ev, 64, 50);
		n->syscalls++;
		for (int i = 0; i < k; i++) {
			unsigned q = ev[i].data.u32;
			int fd = n->l->dfd[q];
			/* One record per read, until the group is whole. */
			ssize_t got = recv(fd, &cur[q][have[q]], sizeof(iopf_record), MSG_WAITALL);
			n->syscalls++;
			if (got != sizeof(iopf_record))
				continue;
			iopf_record *rec = &cur[q][have[q]++];
			if (!(rec->flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE) && have[q] < 64)
				continue;
			struct iopf_group g = {.faults = cur[q], .n_faults = have[q], .cookie = rec->cookie,
			                       .dev_id = rec->dev_id,
			                       .pasid = (rec->flags & IOMMU_PGFAULT_FLAGS_PASID_VALID) ? rec->pasid
			                                                                               : IOPF_PASID_NONE};
			have[q] = 0;
			iopf_rcu_read_lock();
			iopf_resolver_begin(&res);
			iopf_response resp = {.cookie = g.cookie, .code = iopf_resolve_group(&res, q, &g)};
			send(fd, &resp, sizeof(resp), MSG_NOSIGNAL);
			n->syscalls++;
			iopf_resolver_end(&res);
			iopf_rcu_read_unlock();
		}
	}
	free(cur);
	free(have);
	close(ep);
	iopf_resolver_fini(&res);
	iopf_rcu_unregister();
	return NULL;
}

static void run_naive(const struct cfg *c, struct result *res) {
	struct iopf_bindings *b;
	int r = iopf_bindings_new(&b);
	if (r < 0)
		die("bindings", r);
	struct load l;
	load_new(c, b, &l);
	struct naive n = {.c = c, .l = &l, .b = b};
	pthread_t th;
	pthread_create(&th, NULL, naive_main, &n);
	uint64_t t0 = now_ns();
	emu_run(l.emu, c->queues, c->duration_ms, c->duration_ms + 10000, 2000);
	res->seconds = (double)(now_ns() - t0) / 1e9;
	__atomic_store_n(&n.stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	load_collect(c, &l, res);
	res->syscalls_per_group = res->groups ? (double)n.syscalls / (double)res->groups : 0;
	for (unsigned q = 0; q < c->queues; q++)
		close(l.dfd[q]);
	load_free(c, b, &l);
	iopf_bindings_free(b);
}

/* --- daemon: a real iopfd over Varlink -------------------------------------------------- */

static pid_t spawn_daemon(const struct cfg *c, char *path, size_t n) {
	snprintf(path, n, "/tmp/iopf-bench-%d.sock", (int)getpid());
	pid_t pid = fork();
	if (pid < 0)
		die("fork", errno);
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
	const struct cfg *c;
	struct load *l;
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

static void run_daemon(const struct cfg *c, struct result *res) {
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

	struct load l;
	load_new(c, NULL, &l);
	int memfd = l.memfd >= 0 ? l.memfd : make_memfd(c->pages * 4096);
	uint64_t space;
	check(iopfc_create_space(v, c->backend == IOPF_BACKEND_MLOCK ? "mlock" : "none", c->quota, c->window, c->window,
	                         -1, 0, &space, &err), "CreateSpace", err);
	check(iopfc_add_region(v, space, IOVA, c->pages * 4096, memfd, 0, IOPF_PERM_READ | IOPF_PERM_WRITE, NULL, &err),
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
	uint64_t t0 = now_ns();
	emu_run_progress(l.emu, c->queues, c->duration_ms, c->duration_ms + 10000, 2000,
	                 c->demo ? show_progress : NULL, &pr, 1000);
	res->seconds = (double)(now_ns() - t0) / 1e9;
	sd_json_variant *st1;
	check(iopfc_statistics(v, &st1, &err), "GetStatistics", err);
	load_collect(c, &l, res);
	res->syscalls_per_group = res->groups ? (double)(iopfc_u64(st1, "syscalls") - sys0) / (double)res->groups : 0;
	if (c->then) {
		/* While our objects still exist: e.g. iopfctl status. */
		fflush(stdout);
		setenv("IOPFD_SOCKET", path, 1);
		if (system(c->then) != 0)
			fprintf(stderr, "iopf-bench: '%s' failed\n", c->then);
	}
	/* Objects go with the connection. */
	sd_varlink_flush_close_unref(v);
	load_free(c, NULL, &l);
	if (pid > 0) {
		kill(pid, SIGTERM);
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fprintf(stderr, "iopf-bench: iopfd did not exit cleanly (status %#x)\n", status);
	}
}

/* --- output --------------------------------------------------------------------------------- */

static double rate(const struct result *r) {
	return r->seconds > 0 ? (double)r->groups / r->seconds : 0;
}

static double us(uint64_t ns) {
	return (double)ns / 1000.0;
}

static void usage(void) {
	fprintf(stderr,
	        "usage: iopf-bench [--queues N] [--devices N] [--pasids N] [--outstanding N]\n"
	        "                  [--group-min N] [--group-max N] [--workers N] [--duration-ms N]\n"
	        "                  [--pattern seq|random|hot] [--pages N] [--modes iopfd,naive,daemon] [--json]\n"
	        "                  [--backend none|mlock] [--quota BYTES] [--window BYTES]\n"
	        "                  [--socket PATH | --spawn IOPFD] [--then CMD] [--demo]\n");
	exit(2);
}

int main(int argc, char **argv) {
	struct cfg c = {
		.queues = 64, .devices = 1, .pasids = 0, .outstanding = 32, .group_min = 1, .group_max = 1,
		.workers = 1, .duration_ms = 2000, .pages = 4096, .pattern = EMU_RANDOM, .modes = "iopfd,naive",
		.backend = IOPF_BACKEND_NONE, .quota = 1ull << 40,
	};
	static const struct option opts[] = {
		{"queues", required_argument, NULL, 'q'}, {"devices", required_argument, NULL, 'd'},
		{"pasids", required_argument, NULL, 'p'}, {"outstanding", required_argument, NULL, 'o'},
		{"group-min", required_argument, NULL, 'm'}, {"group-max", required_argument, NULL, 'M'},
		{"workers", required_argument, NULL, 'w'}, {"duration-ms", required_argument, NULL, 't'},
		{"pattern", required_argument, NULL, 'P'}, {"pages", required_argument, NULL, 'g'},
		{"modes", required_argument, NULL, 'x'}, {"json", no_argument, NULL, 'j'},
		{"backend", required_argument, NULL, 'b'}, {"quota", required_argument, NULL, 'Q'},
		{"window", required_argument, NULL, 'W'}, {"socket", required_argument, NULL, 'S'},
		{"spawn", required_argument, NULL, 'X'}, {"then", required_argument, NULL, 'T'},
		{"demo", no_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'}, {0},
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
		case 'w': c.workers = (unsigned)atoi(optarg); break;
		case 't': c.duration_ms = (unsigned)atoi(optarg); break;
		case 'g': c.pages = strtoull(optarg, NULL, 0); break;
		case 'x': c.modes = optarg; break;
		case 'j': c.json = true; break;
		case 'b': c.backend = !strcmp(optarg, "mlock") ? IOPF_BACKEND_MLOCK : IOPF_BACKEND_NONE; break;
		case 'Q': c.quota = strtoull(optarg, NULL, 0); break;
		case 'W': c.window = strtoull(optarg, NULL, 0); break;
		case 'S': c.socket = optarg; break;
		case 'X': c.spawn = optarg; break;
		case 'T': c.then = optarg; break;
		case 'D': c.demo = true; break;
		case 'P':
			c.pattern = !strcmp(optarg, "seq") ? EMU_SEQUENTIAL : !strcmp(optarg, "hot") ? EMU_HOT : EMU_RANDOM;
			break;
		default: usage();
		}
	}
	if (!c.queues || !c.devices || !c.outstanding || c.group_min < 1 || c.group_max < c.group_min ||
	    c.group_max > 64)
		usage();

	iopf_rcu_register();
	enum { NMODES = 3 };
	struct result rs[NMODES] = {{.mode = "iopfd"}, {.mode = "naive"}, {.mode = "daemon"}};
	bool want[NMODES] = {strstr(c.modes, "iopfd") != NULL, strstr(c.modes, "naive") != NULL,
	                     strstr(c.modes, "daemon") != NULL};
	if (want[2] && !c.socket && !c.spawn) {
		fprintf(stderr, "iopf-bench: mode daemon needs --socket or --spawn\n");
		return 2;
	}
	if (want[0])
		run_engine(&c, &rs[0]);
	if (want[1])
		run_naive(&c, &rs[1]);
	if (want[2])
		run_daemon(&c, &rs[2]);
	iopf_rcu_unregister();
	if (c.demo) {
		printf("demo: %lu fault groups served, %lu violations\n", (unsigned long)rs[2].groups,
		       (unsigned long)rs[2].violations);
		return rs[2].violations || !rs[2].groups ? 1 : 0;
	}

	double ratio = want[0] && want[1] && rate(&rs[1]) > 0 ? rate(&rs[0]) / rate(&rs[1]) : 0;
	uint64_t violations = rs[0].violations + rs[1].violations + rs[2].violations;
	if (c.json) {
		printf("{\"load\":{\"queues\":%u,\"devices\":%u,\"pasids\":%u,\"outstanding\":%u,"
		       "\"group_min\":%u,\"group_max\":%u,\"workers\":%u,\"duration_ms\":%u},\"runs\":[",
		       c.queues, c.devices, c.pasids, c.outstanding, c.group_min, c.group_max, c.workers,
		       c.duration_ms);
		bool first = true;
		for (int i = 0; i < NMODES; i++) {
			if (!want[i])
				continue;
			const struct result *r = &rs[i];
			printf("%s{\"mode\":\"%s\",\"groups_per_s\":%.0f,\"faults_per_s\":%.0f,"
			       "\"syscalls_per_group\":%.4f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,"
			       "\"violations\":%lu}",
			       first ? "" : ",", r->mode, rate(r), r->seconds > 0 ? (double)r->faults / r->seconds : 0,
			       r->syscalls_per_group, us(iopf_hist_quantile(&r->lat, 0.5)),
			       us(iopf_hist_quantile(&r->lat, 0.99)), us(iopf_hist_quantile(&r->lat, 0.999)),
			       (unsigned long)r->violations);
			first = false;
		}
		printf("],\"ratio\":%.2f,\"violations\":%lu}\n", ratio, (unsigned long)violations);
	} else {
		printf("load: %u queues x %u devices x %u PASIDs, %u outstanding/device, %u..%u faults/group, "
		       "%u worker(s), %u ms\n",
		       c.queues, c.devices, c.pasids, c.outstanding, c.group_min, c.group_max, c.workers,
		       c.duration_ms);
		printf("%-8s %14s %12s %10s %10s %10s %10s\n", "mode", "groups/s", "syscalls/g", "p50 us",
		       "p99 us", "p99.9 us", "violations");
		for (int i = 0; i < NMODES; i++) {
			if (!want[i])
				continue;
			const struct result *r = &rs[i];
			printf("%-8s %14.0f %12.4f %10.1f %10.1f %10.1f %10lu\n", r->mode, rate(r),
			       r->syscalls_per_group, us(iopf_hist_quantile(&r->lat, 0.5)),
			       us(iopf_hist_quantile(&r->lat, 0.99)), us(iopf_hist_quantile(&r->lat, 0.999)),
			       (unsigned long)r->violations);
		}
		const struct result *main_run = want[0] ? &rs[0] : &rs[2];
		printf("SUMMARY groups_per_s=%.0f syscalls_per_group=%.4f naive_groups_per_s=%.0f ratio=%.2f "
		       "violations=%lu\n",
		       rate(main_run), main_run->syscalls_per_group, rate(&rs[1]), ratio, (unsigned long)violations);
	}
	return violations ? 1 : 0;
}
