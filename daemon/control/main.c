/* SPDX-License-Identifier: MIT */
/* iopfd: the daemon. Lifecycle in manager.c, methods in varlink-*.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iopfd/client.h"
#include "log.h"
#include "manager.h"

#if HAVE_JEMALLOC
/* Misspelled options must fail loudly, not be ignored. */
const char *malloc_conf = "abort_conf:true";
#endif

static void help(void) {
	printf("iopfd: services IOMMU I/O page faults for devices whose memory is not pinned up front.\n\n"
	       "  --socket PATH                 listen on PATH (default: the socket systemd passes,\n"
	       "                                else " IOPFD_SOCKET_DEFAULT ")\n"
	       "  --workers N                   worker threads (default: online CPUs)\n"
	       "  --max-connections-per-uid N   default 64\n"
	       "  --max-queues-per-uid N        default 4096\n"
	       "  --max-spaces-per-uid N        default 1024\n"
	       "  --max-regions-per-uid N       default 4096\n"
	       "  --max-quota-per-uid BYTES     sum of a uid's address space quotas (default 64 GiB)\n"
	       "  --version, --help\n"
	       "root is not limited.\n");
}

static int parse_u64(const char *s, uint64_t *out) {
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv) {
	struct manager_config cfg = {
		.limits = {
			.connections_per_uid = 64,
			.max = {
				[ACCT_QUEUES] = 4096,
				[ACCT_SPACES] = 1024,
				[ACCT_REGIONS] = 4096,
				[ACCT_QUOTA] = 64ull << 30,
			},
		},
	};
	enum { OPT_SOCKET = 256, OPT_WORKERS, OPT_CONN, OPT_QUEUES, OPT_SPACES, OPT_REGIONS, OPT_QUOTA, OPT_VERSION };
	static const struct option opts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"workers", required_argument, NULL, OPT_WORKERS},
		{"max-connections-per-uid", required_argument, NULL, OPT_CONN},
		{"max-queues-per-uid", required_argument, NULL, OPT_QUEUES},
		{"max-spaces-per-uid", required_argument, NULL, OPT_SPACES},
		{"max-regions-per-uid", required_argument, NULL, OPT_REGIONS},
		{"max-quota-per-uid", required_argument, NULL, OPT_QUOTA},
		{"version", no_argument, NULL, OPT_VERSION},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	log_setup("iopfd");
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		uint64_t v = 0;
		if (optarg && o != OPT_SOCKET && (parse_u64(optarg, &v) < 0 || (o != OPT_QUOTA && v > UINT32_MAX))) {
			log_error("invalid number for --%s: %s", opts[o - OPT_SOCKET].name, optarg);
			return 2;
		}
		switch (o) {
		case OPT_SOCKET: cfg.socket_path = optarg; break;
		case OPT_WORKERS: cfg.workers = (unsigned)v; break;
		case OPT_CONN: cfg.limits.connections_per_uid = (unsigned)v; break;
		case OPT_QUEUES: cfg.limits.max[ACCT_QUEUES] = v; break;
		case OPT_SPACES: cfg.limits.max[ACCT_SPACES] = v; break;
		case OPT_REGIONS: cfg.limits.max[ACCT_REGIONS] = v; break;
		case OPT_QUOTA: cfg.limits.max[ACCT_QUOTA] = v; break;
		case OPT_VERSION: puts("iopfd " PROJECT_VERSION); return 0;
		case 'h': help(); return 0;
		default: return 2;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument: %s", argv[optind]);
		return 2;
	}

	struct manager *m;
	int r = manager_new(&cfg, &m);
	if (r < 0)
		return log_error_errno(r, "Failed to allocate the manager: %m"), 1;
	r = manager_startup(m);
	if (r >= 0)
		r = manager_run(m);
	manager_free(m);
	return r < 0 ? 1 : 0;
}
