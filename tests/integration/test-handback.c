/* SPDX-License-Identifier: MIT */
/*
 * The real iopfd giving relay queues back: by UnregisterQueue and by the
 * exit of the client that registered them, with a backlog queued, the
 * daemon running or stopped (SIGSTOP) while it piles up. Whoever holds the
 * socket afterwards finds every group iopfd did not read, whole, and every
 * group it read was answered once, SUCCESS: never INVALID for want of a
 * binding.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "../relay-stream.h"
#include "daemon.h"

#define IOVA 0x300000000ull
#define PAGES 1024

static struct daemon d;

static void stop(void) {
	if (d.pid > 0) {
		kill(d.pid, SIGCONT);
		daemon_stop(&d);
	}
}

TestSuite(handback, .fini = stop, .timeout = 120);

/* A client's setup: a `none` space over a sealed memfd, one relay queue
 * with device 7 bound. */
static uint32_t client_setup(sd_varlink *v, int daemon_end) {
	const char *err = NULL;
	uint64_t space;
	uint32_t queue;
	cr_assert_eq(iopfc_create_space(v, "none", 1 << 30, 0, 0, -1, 0, &space, &err), 0, "%s", err);
	int memfd = sealed_memfd(PAGES * STREAM_PG);
	cr_assert_eq(iopfc_add_region(v, space, IOVA, PAGES * STREAM_PG, memfd, 0, 1, NULL, &err), 0, "%s", err);
	close(memfd);
	cr_assert_eq(iopfc_register_queue(v, daemon_end, "relay", "takeback", &queue, &err), 0, "%s", err);
	cr_assert_eq(iopfc_bind(v, queue, 7, IOPFC_PASID_NONE, space, &err), 0, "%s", err);
	return queue;
}

static unsigned group_size(uint32_t cookie) {
	return 1 + cookie % 5;
}

/* Groups 1..n, sent in pieces that end inside groups. */
static void send_backlog(int dev, uint32_t n) {
	static uint8_t buf[STREAM_MAX_COOKIES * 5 * sizeof(iopf_record)];
	size_t len = 0;
	for (uint32_t c = 1; c <= n; c++)
		len += stream_put_group(buf + len, 7, c, group_size(c), IOVA, PAGES);
	for (size_t off = 0; off < len; off += 3000)
		stream_send(dev, buf + off, len - off < 3000 ? len - off : 3000);
}

/* Every group answered once (SUCCESS) or left whole in the stream, not both;
 * and iopfd refused nothing. Returns the groups iopfd answered. */
static size_t check_split(sd_varlink *v, int dev, int daemon_end, uint32_t n) {
	static struct stream_answers a;
	static uint8_t left[STREAM_MAX_COOKIES], records[STREAM_MAX_COOKIES];
	memset(&a, 0, sizeof(a));
	memset(left, 0, sizeof(left));
	stream_take_answers(dev, &a);
	size_t rest = stream_take_rest(daemon_end, left, records);
	for (uint32_t c = 1; c <= n; c++) {
		cr_assert_eq(a.seen[c] + left[c], 1, "group %u answered %u times, left %u times", c, a.seen[c], left[c]);
		cr_assert(!left[c] || records[c] == group_size(c), "group %u left with %u of its records", c, records[c]);
	}
	cr_assert_eq(a.n + rest, n);
	cr_assert_eq(a.tail_len, 0, "an answer cut short");
	sd_json_variant *s;
	const char *err;
	cr_assert_eq(iopfc_statistics(v, &s, &err), 0);
	cr_assert_eq(iopfc_u64(s, "groups"), a.n, "iopfd answered what the device saw");
	cr_assert_eq(iopfc_u64(s, "success"), a.n);
	cr_assert_eq(iopfc_u64(sd_json_variant_by_key(s, "invalid"), "no_binding"), 0);
	cr_assert_eq(iopfc_u64(s, "cutGroups") + iopfc_u64(s, "unsentResponses"), 0);
	return a.n;
}

struct unregister_call {
	sd_varlink *v;
	uint32_t queue;
	int r;
	uint64_t groups;
	pthread_t th;
};

static void *unregister_fn(void *arg) {
	struct unregister_call *u = arg;
	sd_json_variant *p = NULL, *rep = NULL;
	const char *err = NULL;
	if (sd_json_buildo(&p, SD_JSON_BUILD_PAIR_UNSIGNED("queue", u->queue)) < 0)
		return NULL;
	u->r = iopfc_call(u->v, "io.iopfd.UnregisterQueue", p, NULL, 0, &rep, &err);
	if (u->r == 0)
		u->groups = iopfc_u64(rep, "groups");
	sd_json_variant_unref(p);
	return NULL;
}

/* A backlog, then UnregisterQueue: the client reads the rest itself. With
 * `stopped`, the backlog piles up (and the call is made) while iopfd is
 * stopped, so that its worker and its control thread wake together. */
static void unregister_with_backlog(bool stopped) {
	daemon_start(&d, NULL);
	sd_varlink *v = daemon_connect(&d);
	int sv[2];
	relay_pair(sv);
	struct unregister_call u = {.v = v, .queue = client_setup(v, sv[0]), .r = -1};
	enum { N = 1000 }; /* what the socket holds while iopfd is stopped */
	if (stopped)
		kill(d.pid, SIGSTOP);
	send_backlog(sv[1], N);
	pthread_create(&u.th, NULL, unregister_fn, &u);
	if (stopped) {
		usleep(50 * 1000);
		kill(d.pid, SIGCONT);
	}
	pthread_join(u.th, NULL);
	cr_assert_eq(u.r, 0);
	size_t answered = check_split(v, sv[1], sv[0], N);
	cr_assert_eq(u.groups, answered, "UnregisterQueue reports what it answered");
	sd_varlink_unref(v);
	close(sv[0]);
	close(sv[1]);
	cr_assert_eq(daemon_stop(&d), 0);
}

Test(handback, unregister_leaves_the_unread_backlog_to_the_client) {
	unregister_with_backlog(false);
}

Test(handback, unregister_while_stopped_leaves_the_unread_backlog_to_the_client) {
	unregister_with_backlog(true);
}

/* A client registers the queue and is killed; its parent holds the same
 * socket and reads what iopfd did not. */
static void client_exit_with_backlog(bool stopped) {
	daemon_start(&d, NULL);
	int sv[2], ready[2];
	relay_pair(sv);
	cr_assert_eq(pipe(ready), 0);
	pid_t client = fork();
	cr_assert_geq(client, 0);
	if (client == 0) {
		sd_varlink *v;
		if (iopfc_connect(d.socket, &v) < 0)
			_exit(1);
		client_setup(v, sv[0]);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1, "the client did not set up");
	enum { N = 1000 }; /* what the socket holds while iopfd is stopped */
	if (stopped)
		kill(d.pid, SIGSTOP);
	send_backlog(sv[1], N);
	kill(client, SIGKILL);
	waitpid(client, NULL, 0);
	if (stopped)
		kill(d.pid, SIGCONT);

	sd_varlink *v = daemon_connect(&d);
	sd_json_variant *s;
	const char *err;
	for (int i = 0; i < 500; i++) {
		cr_assert_eq(iopfc_statistics(v, &s, &err), 0);
		if (iopfc_u64(s, "queues") == 0)
			break;
		usleep(10000);
	}
	cr_assert_eq(iopfc_u64(s, "queues"), 0, "the queue outlived its client");
	check_split(v, sv[1], sv[0], N);
	sd_varlink_unref(v);
	close(sv[0]);
	close(sv[1]);
	close(ready[0]);
	close(ready[1]);
	cr_assert_eq(daemon_stop(&d), 0);
}

Test(handback, client_exit_leaves_the_unread_backlog_to_the_other_holder) {
	client_exit_with_backlog(false);
}

Test(handback, client_exit_while_stopped_leaves_the_unread_backlog_to_the_other_holder) {
	client_exit_with_backlog(true);
}
