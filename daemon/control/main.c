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
	       "  --socket-mode MODE            of a socket iopfd makes itself (default 0660)\n"
	       "  --socket-group GROUP          its group (default " IOPFD_SOCKET_GROUP "): root and its members may connect\n"
	       "  --workers N                   worker threads (default: [Workers] Workers=, else online CPUs)\n"
	       "  --busy-poll-us N              a worker polls its queues this long before it sleeps\n"
	       "                                (default: [Workers] BusyPollUsec=, else 0: off)\n"
	       "  --config PATH                 the configuration (default: " IOPFD_CONFIG_FILE "\n"
	       "                                and its drop-ins; see iopfd.conf(5))\n"
	       "  --max-connections-per-uid N   override [Limits] ConnectionsPerUser= (default 64)\n"
	       "  --max-queues-per-uid N        override [Limits] QueuesPerUser= (default 4096)\n"
	       "  --max-spaces-per-uid N        override [Limits] SpacesPerUser= (default 1024)\n"
	       "  --max-regions-per-uid N       override [Limits] RegionsPerUser= (default 4096)\n"
	       "  --version, --help\n"
	       "Pin budgets ([PinBudget] in the configuration) bound the quotas of a user's pinning\n"
	       "address spaces: a user without a grant may reserve 8 MiB, what it could lock itself;\n"
	       "root has an unlimited grant unless the configuration gives it another. The per-user\n"
	       "limits above do not apply to root; 4096 connections in all hold everyone.\n\n"
	       "See iopfd(8), iopfd.conf(5) and io.iopfd(7).\n");
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
	struct manager_config cfg = {0};
	struct config_overrides *over = &cfg.overrides;
	int64_t busy_poll = -1;
	enum { OPT_SOCKET = 256, OPT_SOCKET_MODE, OPT_SOCKET_GROUP, OPT_WORKERS, OPT_BUSY_POLL, OPT_CONFIG, OPT_CONN, OPT_QUEUES, OPT_SPACES, OPT_REGIONS, OPT_VERSION };
	static const struct option opts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"socket-mode", required_argument, NULL, OPT_SOCKET_MODE},
		{"socket-group", required_argument, NULL, OPT_SOCKET_GROUP},
		{"workers", required_argument, NULL, OPT_WORKERS},
		{"busy-poll-us", required_argument, NULL, OPT_BUSY_POLL},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"max-connections-per-uid", required_argument, NULL, OPT_CONN},
		{"max-queues-per-uid", required_argument, NULL, OPT_QUEUES},
		{"max-spaces-per-uid", required_argument, NULL, OPT_SPACES},
		{"max-regions-per-uid", required_argument, NULL, OPT_REGIONS},
		{"version", no_argument, NULL, OPT_VERSION},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	log_setup("iopfd");
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		uint64_t v = 0;
		bool text = o == OPT_SOCKET || o == OPT_CONFIG || o == OPT_SOCKET_GROUP || o == OPT_SOCKET_MODE;
		if (optarg && !text && (parse_u64(optarg, &v) < 0 || v > UINT32_MAX)) {
			log_error("invalid number for --%s: %s", opts[o - OPT_SOCKET].name, optarg);
			return 2;
		}
		switch (o) {
		case OPT_SOCKET: cfg.socket_path = optarg; break;
		case OPT_SOCKET_MODE: {
			char *end;
			unsigned long mode = strtoul(optarg, &end, 8);
			if (!*optarg || *end || mode == 0 || mode > 0777) {
				log_error("invalid mode for --socket-mode: %s", optarg);
				return 2;
			}
			cfg.socket_mode = (mode_t)mode;
			break;
		}
		case OPT_SOCKET_GROUP: cfg.socket_group = optarg; break;
		case OPT_WORKERS: cfg.workers = (unsigned)v; break;
		case OPT_BUSY_POLL: busy_poll = (int64_t)v; break;
		case OPT_CONFIG: cfg.config_path = optarg; break;
		case OPT_CONN: over->value[_ACCT_RESOURCE_MAX] = v, over->given[_ACCT_RESOURCE_MAX] = true; break;
		case OPT_QUEUES: over->value[ACCT_QUEUES] = v, over->given[ACCT_QUEUES] = true; break;
		case OPT_SPACES: over->value[ACCT_SPACES] = v, over->given[ACCT_SPACES] = true; break;
		case OPT_REGIONS: over->value[ACCT_REGIONS] = v, over->given[ACCT_REGIONS] = true; break;
		case OPT_VERSION: puts("iopfd " PROJECT_VERSION); return 0;
		case 'h': help(); return 0;
		default: return 2;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument: %s", argv[optind]);
		return 2;
	}
	int r = config_load(&cfg.config, cfg.config_path);
	if (r < 0) {
		config_done(&cfg.config);
		return 1;
	}
	config_override(&cfg.config, over);
	if (busy_poll >= 0)
		cfg.config.workers.busy_poll_us = (uint64_t)busy_poll;

	struct manager *m;
	r = manager_new(&cfg, &m);
	if (r < 0) {
		config_done(&cfg.config);
		return log_error_errno(r, "Failed to allocate the manager: %m"), 1;
	}
	r = manager_startup(m);
	if (r >= 0)
		r = manager_run(m);
	manager_free(m);
	return r < 0 ? 1 : 0;
}
