/* SPDX-License-Identifier: MIT */
/*
 * The configuration file: every setting, sizes as operators write them,
 * lines that cannot be used (said, counted, skipped), drop-ins in name
 * order with /etc's shadowing the same name elsewhere, and a user's pin
 * budget from its own grant, its groups' or the default.
 */
#include <stdlib.h>
#include <sys/stat.h>

#include "../common.h"
#include "control/config.h"
#include "control/log.h"

static struct iopfd_config parse(const char *text) {
	struct iopfd_config c;
	cr_assert_eq(config_defaults(&c), 0);
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	cr_assert_not_null(f);
	cr_assert_eq(config_parse(&c, f, "test.conf"), 0);
	fclose(f);
	return c;
}

static void init(void) {
	log_set_max_level(LOG_CRIT);
}

TestSuite(config, .init = init);

Test(config, defaults) {
	struct iopfd_config c;
	cr_assert_eq(config_defaults(&c), 0);
	cr_assert_eq(c.limits.connections_per_uid, 64);
	cr_assert_eq(c.limits.max[ACCT_QUEUES], 4096);
	cr_assert_eq(c.pin_default, 8 << 20, "what an unprivileged user may lock by itself");
	struct pin_budget b;
	config_pin_budget(&c, 0, &b);
	cr_assert_eq(b.bytes, IOPFD_PIN_UNLIMITED);
	cr_assert_str_eq(b.source, "user root");
	config_pin_budget(&c, 65534, &b);
	cr_assert_eq(b.bytes, 8 << 20);
	cr_assert_str_eq(b.source, "default");
	config_done(&c);
}

Test(config, every_setting) {
	struct iopfd_config c = parse("# comment\n"
	                              "[Limits]\n"
	                              "ConnectionsPerUser = 7\n"
	                              "QueuesPerUser=8\n"
	                              "SpacesPerUser=9\n"
	                              "RegionsPerUser=10\n"
	                              "[Workers]\n"
	                              "Workers=3\n"
	                              "BusyPollUsec=50\n"
	                              "AnswerSliceGroups=256\n"
	                              "AnswerSliceUsec=200\n"
	                              "; another comment\n"
	                              "[PinBudget]\n"
	                              "Default=4M\n"
	                              "User=root 1G\n"
	                              "User=12345 2GiB\n"
	                              "Group=kvm 16G\n"
	                              "Group=kvm infinity\n");
	cr_assert_eq(c.warnings, 0);
	cr_assert_eq(c.limits.connections_per_uid, 7);
	cr_assert_eq(c.limits.max[ACCT_QUEUES], 8);
	cr_assert_eq(c.limits.max[ACCT_SPACES], 9);
	cr_assert_eq(c.limits.max[ACCT_REGIONS], 10);
	cr_assert_eq(c.workers.workers, 3);
	cr_assert_eq(c.workers.busy_poll_us, 50);
	cr_assert_eq(c.workers.slice_groups, 256);
	cr_assert_eq(c.workers.slice_us, 200);
	cr_assert_eq(c.pin_default, 4 << 20);
	cr_assert_eq(c.n_grants, 3, "root's grant replaced, kvm's given twice is one");
	struct pin_budget b;
	config_pin_budget(&c, 0, &b);
	cr_assert_eq(b.bytes, 1ull << 30, "root is limited by what is configured for it");
	config_pin_budget(&c, 12345, &b);
	cr_assert_eq(b.bytes, 2ull << 30);
	cr_assert_str_eq(b.source, "user 12345");
	cr_assert_eq(c.grants[2].bytes, IOPFD_PIN_UNLIMITED, "the later Group=kvm wins");
	config_done(&c);
}

Test(config, unusable_lines_are_counted_and_skipped) {
	struct iopfd_config c = parse("QueuesPerUser=1\n"             /* outside a section */
	                              "[Limits]\n"
	                              "QueuesPerUser=-1\n"            /* negative */
	                              "SpacesPerUser=many\n"          /* not a number */
	                              "RegionsPerUser=99999999999\n"  /* too large */
	                              "Quota=1\n"                     /* unknown */
	                              "garbage\n"                     /* no '=' */
	                              "[PinBudget]\n"
	                              "Default=8 bananas\n"
	                              "User=root\n"                   /* no size */
	                              "User=ro ot 1G\n"               /* a size that is not one */
	                              "User=bad/name 1G\n"
	                              "[Future]\n"                    /* unknown section: said once */
	                              "Anything=1\n");
	cr_assert_eq(c.warnings, 11);
	struct iopfd_config d;
	cr_assert_eq(config_defaults(&d), 0);
	cr_assert_eq(memcmp(&c.limits, &d.limits, sizeof(d.limits)), 0, "nothing changed");
	cr_assert_eq(c.pin_default, d.pin_default);
	cr_assert_eq(c.n_grants, 1);
	config_done(&c);
	config_done(&d);
}

Test(config, sizes) {
	static const struct {
		const char *text;
		int r;
		uint64_t bytes;
	} cases[] = {
		{"0", 0, 0},           {"4096", 0, 4096},         {"8M", 0, 8 << 20},         {"8m", 0, 8 << 20},
		{"8MiB", 0, 8 << 20},  {"8MB", 0, 8 << 20},       {"1T", 0, 1ull << 40},      {"infinity", 0, UINT64_MAX},
		{"", -EINVAL, 0},      {"-1", -EINVAL, 0},        {"8X", -EINVAL, 0},         {"8Mi", -EINVAL, 0},
		{"M", -EINVAL, 0},     {"99999999T", -ERANGE, 0}, {"99999999999999999999", -ERANGE, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;
		cr_assert_eq(parse_size(cases[i].text, &v), cases[i].r, "\"%s\"", cases[i].text);
		if (cases[i].r == 0)
			cr_assert_eq(v, cases[i].bytes, "\"%s\"", cases[i].text);
	}
	char buf[32];
	format_size(8 << 20, buf, sizeof(buf));
	cr_assert_str_eq(buf, "8 MiB");
	format_size(UINT64_MAX, buf, sizeof(buf));
	cr_assert_str_eq(buf, "infinity");
}

/* uid 65534 (nobody) is in group 65534 in every Debian root. */
Test(config, a_users_grant_then_its_groups_then_the_default) {
	struct pin_budget b;
	struct iopfd_config c = parse("[PinBudget]\nGroup=65534 32M\nGroup=0 1M\n");
	config_pin_budget(&c, 65534, &b);
	cr_assert_eq(b.bytes, 32 << 20, "its group's grant (%s)", b.source);
	cr_assert_str_eq(b.source, "group 65534");
	config_done(&c);
	c = parse("[PinBudget]\nGroup=65534 32M\nUser=65534 16M\n");
	config_pin_budget(&c, 65534, &b);
	cr_assert_eq(b.bytes, 16 << 20, "its own grant beats its group's, even a smaller one");
	config_done(&c);
	c = parse("[PinBudget]\nGroup=65533 32M\n");
	config_pin_budget(&c, 65534, &b);
	cr_assert_eq(b.bytes, 8 << 20, "not a member");
	cr_assert_str_eq(b.source, "default");
	config_pin_budget(&c, 4000000, &b);
	cr_assert_eq(b.bytes, 8 << 20, "a uid the user database does not know");
	config_done(&c);
}

static void write_file(const char *path, const char *text) {
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

Test(config, dropins_in_name_order_after_the_file) {
	char dir[] = "/tmp/iopfd-config-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char file[128], d[160], p[200];
	snprintf(file, sizeof(file), "%s/iopfd.conf", dir);
	snprintf(d, sizeof(d), "%s.d", file);
	write_file(file, "[Limits]\nQueuesPerUser=1\nSpacesPerUser=1\n[PinBudget]\nDefault=1M\n");
	cr_assert_eq(mkdir(d, 0755), 0);
	snprintf(p, sizeof(p), "%s/20-b.conf", d);
	write_file(p, "[Limits]\nQueuesPerUser=3\n");
	snprintf(p, sizeof(p), "%s/10-a.conf", d);
	write_file(p, "[Limits]\nQueuesPerUser=2\nSpacesPerUser=2\n");
	snprintf(p, sizeof(p), "%s/ignored.txt", d);
	write_file(p, "[Limits]\nQueuesPerUser=99\n");
	struct iopfd_config c;
	cr_assert_eq(config_load(&c, file), 0);
	cr_assert_eq(c.limits.max[ACCT_QUEUES], 3, "20-b after 10-a");
	cr_assert_eq(c.limits.max[ACCT_SPACES], 2);
	cr_assert_eq(c.pin_default, 1 << 20);
	config_done(&c);
	struct iopfd_config e;
	snprintf(p, sizeof(p), "%s/missing.conf", dir);
	cr_assert_eq(config_load(&e, p), -ENOENT, "a file named on the command line must be there");
	config_done(&e);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
