/* SPDX-License-Identifier: MIT */
/*
 * iopf-ipg: instructions per fault group on the engine's worker, counted by
 * callgrind. Wall-clock figures on a shared machine move by tens of percent
 * from run to run; instruction counts of a deterministic workload do not,
 * so this is the regression guard for the fault path's own cost.
 *
 * The workload (--run): an engine with one worker, one relay queue, one
 * device bound to a space of the `none` backend (no page held) or of the
 * simulated one (pinning's books and holds, all pages mapped after the
 * first sweep, so the count is the hit path's); this thread sends a batch of K one-fault
 * groups in one send() (one socket buffer, so the worker reads it whole),
 * waits for the K responses, checks them, and repeats. Each batch is then
 * exactly one epoll_wait, one read and one write on the worker, whatever
 * the scheduling.
 *
 * Without --run, the program runs itself under
 *   valgrind --tool=callgrind --toggle-collect=iopf_worker_main
 * for two numbers of groups and prints the difference of the worker's
 * instruction counts divided by the difference of groups, which cancels
 * start-up and shutdown. --max-ipg X fails (exit 1) when the pinning
 * backend's batch-64 count is above X.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iopf_abi.h"
#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/engine-internal.h"
#include "engine/engine.h"
#include "engine/space.h"

/* The worker thread's function, whose instructions callgrind collects. Named
 * through the symbol so that renaming it breaks this build rather than
 * turning the count into zero. */
#define WORKER_FN "iopf_worker_main"
static void *(*const worker_fn)(void *) __attribute__((used)) = iopf_worker_main;

#define IOVA 0x100000000ull
#define PAGES 4096u

static void die(const char *what, int r) {
	fprintf(stderr, "iopf-ipg: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

static void send_all(int fd, const void *p, size_t len) {
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("send", errno);
		}
		p = (const char *)p + n;
		len -= (size_t)n;
	}
}

static void recv_all(int fd, void *p, size_t len) {
	while (len) {
		ssize_t n = recv(fd, p, len, 0);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			die("recv", n < 0 ? errno : EPIPE);
		}
		p = (char *)p + n;
		len -= (size_t)n;
	}
}

static int workload(unsigned long groups, unsigned batch, enum iopf_backend_kind backend) {
	iopf_rcu_register();
	struct iopf_engine_config ec = {.workers = 1};
	struct iopf_engine *e;
	int r = iopf_engine_new(&ec, &e);
	if (r < 0)
		die("engine", r);
	struct iopf_space_config sc = {.backend = backend, .quota = 1ull << 40, .page_size = 4096,
	                               .iommufd = -1};
	struct iopf_space *s;
	if ((r = iopf_space_new(1, &sc, &s)) < 0)
		die("space", r);
	struct iopf_region_config rc = {.iova = IOVA, .length = PAGES * 4096ull, .memfd = -1,
	                                .perm = IOPF_PERM_READ | IOPF_PERM_WRITE};
	if (iopf_space_add_region(s, &rc, 0, NULL, NULL) != IOPF_REGION_ADDED)
		die("region", -EINVAL);
	struct iopf_binding_key k = {0, 1, IOPF_PASID_NONE};
	if ((r = iopf_bindings_add(iopf_engine_bindings(e), &k, s)) < 0)
		die("bind", r);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", errno);
	/* Room for a whole batch either way, so that one send is one read. */
	int sz = 1 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	struct iopf_queue *q;
	if ((r = iopf_queue_new(0, sv[0], IOPF_TRANSPORT_RELAY, &q)) < 0)
		die("queue", r);
	if ((r = iopf_engine_add_queue(e, q)) < 0)
		die("add queue", r);

	iopf_record *recs = calloc(batch, sizeof(*recs));
	iopf_response *resp = calloc(batch, sizeof(*resp));
	if (!recs || !resp)
		die("buffers", -ENOMEM);
	uint64_t page = 0, bad = 0;
	for (unsigned long done = 0; done < groups; done += batch) {
		for (unsigned i = 0; i < batch; i++) {
			/* A fixed stride through the region: the same pages
			 * every run, none twice in a batch. */
			page = (page + 97) % PAGES;
			recs[i] = (iopf_record){.flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE, .dev_id = 1, .grpid = i,
			                        .perm = IOPF_PERM_READ, .addr = IOVA + page * 4096, .cookie = i};
		}
		send_all(sv[1], recs, batch * sizeof(*recs));
		recv_all(sv[1], resp, batch * sizeof(*resp));
		for (unsigned i = 0; i < batch; i++)
			bad += resp[i].cookie != i || resp[i].code != IOMMUFD_PAGE_RESP_SUCCESS;
	}
	iopf_engine_remove_queue(e, q, IOPF_RELEASE_TO_HOLDER);
	iopf_queue_free(q);
	close(sv[1]);
	iopf_bindings_remove_space(iopf_engine_bindings(e), s);
	iopf_space_destroy(s);
	iopf_engine_free(e);
	iopf_rcu_unregister();
	free(recs);
	free(resp);
	if (bad) {
		fprintf(stderr, "iopf-ipg: %lu wrong responses\n", (unsigned long)bad);
		return 1;
	}
	return 0;
}

/* The collected instruction count of one callgrind run. */
static double callgrind(const char *valgrind, const char *self, unsigned long groups, unsigned batch,
                        const char *backend) {
	char out[] = "/tmp/iopf-ipg-XXXXXX";
	int fd = mkstemp(out);
	if (fd < 0)
		die("mkstemp", errno);
	close(fd);
	char outopt[64], g[32], b[32];
	snprintf(outopt, sizeof(outopt), "--callgrind-out-file=%s", out);
	snprintf(g, sizeof(g), "%lu", groups);
	snprintf(b, sizeof(b), "%u", batch);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		/* Its chatter is not ours; errors show in the exit status. */
		if (!freopen("/dev/null", "w", stderr))
			_exit(127);
		execlp(valgrind, valgrind, "--tool=callgrind", "--toggle-collect=" WORKER_FN, outopt, self, "--run",
		       "--groups", g, "--batch", b, "--backend", backend, (char *)NULL);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "iopf-ipg: valgrind failed (status %#x)\n", status);
		unlink(out);
		exit(1);
	}
	FILE *f = fopen(out, "r");
	char line[512];
	double ir = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "totals:", 7) || (ir < 0 && !strncmp(line, "summary:", 8)))
			ir = strtod(strchr(line, ':') + 1, NULL);
	if (f)
		fclose(f);
	unlink(out);
	if (ir < 0)
		die("no totals in callgrind's output", -EBADMSG);
	if (ir < (double)groups)
		die("callgrind collected (almost) nothing: did the worker's thread function change?", -ENOENT);
	return ir;
}

int main(int argc, char **argv) {
	unsigned long groups = 0;
	unsigned batch = 0;
	bool run = false;
	enum iopf_backend_kind backend = IOPF_BACKEND_SIMULATED;
	double max_ipg = 0;
	const char *valgrind = "valgrind", *json_out = NULL;
	static const struct option opts[] = {
		{"run", no_argument, NULL, 'r'},           {"groups", required_argument, NULL, 'g'},
		{"batch", required_argument, NULL, 'b'},   {"max-ipg", required_argument, NULL, 'm'},
		{"valgrind", required_argument, NULL, 'v'}, {"json-out", required_argument, NULL, 'j'},
		{"backend", required_argument, NULL, 'k'},
		{0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'r': run = true; break;
		case 'g': groups = strtoul(optarg, NULL, 0); break;
		case 'b': batch = (unsigned)atoi(optarg); break;
		case 'm': max_ipg = atof(optarg); break;
		case 'v': valgrind = optarg; break;
		case 'j': json_out = optarg; break;
		case 'k': backend = strcmp(optarg, "none") ? IOPF_BACKEND_SIMULATED : IOPF_BACKEND_NONE; break;
		default:
			fprintf(stderr, "usage: iopf-ipg [--max-ipg X] [--valgrind PATH] [--json-out FILE]\n"
			                "       iopf-ipg --run --groups N --batch K --backend none|simulated\n");
			return 2;
		}
	}
	if (run)
		return workload(groups ? groups : 6400, batch ? batch : 64, backend);

	/* /proc/self/exe: valgrind must run this very binary. */
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		die("readlink", errno);
	self[n] = 0;
	static const struct {
		const char *backend;
		unsigned batch;
		unsigned long small, large;
	} w[] = {
		{"simulated", 64, 64 * 500, 64 * 2500},
		{"simulated", 1, 2000, 10000},
		{"none", 64, 64 * 500, 64 * 2500},
	};
	double ipg[3];
	int rc = 0;
	for (int i = 0; i < 3; i++) {
		double a = callgrind(valgrind, self, w[i].small, w[i].batch, w[i].backend);
		double b = callgrind(valgrind, self, w[i].large, w[i].batch, w[i].backend);
		ipg[i] = (b - a) / (double)(w[i].large - w[i].small);
		printf("iopf-ipg: %2u group(s) per read, %-9s backend: %6.0f instructions per group on the worker "
		       "(callgrind)\n",
		       w[i].batch, w[i].backend, ipg[i]);
	}
	if (max_ipg > 0 && ipg[0] > max_ipg) {
		printf("iopf-ipg: over the budget of %.0f instructions per group (batch 64, pinning)\n", max_ipg);
		rc = 1;
	}
	if (json_out) {
		FILE *f = fopen(json_out, "w");
		if (!f)
			die(json_out, errno);
		fprintf(f,
		        "{\"tool\":\"callgrind\",\"instructions_per_group\":%.0f,\"instructions_per_group_batch1\":%.0f,"
		        "\"instructions_per_group_none\":%.0f,\"budget\":%.0f,\"within_budget\":%s}\n",
		        ipg[0], ipg[1], ipg[2], max_ipg, rc ? "false" : "true");
		fclose(f);
	}
	return rc;
}
