/* SPDX-License-Identifier: MIT */
/*
 * The real iopfd process on a private socket, driven over Varlink with fd
 * passing: emulated devices under load, clients going away, SIGTERM under
 * load, and a table of bad requests while another client's load runs.
 */
#include <pthread.h>
#include <pwd.h>

#include "daemon.h"
#include "emu.h"

#define PG 4096ull
#define IOVA 0x300000000ull
#define PAGES 2048

static struct daemon d;

static void stop(void) {
	if (d.pid > 0)
		daemon_stop(&d);
}

TestSuite(daemon, .fini = stop, .timeout = 120);

/* A client's load: one address space over a sealed memfd, relay queues
 * with emulated devices bound to it. */
struct load {
	sd_varlink *v;
	uint64_t space;
	unsigned n;
	struct emu_queue *emu[16];
	uint32_t qid[16];
	int keep[16]; /* our copy of the daemon's end, to see what it never read */
};

static void load_start(struct load *l, unsigned queues, const char *backend, uint64_t quota, bool keep) {
	const char *err = NULL;
	l->v = daemon_connect(&d);
	l->n = queues;
	cr_assert_eq(iopfc_create_space(l->v, backend, quota, 4 * PG, 4 * PG, -1, 0, &l->space, &err), 0, "%s", err);
	int memfd = sealed_memfd(PAGES * PG);
	cr_assert_eq(iopfc_add_region(l->v, l->space, IOVA, PAGES * PG, memfd, 0, 3, NULL, &err), 0, "%s", err);
	close(memfd);
	for (unsigned i = 0; i < queues; i++) {
		int sv[2];
		relay_pair(sv);
		cr_assert_eq(iopfc_register_queue(l->v, sv[0], "relay", "test", &l->qid[i], &err), 0, "%s", err);
		l->keep[i] = keep ? sv[0] : -1;
		if (!keep)
			close(sv[0]);
		for (uint32_t dev = 0; dev < 2; dev++)
			for (uint32_t p = 0; p < 4; p++)
				cr_assert_eq(iopfc_bind(l->v, l->qid[i], dev, p, l->space, &err), 0, "%s", err);
		struct emu_config ec = {
			.devices = 2, .pasids = 4, .outstanding = 16, .group_min = 1, .group_max = 6,
			.iova_base = IOVA, .iova_pages = PAGES, .pattern = EMU_RANDOM, .perm = IOMMU_PGFAULT_PERM_READ,
			.seed = i + 1, .expect = NULL,
		};
		cr_assert_eq(emu_queue_new(&ec, sv[1], &l->emu[i]), 0);
	}
}

struct runner {
	struct load *l;
	unsigned duration_ms, grace_ms;
	pthread_t th;
};

static void *run(void *arg) {
	struct runner *r = arg;
	emu_run(r->l->emu, r->l->n, r->duration_ms, r->duration_ms + 20000, r->grace_ms);
	return NULL;
}

static void run_async(struct runner *r, struct load *l, unsigned duration_ms, unsigned grace_ms) {
	*r = (struct runner){.l = l, .duration_ms = duration_ms, .grace_ms = grace_ms};
	pthread_create(&r->th, NULL, run, r);
}

static uint64_t load_check(struct load *l) {
	uint64_t answered = 0;
	for (unsigned i = 0; i < l->n; i++) {
		struct emu_stats st;
		emu_queue_finish(l->emu[i]);
		emu_queue_stats(l->emu[i], &st);
		cr_assert_eq(emu_violations(&st), 0, "queue %u: unknown %lu dup %lu bad %lu missing %lu", i,
		             st.unknown_cookie, st.duplicate, st.bad_code, st.missing);
		answered += st.success + st.invalid;
	}
	return answered;
}

/* Every group the daemon read (wholly within the bytes it consumed) was
 * answered; only groups it never read may be outstanding. */
static void check_nothing_lost(struct load *l) {
	static uint8_t buf[1 << 20];
	for (unsigned i = 0; i < l->n; i++) {
		uint64_t unread = 0;
		for (;;) {
			ssize_t k = recv(l->keep[i], buf, sizeof(buf), MSG_DONTWAIT);
			if (k <= 0)
				break;
			unread += (uint64_t)k;
		}
		uint64_t consumed = emu_queue_bytes_sent(l->emu[i]) - unread;
		cr_assert_eq(emu_queue_unanswered_before(l->emu[i], consumed), 0,
		             "queue %u: groups read by the daemon but never answered", i);
		struct emu_stats st;
		emu_queue_stats(l->emu[i], &st);
		cr_assert_eq(st.unknown_cookie + st.duplicate + st.bad_code, 0);
	}
}

static void load_free(struct load *l) {
	for (unsigned i = 0; i < l->n; i++) {
		emu_queue_free(l->emu[i]);
		if (l->keep[i] >= 0)
			close(l->keep[i]);
	}
	if (l->v)
		sd_varlink_unref(l->v);
}

Test(daemon, emulated_devices_under_load) {
	daemon_start(&d, NULL);
	struct load l;
	load_start(&l, 8, "mlock", 256 * PG, false);
	cr_assert_eq(emu_run(l.emu, l.n, 1500, 20000, 3000), 0);
	uint64_t answered = load_check(&l);
	cr_assert_gt(answered, 10000);
	sd_json_variant *s;
	const char *err;
	cr_assert_eq(iopfc_statistics(l.v, &s, &err), 0);
	cr_assert_eq(iopfc_u64(s, "groups"), answered, "the daemon counts what the devices saw");
	cr_assert_eq(iopfc_u64(s, "queues"), 8);
	cr_assert_eq(iopfc_u64(s, "bindings"), 64);
	cr_assert_leq(iopfc_u64(s, "pinned"), 256 * PG, "quota held");
	cr_assert_eq(iopfc_u64(s, "writeRejects") + iopfc_u64(s, "protocolErrors"), 0);
	load_free(&l);
	cr_assert_eq(daemon_stop(&d), 0, "clean exit");
}

Test(daemon, client_disconnect_mid_load_tears_down) {
	daemon_start(&d, NULL);
	struct load l;
	load_start(&l, 4, "mlock", 128 * PG, true);
	struct runner r;
	run_async(&r, &l, 1500, 500);
	usleep(500 * 1000);
	sd_varlink_flush_close_unref(l.v); /* the client goes away mid-load */
	l.v = NULL;
	pthread_join(r.th, NULL);
	check_nothing_lost(&l);

	sd_varlink *other = daemon_connect(&d);
	sd_json_variant *s;
	const char *err;
	for (int i = 0; i < 100; i++) { /* the teardown runs on the daemon's loop */
		cr_assert_eq(iopfc_statistics(other, &s, &err), 0);
		if (iopfc_u64(s, "queues") == 0 && iopfc_u64(s, "spaces") == 0)
			break;
		usleep(10000);
	}
	cr_assert_eq(iopfc_u64(s, "queues"), 0, "queues went with their client");
	cr_assert_eq(iopfc_u64(s, "spaces"), 0);
	cr_assert_eq(iopfc_u64(s, "bindings"), 0);
	cr_assert_eq(iopfc_u64(s, "pinned"), 0, "everything unmapped");
	sd_varlink_unref(other);
	load_free(&l);
	cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, sigterm_under_load_loses_nothing) {
	daemon_start(&d, NULL);
	struct load l;
	load_start(&l, 6, "none", 1 << 30, true);
	struct runner r;
	run_async(&r, &l, 1500, 500);
	usleep(600 * 1000);
	cr_assert_eq(daemon_stop(&d), 0, "SIGTERM drains and exits 0");
	pthread_join(r.th, NULL);
	check_nothing_lost(&l);
	uint64_t answered = 0;
	for (unsigned i = 0; i < l.n; i++) {
		struct emu_stats st;
		emu_queue_stats(l.emu[i], &st);
		answered += st.success;
	}
	cr_assert_gt(answered, 1000, "load was running when the signal came");
	load_free(&l);
}

/* --- bad requests --------------------------------------------------------------------------- */

struct bad_case {
	const char *what;
	const char *method;
	const char *params; /* JSON; $SPACE / $QUEUE replaced by the victim's ids */
	int fd_kind;        /* 0 none, 1 memfd sealed, 2 memfd unsealed, 3 pipe, 4 relay socket, 5 seqpacket */
	const char *error;
};

static const struct bad_case bad_cases[] = {
	{"missing field", "io.iopfd.CreateSpace", "{\"backend\":\"none\"}", 0, "org.varlink.service.InvalidParameter"},
	{"extra field", "io.iopfd.CreateSpace", "{\"backend\":\"none\",\"quota\":4096,\"color\":1}", 0,
	 "org.varlink.service.InvalidParameter"},
	{"wrong type", "io.iopfd.CreateSpace", "{\"backend\":\"none\",\"quota\":\"lots\"}", 0,
	 "org.varlink.service.InvalidParameter"},
	{"unknown backend", "io.iopfd.CreateSpace", "{\"backend\":\"magic\",\"quota\":4096}", 0,
	 "org.varlink.service.InvalidParameter"},
	{"bad page size", "io.iopfd.CreateSpace", "{\"backend\":\"none\",\"quota\":65536,\"pageSize\":1000}", 0,
	 "io.iopfd.InvalidConfiguration"},
	{"iommufd without fd", "io.iopfd.CreateSpace", "{\"backend\":\"iommufd\",\"quota\":65536}", 0,
	 "io.iopfd.InvalidConfiguration"},
	{"memfd as iommufd", "io.iopfd.CreateSpace",
	 "{\"backend\":\"iommufd\",\"quota\":65536,\"iommufdIndex\":0,\"ioasId\":1}", 1, "io.iopfd.BadFileDescriptor"},
	{"no fd passed", "io.iopfd.RegisterQueue", "{\"fdIndex\":0}", 0, "io.iopfd.BadFileDescriptor"},
	{"fd index out of range", "io.iopfd.RegisterQueue", "{\"fdIndex\":3}", 4, "io.iopfd.BadFileDescriptor"},
	{"memfd as queue", "io.iopfd.RegisterQueue", "{\"fdIndex\":0}", 1, "io.iopfd.BadFileDescriptor"},
	{"pipe as queue", "io.iopfd.RegisterQueue", "{\"fdIndex\":0}", 3, "io.iopfd.BadFileDescriptor"},
	{"seqpacket as relay", "io.iopfd.RegisterQueue", "{\"fdIndex\":0}", 5, "io.iopfd.BadFileDescriptor"},
	{"socket claimed iommufd", "io.iopfd.RegisterQueue", "{\"fdIndex\":0,\"transport\":\"iommufd\"}", 4,
	 "io.iopfd.BadFileDescriptor"},
	{"unsealed memfd", "io.iopfd.AddRegion",
	 "{\"space\":$SPACE,\"iova\":1073741824,\"length\":4096,\"memfdIndex\":0,\"access\":[\"read\"]}", 2,
	 "io.iopfd.UnsealedMemory"},
	{"pipe as memory", "io.iopfd.AddRegion",
	 "{\"space\":$SPACE,\"iova\":1073741824,\"length\":4096,\"memfdIndex\":0,\"access\":[\"read\"]}", 3,
	 "io.iopfd.BadFileDescriptor"},
	{"overlapping region", "io.iopfd.AddRegion",
	 "{\"space\":$SPACE,\"iova\":12884905984,\"length\":4096,\"memfdIndex\":0,\"access\":[\"read\"]}", 1,
	 "io.iopfd.RegionOverlap"},
	{"region past the memfd", "io.iopfd.AddRegion",
	 "{\"space\":$SPACE,\"iova\":1073741824,\"length\":8192,\"memfdIndex\":0,\"offset\":4096,\"access\":[\"read\"]}", 1,
	 "io.iopfd.RegionOutOfRange"},
	{"misaligned region", "io.iopfd.AddRegion",
	 "{\"space\":$SPACE,\"iova\":1073741825,\"length\":4096,\"memfdIndex\":0,\"access\":[\"read\"]}", 1,
	 "io.iopfd.InvalidRegion"},
	{"exec-only region", "io.iopfd.AddRegion",
	 "{\"space\":$SPACE,\"iova\":1073741824,\"length\":4096,\"memfdIndex\":0,\"access\":[\"exec\"]}", 1,
	 "io.iopfd.InvalidRegion"},
	{"no such space", "io.iopfd.DestroySpace", "{\"space\":9999}", 0, "io.iopfd.NoSuchSpace"},
	{"no such queue", "io.iopfd.UnregisterQueue", "{\"queue\":9999}", 0, "io.iopfd.NoSuchQueue"},
	{"no such region", "io.iopfd.RemoveRegion", "{\"space\":$SPACE,\"region\":77}", 0, "io.iopfd.NoSuchRegion"},
	{"bind twice", "io.iopfd.Bind", "{\"queue\":$QUEUE,\"device\":0,\"pasid\":0,\"space\":$SPACE}", 0,
	 "io.iopfd.BindingExists"},
	{"PASID too wide", "io.iopfd.Bind", "{\"queue\":$QUEUE,\"device\":0,\"pasid\":2000000,\"space\":$SPACE}", 0,
	 "org.varlink.service.InvalidParameter"},
	{"unbind what is not bound", "io.iopfd.Unbind", "{\"queue\":$QUEUE,\"device\":42}", 0,
	 "io.iopfd.NoSuchBinding"},
	{"monitor without more", "io.iopfd.Monitor", "{}", 0, "org.varlink.service.ExpectedMore"},
};

static int make_fd(int kind, int *extra) {
	int sv[2], p[2];
	*extra = -1;
	switch (kind) {
	case 1:
		return sealed_memfd(PG);
	case 2: {
		int fd = memfd_create("unsealed", MFD_CLOEXEC);
		cr_assert_eq(ftruncate(fd, PG), 0);
		return fd;
	}
	case 3:
		cr_assert_eq(pipe(p), 0);
		*extra = p[1];
		return p[0];
	case 4:
		relay_pair(sv);
		*extra = sv[1];
		return sv[0];
	case 5:
		cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
		*extra = sv[1];
		return sv[0];
	}
	return -1;
}

static void replace(char *out, size_t n, const char *in, const char *key, uint64_t val) {
	const char *at = strstr(in, key);
	if (!at) {
		snprintf(out, n, "%s", in);
		return;
	}
	snprintf(out, n, "%.*s%lu%s", (int)(at - in), in, (unsigned long)val, at + strlen(key));
}

static void call_expect(sd_varlink *v, const char *method, const char *json, int fd, const char *expect,
                        const char *what) {
	sd_json_variant *p = NULL;
	cr_assert_eq(sd_json_parse(json, 0, &p, NULL, NULL), 0, "%s: bad JSON in the test", what);
	const char *err = NULL;
	int r = iopfc_call(v, method, p, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, NULL, &err);
	sd_json_variant_unref(p);
	cr_assert_eq(r, -EREMOTEIO, "%s: expected %s, got %d", what, expect, r);
	cr_assert_str_eq(err, expect, "%s", what);
}

/* Run as another user in a child; returns its exit status (0 = all good). */
static int as_nobody(void (*fn)(void *), void *arg) {
	pid_t pid = fork();
	if (pid == 0) {
		struct passwd *pw = getpwnam("nobody");
		uid_t uid = pw ? pw->pw_uid : 65534;
		if (setgid(uid) < 0 || setuid(uid) < 0)
			_exit(3);
		fn(arg);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

struct victim {
	uint32_t queue;
	uint64_t space;
};

static void nobody_touches(void *arg) {
	struct victim *vi = arg;
	sd_varlink *v = daemon_connect(&d);
	const char *err = NULL;
	char json[256];
	snprintf(json, sizeof(json), "{\"space\":%lu}", (unsigned long)vi->space);
	call_expect(v, "io.iopfd.DestroySpace", json, -1, "io.iopfd.PermissionDenied", "someone else's space");
	snprintf(json, sizeof(json), "{\"queue\":%u}", vi->queue);
	call_expect(v, "io.iopfd.UnregisterQueue", json, -1, "io.iopfd.PermissionDenied", "someone else's queue");
	sd_json_variant *rep;
	cr_assert_eq(iopfc_call(v, "io.iopfd.ListQueues", NULL, NULL, 0, &rep, &err), 0);
	cr_assert_eq(sd_json_variant_elements(sd_json_variant_by_key(rep, "queues")), 0, "others' queues are hidden");
	/* Limits: the daemon runs with --max-queues-per-uid 2, and a user
	 * without a grant may reserve 8 MiB for pinning. */
	for (int i = 0; i < 2; i++) {
		int sv[2];
		relay_pair(sv);
		cr_assert_eq(iopfc_register_queue(v, sv[0], NULL, NULL, NULL, &err), 0, "%s", err);
	}
	int sv[2];
	relay_pair(sv);
	cr_assert_eq(iopfc_register_queue(v, sv[0], NULL, NULL, NULL, &err), -EREMOTEIO);
	cr_assert_str_eq(err, "io.iopfd.LimitReached");
	cr_assert_eq(iopfc_create_space(v, "mlock", 16 << 20, 0, 0, -1, 0, NULL, &err), -EREMOTEIO);
	cr_assert_str_eq(err, "io.iopfd.PinBudgetExceeded", "over the pin budget");
	cr_assert_eq(iopfc_create_space(v, "none", 16 << 20, 0, 0, -1, 0, NULL, &err), 0,
	             "none pins nothing: its quota reserves nothing (%s)", err);
	sd_varlink_unref(v);
}

Test(daemon, bad_requests_get_named_errors_while_others_run) {
	const char *extra[] = {"--max-queues-per-uid", "2", NULL};
	daemon_start(&d, extra);
	struct load l;
	load_start(&l, 4, "none", 1 << 30, false);
	struct runner r;
	run_async(&r, &l, 2000, 2000);

	sd_varlink *v = daemon_connect(&d);
	char json[512];
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char tmp[512];
		replace(tmp, sizeof(tmp), c->params, "$SPACE", l.space);
		replace(json, sizeof(json), tmp, "$QUEUE", l.qid[0]);
		int extra_fd;
		int fd = make_fd(c->fd_kind, &extra_fd);
		/* The victim's objects belong to the load's client: act as it. */
		sd_varlink *who = strstr(c->params, "$") ? l.v : v;
		call_expect(who, c->method, json, fd, c->error, c->what);
		if (fd >= 0)
			close(fd);
		if (extra_fd >= 0)
			close(extra_fd);
	}
	struct victim vi = {.queue = l.qid[0], .space = l.space};
	cr_assert_eq(as_nobody(nobody_touches, &vi), 0, "the other user's checks failed");

	sd_json_variant *s;
	const char *err;
	cr_assert_eq(iopfc_statistics(v, &s, &err), 0);
	sd_json_variant *errors = sd_json_variant_by_key(s, "requestErrors");
	cr_assert_geq(iopfc_u64(errors, "io.iopfd.BadFileDescriptor"), 7, "refusals are counted");
	cr_assert_geq(iopfc_u64(errors, "io.iopfd.PermissionDenied"), 2);
	cr_assert_geq(iopfc_u64(errors, "io.iopfd.LimitReached"), 1);
	cr_assert_geq(iopfc_u64(errors, "io.iopfd.PinBudgetExceeded"), 1);

	pthread_join(r.th, NULL);
	cr_assert_gt(load_check(&l), 1000, "the other client's load ran on");
	sd_varlink_unref(v);
	load_free(&l);
	cr_assert_eq(daemon_stop(&d), 0);
}

/* ConnectionsPerUser= (here --max-connections-per-uid 4) holds every user
 * but root: nobody's fifth connection is closed unanswered, and a sixth
 * works again once one of the four has gone; root keeps twice as many. */
#define CONN_MAX 4

static bool answers(sd_varlink *v) {
	const char *err = NULL;
	return iopfc_statistics(v, NULL, &err) == 0;
}

static void nobody_connects(void *arg) {
	sd_varlink *v[CONN_MAX + 1];
	for (int i = 0; i < CONN_MAX; i++) {
		v[i] = daemon_connect(&d);
		cr_assert(answers(v[i]), "nobody's connection %d of %d", i + 1, CONN_MAX);
	}
	v[CONN_MAX] = daemon_connect(&d);
	cr_assert_not(answers(v[CONN_MAX]), "one more than ConnectionsPerUser= is refused");
	sd_varlink_unref(v[CONN_MAX]);
	sd_varlink_flush_close_unref(v[0]);
	bool again = false;
	for (int i = 0; i < 100 && !again; i++) {
		sd_varlink *w = daemon_connect(&d);
		again = answers(w);
		sd_varlink_unref(w);
		if (!again)
			usleep(10000); /* the daemon has not seen the close yet */
	}
	cr_assert(again, "a connection gone makes room for another");
	for (int i = 1; i < CONN_MAX; i++)
		sd_varlink_unref(v[i]);
}

Test(daemon, connections_per_user_hold_everyone_but_root) {
	const char *extra[] = {"--max-connections-per-uid", "4", NULL};
	daemon_start(&d, extra);
	sd_varlink *v[2 * CONN_MAX];
	for (int i = 0; i < 2 * CONN_MAX; i++) {
		v[i] = daemon_connect(&d);
		cr_assert(answers(v[i]), "root's connection %d", i + 1);
	}
	cr_assert_eq(as_nobody(nobody_connects, NULL), 0, "nobody's checks failed");
	for (int i = 0; i < 2 * CONN_MAX; i++) {
		cr_assert(answers(v[i]), "root's connection %d still answers", i + 1);
		sd_varlink_unref(v[i]);
	}
	cr_assert_eq(daemon_stop(&d), 0);
}

Test(daemon, listings_and_unregister) {
	daemon_start(&d, NULL);
	struct load l;
	load_start(&l, 2, "none", 1 << 20, false);
	const char *err;
	sd_json_variant *rep;
	cr_assert_eq(iopfc_call(l.v, "io.iopfd.ListBindings", NULL, NULL, 0, &rep, &err), 0);
	cr_assert_eq(sd_json_variant_elements(sd_json_variant_by_key(rep, "bindings")), 16);
	cr_assert_eq(iopfc_call(l.v, "io.iopfd.ListSpaces", NULL, NULL, 0, &rep, &err), 0);
	sd_json_variant *sp = sd_json_variant_by_index(sd_json_variant_by_key(rep, "spaces"), 0);
	cr_assert_eq(iopfc_u64(sp, "regions"), 1);
	cr_assert_eq(iopfc_u64(sp, "bindings"), 16);
	const char *fa = sd_json_variant_string(sd_json_variant_by_key(sp, "faultAround"));
	const char *ev = sd_json_variant_string(sd_json_variant_by_key(sp, "eviction"));
	cr_assert(fa && ev, "a space says its policy, the default resolved");

	/* A policy asked for is the one listed; an unknown one is refused. */
	sd_json_variant *p = NULL;
	cr_assert_eq(sd_json_parse("{\"backend\":\"mlock\",\"quota\":65536,\"faultAround\":\"adaptive\","
	                           "\"eviction\":\"twoQueue\"}", 0, &p, NULL, NULL), 0);
	cr_assert_eq(iopfc_call(l.v, "io.iopfd.CreateSpace", p, NULL, 0, &rep, &err), 0, "%s", err);
	sd_json_variant_unref(p);
	uint64_t chosen = iopfc_u64(rep, "space");
	cr_assert_eq(iopfc_call(l.v, "io.iopfd.ListSpaces", NULL, NULL, 0, &rep, &err), 0);
	sd_json_variant *spaces = sd_json_variant_by_key(rep, "spaces");
	bool found = false;
	for (size_t i = 0; i < sd_json_variant_elements(spaces); i++) {
		sd_json_variant *x = sd_json_variant_by_index(spaces, i);
		if (iopfc_u64(x, "id") != chosen)
			continue;
		found = true;
		cr_assert_str_eq(sd_json_variant_string(sd_json_variant_by_key(x, "faultAround")), "adaptive");
		cr_assert_str_eq(sd_json_variant_string(sd_json_variant_by_key(x, "eviction")), "twoQueue");
	}
	cr_assert(found);
	cr_assert_eq(iopfc_destroy_space(l.v, chosen, &err), 0);
	cr_assert_eq(sd_json_parse("{\"backend\":\"mlock\",\"quota\":65536,\"eviction\":\"lru\"}", 0, &p, NULL, NULL),
	             0);
	cr_assert_eq(iopfc_call(l.v, "io.iopfd.CreateSpace", p, NULL, 0, &rep, &err), -EREMOTEIO);
	sd_json_variant_unref(p);
	cr_assert_str_eq(err, "org.varlink.service.InvalidParameter");
	cr_assert_eq(iopfc_unbind(l.v, l.qid[0], 0, 0, &err), 0);
	cr_assert_eq(iopfc_unregister_queue(l.v, l.qid[1], &err), 0);
	cr_assert_eq(iopfc_call(l.v, "io.iopfd.ListQueues", NULL, NULL, 0, &rep, &err), 0);
	sd_json_variant *qs = sd_json_variant_by_key(rep, "queues");
	cr_assert_eq(sd_json_variant_elements(qs), 1);
	cr_assert_eq(iopfc_u64(sd_json_variant_by_index(qs, 0), "bindings"), 7);
	cr_assert_eq(iopfc_remove_region(l.v, l.space, 1, &err), 0);
	cr_assert_eq(iopfc_destroy_space(l.v, l.space, &err), 0);
	cr_assert_eq(iopfc_call(l.v, "io.iopfd.ListBindings", NULL, NULL, 0, &rep, &err), 0);
	cr_assert_eq(sd_json_variant_elements(sd_json_variant_by_key(rep, "bindings")), 0,
	             "destroying a space removes its bindings");
	load_free(&l);
	cr_assert_eq(daemon_stop(&d), 0);
}
