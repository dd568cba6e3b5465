/* SPDX-License-Identifier: MIT */
/*
 * Pin budgets against the real daemon, as the users they bound: nobody
 * pins through iopfd more than the configuration grants it, and a user
 * without a grant no more than it could lock itself (8 MiB).
 *
 * The daemon runs as root on a configuration written here. Each case forks
 * a child that becomes the user before it connects (the daemon takes the
 * peer's credentials at connect time).
 */
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <stdarg.h>

#include "daemon.h"
#include "iopf_abi.h"

#define PG 4096ull
#define MIB (1ull << 20)
#define IOVA 0x100000000ull
#define LAST IOMMU_PGFAULT_FLAGS_LAST_PAGE

static struct daemon d;
static char config[64];

/* In a child, where a failed assertion must end the child, not the test. */
#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "child: " __VA_ARGS__);            \
			fputc('\n', stderr);                               \
			_exit(1);                                          \
		}                                                          \
	} while (0)

/* Run fn as uid:gid (no supplementary groups) in a child; its exit status. */
static int as_user(uid_t uid, gid_t gid, void (*fn)(void *), void *arg) {
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(3);
		fn(arg);
		fflush(NULL);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static void write_config(const char *fmt, ...) {
	snprintf(config, sizeof(config), "/tmp/iopfd-budget-%d.conf", (int)getpid());
	FILE *f = fopen(config, "w");
	cr_assert_not_null(f);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static void start(void) {
	const char *extra[] = {"--config", config, NULL};
	daemon_start(&d, extra);
}

static void stop(void) {
	cr_assert_eq(daemon_stop(&d), 0);
	unlink(config);
}

static long daemon_locked_kb(void) {
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)d.pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* CreateSpace (mlock) of `quota`: the error's name and parameters. */
static const char *create(sd_varlink *v, uint64_t quota, uint64_t *space, sd_json_variant **params) {
	sd_json_variant *p = NULL;
	CHECK(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_STRING("backend", "mlock"),
	                     SD_JSON_BUILD_PAIR_UNSIGNED("quota", quota)) >= 0, "json");
	const char *err = NULL;
	sd_json_variant *rep = NULL;
	int r = iopfc_call(v, "io.iopfd.CreateSpace", p, NULL, 0, &rep, &err);
	sd_json_variant_unref(p);
	CHECK(r == 0 || r == -EREMOTEIO, "CreateSpace: %s", strerror(-r));
	if (params)
		*params = rep;
	if (r == 0 && space)
		*space = iopfc_u64(rep, "space");
	return r == 0 ? NULL : err;
}

/* --- a user without a grant -------------------------------------------------------------- */

/*
 * The case that showed the hole: a 256 MiB mlock space, a 256 MiB memfd,
 * every page faulted through a relay queue. The space is refused (named
 * error, budget 8 MiB, the line that would raise it); an 8 MiB one is
 * made, and all 65,536 pages are served through it while the daemon
 * never has more than 8 MiB locked.
 */
static void nobody_faults_256_mib(void *arg) {
	sd_varlink *v;
	CHECK(iopfc_connect(d.socket, &v) == 0, "connect");
	sd_json_variant *e;
	const char *err = create(v, 256 * MIB, NULL, &e);
	CHECK(err && !strcmp(err, "io.iopfd.PinBudgetExceeded"), "256 MiB: %s", err ? err : "accepted");
	CHECK(iopfc_u64(e, "budget") == 8 * MIB, "budget %lu", (unsigned long)iopfc_u64(e, "budget"));
	CHECK(iopfc_u64(e, "requested") == 256 * MIB, "requested");
	const char *grant = sd_json_variant_string(sd_json_variant_by_key(e, "grant"));
	const char *hint = sd_json_variant_string(sd_json_variant_by_key(e, "hint"));
	CHECK(grant && !strcmp(grant, "default"), "grant %s", grant);
	CHECK(hint && strstr(hint, "[PinBudget]") && strstr(hint, "iopfd.conf"), "hint: %s", hint);

	uint64_t space;
	CHECK(!create(v, 8 * MIB, &space, NULL), "an 8 MiB space is within the budget");
	CHECK(create(v, PG, NULL, NULL), "the budget is used up");
	const size_t pages = 256 * MIB / PG;
	int memfd = sealed_memfd(pages * PG);
	const char *e2 = NULL;
	CHECK(iopfc_add_region(v, space, IOVA, pages * PG, memfd, 0, 3, NULL, &e2) == 0, "AddRegion: %s", e2);
	int sv[2];
	relay_pair(sv);
	uint32_t q;
	CHECK(iopfc_register_queue(v, sv[0], "relay", NULL, &q, &e2) == 0, "RegisterQueue: %s", e2);
	close(sv[0]);
	CHECK(iopfc_bind(v, q, 0, IOPFC_PASID_NONE, space, &e2) == 0, "Bind: %s", e2);

	enum { BATCH = 256 };
	iopf_record recs[BATCH];
	iopf_response resp[BATCH];
	/* The workers lock their own buffers at start: what pinning adds. */
	long base_kb = daemon_locked_kb(), peak_kb = 0;
	uint64_t success = 0;
	for (size_t first = 0; first < pages; first += BATCH) {
		for (unsigned i = 0; i < BATCH; i++)
			recs[i] = (iopf_record){.flags = LAST, .perm = IOMMU_PGFAULT_PERM_READ, .addr = IOVA + (first + i) * PG, .cookie = i + 1};
		CHECK(send(sv[1], recs, sizeof(recs), 0) == (ssize_t)sizeof(recs), "send");
		size_t got = 0;
		while (got < sizeof(resp)) {
			ssize_t k = recv(sv[1], (uint8_t *)resp + got, sizeof(resp) - got, 0);
			CHECK(k > 0, "recv");
			got += (size_t)k;
		}
		for (unsigned i = 0; i < BATCH; i++)
			success += resp[i].code == IOMMUFD_PAGE_RESP_SUCCESS;
		long kb = daemon_locked_kb();
		if (kb > peak_kb)
			peak_kb = kb;
	}
	printf("# nobody, no grant: 256 MiB space refused (budget 8 MiB); %zu pages faulted through an 8 MiB space: "
	       "%lu SUCCESS, the daemon's VmLck at most %ld kB (%ld kB its workers' buffers)\n",
	       pages, (unsigned long)success, peak_kb, base_kb);
	CHECK(success == pages, "%lu of %zu pages served", (unsigned long)success, pages);
#if defined(__SANITIZE_ADDRESS__)
	/* AddressSanitizer's mlock() locks nothing: the plain build counts. */
	CHECK(peak_kb - base_kb <= 8192, "the daemon locked %ld kB over its own %ld kB", peak_kb, base_kb);
#else
	CHECK(peak_kb > base_kb && peak_kb - base_kb <= 8192, "the daemon locked %ld kB over its own %ld kB", peak_kb,
	      base_kb);
#endif

	/* Its figures: its own budget and reservation, nobody else's. */
	sd_json_variant *st;
	CHECK(iopfc_statistics(v, &st, &e2) == 0, "GetStatistics");
	sd_json_variant *users = sd_json_variant_by_key(st, "users");
	CHECK(sd_json_variant_elements(users) == 1, "%zu users shown to nobody", sd_json_variant_elements(users));
	sd_json_variant *u = sd_json_variant_by_index(users, 0);
	CHECK(iopfc_u64(u, "pinBudget") == 8 * MIB && iopfc_u64(u, "pinReserved") == 8 * MIB, "its own figures");
	CHECK(iopfc_u64(u, "pinned") <= 8 * MIB && iopfc_u64(u, "spaces") == 1, "its own use");
	close(sv[1]);
	close(memfd);
	sd_varlink_flush_close_unref(v);
}

Test(budget, a_user_without_a_grant_pins_at_most_8_mib, .timeout = 240) {
	write_config("[PinBudget]\nUser=12345 1G\n"); /* someone else's grant */
	start();
	struct passwd *pw = getpwnam("nobody");
	uid_t uid = pw ? pw->pw_uid : 65534;
	cr_assert_eq(as_user(uid, uid, nobody_faults_256_mib, NULL), 0, "nobody's checks failed");
	stop();
}

/* --- grants ----------------------------------------------------------------------------- */

struct expect {
	uint64_t budget;
	const char *grant;
};

/* Everything up to the budget in 1 MiB spaces, then one more is refused
 * naming the grant; none spaces reserve nothing. */
static void fills_its_budget(void *arg) {
	const struct expect *x = arg;
	sd_varlink *v;
	CHECK(iopfc_connect(d.socket, &v) == 0, "connect");
	for (uint64_t used = 0; used < x->budget; used += MIB)
		CHECK(!create(v, MIB, NULL, NULL), "1 MiB space at %lu MiB of %lu", (unsigned long)(used / MIB),
		      (unsigned long)(x->budget / MIB));
	sd_json_variant *e;
	const char *err = create(v, MIB, NULL, &e);
	CHECK(err && !strcmp(err, "io.iopfd.PinBudgetExceeded"), "over the budget: %s", err ? err : "accepted");
	const char *grant = sd_json_variant_string(sd_json_variant_by_key(e, "grant"));
	CHECK(grant && !strcmp(grant, x->grant), "grant \"%s\", expected \"%s\"", grant, x->grant);
	CHECK(iopfc_u64(e, "reserved") == x->budget, "reserved");
	const char *e2;
	CHECK(iopfc_create_space(v, "none", 1ull << 40, 0, 0, -1, 0, NULL, &e2) == 0, "none: %s", e2);
	sd_varlink_flush_close_unref(v);
}

Test(budget, a_users_grant_and_a_groups_grant) {
	/* uid 65533 has no entry in the user database: a grant by number.
	 * uid 1 (daemon) is in group 1 (daemon) in every Debian system. */
	struct group *g = getgrgid(1);
	cr_assert_not_null(g, "no group 1 here");
	write_config("[PinBudget]\nDefault=2M\nUser=65533 16M\nGroup=%s 32M\n", g->gr_name);
	start();
	struct expect user = {16 * MIB, "user 65533"}, group = {32 * MIB, ""}, none = {2 * MIB, "default"};
	char gname[96];
	snprintf(gname, sizeof(gname), "group %s", g->gr_name);
	group.grant = gname;
	cr_assert_eq(as_user(65533, 65533, fills_its_budget, &user), 0, "the user grant");
	cr_assert_eq(as_user(1, 1, fills_its_budget, &group), 0, "the group grant");
	cr_assert_eq(as_user(65532, 65532, fills_its_budget, &none), 0, "the default");

	/* Root sees every user's figures (the children's spaces went with
	 * their connections). */
	sd_varlink *v = daemon_connect(&d);
	sd_json_variant *st;
	const char *err;
	cr_assert_eq(iopfc_statistics(v, &st, &err), 0);
	sd_json_variant *users = sd_json_variant_by_key(st, "users"), *u;
	size_t seen = 0;
	for (size_t i = 0; i < sd_json_variant_elements(users); i++) {
		u = sd_json_variant_by_index(users, i);
		uint64_t uid = iopfc_u64(u, "uid");
		if (uid == 65533) {
			seen++;
			cr_assert_eq(iopfc_u64(u, "pinBudget"), 16 * MIB);
		} else if (uid == 1) {
			seen++;
			cr_assert_eq(iopfc_u64(u, "pinBudget"), 32 * MIB);
		} else if (uid == 0) {
			seen++;
			cr_assert(sd_json_variant_is_null(sd_json_variant_by_key(u, "pinBudget")), "root: unlimited");
		}
		cr_assert_eq(iopfc_u64(u, "pinReserved"), 0, "uid %lu: spaces gone with their clients", (unsigned long)uid);
	}
	cr_assert_eq(seen, 3);
	sd_varlink_unref(v);
	stop();
}

/* Root is limited by what is configured for it, like anyone. */
Test(budget, root_is_limited_only_by_its_grant) {
	write_config("[PinBudget]\nUser=root 4M\n");
	start();
	sd_varlink *v = daemon_connect(&d);
	const char *err;
	cr_assert_eq(iopfc_create_space(v, "mlock", 4 * MIB, 0, 0, -1, 0, NULL, &err), 0, "%s", err);
	cr_assert_eq(iopfc_create_space(v, "mlock", PG, 0, 0, -1, 0, NULL, &err), -EREMOTEIO);
	cr_assert_str_eq(err, "io.iopfd.PinBudgetExceeded");
	sd_varlink_unref(v);
	stop();
}

/* SIGHUP (systemctl reload) reads the configuration again: new budgets for
 * new reservations, what is reserved stays. */
static void reserves(void *arg) {
	const uint64_t *quota = arg;
	sd_varlink *v;
	CHECK(iopfc_connect(d.socket, &v) == 0, "connect");
	CHECK(!create(v, *quota, NULL, NULL), "%lu MiB within the budget", (unsigned long)(*quota / MIB));
	CHECK(create(v, PG, NULL, NULL), "and not a page more");
	sd_varlink_flush_close_unref(v);
}

Test(budget, reload_reads_the_budgets_again) {
	write_config("[PinBudget]\nDefault=2M\n");
	start();
	uint64_t quota = 2 * MIB;
	cr_assert_eq(as_user(65532, 65532, reserves, &quota), 0);
	write_config("[PinBudget]\nDefault=4M\n");
	kill(d.pid, SIGHUP);
	quota = 4 * MIB;
	int st = 1;
	for (int i = 0; i < 100 && st; i++) {
		usleep(10000);
		st = as_user(65532, 65532, reserves, &quota);
	}
	cr_assert_eq(st, 0, "the new default was not taken");
	stop();
}

/* Who pays: with RequireAllocated=yes, a user's region must be allocated in
 * its memfd, so that iopfd's pins allocate nothing (charged to iopfd's
 * cgroup); root may ask for the same check per region. */
static void adds_regions(void *arg) {
	sd_varlink *v;
	CHECK(iopfc_connect(d.socket, &v) == 0, "connect");
	uint64_t space;
	CHECK(!create(v, MIB, &space, NULL), "space");
	int fd = sealed_memfd(MIB);
	const char *err = NULL;
	CHECK(iopfc_add_region(v, space, IOVA, MIB, fd, 0, 3, NULL, &err) == -EREMOTEIO &&
	      !strcmp(err, "io.iopfd.InvalidRegion"), "a sparse memfd was taken: %s", err ? err : "no error");
	CHECK(fallocate(fd, 0, 0, MIB) == 0, "fallocate: %s", strerror(errno));
	CHECK(iopfc_add_region(v, space, IOVA, MIB, fd, 0, 3, NULL, &err) == 0, "an allocated one was refused: %s", err);
	close(fd);
	sd_varlink_flush_close_unref(v);
}

Test(budget, regions_must_be_allocated_when_the_operator_says_so) {
	write_config("[PinBudget]\nRequireAllocated=yes\n");
	start();
	cr_assert_eq(as_user(65532, 65532, adds_regions, NULL), 0);
	/* Root is not held to it, unless it asks. */
	sd_varlink *v = daemon_connect(&d);
	const char *err;
	uint64_t space;
	cr_assert_eq(iopfc_create_space(v, "mlock", MIB, 0, 0, -1, 0, &space, &err), 0, "%s", err);
	int fd = sealed_memfd(MIB);
	cr_assert_eq(iopfc_add_region(v, space, IOVA, MIB, fd, 0, 3, NULL, &err), 0, "%s", err);
	sd_json_variant *p = NULL;
	cr_assert_eq(sd_json_buildo(&p, SD_JSON_BUILD_PAIR_UNSIGNED("space", space),
	                            SD_JSON_BUILD_PAIR_UNSIGNED("iova", IOVA + MIB), SD_JSON_BUILD_PAIR_UNSIGNED("length", MIB),
	                            SD_JSON_BUILD_PAIR_INTEGER("memfdIndex", 0),
	                            SD_JSON_BUILD_PAIR("access", SD_JSON_BUILD_ARRAY(SD_JSON_BUILD_STRING("read"))),
	                            SD_JSON_BUILD_PAIR_BOOLEAN("allocated", true)),
	             0);
	int fd2 = sealed_memfd(MIB);
	cr_assert_eq(iopfc_call(v, "io.iopfd.AddRegion", p, &fd2, 1, NULL, &err), -EREMOTEIO);
	cr_assert_str_eq(err, "io.iopfd.InvalidRegion");
	sd_json_variant_unref(p);
	close(fd);
	close(fd2);
	sd_varlink_unref(v);
	stop();
}
