/* SPDX-License-Identifier: MIT */
/* iopfctl: the operator's view of a running iopfd, over its Varlink socket. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iopfd/client.h"
#include "metrics.h"

static const char *socket_path = IOPFD_SOCKET_DEFAULT;
static bool json;
static unsigned interval_ms = 1000;
static unsigned count;
static enum metrics_format metrics_format = METRICS_OPENMETRICS;

static void help(void) {
	printf("usage: iopfctl [--socket PATH] [--json] COMMAND\n"
	       "(the socket defaults to $IOPFD_SOCKET, else " IOPFD_SOCKET_DEFAULT ")\n\n"
	       "  status      daemon summary: queues, devices, spaces, faults/s, pinned, p99\n"
	       "  queues      registered queues\n"
	       "  spaces      address spaces\n"
	       "  bindings    (queue, device, PASID) -> address space\n"
	       "  users       pin budgets and what each user holds (root sees every user)\n"
	       "  stats       every counter\n"
	       "  monitor     live figures [--interval MS] [--count N]\n"
	       "  metrics     the figures as OpenMetrics text [--format openmetrics|prometheus]\n\n"
	       "See iopfctl(1).\n");
}

static int fail(int r, const char *what, const char *error) {
	if (r == -EREMOTEIO)
		fprintf(stderr, "iopfctl: %s: %s\n", what, error ? error : "error");
	else
		fprintf(stderr, "iopfctl: %s: %s\n", what, strerror(-r));
	return 1;
}

static void human_bytes(uint64_t b, char *buf, size_t n) {
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

static double f64(sd_json_variant *o, const char *k) {
	sd_json_variant *v = sd_json_variant_by_key(o, k);
	return v && sd_json_variant_is_number(v) ? sd_json_variant_real(v) : 0;
}

static const char *str(sd_json_variant *o, const char *k) {
	sd_json_variant *v = sd_json_variant_by_key(o, k);
	return v && sd_json_variant_is_string(v) ? sd_json_variant_string(v) : "-";
}

/* Public sd-json 257 has no iteration macros. */
#define ARRAY_FOREACH(e, arr)                                                              \
	for (size_t _i = 0; _i < sd_json_variant_elements(arr) && ((e) = sd_json_variant_by_index(arr, _i)); _i++)

static void print_json(sd_json_variant *v) {
	sd_json_variant_dump(v, SD_JSON_FORMAT_NEWLINE, stdout, NULL);
	fflush(stdout);
}

static int cmd_status(sd_varlink *v) {
	const char *err;
	sd_json_variant *s;
	int r = iopfc_statistics(v, &s, &err);
	if (r < 0)
		return fail(r, "GetStatistics", err);
	uint64_t g0 = iopfc_u64(s, "groups"), f0 = iopfc_u64(s, "faults");
	double t0 = f64(s, "uptime");
	usleep(500 * 1000);
	r = iopfc_statistics(v, &s, &err);
	if (r < 0)
		return fail(r, "GetStatistics", err);
	double dt = f64(s, "uptime") - t0;
	double gps = dt > 0 ? (double)(iopfc_u64(s, "groups") - g0) / dt : 0;
	double fps = dt > 0 ? (double)(iopfc_u64(s, "faults") - f0) / dt : 0;
	if (json) {
		sd_json_variant *o = NULL;
		sd_json_buildo(&o, SD_JSON_BUILD_PAIR_VARIANT("statistics", s), SD_JSON_BUILD_PAIR_REAL("groupsPerSecond", gps),
		               SD_JSON_BUILD_PAIR_REAL("faultsPerSecond", fps));
		print_json(o);
		sd_json_variant_unref(o);
		return 0;
	}
	char pinned[32];
	human_bytes(iopfc_u64(s, "pinned"), pinned, sizeof(pinned));
	printf("iopfd: %" PRIu64 " workers, up %.1f s, %" PRIu64 " clients\n", iopfc_u64(s, "workers"),
	       f64(s, "uptime"), iopfc_u64(s, "clients"));
	printf("%8s %8s %8s %9s %12s %12s %12s %10s\n", "QUEUES", "DEVICES", "SPACES", "BINDINGS", "FAULTS/S",
	       "GROUPS/S", "PINNED", "P99");
	printf("%8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %9" PRIu64 " %12.0f %12.0f %12s %8.1fus\n",
	       iopfc_u64(s, "queues"), iopfc_u64(s, "devices"), iopfc_u64(s, "spaces"), iopfc_u64(s, "bindings"), fps,
	       gps, pinned, f64(s, "p99us"));
	printf("groups answered: %" PRIu64 " (success %" PRIu64 ")", iopfc_u64(s, "groups"), iopfc_u64(s, "success"));
	sd_json_variant *inv = sd_json_variant_by_key(s, "invalid");
	for (size_t i = 0; i + 1 < sd_json_variant_elements(inv); i += 2) {
		uint64_t n = sd_json_variant_unsigned(sd_json_variant_by_index(inv, i + 1));
		if (n)
			printf(", %s %" PRIu64, sd_json_variant_string(sd_json_variant_by_index(inv, i)), n);
	}
	printf("\n");
	return 0;
}

static int list(sd_varlink *v, const char *method, const char *key, sd_json_variant **arr) {
	const char *err;
	sd_json_variant *rep;
	int r = iopfc_call(v, method, NULL, NULL, 0, &rep, &err);
	if (r < 0)
		return fail(r, method, err);
	*arr = sd_json_variant_by_key(rep, key);
	return 0;
}

static int cmd_queues(sd_varlink *v) {
	sd_json_variant *arr, *q;
	if (list(v, "io.iopfd.ListQueues", "queues", &arr))
		return 1;
	if (json)
		return print_json(arr), 0;
	printf("%6s %-20s %-8s %6s %12s %12s %10s %9s\n", "ID", "NAME", "TRANSPORT", "UID", "GROUPS", "FAULTS",
	       "INVALID", "BINDINGS");
	ARRAY_FOREACH(q, arr)
		printf("%6" PRIu64 " %-20s %-8s %6" PRIu64 " %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %9" PRIu64 "\n",
		       iopfc_u64(q, "id"), str(q, "name"), str(q, "transport"), iopfc_u64(q, "uid"), iopfc_u64(q, "groups"),
		       iopfc_u64(q, "faults"), iopfc_u64(q, "invalid"), iopfc_u64(q, "bindings"));
	return 0;
}

static int cmd_spaces(sd_varlink *v) {
	sd_json_variant *arr, *s;
	if (list(v, "io.iopfd.ListSpaces", "spaces", &arr))
		return 1;
	if (json)
		return print_json(arr), 0;
	printf("%6s %-16s %-8s %-19s %6s %11s %11s %11s %8s %9s %10s %10s\n", "ID", "NAME", "BACKEND", "POLICY", "UID",
	       "QUOTA", "PINNED", "PEAK", "REGIONS", "BINDINGS", "MAPS", "EVICTIONS");
	ARRAY_FOREACH(s, arr) {
		char quota[32], pinned[32], peak[32];
		human_bytes(iopfc_u64(s, "quota"), quota, sizeof(quota));
		human_bytes(iopfc_u64(s, "pinned"), pinned, sizeof(pinned));
		human_bytes(iopfc_u64(s, "pinnedPeak"), peak, sizeof(peak));
		char policy[64];
		snprintf(policy, sizeof(policy), "%s/%s", str(s, "faultAround"), str(s, "eviction"));
		printf("%6" PRIu64 " %-16s %-8s %-19s %6" PRIu64 " %11s %11s %11s %8" PRIu64 " %9" PRIu64 " %10" PRIu64
		       " %10" PRIu64 "\n",
		       iopfc_u64(s, "id"), str(s, "name"), str(s, "backend"), policy, iopfc_u64(s, "uid"), quota, pinned, peak,
		       iopfc_u64(s, "regions"), iopfc_u64(s, "bindings"), iopfc_u64(s, "maps"), iopfc_u64(s, "evictions"));
	}
	return 0;
}

static int cmd_bindings(sd_varlink *v) {
	sd_json_variant *arr, *b;
	if (list(v, "io.iopfd.ListBindings", "bindings", &arr))
		return 1;
	if (json)
		return print_json(arr), 0;
	printf("%6s %8s %8s %6s\n", "QUEUE", "DEVICE", "PASID", "SPACE");
	ARRAY_FOREACH(b, arr) {
		sd_json_variant *p = sd_json_variant_by_key(b, "pasid");
		char pasid[16] = "-";
		if (p && sd_json_variant_is_unsigned(p))
			snprintf(pasid, sizeof(pasid), "%" PRIu64, (uint64_t)sd_json_variant_unsigned(p));
		printf("%6" PRIu64 " %8" PRIu64 " %8s %6" PRIu64 "\n", iopfc_u64(b, "queue"), iopfc_u64(b, "device"), pasid,
		       iopfc_u64(b, "space"));
	}
	return 0;
}

static int cmd_stats(sd_varlink *v) {
	const char *err;
	sd_json_variant *s;
	int r = iopfc_statistics(v, &s, &err);
	if (r < 0)
		return fail(r, "GetStatistics", err);
	if (json)
		return print_json(s), 0;
	sd_json_variant_dump(s, SD_JSON_FORMAT_PRETTY | SD_JSON_FORMAT_NEWLINE, stdout, NULL);
	return 0;
}

static int cmd_users(sd_varlink *v) {
	const char *err;
	sd_json_variant *s, *u;
	int r = iopfc_statistics(v, &s, &err);
	if (r < 0)
		return fail(r, "GetStatistics", err);
	sd_json_variant *arr = sd_json_variant_by_key(s, "users");
	if (json)
		return print_json(arr), 0;
	printf("%8s %12s %12s %12s %-24s %7s %7s %8s\n", "UID", "BUDGET", "RESERVED", "PINNED", "GRANT", "QUEUES",
	       "SPACES", "REGIONS");
	ARRAY_FOREACH(u, arr) {
		char budget[32], reserved[32], pinned[32];
		sd_json_variant *b = sd_json_variant_by_key(u, "pinBudget");
		if (!b || sd_json_variant_is_null(b))
			snprintf(budget, sizeof(budget), "unlimited");
		else
			human_bytes(sd_json_variant_unsigned(b), budget, sizeof(budget));
		human_bytes(iopfc_u64(u, "pinReserved"), reserved, sizeof(reserved));
		human_bytes(iopfc_u64(u, "pinned"), pinned, sizeof(pinned));
		printf("%8" PRIu64 " %12s %12s %12s %-24s %7" PRIu64 " %7" PRIu64 " %8" PRIu64 "\n", iopfc_u64(u, "uid"),
		       budget, reserved, pinned, str(u, "pinGrant"), iopfc_u64(u, "queues"), iopfc_u64(u, "spaces"),
		       iopfc_u64(u, "regions"));
	}
	return 0;
}

/* The figures, the address spaces and the version in one text for
 * Prometheus's tools (metrics.c). */
static int cmd_metrics(sd_varlink *v) {
	const char *err;
	sd_json_variant *s, *rep;
	int r = iopfc_statistics(v, &s, &err);
	if (r < 0)
		return fail(r, "GetStatistics", err);
	/* Replies live until the next call: keep them. */
	sd_json_variant *stats = sd_json_variant_ref(s), *spaces = NULL, *info = NULL;
	r = iopfc_call(v, "io.iopfd.ListSpaces", NULL, NULL, 0, &rep, &err);
	if (r == 0) {
		spaces = sd_json_variant_ref(sd_json_variant_by_key(rep, "spaces"));
		r = iopfc_call(v, "org.varlink.service.GetInfo", NULL, NULL, 0, &rep, &err);
	}
	if (r == 0)
		info = sd_json_variant_ref(rep);
	else
		fail(r, spaces ? "GetInfo" : "ListSpaces", err);
	sd_json_variant *version = info ? sd_json_variant_by_key(info, "version") : NULL;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (r == 0 && (r = metrics_write(stdout, metrics_format, stats, spaces,
	                                 version ? sd_json_variant_string(version) : NULL,
	                                 (double)ts.tv_sec + (double)ts.tv_nsec / 1e9)) < 0)
		fail(r, "writing the metrics", NULL);
	sd_json_variant_unref(stats);
	sd_json_variant_unref(spaces);
	sd_json_variant_unref(info);
	return r < 0;
}

struct mon {
	unsigned seen;
	uint64_t last_groups, last_faults;
	double last_uptime;
	int error;
};

static int on_monitor(sd_varlink *v, sd_json_variant *params, const char *error_id, sd_varlink_reply_flags_t flags,
                      void *userdata) {
	struct mon *m = userdata;
	if (error_id) {
		fprintf(stderr, "iopfctl: Monitor: %s\n", error_id);
		m->error = 1;
		return 0;
	}
	sd_json_variant *s = sd_json_variant_by_key(params, "statistics");
	if (json) {
		print_json(s);
	} else {
		double up = f64(s, "uptime"), dt = up - m->last_uptime;
		uint64_t g = iopfc_u64(s, "groups"), f = iopfc_u64(s, "faults");
		char pinned[32];
		human_bytes(iopfc_u64(s, "pinned"), pinned, sizeof(pinned));
		if (m->seen == 0)
			printf("%10s %8s %12s %12s %12s %10s %10s\n", "UPTIME", "QUEUES", "GROUPS/S", "FAULTS/S", "PINNED",
			       "P99", "INVALID");
		if (m->seen > 0)
			printf("%9.1fs %8" PRIu64 " %12.0f %12.0f %12s %8.1fus %10" PRIu64 "\n", up, iopfc_u64(s, "queues"),
			       dt > 0 ? (double)(g - m->last_groups) / dt : 0, dt > 0 ? (double)(f - m->last_faults) / dt : 0,
			       pinned, f64(s, "p99us"), g - iopfc_u64(s, "success"));
		fflush(stdout);
		m->last_groups = g;
		m->last_faults = f;
		m->last_uptime = up;
	}
	m->seen++;
	return 0;
}

static int cmd_monitor(sd_varlink *v) {
	struct mon m = {0};
	sd_varlink_set_userdata(v, &m);
	sd_varlink_bind_reply(v, on_monitor);
	sd_varlink_set_relative_timeout(v, UINT64_MAX); /* a stream has no deadline */
	int r = sd_varlink_observebo(v, "io.iopfd.Monitor", SD_JSON_BUILD_PAIR_UNSIGNED("intervalMs", interval_ms));
	if (r < 0)
		return fail(r, "Monitor", NULL);
	/* One extra update: the first only sets the baseline for rates. */
	while (!m.error && (!count || m.seen < count + (json ? 0 : 1))) {
		r = sd_varlink_process(v);
		if (r < 0)
			return fail(r, "Monitor", NULL);
		if (r == 0 && (r = sd_varlink_wait(v, UINT64_MAX)) < 0)
			return fail(r, "Monitor", NULL);
	}
	return m.error;
}

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
		{"interval", required_argument, NULL, 'i'}, {"count", required_argument, NULL, 'c'},
		{"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {},
	};
	if (getenv("IOPFD_SOCKET"))
		socket_path = getenv("IOPFD_SOCKET");
	int o;
	while ((o = getopt_long(argc, argv, "hj", opts, NULL)) >= 0) {
		switch (o) {
		case 's': socket_path = optarg; break;
		case 'j': json = true; break;
		case 'i': interval_ms = (unsigned)atoi(optarg); break;
		case 'c': count = (unsigned)atoi(optarg); break;
		case 'f':
			if (!strcmp(optarg, "openmetrics"))
				metrics_format = METRICS_OPENMETRICS;
			else if (!strcmp(optarg, "prometheus"))
				metrics_format = METRICS_PROMETHEUS;
			else {
				fprintf(stderr, "iopfctl: --format takes openmetrics or prometheus\n");
				return 2;
			}
			break;
		case 'h': help(); return 0;
		default: return 2;
		}
	}
	const char *cmd = optind < argc ? argv[optind] : "status";
	static const struct {
		const char *name;
		int (*fn)(sd_varlink *);
	} cmds[] = {
		{"status", cmd_status}, {"queues", cmd_queues}, {"spaces", cmd_spaces},
		{"bindings", cmd_bindings}, {"users", cmd_users}, {"stats", cmd_stats}, {"monitor", cmd_monitor},
		{"metrics", cmd_metrics},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmd, cmds[i].name))
			continue;
		sd_varlink *v;
		int r = iopfc_connect(socket_path, &v);
		if (r < 0) {
			fprintf(stderr, "iopfctl: cannot connect to %s: %s\n", socket_path, strerror(-r));
			return 1;
		}
		r = cmds[i].fn(v);
		sd_varlink_unref(v);
		return r;
	}
	fprintf(stderr, "iopfctl: unknown command '%s'\n", cmd);
	help();
	return 2;
}
