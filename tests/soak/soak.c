/* SPDX-License-Identifier: MIT */
/*
 * iopfd-soak: mixed load against the real daemon with control-plane churn,
 * for a given time.
 *
 *  - Stable clients, each with an address space (none and mlock backends
 *    alternate) and relay queues driven by device emulators for the whole
 *    run. Beside each, a churn thread on its own connection removes and
 *    re-adds a region under the emulated range, unbinds and rebinds a device,
 *    and now and then registers, binds and unregisters an extra queue.
 *  - Churning clients that come and go: connect, make a space, regions and
 *    queues, run emulated devices for a while, then leave gracefully (stop,
 *    unregister, destroy), by hanging up after their load stopped, or by
 *    hanging up in the middle of it.
 *
 * Checks: zero violations (no unknown, duplicate or bad answers; SUCCESS
 * wherever nothing was churned; after an abrupt hang-up, every group the
 * daemon had read was answered); every object gone once the clients are;
 * the daemon exits 0 on SIGTERM (an ASan build exits non-zero on a leak);
 * and resident memory flat after warm-up: the daemon's RssAnon (its heap;
 * the mlock backend's pinned pages are shared memory, bounded by the
 * quotas) at the end may not exceed its warm-up level by more than
 * --rss-slack-kb (and 10 %). Prints one line per interval and a SUMMARY.
 *
 *   iopfd-soak --iopfd PATH [--seconds N] [--clients N] [--churners N]
 *              [--interval-ms N] [--rss-slack-kb N] [--no-rss-check]
 *              [--keep-log FILE]   (the daemon's log; else kept only on failure)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emu.h"
#include "iopfd/client.h"

#define PG 4096ull
#define IOVA 0x500000000ull
#define STABLE_PAGES 1024 /* always mapped, always bound: must succeed */
#define CHURN_PAGES 256   /* removed and re-added under load */
#define CHURNER_PAGES 2048 /* a churning client's region */
#define MAXQ 4

static const char *socket_path;
static pid_t daemon_pid;
static int stopping;   /* every thread winds down */
static int failed;     /* a check failed somewhere */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&out_lock);
	fprintf(stderr, "soak: FAIL: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&out_lock);
	va_end(ap);
	__atomic_store_n(&failed, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
}

static bool stop_now(void) {
	return __atomic_load_n(&stopping, __ATOMIC_ACQUIRE);
}

static int sealed_memfd(size_t size) {
	int fd = memfd_create("iopfd-soak", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		fail("memfd: %s", strerror(errno));
		return -1;
	}
	return fd;
}

static sd_varlink *connect_daemon(void) {
	sd_varlink *v = NULL;
	int r = iopfc_connect(socket_path, &v);
	if (r < 0) {
		fail("connect: %s", strerror(-r));
		return NULL;
	}
	return v;
}

/* A call that must succeed. */
#define MUST(call, what)                                                                  \
	do {                                                                              \
		const char *err_ = NULL;                                                  \
		int r_ = (call);                                                          \
		if (r_ < 0) {                                                             \
			fail("%s: %s", (what), r_ == -EREMOTEIO && err_ ? err_ : strerror(-r_)); \
			goto out;                                                         \
		}                                                                         \
	} while (0)
#define ERR (&err_)

/* Tally of what the emulators saw. */
static struct {
	pthread_mutex_t lock;
	uint64_t groups, success, invalid, violations, cycles[3], churn_ops, abrupt_unread;
} tally = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void count(const struct emu_stats *st, uint64_t violations) {
	pthread_mutex_lock(&tally.lock);
	tally.groups += st->success + st->invalid;
	tally.success += st->success;
	tally.invalid += st->invalid;
	tally.violations += violations;
	pthread_mutex_unlock(&tally.lock);
}

/* --- stable clients ------------------------------------------------------------------- */

struct stable {
	unsigned idx;
	const char *backend;
	sd_varlink *v;  /* the owner's connection: made the objects, churns them */
	uint64_t space;
	int memfd;
	uint64_t churn_region; /* 0 while removed */
	unsigned nq;
	uint32_t qid[MAXQ];
	bool bound1[MAXQ];     /* device 1 is bound on queue i */
	struct emu_queue *emu[MAXQ];
	pthread_t emu_th, churn_th;
};

/* Device 0 on the stable pages always succeeds; device 1 (bound and
 * unbound) and the churned pages may go either way. */
static int stable_expect(void *ud, const iopf_record *recs, unsigned n) {
	if (recs[0].dev_id != 0)
		return -1;
	for (unsigned i = 0; i < n; i++)
		if ((recs[i].addr - IOVA) / PG >= STABLE_PAGES)
			return -1;
	return IOMMUFD_PAGE_RESP_SUCCESS;
}

static int stable_setup(struct stable *s) {
	if (!(s->v = connect_daemon()))
		return -1;
	/* One-page windows and a quota (512 pages) well above what the groups
	 * in flight can hold at once (2 queues x 2 devices x 8 groups x 4
	 * faults = 128 pages, each pinning its own window): a stable group is
	 * never refused for quota. Well below the region, so eviction runs. */
	MUST(iopfc_create_space(s->v, s->backend, 512 * PG, PG, PG, -1, 0, &s->space, ERR), "CreateSpace");
	if ((s->memfd = sealed_memfd((STABLE_PAGES + CHURN_PAGES) * PG)) < 0)
		return -1;
	MUST(iopfc_add_region(s->v, s->space, IOVA, STABLE_PAGES * PG, s->memfd, 0, 3, NULL, ERR), "AddRegion");
	MUST(iopfc_add_region(s->v, s->space, IOVA + STABLE_PAGES * PG, CHURN_PAGES * PG, s->memfd, STABLE_PAGES * PG, 3,
	                      &s->churn_region, ERR),
	     "AddRegion");
	for (unsigned i = 0; i < s->nq; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return fail("socketpair: %s", strerror(errno)), -1;
		MUST(iopfc_register_queue(s->v, sv[0], "relay", "soak-stable", &s->qid[i], ERR), "RegisterQueue");
		close(sv[0]);
		MUST(iopfc_bind(s->v, s->qid[i], 0, IOPFC_PASID_NONE, s->space, ERR), "Bind");
		MUST(iopfc_bind(s->v, s->qid[i], 1, IOPFC_PASID_NONE, s->space, ERR), "Bind");
		s->bound1[i] = true;
		struct emu_config ec = {
			.devices = 2, .outstanding = 8, .group_min = 1, .group_max = 4, .iova_base = IOVA,
			.iova_pages = STABLE_PAGES + CHURN_PAGES, .pattern = (enum emu_pattern)((s->idx + i) % 3),
			.perm = IOMMU_PGFAULT_PERM_READ, .seed = 1000 * s->idx + i + 1, .expect = stable_expect,
		};
		if (emu_queue_new(&ec, sv[1], &s->emu[i]) < 0)
			return fail("emu_queue_new"), -1;
	}
	return 0;
out:
	return -1;
}

static void stable_progress(void *ud, unsigned elapsed_ms) {
	struct stable *s = ud;
	if (stop_now())
		for (unsigned i = 0; i < s->nq; i++)
			emu_queue_stop(s->emu[i]);
}

static unsigned run_seconds;

static void *stable_emu(void *arg) {
	struct stable *s = arg;
	/* Until told to stop; the timeout is only a backstop (a daemon that
	 * stopped answering shows as missing groups). */
	emu_run_progress(s->emu, s->nq, 0, run_seconds * 1000 + 60000, 10000, stable_progress, s, 100);
	return NULL;
}

static void *stable_churn(void *arg) {
	struct stable *s = arg;
	uint64_t ops = 0;
	for (unsigned k = 0; !stop_now(); k++) {
		unsigned q = k % s->nq;
		if (s->churn_region) {
			MUST(iopfc_remove_region(s->v, s->space, s->churn_region, ERR), "RemoveRegion");
			s->churn_region = 0;
		} else {
			MUST(iopfc_add_region(s->v, s->space, IOVA + STABLE_PAGES * PG, CHURN_PAGES * PG, s->memfd,
			                      STABLE_PAGES * PG, 3, &s->churn_region, ERR),
			     "AddRegion");
		}
		if (s->bound1[q])
			MUST(iopfc_unbind(s->v, s->qid[q], 1, IOPFC_PASID_NONE, ERR), "Unbind");
		else
			MUST(iopfc_bind(s->v, s->qid[q], 1, IOPFC_PASID_NONE, s->space, ERR), "Bind");
		s->bound1[q] = !s->bound1[q];
		ops += 2;
		if (k % 10 == 0) {
			sd_json_variant *st;
			MUST(iopfc_statistics(s->v, &st, ERR), "GetStatistics");
			MUST(iopfc_call(s->v, "io.iopfd.ListSpaces", NULL, NULL, 0, NULL, ERR), "ListSpaces");
			ops += 2;
		}
		if (k % 50 == 25) {
			/* A queue that comes and goes without load. */
			int sv[2];
			uint32_t extra;
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
				fail("socketpair: %s", strerror(errno));
				goto out;
			}
			MUST(iopfc_register_queue(s->v, sv[0], NULL, "soak-extra", &extra, ERR), "RegisterQueue");
			close(sv[0]);
			MUST(iopfc_bind(s->v, extra, 7, 3, s->space, ERR), "Bind");
			MUST(iopfc_call(s->v, "io.iopfd.ListBindings", NULL, NULL, 0, NULL, ERR), "ListBindings");
			MUST(iopfc_unregister_queue(s->v, extra, ERR), "UnregisterQueue");
			close(sv[1]);
			ops += 4;
		}
		usleep(10000 + (k % 4) * 5000);
	}
out:
	pthread_mutex_lock(&tally.lock);
	tally.churn_ops += ops;
	pthread_mutex_unlock(&tally.lock);
	return NULL;
}

static void stable_finish(struct stable *s) {
	pthread_join(s->churn_th, NULL);
	pthread_join(s->emu_th, NULL);
	for (unsigned i = 0; i < s->nq; i++) {
		struct emu_stats st;
		emu_queue_finish(s->emu[i]);
		emu_queue_stats(s->emu[i], &st);
		uint64_t v = emu_violations(&st);
		if (v)
			fail("stable client %u queue %u: unknown %lu dup %lu bad %lu unexpected %lu missing %lu", s->idx, i,
			     st.unknown_cookie, st.duplicate, st.bad_code, st.unexpected, st.missing);
		count(&st, v);
		emu_queue_free(s->emu[i]);
	}
	close(s->memfd);
	sd_varlink_flush_close_unref(s->v);
}

/* --- clients that come and go ------------------------------------------------------------- */

struct churner {
	unsigned idx;
	pthread_t th;
};

struct run_args {
	struct emu_queue **emu;
	unsigned n, duration_ms;
};

static void *run_emus(void *arg) {
	struct run_args *a = arg;
	emu_run(a->emu, a->n, a->duration_ms, a->duration_ms + 60000, 1000);
	return NULL;
}

/* Bytes still queued at the daemon's end of a relay: never read by it. */
static uint64_t unread(int fd) {
	static __thread uint8_t buf[1 << 16];
	uint64_t n = 0;
	for (;;) {
		ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k <= 0)
			return n;
		n += (uint64_t)k;
	}
}

static void churn_cycle(struct churner *c, unsigned cycle) {
	/* 0: stop, unregister, destroy, hang up; 1: stop, hang up;
	 * 2: hang up in the middle of the load. */
	unsigned mode = (cycle + c->idx) % 3;
	const char *backend = (cycle + c->idx) % 2 ? "mlock" : "none";
	unsigned nq = 1 + cycle % 2;
	unsigned duration = 300 + (cycle * 137 + c->idx * 71) % 1200;
	sd_varlink *v = connect_daemon();
	struct emu_queue *emu[MAXQ] = {0};
	uint32_t qid[MAXQ];
	int kept[MAXQ];
	int memfd = -1;
	uint64_t space;
	for (unsigned i = 0; i < MAXQ; i++)
		kept[i] = -1;
	if (!v)
		return;
	/* Four-page windows: at most 128 held pages x 4 under a quota of 1024
	 * pages, over a region twice that. */
	MUST(iopfc_create_space(v, backend, 1024 * PG, PG, 4 * PG, -1, 0, &space, ERR), "CreateSpace");
	if ((memfd = sealed_memfd(CHURNER_PAGES * PG)) < 0)
		goto out;
	MUST(iopfc_add_region(v, space, IOVA, CHURNER_PAGES * PG, memfd, 0, 3, NULL, ERR), "AddRegion");
	for (unsigned i = 0; i < nq; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			fail("socketpair: %s", strerror(errno));
			goto out;
		}
		const char *rerr = NULL;
		int r = iopfc_register_queue(v, sv[0], "relay", "soak-churn", &qid[i], &rerr);
		/* Hanging up mid-load: keep the daemon's end to count what it
		 * never read afterwards. */
		if (mode == 2)
			kept[i] = sv[0];
		else
			close(sv[0]);
		if (r < 0) {
			close(sv[1]);
			fail("RegisterQueue: %s", rerr ? rerr : strerror(-r));
			goto out;
		}
		MUST(iopfc_bind(v, qid[i], 0, IOPFC_PASID_NONE, space, ERR), "Bind");
		MUST(iopfc_bind(v, qid[i], 1, 2, space, ERR), "Bind");
		struct emu_config ec = {
			.devices = 2, .pasids = 0, .outstanding = 8, .group_min = 1, .group_max = 4, .iova_base = IOVA,
			.iova_pages = CHURNER_PAGES, .pattern = EMU_RANDOM, .perm = IOMMU_PGFAULT_PERM_READ,
			.seed = 7919 * cycle + 31 * c->idx + i + 1,
		};
		/* Device 1 faults without its PASID: unbound, so refused. */
		if (emu_queue_new(&ec, sv[1], &emu[i]) < 0) {
			fail("emu_queue_new");
			goto out;
		}
	}

	struct run_args a = {.emu = emu, .n = nq, .duration_ms = duration};
	pthread_t th;
	pthread_create(&th, NULL, run_emus, &a);
	if (mode == 2) {
		usleep(duration * 1000 / 2);
		sd_varlink_flush_close_unref(v);
		v = NULL;
	}
	pthread_join(th, NULL);

	for (unsigned i = 0; i < nq; i++) {
		struct emu_stats st;
		emu_queue_stats(emu[i], &st);
		uint64_t bad = st.unknown_cookie + st.duplicate + st.bad_code + st.unexpected;
		if (mode == 2) {
			uint64_t consumed = emu_queue_bytes_sent(emu[i]) - unread(kept[i]);
			uint64_t lost = emu_queue_unanswered_before(emu[i], consumed);
			if (lost)
				fail("churning client %u cycle %u: %lu groups read by the daemon but never answered", c->idx,
				     cycle, lost);
			bad += lost;
			pthread_mutex_lock(&tally.lock);
			tally.abrupt_unread += st.inflight;
			pthread_mutex_unlock(&tally.lock);
		} else {
			emu_queue_finish(emu[i]);
			emu_queue_stats(emu[i], &st);
			bad += st.missing;
		}
		if (bad)
			fail("churning client %u cycle %u mode %u queue %u: unknown %lu dup %lu bad %lu unexpected %lu "
			     "missing %lu", c->idx, cycle, mode, i, st.unknown_cookie, st.duplicate, st.bad_code,
			     st.unexpected, st.missing);
		count(&st, bad);
	}
	if (mode == 0) {
		for (unsigned i = 0; i < nq; i++)
			MUST(iopfc_unregister_queue(v, qid[i], ERR), "UnregisterQueue");
		MUST(iopfc_destroy_space(v, space, ERR), "DestroySpace");
	}
	pthread_mutex_lock(&tally.lock);
	tally.cycles[mode]++;
	pthread_mutex_unlock(&tally.lock);
out:
	for (unsigned i = 0; i < MAXQ; i++) {
		emu_queue_free(emu[i]);
		if (kept[i] >= 0)
			close(kept[i]);
	}
	if (memfd >= 0)
		close(memfd);
	if (v)
		sd_varlink_flush_close_unref(v);
}

static void *churner_main(void *arg) {
	struct churner *c = arg;
	for (unsigned cycle = 0; !stop_now(); cycle++)
		churn_cycle(c, cycle);
	return NULL;
}

/* --- the daemon --------------------------------------------------------------------------- */

/* The daemon logs every object it makes and drops: a run's worth goes to a
 * file, shown (its end) only when the run fails. */
static char log_path[256];

static void show_daemon_log(void) {
	FILE *f = fopen(log_path, "r");
	if (!f)
		return;
	static char ring[60][512];
	size_t n = 0;
	while (fgets(ring[n % 60], sizeof(ring[0]), f))
		n++;
	fclose(f);
	fprintf(stderr, "soak: the last lines of the daemon's log (%s):\n", log_path);
	for (size_t i = n > 60 ? n - 60 : 0; i < n; i++)
		fputs(ring[i % 60], stderr);
}

static void spawn(const char *bin, unsigned workers) {
	static char path[108];
	snprintf(path, sizeof(path), "/tmp/iopfd-soak-%d.sock", (int)getpid());
	if (!log_path[0])
		snprintf(log_path, sizeof(log_path), "/tmp/iopfd-soak-%d.log", (int)getpid());
	socket_path = path;
	char w[16];
	snprintf(w, sizeof(w), "%u", workers);
	daemon_pid = fork();
	if (daemon_pid < 0) {
		perror("fork");
		exit(2);
	}
	if (daemon_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* An ASan build keeps freed memory in a quarantine (256 MiB by
		 * default) that would look like growth: keep it small, so that
		 * the resident memory of an ASan daemon can be judged too. */
		const char *asan = getenv("ASAN_OPTIONS");
		char opts[1024];
		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=8:thread_local_quarantine_size_kb=64", asan ? asan : "",
		         asan && *asan ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
		int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (log >= 0 && dup2(log, STDERR_FILENO) < 0)
			_exit(127);
		execl(bin, bin, "--socket", path, "--workers", w, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		sd_varlink *v;
		if (iopfc_connect(socket_path, &v) == 0) {
			sd_varlink_unref(v);
			return;
		}
		usleep(10000);
	}
	fprintf(stderr, "soak: iopfd did not come up on %s\n", path);
	show_daemon_log();
	kill(daemon_pid, SIGKILL);
	exit(2);
}

/* The daemon's VmRSS and RssAnon, kB. */
static void daemon_rss(uint64_t *rss, uint64_t *anon) {
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)daemon_pid);
	FILE *f = fopen(path, "r");
	*rss = *anon = 0;
	if (!f)
		return;
	unsigned long v;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %lu kB", &v) == 1)
			*rss = v;
		else if (sscanf(line, "RssAnon: %lu kB", &v) == 1)
			*anon = v;
	}
	fclose(f);
}

struct sample {
	uint64_t t_ms, rss, anon, groups;
};

int main(int argc, char **argv) {
	const char *bin = getenv("IOPFD_BINARY");
	unsigned seconds = 60, n_stable = 3, n_churners = 2, interval_ms = 5000, workers = 2;
	uint64_t slack_kb = 4096;
	bool rss_check = true, keep_log = false;
	static const struct option opts[] = {
		{"iopfd", required_argument, NULL, 'i'}, {"seconds", required_argument, NULL, 's'},
		{"clients", required_argument, NULL, 'c'}, {"churners", required_argument, NULL, 'k'},
		{"interval-ms", required_argument, NULL, 'm'}, {"rss-slack-kb", required_argument, NULL, 'r'},
		{"workers", required_argument, NULL, 'w'}, {"no-rss-check", no_argument, NULL, 'n'},
		{"keep-log", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'}, {},
	};
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (o) {
		case 'i': bin = optarg; break;
		case 's': seconds = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'c': n_stable = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'k': n_churners = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'm': interval_ms = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'r': slack_kb = strtoull(optarg, NULL, 0); break;
		case 'w': workers = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'n': rss_check = false; break;
		case 'l':
			snprintf(log_path, sizeof(log_path), "%s", optarg);
			keep_log = true;
			break;
		case 'h':
			printf("usage: iopfd-soak --iopfd PATH [--seconds N] [--clients N] [--churners N] [--workers N]\n"
			       "                  [--interval-ms N] [--rss-slack-kb N] [--no-rss-check] [--keep-log FILE]\n");
			return 0;
		default: return 2;
		}
	}
	if (!bin || !seconds || !n_stable || n_stable > 16 || n_churners > 16 || !interval_ms) {
		fprintf(stderr, "soak: need --iopfd PATH (or IOPFD_BINARY), and sane counts\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	run_seconds = seconds;
	spawn(bin, workers);
	sd_varlink *obs = connect_daemon();
	if (!obs)
		return 1;

	struct stable stable[16] = {0};
	struct churner churners[16] = {0};
	for (unsigned i = 0; i < n_stable; i++) {
		stable[i] = (struct stable){.idx = i, .backend = i % 2 ? "mlock" : "none", .nq = 2, .memfd = -1};
		if (stable_setup(&stable[i]) < 0) {
			kill(daemon_pid, SIGKILL);
			return 1;
		}
	}
	uint64_t t0 = now_ms();
	for (unsigned i = 0; i < n_stable; i++) {
		pthread_create(&stable[i].emu_th, NULL, stable_emu, &stable[i]);
		pthread_create(&stable[i].churn_th, NULL, stable_churn, &stable[i]);
	}
	for (unsigned i = 0; i < n_churners; i++) {
		churners[i].idx = i;
		pthread_create(&churners[i].th, NULL, churner_main, &churners[i]);
	}

	/* Warm-up: the first 20 % of the run (at least 10 s when the run
	 * allows it); the level is the highest RssAnon seen over the next
	 * 20 %, the end level the highest over the last 20 %. */
	size_t cap = seconds * 1000 / interval_ms + 8, n = 0;
	struct sample *samples = calloc(cap, sizeof(*samples));
	uint64_t end_at = t0 + (uint64_t)seconds * 1000;
	uint64_t next = t0;
	while (!stop_now() && now_ms() < end_at) {
		uint64_t t = now_ms();
		if (t >= next && n < cap) {
			struct sample *s = &samples[n++];
			s->t_ms = t - t0;
			daemon_rss(&s->rss, &s->anon);
			sd_json_variant *st;
			const char *err = NULL;
			if (iopfc_statistics(obs, &st, &err) < 0) {
				fail("GetStatistics: %s", err ? err : "link failed");
				break;
			}
			s->groups = iopfc_u64(st, "groups");
			pthread_mutex_lock(&out_lock);
			sd_json_variant *inv = sd_json_variant_by_key(st, "invalid");
			printf("soak: t=%4lus groups=%lu rss=%lukB anon=%lukB queues=%lu spaces=%lu clients=%lu pinned=%lukB "
			       "invalid(binding/region/quota/backend)=%lu/%lu/%lu/%lu protocolErrors=%lu ioErrors=%lu\n",
			       (unsigned long)(s->t_ms / 1000), (unsigned long)s->groups, (unsigned long)s->rss,
			       (unsigned long)s->anon, (unsigned long)iopfc_u64(st, "queues"),
			       (unsigned long)iopfc_u64(st, "spaces"), (unsigned long)iopfc_u64(st, "clients"),
			       (unsigned long)(iopfc_u64(st, "pinned") >> 10), (unsigned long)iopfc_u64(inv, "no_binding"),
			       (unsigned long)iopfc_u64(inv, "no_region"), (unsigned long)iopfc_u64(inv, "quota"),
			       (unsigned long)iopfc_u64(inv, "backend"), (unsigned long)iopfc_u64(st, "protocolErrors"),
			       (unsigned long)iopfc_u64(st, "ioErrors"));
			fflush(stdout);
			pthread_mutex_unlock(&out_lock);
			if (iopfc_u64(st, "protocolErrors") || iopfc_u64(st, "ioErrors") || iopfc_u64(st, "writeRejects"))
				fail("the daemon counts protocol/io errors or rejected writes: nobody here breaks the protocol");
			next += interval_ms;
		}
		usleep(50000);
	}

	__atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < n_churners; i++)
		pthread_join(churners[i].th, NULL);
	for (unsigned i = 0; i < n_stable; i++)
		stable_finish(&stable[i]);

	/* Everything the clients made went with them. */
	sd_json_variant *st = NULL;
	const char *err = NULL;
	for (int i = 0; i < 500; i++) {
		if (iopfc_statistics(obs, &st, &err) < 0) {
			fail("GetStatistics: %s", err ? err : "link failed");
			break;
		}
		if (iopfc_u64(st, "queues") == 0 && iopfc_u64(st, "spaces") == 0 && iopfc_u64(st, "clients") == 1)
			break;
		usleep(20000);
	}
	uint64_t d_groups = st ? iopfc_u64(st, "groups") : 0;
	if (st && (iopfc_u64(st, "queues") || iopfc_u64(st, "spaces") || iopfc_u64(st, "bindings") ||
	           iopfc_u64(st, "pinned")))
		fail("left behind: %lu queues, %lu spaces, %lu bindings, %lu bytes pinned", iopfc_u64(st, "queues"),
		     iopfc_u64(st, "spaces"), iopfc_u64(st, "bindings"), iopfc_u64(st, "pinned"));
	sd_varlink_flush_close_unref(obs);

	/* Resident memory after warm-up. */
	uint64_t warm = 0, end = 0, warm_rss = 0, end_rss = 0;
	uint64_t warm_from = seconds * 1000 / 5, warm_to = 2 * seconds * 1000 / 5, end_from = 4 * seconds * 1000 / 5;
	if (warm_from < 10000 && seconds >= 40) {
		warm_from = 10000;
		warm_to = warm_from + seconds * 1000 / 5;
	}
	for (size_t i = 0; i < n; i++) {
		if (samples[i].t_ms >= warm_from && samples[i].t_ms < warm_to) {
			warm = samples[i].anon > warm ? samples[i].anon : warm;
			warm_rss = samples[i].rss > warm_rss ? samples[i].rss : warm_rss;
		}
		if (samples[i].t_ms >= end_from) {
			end = samples[i].anon > end ? samples[i].anon : end;
			end_rss = samples[i].rss > end_rss ? samples[i].rss : end_rss;
		}
	}
	uint64_t allowed = warm + (slack_kb > warm / 10 ? slack_kb : warm / 10);
	if (rss_check && !__atomic_load_n(&failed, __ATOMIC_ACQUIRE)) {
		if (!warm || !end)
			fail("too few samples to judge resident memory (run longer or sample more often)");
		else if (end > allowed)
			fail("the daemon's anonymous memory grew after warm-up: %lu kB -> %lu kB (allowed %lu kB)",
			     (unsigned long)warm, (unsigned long)end, (unsigned long)allowed);
	}

	/* SIGTERM: drains, exits 0 (an ASan build exits otherwise on a leak). */
	kill(daemon_pid, SIGTERM);
	int ws;
	waitpid(daemon_pid, &ws, 0);
	unlink(socket_path);
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		fail("iopfd did not exit cleanly: %s %d", WIFEXITED(ws) ? "status" : "signal",
		     WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));

	bool ok = !__atomic_load_n(&failed, __ATOMIC_ACQUIRE);
	if (ok && !keep_log)
		unlink(log_path);
	else
		show_daemon_log();
	printf("SUMMARY soak seconds=%u clients=%u churners=%u groups=%lu daemon_groups=%lu success=%lu invalid=%lu "
	       "violations=%lu churn_ops=%lu cycles_graceful=%lu cycles_hangup=%lu cycles_abrupt=%lu "
	       "unread_at_abrupt_hangup=%lu rss_warm_kb=%lu rss_end_kb=%lu anon_warm_kb=%lu anon_end_kb=%lu "
	       "rss_check=%s result=%s\n",
	       seconds, n_stable, n_churners, (unsigned long)tally.groups, (unsigned long)d_groups,
	       (unsigned long)tally.success, (unsigned long)tally.invalid, (unsigned long)tally.violations,
	       (unsigned long)tally.churn_ops, (unsigned long)tally.cycles[0], (unsigned long)tally.cycles[1],
	       (unsigned long)tally.cycles[2], (unsigned long)tally.abrupt_unread, (unsigned long)warm_rss,
	       (unsigned long)end_rss, (unsigned long)warm, (unsigned long)end, rss_check ? "on" : "off",
	       ok ? "ok" : "FAILED");
	free(samples);
	return ok ? 0 : 1;
}
