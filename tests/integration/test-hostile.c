/* SPDX-License-Identifier: MIT */
/*
 * Hostile peers against the real daemon: relay devices that send garbage,
 * cut records, endless or huge groups, wrong or repeated cookies, floods;
 * clients that pass the wrong kind of fd, tamper with their memory, or
 * reach for another user's objects. One table row per hostile input, each
 * saying what the daemon must do and which counter must move, and each a
 * test case of its own against a daemon of its own. Meanwhile a victim
 * client's emulated devices run on a relay load (none and mlock backends)
 * that must finish with zero violations and every group SUCCESS.
 *
 * (The plain bad-request table and the first cross-user checks are in
 * test-daemon.c; these extend them.)
 */
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/un.h>

#include "daemon.h"
#include "emu.h"

#define PG 4096ull
#define IOVA 0x400000000ull
#define PAGES 2048
#define LAST IOMMU_PGFAULT_FLAGS_LAST_PAGE
#define PASID_VALID IOMMU_PGFAULT_FLAGS_PASID_VALID

static struct daemon d;

static void stop(void) {
	if (d.pid > 0)
		daemon_stop(&d);
}

TestSuite(hostile, .fini = stop, .timeout = 300);

/* --- the victim: a client whose devices must not notice any of this ------------------------ */

enum { VICTIM_QUEUES = 4 };

struct victim {
	sd_varlink *v;
	uint64_t space[2];
	int memfd[2];
	unsigned n;
	struct emu_queue *emu[VICTIM_QUEUES];
	uint32_t qid[VICTIM_QUEUES];
	int stop;
	pthread_t th;
};

static int expect_success(void *ud, const iopf_record *recs, unsigned n) {
	return IOMMUFD_PAGE_RESP_SUCCESS;
}

/* Two spaces (none, and mlock with one-page windows: at most 2 x 16 x 6
 * pages are held at once, far below its quota, so nothing is ever refused),
 * two relay queues on each. */
static void victim_start(struct victim *vi) {
	const char *err = NULL;
	*vi = (struct victim){.n = VICTIM_QUEUES};
	vi->v = daemon_connect(&d);
	const char *backends[2] = {"none", "mlock"};
	for (int s = 0; s < 2; s++) {
		cr_assert_eq(iopfc_create_space(vi->v, backends[s], 512 * PG, PG, PG, -1, 0, &vi->space[s], &err), 0, "%s",
		             err);
		vi->memfd[s] = sealed_memfd(PAGES * PG);
		cr_assert_eq(iopfc_add_region(vi->v, vi->space[s], IOVA, PAGES * PG, vi->memfd[s], 0, 3, NULL, &err), 0,
		             "%s", err);
	}
	for (unsigned i = 0; i < vi->n; i++) {
		int sv[2];
		relay_pair(sv);
		cr_assert_eq(iopfc_register_queue(vi->v, sv[0], "relay", "victim", &vi->qid[i], &err), 0, "%s", err);
		close(sv[0]);
		for (uint32_t dev = 0; dev < 2; dev++)
			cr_assert_eq(iopfc_bind(vi->v, vi->qid[i], dev, IOPFC_PASID_NONE, vi->space[i % 2], &err), 0, "%s",
			             err);
		struct emu_config ec = {
			.devices = 2, .outstanding = 16, .group_min = 1, .group_max = 6, .iova_base = IOVA,
			.iova_pages = PAGES, .pattern = EMU_RANDOM, .perm = IOMMU_PGFAULT_PERM_READ, .seed = 100 + i,
			.expect = expect_success,
		};
		cr_assert_eq(emu_queue_new(&ec, sv[1], &vi->emu[i]), 0);
	}
}

static void victim_progress(void *ud, unsigned elapsed_ms) {
	struct victim *vi = ud;
	if (__atomic_load_n(&vi->stop, __ATOMIC_ACQUIRE))
		for (unsigned i = 0; i < vi->n; i++)
			emu_queue_stop(vi->emu[i]);
}

static void *victim_run(void *arg) {
	struct victim *vi = arg;
	emu_run_progress(vi->emu, vi->n, 0, 280000, 5000, victim_progress, vi, 50);
	return NULL;
}

/* Groups the daemon answered on each of the victim's queues, by the ids it
 * registered: ListQueues shows root every queue, the hostile peers' too. */
static void victim_queue_groups(struct victim *vi, uint64_t groups[VICTIM_QUEUES]) {
	sd_json_variant *rep;
	const char *err;
	cr_assert_eq(iopfc_call(vi->v, "io.iopfd.ListQueues", NULL, NULL, 0, &rep, &err), 0);
	sd_json_variant *qs = sd_json_variant_by_key(rep, "queues");
	for (unsigned k = 0; k < vi->n; k++)
		groups[k] = 0;
	for (size_t i = 0; i < sd_json_variant_elements(qs); i++) {
		sd_json_variant *q = sd_json_variant_by_index(qs, i);
		for (unsigned k = 0; k < vi->n; k++)
			if (iopfc_u64(q, "id") == vi->qid[k])
				groups[k] = iopfc_u64(q, "groups");
	}
}

/* Groups the daemon answered on the victim's queues so far (and on no
 * other: root sees the hostile peers' queues too). */
static uint64_t victim_groups(struct victim *vi) {
	uint64_t groups[VICTIM_QUEUES], n = 0;
	victim_queue_groups(vi, groups);
	for (unsigned k = 0; k < vi->n; k++)
		n += groups[k];
	return n;
}

/* Until each of the victim's queues has been answered `more` groups since
 * `since`, whatever that takes: counted in groups, not time, so a loaded
 * machine only waits longer. The bound is for a daemon that stopped serving
 * the victim, far beyond any slowness. */
static void victim_served(struct victim *vi, const uint64_t since[VICTIM_QUEUES], uint64_t more, const char *input,
                          const char *when) {
	uint64_t now[VICTIM_QUEUES];
	for (unsigned polls = 0;; polls++) {
		victim_queue_groups(vi, now);
		unsigned k = 0;
		while (k < vi->n && now[k] >= since[k] + more)
			k++;
		if (k == vi->n)
			return;
		cr_assert_lt(polls, 6000, "%s: %s, victim queue %u was answered %lu of %lu groups", input, when, k,
		             now[k] - since[k], more);
		usleep(10000);
	}
}

static void victim_finish(struct victim *vi) {
	__atomic_store_n(&vi->stop, 1, __ATOMIC_RELEASE);
	pthread_join(vi->th, NULL);
	uint64_t answered = 0;
	for (unsigned i = 0; i < vi->n; i++) {
		struct emu_stats st;
		emu_queue_finish(vi->emu[i]);
		emu_queue_stats(vi->emu[i], &st);
		cr_assert_eq(emu_violations(&st), 0,
		             "victim queue %u: unknown %lu dup %lu bad %lu unexpected %lu missing %lu", i, st.unknown_cookie,
		             st.duplicate, st.bad_code, st.unexpected, st.missing);
		cr_assert_eq(st.invalid, 0, "victim queue %u: every group SUCCESS", i);
		answered += st.success;
		emu_queue_free(vi->emu[i]);
	}
	cr_assert_gt(answered, 5000, "the victim's load ran (%lu groups)", answered);
	for (int s = 0; s < 2; s++)
		close(vi->memfd[s]);
	sd_varlink_unref(vi->v);
}

/* --- counters ------------------------------------------------------------------------------- */

struct counters {
	uint64_t protocol, io, groups;
	uint64_t invalid[8];      /* by reason, in the order below */
	uint64_t request[16];     /* by error name, in the order below */
};

static const char *const reasons[] = {"defect", "no_binding", "no_region", "permission", "quota", "backend", "dropped"};
static const char *const request_errors[] = {
	"io.iopfd.BadFileDescriptor", "io.iopfd.UnsealedMemory", "io.iopfd.PermissionDenied",
	"org.varlink.service.InvalidParameter", "io.iopfd.RegionOutOfRange", "io.iopfd.BackendFailed",
};
enum { R_DEFECT, R_NO_BINDING, R_NO_REGION, R_PERM };
enum { E_BAD_FD, E_UNSEALED, E_DENIED, E_INVALID_PARAM, E_OUT_OF_RANGE, E_BACKEND };

static sd_varlink *observer;

static struct counters counters(void) {
	sd_json_variant *s;
	const char *err;
	cr_assert_eq(iopfc_statistics(observer, &s, &err), 0);
	struct counters c = {
		.protocol = iopfc_u64(s, "protocolErrors"),
		.io = iopfc_u64(s, "ioErrors"),
		.groups = iopfc_u64(s, "groups"),
	};
	sd_json_variant *inv = sd_json_variant_by_key(s, "invalid");
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		c.invalid[i] = iopfc_u64(inv, reasons[i]);
	sd_json_variant *req = sd_json_variant_by_key(s, "requestErrors");
	for (size_t i = 0; i < sizeof(request_errors) / sizeof(request_errors[0]); i++)
		c.request[i] = iopfc_u64(req, request_errors[i]);
	return c;
}

/* The reason names the daemon uses: check the list above is right. */
static void check_reason_names(void) {
	sd_json_variant *s;
	const char *err;
	cr_assert_eq(iopfc_statistics(observer, &s, &err), 0);
	sd_json_variant *inv = sd_json_variant_by_key(s, "invalid");
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		cr_assert_not_null(sd_json_variant_by_key(inv, reasons[i]), "no invalid reason \"%s\"", reasons[i]);
}

/* --- a hostile relay peer ---------------------------------------------------------------------- */

struct peer {
	sd_varlink *v;
	uint64_t space;
	uint32_t queue;
	int fd;     /* the device's end */
	int memfd;
};

/* Its own client, space (windows up to 16 pages) and relay queue; device 0
 * without PASID and device 1 with PASID 5 are bound. */
static void peer_open_on(struct peer *p, const char *backend, int *theirs) {
	const char *err = NULL;
	p->v = daemon_connect(&d);
	cr_assert_eq(iopfc_create_space(p->v, backend, 1 << 30, PG, 16 * PG, -1, 0, &p->space, &err), 0, "%s", err);
	p->memfd = sealed_memfd(PAGES * PG);
	cr_assert_eq(iopfc_add_region(p->v, p->space, IOVA, PAGES * PG, p->memfd, 0, 3, NULL, &err), 0, "%s", err);
	int sv[2];
	relay_pair(sv);
	cr_assert_eq(iopfc_register_queue(p->v, sv[0], "relay", "hostile", &p->queue, &err), 0, "%s", err);
	if (theirs)
		*theirs = sv[0]; /* kept open, the peer is never seen dropped */
	else
		close(sv[0]);
	p->fd = sv[1];
	cr_assert_eq(iopfc_bind(p->v, p->queue, 0, IOPFC_PASID_NONE, p->space, &err), 0, "%s", err);
	cr_assert_eq(iopfc_bind(p->v, p->queue, 1, 5, p->space, &err), 0, "%s", err);
}

/* On the none backend: it pins nothing. */
static void peer_open_keep(struct peer *p, int *theirs) {
	peer_open_on(p, "none", theirs);
}

static void peer_open(struct peer *p) {
	peer_open_keep(p, NULL);
}

static void peer_close(struct peer *p) {
	if (p->fd >= 0)
		close(p->fd);
	close(p->memfd);
	sd_varlink_flush_close_unref(p->v);
}

static void peer_send(struct peer *p, const void *buf, size_t len) {
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(p->fd, (const uint8_t *)buf + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* dropped meanwhile: the row checks that */
		off += (size_t)n;
	}
}

/* Responses until `want` came, the daemon closed its end, or timeout_ms of
 * silence. *closed tells which. */
static size_t peer_read(struct peer *p, iopf_response *r, size_t want, int timeout_ms, bool *closed) {
	size_t got = 0;
	*closed = false;
	uint8_t buf[8 * 1024];
	size_t have = 0;
	while (got < want) {
		struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
		if (poll(&pfd, 1, timeout_ms) <= 0)
			break;
		/* Never more than wanted: what is not returned stays in the socket. */
		size_t room = (want - got) * sizeof(*r) - have;
		if (room > sizeof(buf) - have)
			room = sizeof(buf) - have;
		ssize_t n = recv(p->fd, buf + have, room, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			*closed = true;
			break;
		}
		if (n < 0)
			continue;
		have += (size_t)n;
		size_t i = 0;
		for (; i + sizeof(*r) <= have && got < want; i += sizeof(*r))
			memcpy(&r[got++], buf + i, sizeof(*r));
		memmove(buf, buf + i, have - i);
		have -= i;
	}
	return got;
}

/* After the row: the peer is still served (a good group is answered) or
 * has been dropped (its end reads EOF). */
static bool peer_dropped(struct peer *p) {
	iopf_record rec = {.flags = LAST, .dev_id = 0, .perm = IOMMU_PGFAULT_PERM_READ, .addr = IOVA, .cookie = 4242};
	send(p->fd, &rec, sizeof(rec), MSG_NOSIGNAL | MSG_DONTWAIT);
	iopf_response r[64];
	bool closed;
	for (;;) {
		size_t n = peer_read(p, r, 1, 5000, &closed);
		if (closed)
			return true;
		cr_assert_eq(n, 1, "neither answered nor dropped");
		if (r[0].cookie == 4242) {
			cr_assert_eq(r[0].code, IOMMUFD_PAGE_RESP_SUCCESS);
			return false;
		}
	}
}

static iopf_record rec(uint32_t flags, uint32_t cookie, uint64_t page) {
	return (iopf_record){.flags = flags, .dev_id = 0, .perm = IOMMU_PGFAULT_PERM_READ, .addr = IOVA + page * PG,
	                     .cookie = cookie};
}

/* Send records, read the answers that come, and check the outcome. */
struct outcome {
	size_t answers;           /* responses expected */
	uint32_t code;            /* all of them */
	bool dropped;             /* the daemon lets go of the peer */
};

static void relay_case(struct peer *p, const void *bytes, size_t len, struct outcome want, const char *what) {
	peer_send(p, bytes, len);
	iopf_response r[1024];
	bool closed;
	size_t n = peer_read(p, r, want.answers + 1, want.dropped ? 5000 : 300, &closed);
	cr_assert_eq(n, want.answers, "%s: %zu answers, want %zu", what, n, want.answers);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(r[i].code, want.code, "%s: answer %zu has code %u", what, i, r[i].code);
		for (size_t j = 0; j < i; j++)
			cr_assert_neq(r[i].cookie, r[j].cookie, "%s: a cookie answered twice", what);
	}
	cr_assert_eq(closed || peer_dropped(p), want.dropped, "%s: %s", what,
	             want.dropped ? "should have been dropped" : "should still be served");
}

/* --- the rows ------------------------------------------------------------------------------------ */

struct row {
	const char *input;
	const char *outcome; /* what the daemon does, which counter */
	unsigned protocol;   /* protocolErrors it causes over its whole case */
	void (*run)(struct victim *vi, const struct row *row);
};

static void delta_eq(uint64_t after, uint64_t before, uint64_t want, const char *what, const char *counter) {
	cr_assert_eq(after - before, want, "%s: %s moved by %lu, want %lu", what, counter, after - before, want);
}

static void row_random_bytes(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	static uint8_t junk[4000];
	uint64_t x = 0x1234567;
	for (size_t i = 0; i < sizeof(junk); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		junk[i] = (uint8_t)x;
	}
	struct counters c0 = counters();
	peer_send(&p, junk, sizeof(junk));
	/* Whatever whole groups it makes of it are refused; the stream then
	 * breaks the protocol and the peer goes. */
	iopf_response r[128];
	bool closed;
	size_t n = peer_read(&p, r, 128, 5000, &closed);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(r[i].code, IOMMUFD_PAGE_RESP_INVALID, "%s", row->input);
	cr_assert(closed || peer_dropped(&p), "%s: dropped", row->input);
	struct counters c = counters();
	delta_eq(c.protocol, c0.protocol, 1, row->input, "protocolErrors");
	delta_eq(c.invalid[R_DEFECT], c0.invalid[R_DEFECT], n, row->input, "invalid.defect");
	peer_close(&p);
}

static void row_zeros(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	static uint8_t zeros[64 * 1024];
	struct counters c0 = counters();
	relay_case(&p, zeros, sizeof(zeros), (struct outcome){0, 0, true}, row->input);
	delta_eq(counters().protocol, c0.protocol, 1, row->input, "protocolErrors");
	peer_close(&p);
}

/* One group of one record with a field set wrong: refused, not dropped. */
static void defect_case(const struct row *row, iopf_record bad) {
	struct peer p;
	peer_open(&p);
	struct counters c0 = counters();
	relay_case(&p, &bad, sizeof(bad), (struct outcome){1, IOMMUFD_PAGE_RESP_INVALID, false}, row->input);
	struct counters c = counters();
	delta_eq(c.invalid[R_DEFECT], c0.invalid[R_DEFECT], 1, row->input, "invalid.defect");
	delta_eq(c.protocol, c0.protocol, 0, row->input, "protocolErrors");
	peer_close(&p);
}

static void row_reserved(struct victim *vi, const struct row *row) {
	iopf_record r = rec(LAST, 1, 1);
	r.__reserved = 7;
	defect_case(row, r);
}

static void row_unknown_flags(struct victim *vi, const struct row *row) {
	defect_case(row, rec(LAST | 0x80, 1, 1));
}

static void row_unknown_perm(struct victim *vi, const struct row *row) {
	iopf_record r = rec(LAST, 1, 1);
	r.perm |= 0x100;
	defect_case(row, r);
}

static void row_mixed_source(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	iopf_record g[2] = {rec(0, 3, 1), rec(LAST, 3, 2)};
	g[1].dev_id = 1;
	struct counters c0 = counters();
	relay_case(&p, g, sizeof(g), (struct outcome){1, IOMMUFD_PAGE_RESP_INVALID, false}, row->input);
	delta_eq(counters().invalid[R_DEFECT], c0.invalid[R_DEFECT], 1, row->input, "invalid.defect");
	peer_close(&p);
}

static void row_split_record(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	iopf_record r = rec(LAST, 9, 3);
	peer_send(&p, &r, 20);
	iopf_response resp[2];
	bool closed;
	cr_assert_eq(peer_read(&p, resp, 1, 300, &closed), 0, "%s: nothing to answer yet", row->input);
	cr_assert_not(closed);
	relay_case(&p, (const uint8_t *)&r + 20, sizeof(r) - 20, (struct outcome){1, IOMMUFD_PAGE_RESP_SUCCESS, false},
	           row->input);
	peer_close(&p);
}

/* Whether queue `id` is registered (0 for the name of any queue but the
 * victim's: root sees every queue). */
static size_t queue_listed(sd_varlink *v, uint32_t id) {
	sd_json_variant *rep;
	const char *err;
	cr_assert_eq(iopfc_call(v, "io.iopfd.ListQueues", NULL, NULL, 0, &rep, &err), 0);
	sd_json_variant *qs = sd_json_variant_by_key(rep, "queues");
	size_t n = 0;
	for (size_t i = 0; i < sd_json_variant_elements(qs); i++) {
		sd_json_variant *q = sd_json_variant_by_index(qs, i);
		sd_json_variant *name = sd_json_variant_by_key(q, "name");
		bool victim = name && sd_json_variant_is_string(name) && !strcmp(sd_json_variant_string(name), "victim");
		n += id ? iopfc_u64(q, "id") == id : !victim;
	}
	return n;
}

static void row_cut_then_hangup(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	iopf_record g[3] = {rec(0, 5, 1), rec(0, 5, 2), rec(LAST, 5, 3)};
	struct counters c0 = counters();
	peer_send(&p, g, 2 * sizeof(iopf_record) + 17);
	close(p.fd);
	p.fd = -1;
	size_t n = 1;
	for (int i = 0; i < 500 && (n = queue_listed(p.v, p.queue)) > 0; i++)
		usleep(10000);
	cr_assert_eq(n, 0, "%s: the queue is released", row->input);
	struct counters c = counters();
	delta_eq(c.protocol + c.io, c0.protocol + c0.io, 0, row->input, "protocolErrors + ioErrors");
	peer_close(&p);
}

static iopf_record *long_group(size_t n, uint32_t cookie, bool last) {
	iopf_record *g = calloc(n, sizeof(*g));
	cr_assert_not_null(g);
	for (size_t i = 0; i < n; i++)
		g[i] = rec(i == n - 1 && last ? LAST : 0, cookie, i);
	return g;
}

static void row_longest_group(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	iopf_record *g = long_group(512, 11, true);
	relay_case(&p, g, 512 * sizeof(*g), (struct outcome){1, IOMMUFD_PAGE_RESP_SUCCESS, false}, row->input);
	free(g);
	peer_close(&p);
}

static void row_too_long_group(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	iopf_record *g = long_group(513, 12, true);
	struct counters c0 = counters();
	relay_case(&p, g, 513 * sizeof(*g), (struct outcome){0, 0, true}, row->input);
	delta_eq(counters().protocol, c0.protocol, 1, row->input, "protocolErrors");
	free(g);
	peer_close(&p);
}

static void row_endless_group(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	/* Sent a piece at a time: the daemon must not wait for the end. */
	iopf_record *g = long_group(4096, 13, false);
	struct counters c0 = counters();
	for (size_t off = 0; off < 4096; off += 128)
		peer_send(&p, g + off, 128 * sizeof(*g));
	relay_case(&p, NULL, 0, (struct outcome){0, 0, true}, row->input);
	delta_eq(counters().protocol, c0.protocol, 1, row->input, "protocolErrors");
	free(g);
	peer_close(&p);
}

static void row_mixed_cookies(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	iopf_record g[3] = {rec(LAST, 1, 1), rec(0, 2, 2), rec(LAST, 3, 3)};
	struct counters c0 = counters();
	relay_case(&p, g, sizeof(g), (struct outcome){1, IOMMUFD_PAGE_RESP_SUCCESS, true}, row->input);
	delta_eq(counters().protocol, c0.protocol, 1, row->input, "protocolErrors");
	peer_close(&p);
}

static void row_repeated_cookie(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	iopf_record g[2] = {rec(LAST, 6, 1), rec(LAST, 6, 2)};
	struct counters c0 = counters();
	relay_case(&p, g, sizeof(g), (struct outcome){1, IOMMUFD_PAGE_RESP_SUCCESS, true}, row->input);
	delta_eq(counters().protocol, c0.protocol, 1, row->input, "protocolErrors");
	peer_close(&p);
}

static void row_cookie_reused(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	iopf_record r = rec(LAST, 8, 1);
	relay_case(&p, &r, sizeof(r), (struct outcome){1, IOMMUFD_PAGE_RESP_SUCCESS, false}, row->input);
	r.addr += PG;
	relay_case(&p, &r, sizeof(r), (struct outcome){1, IOMMUFD_PAGE_RESP_SUCCESS, false}, row->input);
	peer_close(&p);
}

static void row_huge_hint(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open_on(&p, "mlock", NULL); /* pins: its windows are counted */
	iopf_record r = rec(LAST, 1, 100);
	r.length = UINT32_MAX;
	relay_case(&p, &r, sizeof(r), (struct outcome){1, IOMMUFD_PAGE_RESP_SUCCESS, false}, row->input);
	sd_json_variant *rep;
	const char *err;
	cr_assert_eq(iopfc_call(p.v, "io.iopfd.ListSpaces", NULL, NULL, 0, &rep, &err), 0);
	sd_json_variant *spaces = sd_json_variant_by_key(rep, "spaces"), *sp = NULL;
	for (size_t i = 0; i < sd_json_variant_elements(spaces); i++)
		if (iopfc_u64(sd_json_variant_by_index(spaces, i), "id") == p.space)
			sp = sd_json_variant_by_index(spaces, i);
	cr_assert_not_null(sp);
	cr_assert_geq(iopfc_u64(sp, "pinnedPeak"), 16 * PG, "%s: a whole window was mapped", row->input);
	/* The probe of peer_dropped() maps one more window. */
	cr_assert_leq(iopfc_u64(sp, "pinnedPeak"), 2 * 16 * PG, "%s: the window is capped at windowMax", row->input);
	peer_close(&p);
}

static void refused_case(const struct row *row, iopf_record r, int reason, const char *counter) {
	struct peer p;
	peer_open(&p);
	struct counters c0 = counters();
	relay_case(&p, &r, sizeof(r), (struct outcome){1, IOMMUFD_PAGE_RESP_INVALID, false}, row->input);
	delta_eq(counters().invalid[reason], c0.invalid[reason], 1, row->input, counter);
	peer_close(&p);
}

static void row_unbound_device(struct victim *vi, const struct row *row) {
	iopf_record r = rec(LAST, 1, 1);
	r.dev_id = 77;
	refused_case(row, r, R_NO_BINDING, "invalid.no_binding");
}

static void row_unbound_pasid(struct victim *vi, const struct row *row) {
	iopf_record r = rec(LAST | PASID_VALID, 1, 1);
	r.dev_id = 1;
	r.pasid = 6;
	refused_case(row, r, R_NO_BINDING, "invalid.no_binding");
}

/* Routing follows Unbind and Bind at once: no group is resolved through a
 * binding that is gone (nor refused for one that is back). */
static void row_rebound(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	const char *err;
	struct counters c0 = counters();
	for (uint32_t round = 0; round < 20; round++) {
		for (int bound = 1; bound >= 0; bound--) {
			iopf_record r = rec(LAST, 2 * round + !bound, round);
			peer_send(&p, &r, sizeof(r));
			iopf_response resp;
			bool closed;
			cr_assert_eq(peer_read(&p, &resp, 1, 5000, &closed), 1, "%s: no answer", row->input);
			cr_assert_eq(resp.cookie, r.cookie);
			cr_assert_eq(resp.code, bound ? IOMMUFD_PAGE_RESP_SUCCESS : IOMMUFD_PAGE_RESP_INVALID,
			             "%s: round %u, %s: code %u", row->input, round, bound ? "bound" : "unbound", resp.code);
			if (bound)
				cr_assert_eq(iopfc_unbind(p.v, p.queue, 0, IOPFC_PASID_NONE, &err), 0, "%s", err);
			else
				cr_assert_eq(iopfc_bind(p.v, p.queue, 0, IOPFC_PASID_NONE, p.space, &err), 0, "%s", err);
		}
	}
	delta_eq(counters().invalid[R_NO_BINDING], c0.invalid[R_NO_BINDING], 20, row->input, "invalid.no_binding");
	peer_close(&p);
}

static void row_outside(struct victim *vi, const struct row *row) {
	refused_case(row, rec(LAST, 1, PAGES + 1), R_NO_REGION, "invalid.no_region");
}

static void row_top_of_address_space(struct victim *vi, const struct row *row) {
	iopf_record r = rec(LAST, 1, 0);
	r.addr = UINT64_MAX - 4095;
	refused_case(row, r, R_NO_REGION, "invalid.no_region");
}

static void row_exec_priv(struct victim *vi, const struct row *row) {
	iopf_record r = rec(LAST, 1, 1);
	r.perm = IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_EXEC | IOMMU_PGFAULT_PERM_PRIV;
	refused_case(row, r, R_PERM, "invalid.permission");
}

static uint64_t daemon_rss_kb(void) {
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)d.pid);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	cr_assert_geq(kb, 0);
	return (uint64_t)kb;
}

/* A peer that floods and never reads its responses: the daemon must stop
 * reading it (its responses would pile up in the daemon otherwise), keep
 * serving everyone else, and answer every group it took once the peer reads. */
static void row_flood_no_read(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	uint64_t rss0 = daemon_rss_kb(), victim0 = victim_groups(vi);
	enum { CHUNK = 1024 };
	static iopf_record chunk[CHUNK];
	uint64_t sent = 0; /* records */
	const uint64_t limit = (256ull << 20) / sizeof(iopf_record);
	while (sent < limit) {
		for (unsigned i = 0; i < CHUNK; i++)
			chunk[i] = rec(LAST, (uint32_t)(sent + i), (sent + i) % PAGES);
		size_t off = 0;
		while (off < sizeof(chunk)) {
			ssize_t n = send(p.fd, (uint8_t *)chunk + off, sizeof(chunk) - off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			cr_assert(n < 0 && errno == EAGAIN, "%s: send: %s", row->input, strerror(errno));
			struct pollfd pfd = {.fd = p.fd, .events = POLLOUT};
			if (poll(&pfd, 1, 1000) == 0)
				break; /* the daemon stopped reading */
		}
		sent += off / sizeof(iopf_record);
		if (off < sizeof(chunk))
			break;
	}
	cr_assert_lt(sent, limit, "%s: the daemon kept reading %lu MiB from a peer that reads nothing", row->input,
	             (unsigned long)(sent * sizeof(iopf_record) >> 20));
	cr_assert_lt(sent * sizeof(iopf_record), 8u << 20, "%s: it read %lu bytes before stopping", row->input,
	             (unsigned long)(sent * sizeof(iopf_record)));
	uint64_t rss1 = daemon_rss_kb();
	cr_assert_lt(rss1, rss0 + 16 * 1024, "%s: daemon RSS %lu -> %lu kB", row->input, rss0, rss1);
	uint64_t victim1 = victim_groups(vi);
	cr_assert_gt(victim1, victim0, "%s: the victim was served meanwhile", row->input);

	/* Now the peer reads: every whole group it sent is answered, once (a
	 * record the last short send cut never completes). */
	uint64_t whole = sent;
	static uint8_t seen[(256u << 20) / sizeof(iopf_record) / 8];
	memset(seen, 0, (whole + 7) / 8);
	uint64_t answered = 0;
	iopf_response r[1024];
	bool closed = false;
	while (answered < whole) {
		size_t n = peer_read(&p, r, 1024, 3000, &closed);
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			cr_assert_lt(r[i].cookie, whole, "%s: unknown cookie", row->input);
			cr_assert_eq(r[i].code, IOMMUFD_PAGE_RESP_SUCCESS);
			cr_assert_not(seen[r[i].cookie / 8] & (1u << (r[i].cookie % 8)), "%s: cookie %u answered twice",
			              row->input, r[i].cookie);
			seen[r[i].cookie / 8] |= (uint8_t)(1u << (r[i].cookie % 8));
		}
		answered += n;
	}
	cr_assert_not(closed, "%s: a slow reader is not dropped", row->input);
	cr_assert_eq(answered, whole, "%s: %lu of %lu groups answered", row->input, answered, whole);
	peer_close(&p);
}

/* A peer that sends as fast as it can and reads as fast as it can: the
 * daemon's fairness keeps the victim's queues served. */
struct flood {
	struct emu_queue *emu;
};

static void *flood_run(void *arg) {
	struct flood *f = arg;
	emu_run(&f->emu, 1, 1500, 30000, 5000);
	return NULL;
}

static void row_flood_fast(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	struct emu_config ec = {
		.devices = 1, .outstanding = 4096, .group_min = 1, .group_max = 1, .iova_base = IOVA,
		.iova_pages = PAGES, .pattern = EMU_SEQUENTIAL, .perm = IOMMU_PGFAULT_PERM_READ, .seed = 1,
	};
	struct flood f;
	cr_assert_eq(emu_queue_new(&ec, p.fd, &f.emu), 0);
	p.fd = -1; /* the emulator owns it */
	uint64_t victim0 = victim_groups(vi);
	pthread_t th;
	pthread_create(&th, NULL, flood_run, &f);
	usleep(500 * 1000);
	uint64_t victim1 = victim_groups(vi);
	pthread_join(th, NULL);
	cr_assert_gt(victim1, victim0 + 100, "%s: the victim was served during the flood (%lu groups)", row->input,
	             victim1 - victim0);
	struct emu_stats st;
	emu_queue_finish(f.emu);
	emu_queue_stats(f.emu, &st);
	cr_assert_eq(emu_violations(&st), 0, "%s: the flooder itself is answered exactly once", row->input);
	cr_assert_gt(st.success, 10000);
	emu_queue_free(f.emu);
	peer_close(&p);
}

/* A peer that shuts its reading side and keeps sending: the daemon's next
 * response fails (EPIPE) and the peer is let go. */
static void row_shut_rd(struct victim *vi, const struct row *row) {
	struct peer p;
	peer_open(&p);
	shutdown(p.fd, SHUT_RD);
	struct counters c0 = counters();
	iopf_record r = rec(LAST, 1, 1);
	size_t n = 1;
	for (int i = 0; i < 500 && (n = queue_listed(p.v, p.queue)) > 0; i++) {
		send(p.fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
		r.cookie++;
		usleep(10000);
	}
	cr_assert_eq(n, 0, "%s: the queue is released", row->input);
	struct counters c = counters();
	delta_eq(c.protocol, c0.protocol, 0, row->input, "protocolErrors");
	peer_close(&p);
}

/* --- hostile clients ---------------------------------------------------------------------------- */

static void expect_error(sd_varlink *v, const char *method, const char *json, int fd, const char *want,
                         const char *what) {
	sd_json_variant *p = NULL;
	cr_assert_eq(sd_json_parse(json, 0, &p, NULL, NULL), 0, "bad JSON in the test: %s", json);
	const char *err = NULL;
	int r = iopfc_call(v, method, p, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, NULL, &err);
	sd_json_variant_unref(p);
	cr_assert_eq(r, -EREMOTEIO, "%s: accepted (%d), want %s", what, r, want);
	cr_assert_str_eq(err, want, "%s", what);
}

static void register_refused(const struct row *row, int fd) {
	sd_varlink *v = daemon_connect(&d);
	struct counters c0 = counters();
	expect_error(v, "io.iopfd.RegisterQueue", "{\"fdIndex\":0}", fd, "io.iopfd.BadFileDescriptor", row->input);
	delta_eq(counters().request[E_BAD_FD], c0.request[E_BAD_FD], 1, row->input,
	         "requestErrors.io.iopfd.BadFileDescriptor");
	cr_assert_eq(queue_listed(v, 0), 0, "nothing registered");
	sd_varlink_unref(v);
}

static void row_regular_file_queue(struct victim *vi, const struct row *row) {
	char path[] = "/tmp/iopfd-hostile-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(write(fd, "x", 1), 1);
	register_refused(row, fd);
	close(fd);
}

static void row_directory_queue(struct victim *vi, const struct row *row) {
	int fd = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	register_refused(row, fd);
	close(fd);
}

static void row_dev_null_queue(struct victim *vi, const struct row *row) {
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	register_refused(row, fd);
	close(fd);
}

static void row_eventfd_queue(struct victim *vi, const struct row *row) {
	int fd = eventfd(1, EFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	register_refused(row, fd);
	close(fd);
}

static void row_tcp_queue(struct victim *vi, const struct row *row) {
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	register_refused(row, fd);
	close(fd);
}

static void row_dgram_queue(struct victim *vi, const struct row *row) {
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	register_refused(row, sv[0]);
	close(sv[0]);
	close(sv[1]);
}

static void row_listening_queue(struct victim *vi, const struct row *row) {
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(sa_family_t)), 0); /* an abstract address of its own */
	cr_assert_eq(listen(fd, 1), 0);
	register_refused(row, fd);
	close(fd);
}

static void row_unconnected_queue(struct victim *vi, const struct row *row) {
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	register_refused(row, fd);
	close(fd);
}

/* The daemon's end of a registered relay, passed again by its owner and by
 * another client: two readers would split one stream between them. */
static void row_relay_twice(struct victim *vi, const struct row *row) {
	struct peer p;
	int theirs;
	peer_open_keep(&p, &theirs);
	sd_varlink *other = daemon_connect(&d);
	struct counters c0 = counters();
	expect_error(p.v, "io.iopfd.RegisterQueue", "{\"fdIndex\":0}", theirs, "io.iopfd.BadFileDescriptor", row->input);
	expect_error(other, "io.iopfd.RegisterQueue", "{\"fdIndex\":0}", theirs, "io.iopfd.BadFileDescriptor",
	             row->input);
	delta_eq(counters().request[E_BAD_FD], c0.request[E_BAD_FD], 2, row->input,
	         "requestErrors.io.iopfd.BadFileDescriptor");
	cr_assert_eq(queue_listed(p.v, p.queue), 1, "%s: the first registration stands", row->input);
	/* The first registration serves on. */
	iopf_record r = rec(LAST, 1, 1);
	relay_case(&p, &r, sizeof(r), (struct outcome){1, IOMMUFD_PAGE_RESP_SUCCESS, false}, row->input);
	close(theirs);
	sd_varlink_unref(other);
	peer_close(&p);
}

static void region_refused(const struct row *row, int fd, uint32_t access, const char *backend, const char *want,
                           int counter) {
	sd_varlink *v = daemon_connect(&d);
	const char *err;
	uint64_t space;
	cr_assert_eq(iopfc_create_space(v, backend, 1 << 20, 0, 0, -1, 0, &space, &err), 0, "%s", err);
	struct counters c0 = counters();
	uint64_t region;
	int r = iopfc_add_region(v, space, IOVA, 16 * PG, fd, 0, access, &region, &err);
	cr_assert_eq(r, -EREMOTEIO, "%s: accepted", row->input);
	cr_assert_str_eq(err, want, "%s", row->input);
	delta_eq(counters().request[counter], c0.request[counter], 1, row->input, want);
	sd_varlink_unref(v);
}

/* A file on a disk file system: no seals at all. */
static void row_regular_file_memory(struct victim *vi, const struct row *row) {
	char path[] = "/var/tmp/iopfd-hostile-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(ftruncate(fd, 16 * PG), 0);
	region_refused(row, fd, 3, "none", "io.iopfd.BadFileDescriptor", E_BAD_FD);
	close(fd);
}

/* A tmpfs file that is not a memfd: shmem, so it has seals, but F_SEAL_SEAL
 * from birth: it can never be sealed against shrinking. */
static void row_tmpfs_file_memory(struct victim *vi, const struct row *row) {
	int fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		char path[] = "/tmp/iopfd-hostile-XXXXXX";
		fd = mkstemp(path);
		unlink(path);
	}
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 16 * PG), 0);
	if (fcntl(fd, F_GET_SEALS) < 0) {
		close(fd); /* not on tmpfs here: nothing to show */
		return;
	}
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), -1, "%s: a tmpfs file cannot be sealed", row->input);
	region_refused(row, fd, 3, "none", "io.iopfd.UnsealedMemory", E_UNSEALED);
	close(fd);
}

static void row_grow_sealed_only(struct victim *vi, const struct row *row) {
	int fd = memfd_create("grow-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_eq(ftruncate(fd, 16 * PG), 0);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW), 0);
	region_refused(row, fd, 3, "none", "io.iopfd.UnsealedMemory", E_UNSEALED);
	close(fd);
}

/* Sealed against writes as well: fine for a read-only region, but the
 * mlock backend cannot map it writable. That is not "unsealed". */
static void row_write_sealed(struct victim *vi, const struct row *row) {
	int fd = memfd_create("write-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_eq(ftruncate(fd, 16 * PG), 0);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_WRITE), 0);
	region_refused(row, fd, 3, "mlock", "io.iopfd.BackendFailed", E_BACKEND);
	sd_varlink *v = daemon_connect(&d);
	const char *err = NULL;
	uint64_t space;
	cr_assert_eq(iopfc_create_space(v, "mlock", 1 << 20, 0, 0, -1, 0, &space, &err), 0, "%s", err);
	cr_assert_eq(iopfc_add_region(v, space, IOVA, 16 * PG, fd, 0, 1, NULL, &err), 0, "%s: read-only: %s", row->input,
	             err);
	sd_varlink_unref(v);
	close(fd);
}

static void row_shrunk_before(struct victim *vi, const struct row *row) {
	int fd = memfd_create("short", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_eq(ftruncate(fd, 4 * PG), 0);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	region_refused(row, fd, 3, "mlock", "io.iopfd.RegionOutOfRange", E_OUT_OF_RANGE);
	close(fd);
}

/* Truncating the memory behind a live region (the victim's mlock space):
 * the seal refuses it, so the daemon's mapping can never fault. */
static void row_truncate_live(struct victim *vi, const struct row *row) {
	cr_assert_eq(ftruncate(vi->memfd[1], 0), -1, "%s", row->input);
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(ftruncate(vi->memfd[1], PG), -1);
	cr_assert_eq(errno, EPERM);
}

/* Punching holes is not prevented by F_SEAL_SHRINK: the pages come back
 * as zeros on the next touch, the file keeps its size, the daemon neither
 * faults nor refuses (the victim's load checks it stays all SUCCESS). */
static void row_punch_live(struct victim *vi, const struct row *row) {
	for (int s = 0; s < 2; s++)
		cr_assert_eq(fallocate(vi->memfd[s], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGES * PG), 0, "%s: %s",
		             row->input, strerror(errno));
	usleep(200 * 1000);
}

static void row_huge_name(struct victim *vi, const struct row *row) {
	sd_varlink *v = daemon_connect(&d);
	char json[512];
	char name[301];
	memset(name, 'n', 300);
	name[300] = '\0';
	snprintf(json, sizeof(json), "{\"backend\":\"none\",\"quota\":65536,\"name\":\"%s\"}", name);
	struct counters c0 = counters();
	expect_error(v, "io.iopfd.CreateSpace", json, -1, "org.varlink.service.InvalidParameter", row->input);
	/* The refusal is named; is it counted? See the report in the row. */
	struct counters c = counters();
	cr_assert_leq(c.request[E_INVALID_PARAM] - c0.request[E_INVALID_PARAM], 1);
	sd_varlink_unref(v);
}

static void row_fd_index(struct victim *vi, const struct row *row) {
	sd_varlink *v = daemon_connect(&d);
	int sv[2];
	relay_pair(sv);
	struct counters c0 = counters();
	expect_error(v, "io.iopfd.RegisterQueue", "{\"fdIndex\":-1}", sv[0], "io.iopfd.BadFileDescriptor", row->input);
	expect_error(v, "io.iopfd.RegisterQueue", "{\"fdIndex\":9223372036854775807}", sv[0],
	             "io.iopfd.BadFileDescriptor", row->input);
	delta_eq(counters().request[E_BAD_FD], c0.request[E_BAD_FD], 2, row->input, "requestErrors.BadFileDescriptor");
	close(sv[0]);
	close(sv[1]);
	sd_varlink_unref(v);
}

/* Another user reaching for the victim's objects (the checks run in a
 * child that became nobody; test-daemon.c covers DestroySpace,
 * UnregisterQueue and ListQueues). */
struct other_args {
	uint64_t space;
	uint32_t queue;
};

static void nobody_reaches(void *arg) {
	struct other_args *a = arg;
	sd_varlink *v = daemon_connect(&d);
	const char *err;
	char json[256];
	const char *denied = "io.iopfd.PermissionDenied";
	int memfd = sealed_memfd(16 * PG);
	snprintf(json, sizeof(json), "{\"space\":%lu,\"iova\":0,\"length\":4096,\"memfdIndex\":0,\"access\":[\"read\"]}",
	         (unsigned long)a->space);
	expect_error(v, "io.iopfd.AddRegion", json, memfd, denied, "a region into another user's space");
	snprintf(json, sizeof(json), "{\"space\":%lu,\"region\":1}", (unsigned long)a->space);
	expect_error(v, "io.iopfd.RemoveRegion", json, -1, denied, "removing another user's region");
	snprintf(json, sizeof(json), "{\"queue\":%u,\"device\":9,\"space\":%lu}", a->queue, (unsigned long)a->space);
	expect_error(v, "io.iopfd.Bind", json, -1, denied, "binding on another user's queue and space");
	snprintf(json, sizeof(json), "{\"queue\":%u,\"device\":0}", a->queue);
	expect_error(v, "io.iopfd.Unbind", json, -1, denied, "unbinding another user's device");
	/* Its own queue routed into the victim's space. */
	int sv[2];
	relay_pair(sv);
	uint32_t mine;
	cr_assert_eq(iopfc_register_queue(v, sv[0], NULL, NULL, &mine, &err), 0, "%s", err);
	snprintf(json, sizeof(json), "{\"queue\":%u,\"device\":0,\"space\":%lu}", mine, (unsigned long)a->space);
	expect_error(v, "io.iopfd.Bind", json, -1, denied, "own queue into another user's space");
	/* Its own space under the victim's queue. */
	uint64_t own;
	cr_assert_eq(iopfc_create_space(v, "none", 1 << 20, 0, 0, -1, 0, &own, &err), 0, "%s", err);
	snprintf(json, sizeof(json), "{\"queue\":%u,\"device\":99,\"space\":%lu}", a->queue, (unsigned long)own);
	expect_error(v, "io.iopfd.Bind", json, -1, denied, "another user's queue into own space");
	sd_json_variant *rep;
	cr_assert_eq(iopfc_call(v, "io.iopfd.ListSpaces", NULL, NULL, 0, &rep, &err), 0);
	cr_assert_eq(sd_json_variant_elements(sd_json_variant_by_key(rep, "spaces")), 1, "only its own space");
	cr_assert_eq(iopfc_call(v, "io.iopfd.ListBindings", NULL, NULL, 0, &rep, &err), 0);
	cr_assert_eq(sd_json_variant_elements(sd_json_variant_by_key(rep, "bindings")), 0, "none of the victim's bindings");
	close(memfd);
	close(sv[0]);
	close(sv[1]);
	sd_varlink_unref(v);
}

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

static void row_other_user(struct victim *vi, const struct row *row) {
	struct other_args a = {.space = vi->space[0], .queue = vi->qid[0]};
	struct counters c0 = counters();
	cr_assert_eq(as_nobody(nobody_reaches, &a), 0, "%s: the other user's checks failed", row->input);
	delta_eq(counters().request[E_DENIED], c0.request[E_DENIED], 6, row->input, "requestErrors.PermissionDenied");
}

/*
 * The table: X(name, input, outcome, protocol errors). Each row is a case of
 * its own, hostile::<name>, run by row_<name>(), so a row that fails hides
 * none after it. The protocol errors are those the row causes: one for each
 * peer it has dropped for breaking the protocol.
 */
#define ROWS(X)                                                                                                 \
	/* Relay peers. */                                                                                          \
	X(random_bytes, "4000 random bytes",                                                                        \
	  "dropped (protocol error); any whole groups before it INVALID; protocolErrors +1", 1)                     \
	X(zeros, "64 KiB of zeros (one endless group)", "dropped at 512 records; protocolErrors +1", 1)             \
	X(reserved, "reserved field set", "INVALID, peer kept; invalid.defect +1", 0)                               \
	X(unknown_flags, "unknown flag bits", "INVALID, peer kept; invalid.defect +1", 0)                           \
	X(unknown_perm, "unknown permission bits", "INVALID, peer kept; invalid.defect +1", 0)                      \
	X(mixed_source, "device differs within a group", "INVALID, peer kept; invalid.defect +1", 0)                \
	X(split_record, "record cut at byte 20, rest later", "waits, then one SUCCESS", 0)                          \
	X(cut_then_hangup, "group cut short, then hang-up", "no answer; queue released; no error counted", 0)       \
	X(longest_group, "512-fault group (the limit)", "one SUCCESS", 0)                                           \
	X(too_long_group, "513-fault group", "dropped unanswered; protocolErrors +1", 1)                            \
	X(endless_group, "4096 records without LAST_PAGE, in pieces", "dropped at 512; protocolErrors +1", 1)       \
	X(mixed_cookies, "mixed cookies inside a group", "group before answered; dropped; protocolErrors +1", 1)    \
	X(repeated_cookie, "cookie repeated while in flight", "first answered once; dropped; protocolErrors +1", 1) \
	X(cookie_reused, "cookie reused after its answer", "answered again (legal: cookies are reused)", 0)         \
	X(huge_hint, "length hint 0xffffffff", "SUCCESS; window capped at windowMax", 0)                            \
	X(unbound_device, "unbound device", "INVALID; invalid.no_binding +1", 0)                                    \
	X(unbound_pasid, "bound device, unbound PASID", "INVALID; invalid.no_binding +1", 0)                        \
	X(rebound, "device unbound, then bound again, between its groups (x20)",                                    \
	  "INVALID while unbound, SUCCESS once bound; invalid.no_binding +20", 0)                                   \
	X(outside, "address outside every region", "INVALID; invalid.no_region +1", 0)                              \
	X(top_of_address_space, "address 2^64 - 4096", "INVALID; invalid.no_region +1", 0)                          \
	X(exec_priv, "exec + priv on a read/write region", "INVALID; invalid.permission +1", 0)                     \
	X(flood_no_read, "flood, never reading responses",                                                          \
	  "stops reading the peer (< 8 MiB taken), RSS flat, others served; all answered once it reads", 0)         \
	X(flood_fast, "flood at full speed (4096 in flight)", "served exactly once; others served meanwhile", 0)    \
	X(shut_rd, "peer shuts its reading side, keeps sending", "response fails (EPIPE): queue released", 0)       \
	/* Clients. */                                                                                              \
	X(regular_file_queue, "regular file as fault fd", "BadFileDescriptor; requestErrors +1", 0)                 \
	X(directory_queue, "O_PATH directory as fault fd", "BadFileDescriptor; requestErrors +1", 0)                \
	X(dev_null_queue, "/dev/null as fault fd", "BadFileDescriptor; requestErrors +1", 0)                        \
	X(eventfd_queue, "eventfd as fault fd", "BadFileDescriptor; requestErrors +1", 0)                           \
	X(tcp_queue, "TCP socket as relay", "BadFileDescriptor; requestErrors +1", 0)                               \
	X(dgram_queue, "AF_UNIX datagram socket as relay", "BadFileDescriptor; requestErrors +1", 0)                \
	X(listening_queue, "listening AF_UNIX socket as relay", "BadFileDescriptor; requestErrors +1", 0)           \
	X(unconnected_queue, "unconnected AF_UNIX stream socket", "BadFileDescriptor; requestErrors +1", 0)         \
	X(relay_twice, "a registered relay socket again, by its owner and by another client",                       \
	  "BadFileDescriptor x2; requestErrors +2; the first registration serves on", 0)                            \
	X(fd_index, "fdIndex -1 and 2^63-1", "BadFileDescriptor; requestErrors +2", 0)                              \
	X(regular_file_memory, "regular file on disk as memory", "BadFileDescriptor; requestErrors +1", 0)          \
	X(tmpfs_file_memory, "tmpfs file (not a memfd) as memory",                                                  \
	  "UnsealedMemory (born F_SEAL_SEAL); requestErrors +1", 0)                                                 \
	X(grow_sealed_only, "memfd sealed against growing only", "UnsealedMemory; requestErrors +1", 0)             \
	X(write_sealed, "write-sealed memfd, writable region (mlock)",                                              \
	  "BackendFailed (EACCES; read-only is accepted); requestErrors +1", 0)                                     \
	X(shrunk_before, "sealed memfd shorter than the region", "RegionOutOfRange; requestErrors +1", 0)           \
	X(truncate_live, "truncating a live region's sealed memfd",                                                 \
	  "ftruncate fails (EPERM): the daemon cannot be SIGBUSed", 0)                                              \
	X(punch_live, "punching holes in live regions' memfds", "allowed by the seal; served on, all SUCCESS", 0)   \
	X(huge_name, "300-byte name", "InvalidParameter", 0)                                                        \
	X(other_user, "another user on the victim's objects",                                                       \
	  "PermissionDenied x6; others' spaces and bindings hidden", 0)

#define ROW_INDEX(name, input, outcome, protocol) ROW_##name,
enum { ROWS(ROW_INDEX) };

#define ROW_ENTRY(name, input_, outcome_, protocol_)                                                   \
	[ROW_##name] = {.input = input_, .outcome = outcome_, .protocol = protocol_, .run = row_##name},
static const struct row rows[] = {ROWS(ROW_ENTRY)};

/*
 * One row against a daemon of its own: each case runs in a process of its
 * own, so nothing can be shared between rows. The victim's load is flowing
 * on all its queues before the row acts, runs on while it acts and must be
 * served after it; then it ends with no violation and every group SUCCESS.
 */
static void row_case(const struct row *row) {
	/* Not on this stack: a failed assertion jumps from here to the fini
	 * while the victim's thread still uses it, and the case would end in a
	 * crash instead of the assertion's message. */
	static struct victim vi;
	daemon_start(&d, NULL);
	observer = daemon_connect(&d);
	check_reason_names();
	victim_start(&vi);
	pthread_create(&vi.th, NULL, victim_run, &vi);
	uint64_t served[VICTIM_QUEUES] = {0};
	victim_served(&vi, served, 1000, row->input, "before the row");
	struct counters c0 = counters();
	fprintf(stderr, "row %2d: %-45s -> %s\n", (int)(row - rows) + 1, row->input, row->outcome);
	row->run(&vi, row);
	victim_queue_groups(&vi, served);
	victim_served(&vi, served, 1000, row->input, "after the row");
	victim_finish(&vi);
	/* Counted up to the victim's end, not only over the row's own checks:
	 * a drop the daemon counts late, or a protocol error on the victim's
	 * queues, shows here too. */
	struct counters c = counters();
	cr_assert_eq(c.protocol - c0.protocol, row->protocol, "%s: %lu protocol errors, want %u: one per peer dropped",
	             row->input, c.protocol - c0.protocol, row->protocol);
	sd_varlink_unref(observer);
	cr_assert_eq(daemon_stop(&d), 0, "clean exit");
}

#define ROW_TEST(name, input, outcome, protocol)     \
	Test(hostile, name, .description = input) { \
		row_case(&rows[ROW_##name]);            \
	}
ROWS(ROW_TEST)

/*
 * Every InvalidParameter the daemon itself replies is counted in
 * requestErrors (names over 255 bytes once bypassed the counter). Unknown
 * enum values (transport, backend, access) are refused with the same named
 * error by sd-varlink, which checks every call against the interface before
 * any method runs; those never reach the daemon's code and are not counted.
 */
Test(hostile, every_invalid_parameter_is_counted) {
	daemon_start(&d, NULL);
	observer = daemon_connect(&d);
	sd_varlink *v = daemon_connect(&d);
	const char *err;
	uint64_t space;
	cr_assert_eq(iopfc_create_space(v, "none", 1 << 20, 0, 0, -1, 0, &space, &err), 0);
	char name[301], json[512];
	memset(name, 'n', 300);
	name[300] = '\0';
	int sv[2], memfd = sealed_memfd(PG);
	relay_pair(sv);
	struct counters c0 = counters();
	const char *ip = "org.varlink.service.InvalidParameter";
	snprintf(json, sizeof(json), "{\"fdIndex\":0,\"name\":\"%s\"}", name);
	expect_error(v, "io.iopfd.RegisterQueue", json, sv[0], ip, "long queue name");
	expect_error(v, "io.iopfd.RegisterQueue", "{\"fdIndex\":0,\"transport\":\"carrier-pigeon\"}", sv[0], ip,
	             "unknown transport");
	expect_error(v, "io.iopfd.CreateSpace", "{\"backend\":\"magic\",\"quota\":65536}", -1, ip, "unknown backend");
	snprintf(json, sizeof(json), "{\"backend\":\"none\",\"quota\":65536,\"name\":\"%s\"}", name);
	expect_error(v, "io.iopfd.CreateSpace", json, -1, ip, "long space name");
	snprintf(json, sizeof(json),
	         "{\"space\":%lu,\"iova\":0,\"length\":4096,\"memfdIndex\":0,\"access\":[\"read\",\"fly\"]}",
	         (unsigned long)space);
	expect_error(v, "io.iopfd.AddRegion", json, memfd, ip, "unknown access");
	delta_eq(counters().request[E_INVALID_PARAM], c0.request[E_INVALID_PARAM], 2, "refusals",
	         "requestErrors.InvalidParameter (the two long names)");
	close(memfd);
	close(sv[0]);
	close(sv[1]);
	sd_varlink_unref(v);
	sd_varlink_unref(observer);
	cr_assert_eq(daemon_stop(&d), 0);
}
