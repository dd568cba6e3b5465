/* SPDX-License-Identifier: MIT */
/*
 * Taking a relay queue back from the engine: the worker stops reading at
 * once, answers every group it read (the rest of a half-read one included),
 * delivers its answers, and leaves the stream at a group boundary, so that
 * whoever holds the socket next finds every unread group whole.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../common.h"
#include "../relay-stream.h"
#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/engine.h"
#include "engine/space.h"

#define PG 4096ull
#define IOVA 0x200000000ull
#define PAGES 1024

static size_t put_group(uint8_t *buf, uint32_t cookie, unsigned n) {
	return stream_put_group(buf, 0, cookie, n, IOVA, PAGES);
}

static struct iopf_engine *engine;
static struct iopf_space *space;

/* Small reads (24 records) that cut groups often, one read per wake-up,
 * and a grace long enough for a loaded machine. */
static void setup(void) {
	iopf_rcu_register();
	struct iopf_engine_config cfg = {
		.workers = 1, .read_bytes = 24 * IOPF_RECORD_SIZE, .max_group_faults = 16, .fairness_reads = 1,
		.leave_ms = 500,
	};
	cr_assert_eq(iopf_engine_new(&cfg, &engine), 0);
	struct iopf_space_config sc = {
		.backend = IOPF_BACKEND_NONE, .quota = IOPF_QUOTA_UNLIMITED, .page_size = PG,
		.window_min = PG, .window_max = PG, .iommufd = -1,
	};
	cr_assert_eq(iopf_space_new(1, &sc, &space), 0);
	struct iopf_region_config rc = {.iova = IOVA, .length = PAGES * PG, .memfd = -1, .perm = IOPF_PERM_READ};
	cr_assert_eq(iopf_space_add_region(space, &rc, 0, NULL, NULL), IOPF_REGION_ADDED);
}

static void teardown(void) {
	iopf_bindings_remove_space(iopf_engine_bindings(engine), space);
	iopf_engine_free(engine);
	iopf_space_destroy(space);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
}

TestSuite(takeback, .init = setup, .fini = teardown, .timeout = 120);

/* A relay queue in the engine, device 0 bound; we keep a second fd of the
 * engine's end (`mine`), as a client that takes the queue back would. */
struct rig {
	struct iopf_queue *q;
	int dev, mine;
};

static struct rig rig_open(uint32_t id) {
	struct rig r;
	int sv[2];
	relay_pair(sv);
	cr_assert_eq(iopf_queue_new(id, fcntl(sv[0], F_DUPFD_CLOEXEC, 3), IOPF_TRANSPORT_RELAY, &r.q), 0);
	r.mine = sv[0];
	r.dev = sv[1];
	struct iopf_binding_key k = {.queue_id = id, .dev_id = 0, .pasid = IOPF_PASID_NONE};
	cr_assert_eq(iopf_bindings_add(iopf_engine_bindings(engine), &k, space), 0);
	cr_assert_eq(iopf_engine_add_queue(engine, r.q), 0);
	return r;
}

static void rig_close(struct rig *r) {
	iopf_bindings_remove_queue(iopf_engine_bindings(engine), iopf_queue_id(r->q));
	iopf_queue_free(r->q);
	close(r->dev);
	close(r->mine);
}

struct remover {
	struct iopf_queue *q;
	pthread_t th;
	int result;
};

static void *remove_fn(void *arg) {
	struct remover *r = arg;
	r->result = iopf_engine_remove_queue(engine, r->q, IOPF_RELEASE_TO_HOLDER);
	return NULL;
}

static void remove_async(struct remover *r, struct iopf_queue *q) {
	r->q = q;
	pthread_create(&r->th, NULL, remove_fn, r);
}

static struct iopf_counters counters(void) {
	struct iopf_counters c;
	iopf_engine_counters(engine, &c);
	return c;
}

/* A device sending groups of 1..6 records, while the worker reads them 24
 * records at a time. */
static unsigned group_size(uint32_t cookie, uint32_t round) {
	return 1 + (cookie * 5 + round) % 6;
}

struct device {
	int fd;
	uint32_t round, groups;
	pthread_t th;
};

/* The stream goes out in pieces that end inside groups (and records), so
 * the worker mostly holds the start of a group between two pieces. */
static void *device_fn(void *arg) {
	struct device *d = arg;
	static uint8_t buf[96 * 1024];
	size_t len = 0;
	while (len + 6 * sizeof(iopf_record) <= sizeof(buf)) {
		d->groups++;
		len += put_group(buf + len, d->groups, group_size(d->groups, d->round));
	}
	for (size_t off = 0; off < len; off += 4000) {
		size_t n = len - off < 4000 ? len - off : 4000;
		if (send(d->fd, buf + off, n, 0) != (ssize_t)n)
			abort();
		usleep(100);
	}
	return NULL;
}

/* Taken back at a different moment each round while a device sends: every
 * group is either answered once or left whole in the stream, never both. */
Test(takeback, a_stream_is_split_into_answered_and_left_whole) {
	unsigned mid_stream = 0;
	for (uint32_t round = 0; round < 24; round++) {
		struct rig r = rig_open(round + 1);
		struct device d = {.fd = r.dev, .round = round};
		pthread_create(&d.th, NULL, device_fn, &d);
		usleep(100 + round * 150);
		cr_assert_eq(iopf_engine_remove_queue(engine, r.q, IOPF_RELEASE_TO_HOLDER), 0);
		pthread_join(d.th, NULL);

		static struct stream_answers a;
		static uint8_t left[STREAM_MAX_COOKIES], records[STREAM_MAX_COOKIES];
		memset(&a, 0, sizeof(a));
		memset(left, 0, sizeof(left));
		stream_take_answers(r.dev, &a);
		size_t rest = stream_take_rest(r.mine, left, records);
		for (uint32_t c = 1; c <= d.groups; c++) {
			cr_assert_eq(a.seen[c] + left[c], 1, "round %u: group %u answered %u times, left %u times", round,
			             c, a.seen[c], left[c]);
			cr_assert(!left[c] || records[c] == group_size(c, round),
			          "round %u: group %u left with %u of its %u records", round, c, records[c],
			          group_size(c, round));
		}
		cr_assert_eq(a.n + rest, d.groups);
		cr_assert_eq(a.tail_len, 0);
		mid_stream += a.n > 0 && rest > 0;
		rig_close(&r);
	}
	cr_assert_gt(mid_stream, 0, "no round was taken back in the middle of the stream");
	struct iopf_counters c = counters();
	cr_assert_eq(c.cut_groups + c.unsent_responses + c.protocol_errors, 0);
	cr_assert_eq(c.invalid[IOPF_INVALID_NO_BINDING], 0);
}

/* The engine read the start of a group when the queue is taken back: it
 * waits for the rest, answers the group, and takes nothing behind it. */
Test(takeback, the_rest_of_a_half_read_group_is_read_and_answered) {
	struct rig r = rig_open(1);
	uint8_t buf[8 * sizeof(iopf_record)];
	size_t g1 = put_group(buf, 1, 1), g2 = put_group(buf + g1, 2, 2), g3 = put_group(buf + g1 + g2, 3, 1);
	const size_t cut = g1 + 60; /* group 2 cut inside its second record */
	stream_send(r.dev, buf, cut);
	stream_wait_unread(r.mine, 0);
	struct remover rm;
	remove_async(&rm, r.q);
	usleep(20 * 1000);
	stream_send(r.dev, buf + cut, g1 + g2 + g3 - cut); /* the rest of 2, and all of 3 */
	pthread_join(rm.th, NULL);
	cr_assert_eq(rm.result, 0);

	static struct stream_answers a;
	static uint8_t left[STREAM_MAX_COOKIES];
	stream_take_answers(r.dev, &a);
	cr_assert_eq(a.n, 2);
	cr_assert(a.seen[1] == 1 && a.seen[2] == 1);
	cr_assert_eq(stream_take_rest(r.mine, left, NULL), 1);
	cr_assert_eq(left[3], 1, "the group behind it stays for the next reader");
	cr_assert_eq(counters().cut_groups, 0);
	rig_close(&r);
}

/* A peer that never sends the rest: after the grace period the removal
 * ends, and the cut group is counted. */
Test(takeback, a_group_whose_rest_never_comes_is_counted_cut) {
	struct rig r = rig_open(1);
	uint8_t buf[4 * sizeof(iopf_record)];
	size_t g1 = put_group(buf, 1, 1);
	put_group(buf + g1, 2, 3);
	stream_send(r.dev, buf, g1 + 100);
	stream_wait_unread(r.mine, 0);
	cr_assert_eq(iopf_engine_remove_queue(engine, r.q, IOPF_RELEASE_TO_HOLDER), 0);
	static struct stream_answers a;
	stream_take_answers(r.dev, &a);
	cr_assert_eq(a.n, 1);
	cr_assert_eq(counters().cut_groups, 1);
	rig_close(&r);
}

/* Fill the engine's answers until it holds some back: the peer does not
 * read them. Returns the groups sent. */
static uint32_t back_up(struct rig *r) {
	uint32_t sent = 0;
	for (;;) {
		uint8_t g[sizeof(iopf_record)];
		put_group(g, ++sent, 1);
		ssize_t n = send(r->dev, g, sizeof(g), MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			/* Full: still so after a pause when the engine stopped
			 * reading because its answers wait. */
			usleep(50 * 1000);
			n = send(r->dev, g, sizeof(g), MSG_DONTWAIT);
			if (n < 0 && errno == EAGAIN)
				return sent - 1;
		}
		cr_assert_eq(n, (ssize_t)sizeof(g), "send: %s", strerror(errno));
		cr_assert_lt(sent, STREAM_MAX_COOKIES - 1, "the answers never backed up");
		if (sent % 64 == 0)
			usleep(1000);
	}
}

/*
 * Answers held back: the peer stopped reading them, the engine stopped
 * reading its groups, and then the queue is taken back. With `reads`, the
 * peer reads again within the grace period and every answer arrives; else
 * the unsent ones are counted. Returns false when the engine had no answers
 * held back after all (it was only slow to read, on a busy machine), so
 * that the caller runs it again.
 */
static bool held_back_round(uint32_t id, bool reads) {
	int small = 4096;
	struct rig r = rig_open(id);
	setsockopt(r.dev, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(r.mine, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	uint64_t unsent_before = counters().unsent_responses;
	uint32_t sent = back_up(&r);
	struct remover rm;
	remove_async(&rm, r.q);
	usleep(20 * 1000);
	static struct stream_answers a;
	static uint8_t left[STREAM_MAX_COOKIES];
	memset(&a, 0, sizeof(a));
	memset(left, 0, sizeof(left));
	bool joined = false;
	for (int i = 0; i < 1000 && !joined; i++) {
		if (reads)
			stream_take_answers(r.dev, &a);
		joined = pthread_tryjoin_np(rm.th, NULL) == 0;
		usleep(1000);
	}
	cr_assert(joined, "the removal did not end");
	cr_assert_eq(rm.result, 0);
	stream_take_answers(r.dev, &a);
	size_t rest = stream_take_rest(r.mine, left, NULL);
	uint64_t unsent = counters().unsent_responses - unsent_before;
	if (reads) {
		cr_assert_eq(a.tail_len, 0);
		cr_assert_eq(unsent, 0);
		for (uint32_t c = 1; c <= sent; c++)
			cr_assert_eq(a.seen[c] + left[c], 1, "group %u answered %u times, left %u times", c, a.seen[c],
			             left[c]);
	} else {
		cr_assert_eq(a.n + rest + unsent, sent, "every group answered, left, or counted unsent");
	}
	rig_close(&r);
	/* The engine held answers back iff it stopped reading before the end. */
	return rest > 0 && (reads || unsent > 0);
}

Test(takeback, answers_held_back_are_delivered_before_letting_go) {
	bool held = false;
	for (uint32_t round = 1; round <= 10 && !held; round++)
		held = held_back_round(round, true);
	cr_assert(held, "the engine never held answers back");
}

Test(takeback, answers_never_taken_are_counted_unsent) {
	bool held = false;
	for (uint32_t round = 1; round <= 10 && !held; round++)
		held = held_back_round(round, false);
	cr_assert(held, "the engine never held answers back");
}

/* A paused queue is not read; resumed, it is served again. */
Test(takeback, a_paused_queue_keeps_its_faults_until_resumed) {
	struct rig r = rig_open(1);
	cr_assert_eq(iopf_engine_pause_queue(engine, r.q), 0);
	uint8_t buf[2 * sizeof(iopf_record)];
	size_t len = put_group(buf, 1, 2);
	stream_send(r.dev, buf, len);
	usleep(20 * 1000);
	cr_assert_eq(stream_unread(r.mine), (int)len);
	cr_assert_eq(iopf_engine_resume_queue(engine, r.q), 0);
	stream_wait_unread(r.mine, 0);
	static struct stream_answers a;
	for (int i = 0; i < 1000 && !a.seen[1]; i++) {
		stream_take_answers(r.dev, &a);
		usleep(1000);
	}
	cr_assert_eq(a.seen[1], 1);
	cr_assert_eq(iopf_engine_remove_queue(engine, r.q, IOPF_RELEASE_TO_HOLDER), 0);
	rig_close(&r);
}
