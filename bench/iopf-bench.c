/* SPDX-License-Identifier: MIT */
/*
 * iopf-bench: emulated devices against the fault engine, and against the
 * baseline handlers on the same transport and load, in one run.
 *
 *   iopfd  the engine in this process (N workers, batched reads, one write
 *          per batch);
 *   naive  one thread, one group per read (record by record, as the kernel
 *          selftest and early VMM code read), one write per response, the
 *          same resolution code.
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

#include "emu.h"
#include "iopfd/bindings.h"
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
	int *dfd; /* handler ends */
	struct emu_queue **emu;
};

static void load_new(const struct cfg *c, struct iopf_bindings *b, struct load *l) {
	struct iopf_space_config sc = {
		.backend = IOPF_BACKEND_NONE, .quota = IOPF_QUOTA_UNLIMITED, .page_size = 4096, .iommufd = -1,
	};
	int r = iopf_space_new(1, &sc, &l->space);
	if (r < 0)
		die("space", r);
	struct iopf_region_config rc = {.iova = IOVA, .length = c->pages * 4096, .memfd = -1,
	                                .perm = IOPF_PERM_READ | IOPF_PERM_WRITE};
	if ((r = iopf_space_add_region(l->space, &rc, NULL)) < 0)
		die("region", r);
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
	iopf_bindings_remove_space(b, l->space);
	iopf_space_destroy(l->space);
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
	        "                  [--pattern seq|random|hot] [--pages N] [--modes iopfd,naive] [--json]\n");
	exit(2);
}

int main(int argc, char **argv) {
	struct cfg c = {
		.queues = 64, .devices = 1, .pasids = 0, .outstanding = 32, .group_min = 1, .group_max = 1,
		.workers = 1, .duration_ms = 2000, .pages = 4096, .pattern = EMU_RANDOM, .modes = "iopfd,naive",
	};
	static const struct option opts[] = {
		{"queues", required_argument, NULL, 'q'}, {"devices", required_argument, NULL, 'd'},
		{"pasids", required_argument, NULL, 'p'}, {"outstanding", required_argument, NULL, 'o'},
		{"group-min", required_argument, NULL, 'm'}, {"group-max", required_argument, NULL, 'M'},
		{"workers", required_argument, NULL, 'w'}, {"duration-ms", required_argument, NULL, 't'},
		{"pattern", required_argument, NULL, 'P'}, {"pages", required_argument, NULL, 'g'},
		{"modes", required_argument, NULL, 'x'}, {"json", no_argument, NULL, 'j'},
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
	struct result rs[2] = {{.mode = "iopfd"}, {.mode = "naive"}};
	bool want[2] = {strstr(c.modes, "iopfd") != NULL, strstr(c.modes, "naive") != NULL};
	if (want[0])
		run_engine(&c, &rs[0]);
	if (want[1])
		run_naive(&c, &rs[1]);
	iopf_rcu_unregister();

	double ratio = want[0] && want[1] && rate(&rs[1]) > 0 ? rate(&rs[0]) / rate(&rs[1]) : 0;
	uint64_t violations = rs[0].violations + rs[1].violations;
	if (c.json) {
		printf("{\"load\":{\"queues\":%u,\"devices\":%u,\"pasids\":%u,\"outstanding\":%u,"
		       "\"group_min\":%u,\"group_max\":%u,\"workers\":%u,\"duration_ms\":%u},\"runs\":[",
		       c.queues, c.devices, c.pasids, c.outstanding, c.group_min, c.group_max, c.workers,
		       c.duration_ms);
		bool first = true;
		for (int i = 0; i < 2; i++) {
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
		for (int i = 0; i < 2; i++) {
			if (!want[i])
				continue;
			const struct result *r = &rs[i];
			printf("%-8s %14.0f %12.4f %10.1f %10.1f %10.1f %10lu\n", r->mode, rate(r),
			       r->syscalls_per_group, us(iopf_hist_quantile(&r->lat, 0.5)),
			       us(iopf_hist_quantile(&r->lat, 0.99)), us(iopf_hist_quantile(&r->lat, 0.999)),
			       (unsigned long)r->violations);
		}
		printf("SUMMARY groups_per_s=%.0f syscalls_per_group=%.4f naive_groups_per_s=%.0f ratio=%.2f "
		       "violations=%lu\n",
		       rate(&rs[0]), rs[0].syscalls_per_group, rate(&rs[1]), ratio, (unsigned long)violations);
	}
	return violations ? 1 : 0;
}
