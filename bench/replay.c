/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/engine.h"
#include "engine/rcu.h"
#include "engine/space-internal.h"
#include "iopf_abi.h"
#include "replay.h"
#include "sim-policies.h"
#include "sim-trace.h"
#include "trace.h"

#define ANSWER_TIMEOUT_MS 30000
/* Memory behind an mlock space is allocated before the run, so that the
 * run does not time the allocation of pages on first touch; past this the
 * memfd stays sparse (a trace's universe can be large, its quota not). */
#define PREALLOCATE_MAX (1ull << 30)

/* One stream of the trace: a device with a relay queue of its own. */
struct device {
	uint16_t stream;
	int fd; /* the device's end */
	struct iopf_queue *q;
	uint32_t *win;      /* the window: trace positions */
	unsigned n_win;
	iopf_record *rec;   /* the window's faults, group i with cookie i */
	uint32_t n_rec;
	uint32_t answered;
	uint8_t *got;       /* per cookie: answered */
	uint8_t part[sizeof(iopf_response)]; /* a response read in part */
	size_t n_part;
	uint32_t *pos;      /* free-running: its accesses, in trace order */
	size_t n_pos, next;
};

struct replay {
	const struct replay_config *c;
	const struct sim_trace *t;
	struct iopf_engine *e;
	struct iopf_space *space;
	int memfd;
	struct device *dev;
	size_t n_dev;
	int32_t *dev_of; /* stream -> device, -1 for none */
	uint32_t *seen;  /* per page: the window that found it absent */
	uint32_t *slot;  /* per page: its record in that window */
	uint32_t gen;
	struct replay_result r;
	const char *why;
};

static int fail(struct replay *x, int r, const char *why) {
	if (!x->why)
		x->why = why;
	return r;
}

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t iova_of(const struct sim_trace *t, uint32_t u) {
	return sim_trace_page(t, u) << t->page_shift;
}

/* --- setting up -------------------------------------------------------------------- */

static int make_memfd(const struct sim_trace *t) {
	uint64_t bytes = (uint64_t)t->n_pages << t->page_shift;
	int fd = memfd_create("iopf-replay", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)bytes) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0 ||
	    (bytes <= PREALLOCATE_MAX && fallocate(fd, 0, 0, (off_t)bytes) < 0)) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* The space the simulator builds (sim-space.c): the policy's
 * configuration, one region per run of the trace's chunks, at the trace's
 * own addresses; on mlock, backed by one memfd at the universe's offsets. */
static int make_space(struct replay *x) {
	const struct sim_trace *t = x->t;
	struct iopf_space_config cfg = x->c->policy->space;
	cfg.backend = x->c->backend;
	cfg.page_size = 1u << t->page_shift;
	cfg.quota = x->c->quota_pages << t->page_shift;
	cfg.iommufd = -1;
	int r = iopf_space_new(1, &cfg, &x->space);
	if (r < 0)
		return fail(x, r, "creating the space");
	if (cfg.backend == IOPF_BACKEND_MLOCK && (x->memfd = make_memfd(t)) < 0)
		return fail(x, x->memfd, "the memfd behind the space");
	size_t at = 0;
	uint32_t first, pages;
	while (sim_trace_next_region(t, &at, &first, &pages)) {
		struct iopf_region_config rc = {.iova = iova_of(t, first), .length = (uint64_t)pages << t->page_shift,
		                                .memfd = -1, .offset = (uint64_t)first << t->page_shift,
		                                .perm = IOPF_PERM_READ | IOPF_PERM_WRITE};
		if (x->memfd >= 0 && (rc.memfd = fcntl(x->memfd, F_DUPFD_CLOEXEC, 3)) < 0)
			return fail(x, -errno, "the memfd behind the space");
		int err = 0;
		enum iopf_region_refusal why = iopf_space_add_region(x->space, &rc, 0, NULL, &err);
		if (why != IOPF_REGION_ADDED)
			return fail(x, why == IOPF_REGION_NO_MEMORY ? -ENOMEM : err < 0 ? err : -EINVAL, "adding a region");
	}
	return 0;
}

/* A device per stream, a relay queue per device, each stream bound on its
 * queue as its own device id (as the simulator binds it). */
static int make_devices(struct replay *x) {
	const struct sim_trace *t = x->t;
	unsigned n = x->c->inflight;
	x->dev_of = malloc(TRACE_STREAMS * sizeof(*x->dev_of));
	x->dev = calloc(t->streams ? t->streams : 1, sizeof(*x->dev));
	if (!x->dev_of || !x->dev)
		return fail(x, -ENOMEM, "devices");
	for (size_t s = 0; s < TRACE_STREAMS; s++)
		x->dev_of[s] = -1;
	for (size_t i = 0; i < t->n; i++) {
		uint16_t s = sim_stream(t, i);
		if (x->dev_of[s] < 0) {
			x->dev_of[s] = (int32_t)x->n_dev;
			x->dev[x->n_dev++] = (struct device){.stream = s, .fd = -1};
		}
		x->dev[x->dev_of[s]].n_pos++;
	}
	for (size_t k = 0; k < x->n_dev; k++) {
		struct device *d = &x->dev[k];
		d->win = malloc(n * sizeof(*d->win));
		d->rec = malloc(n * sizeof(*d->rec));
		d->got = malloc(n);
		if (x->c->concurrent)
			d->pos = malloc(d->n_pos * sizeof(*d->pos));
		if (!d->win || !d->rec || !d->got || (x->c->concurrent && !d->pos))
			return fail(x, -ENOMEM, "devices");
		d->n_pos = 0;
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return fail(x, -errno, "socketpair");
		d->fd = sv[1];
		int r = iopf_queue_new((uint32_t)k, sv[0], IOPF_TRANSPORT_RELAY, &d->q);
		if (r == 0 && (r = iopf_engine_add_queue(x->e, d->q)) < 0) {
			iopf_queue_free(d->q);
			d->q = NULL;
		}
		if (r < 0)
			return fail(x, r, "a relay queue");
		struct iopf_binding_key key = {.queue_id = (uint32_t)k, .dev_id = d->stream, .pasid = IOPF_PASID_NONE};
		if ((r = iopf_bindings_add(iopf_engine_bindings(x->e), &key, x->space)) < 0)
			return fail(x, r, "binding a device");
	}
	if (x->c->concurrent)
		for (size_t i = 0; i < t->n; i++) {
			struct device *d = &x->dev[x->dev_of[sim_stream(t, i)]];
			d->pos[d->n_pos++] = (uint32_t)i;
		}
	x->seen = calloc(t->n_pages ? t->n_pages : 1, sizeof(*x->seen));
	x->slot = malloc((t->n_pages ? t->n_pages : 1) * sizeof(*x->slot));
	if (!x->seen || !x->slot)
		return fail(x, -ENOMEM, "devices");
	return 0;
}

static void teardown(struct replay *x) {
	for (size_t k = 0; k < x->n_dev; k++) {
		struct device *d = &x->dev[k];
		if (d->q) {
			iopf_engine_remove_queue(x->e, d->q, IOPF_RELEASE_TO_HOLDER);
			iopf_queue_free(d->q);
		}
		if (d->fd >= 0)
			close(d->fd);
		free(d->win);
		free(d->rec);
		free(d->got);
		free(d->pos);
	}
	if (x->space) {
		if (x->e)
			iopf_bindings_remove_space(iopf_engine_bindings(x->e), x->space);
		iopf_space_destroy(x->space);
	}
	if (x->e)
		iopf_engine_free(x->e);
	if (x->memfd >= 0)
		close(x->memfd);
	free(x->dev);
	free(x->dev_of);
	free(x->seen);
	free(x->slot);
}

/* --- the devices --------------------------------------------------------------------- */

static int send_all(int fd, const void *buf, size_t len) {
	for (size_t off = 0; off < len;) {
		ssize_t k = send(fd, (const uint8_t *)buf + off, len - off, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		off += (size_t)k;
	}
	return 0;
}

/* Issue the device's window: the accesses to resident pages complete, the
 * absent pages (each once, its perm the union of the window's) go to the
 * engine as one-page groups in one send. */
static int issue(struct replay *x, struct device *d) {
	const struct sim_trace *t = x->t;
	uint32_t nf = 0;
	x->gen++;
	iopf_rcu_read_lock();
	for (unsigned k = 0; k < d->n_win; k++) {
		uint32_t i = d->win[k], u = t->u[i];
		if (x->seen[u] == x->gen) {
			if (sim_write(t, i))
				d->rec[x->slot[u]].perm = IOPF_PERM_WRITE;
		} else if (iopf_space_resident(x->space, iova_of(t, u))) {
			continue;
		} else {
			x->seen[u] = x->gen;
			x->slot[u] = nf;
			d->rec[nf] = (iopf_record){
				.flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE,
				.dev_id = d->stream,
				.perm = sim_write(t, i) ? IOPF_PERM_WRITE : IOPF_PERM_READ,
				.addr = iova_of(t, u),
				.length = 1u << t->page_shift,
				.cookie = nf,
			};
			nf++;
		}
		if (x->c->faulted)
			x->c->faulted[i] = 1;
	}
	iopf_rcu_read_unlock();
	x->r.accesses += d->n_win;
	d->n_win = 0;
	d->n_rec = nf;
	d->answered = 0;
	if (!nf)
		return 0;
	memset(d->got, 0, nf);
	x->r.faults += nf;
	x->r.windows++;
	int r = send_all(d->fd, d->rec, nf * sizeof(*d->rec));
	return r < 0 ? fail(x, r, "sending faults") : 0;
}

/* Take the answers that have come: 1 when the window is answered whole,
 * 0 when some are still to come, or a negative errno. */
static int take_answers(struct replay *x, struct device *d) {
	uint8_t buf[4096];
	while (d->answered < d->n_rec) {
		memcpy(buf, d->part, d->n_part);
		ssize_t k = recv(d->fd, buf + d->n_part, sizeof(buf) - d->n_part, MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return 0;
		if (k <= 0)
			return fail(x, k < 0 ? -errno : -EPIPE, "reading answers");
		size_t have = d->n_part + (size_t)k, whole = have / sizeof(iopf_response) * sizeof(iopf_response);
		for (size_t off = 0; off < whole; off += sizeof(iopf_response)) {
			iopf_response a;
			memcpy(&a, buf + off, sizeof(a));
			if (a.cookie >= d->n_rec || d->got[a.cookie])
				return fail(x, -EPROTO, "an answer for no group in flight");
			d->got[a.cookie] = 1;
			d->answered++;
		}
		d->n_part = have - whole;
		memcpy(d->part, buf + whole, d->n_part);
	}
	return 1;
}

static int wait_answers(struct replay *x, struct device *d) {
	for (;;) {
		int r = take_answers(x, d);
		if (r != 0)
			return r < 0 ? r : 0;
		struct pollfd p = {.fd = d->fd, .events = POLLIN};
		int k = poll(&p, 1, ANSWER_TIMEOUT_MS);
		if (k == 0)
			return fail(x, -ETIMEDOUT, "waiting for answers");
		if (k < 0 && errno != EINTR)
			return fail(x, -errno, "poll");
	}
}

static int cmp_first(const void *a, const void *b) {
	uint32_t p = (*(struct device *const *)a)->win[0], q = (*(struct device *const *)b)->win[0];
	return p < q ? -1 : p > q;
}

/* In trace order, one window at a time, as the simulator issues them: a
 * stream's window goes when it is full; at the end the windows not full
 * go in the order their first accesses came. */
static int run_in_order(struct replay *x) {
	const struct sim_trace *t = x->t;
	for (size_t i = 0; i < t->n; i++) {
		struct device *d = &x->dev[x->dev_of[sim_stream(t, i)]];
		d->win[d->n_win++] = (uint32_t)i;
		if (d->n_win < x->c->inflight)
			continue;
		int r = issue(x, d);
		if (r == 0 && d->n_rec)
			r = wait_answers(x, d);
		if (r < 0)
			return r;
	}
	struct device **open = malloc(x->n_dev * sizeof(*open) + 1);
	if (!open)
		return fail(x, -ENOMEM, "devices");
	size_t n = 0;
	for (size_t k = 0; k < x->n_dev; k++)
		if (x->dev[k].n_win)
			open[n++] = &x->dev[k];
	qsort(open, n, sizeof(*open), cmp_first);
	int r = 0;
	for (size_t k = 0; k < n && r == 0; k++) {
		r = issue(x, open[k]);
		if (r == 0 && open[k]->n_rec)
			r = wait_answers(x, open[k]);
	}
	free(open);
	return r;
}

/* Concurrent, in rounds: every device issues its next window at once and
 * the round ends when all are answered, so that the streams keep pace
 * with each other (as the trace interleaves them) while the engine
 * resolves their batches side by side, in whatever order its workers read
 * them. */
static int run_rounds(struct replay *x) {
	struct pollfd *p = malloc(x->n_dev * sizeof(*p) + 1);
	size_t *who = malloc(x->n_dev * sizeof(*who) + 1);
	int r = p && who ? 0 : fail(x, -ENOMEM, "devices");
	for (bool more = true; r == 0 && more;) {
		more = false;
		for (size_t k = 0; k < x->n_dev && r == 0; k++) {
			struct device *d = &x->dev[k];
			while (d->n_win < x->c->inflight && d->next < d->n_pos)
				d->win[d->n_win++] = d->pos[d->next++];
			if (d->n_win)
				r = issue(x, d);
			more |= d->next < d->n_pos;
		}
		for (;;) {
			size_t waiting = 0;
			for (size_t k = 0; k < x->n_dev; k++)
				if (x->dev[k].answered < x->dev[k].n_rec) {
					p[waiting] = (struct pollfd){.fd = x->dev[k].fd, .events = POLLIN};
					who[waiting++] = k;
				}
			if (r < 0 || waiting == 0)
				break;
			int k = poll(p, waiting, ANSWER_TIMEOUT_MS);
			if (k == 0)
				r = fail(x, -ETIMEDOUT, "waiting for answers");
			else if (k < 0 && errno != EINTR)
				r = fail(x, -errno, "poll");
			for (size_t w = 0; k > 0 && w < waiting && r == 0; w++)
				if (p[w].revents) {
					int a = take_answers(x, &x->dev[who[w]]);
					if (a < 0)
						r = a;
				}
		}
	}
	free(p);
	free(who);
	return r;
}

/* --- a run ----------------------------------------------------------------------------- */

int replay_run(const struct replay_config *c, struct replay_result *out, const char **why) {
	struct replay x = {.c = c, .t = c->t, .memfd = -1};
	*out = (struct replay_result){0};
	*why = NULL;
	if (!sim_policy_is_iopfd(c->policy) || !c->inflight || !c->quota_pages ||
	    (c->backend != IOPF_BACKEND_SIMULATED && c->backend != IOPF_BACKEND_MLOCK)) {
		*why = "the engine runs iopfd's policies on the simulated or the mlock backend";
		return -EINVAL;
	}
	struct iopf_engine_config ec = {.workers = c->workers ? c->workers : 1};
	int r = iopf_engine_new(&ec, &x.e);
	if (r < 0)
		r = fail(&x, r, "starting the engine");
	if (r == 0)
		r = make_space(&x);
	if (r == 0)
		r = make_devices(&x);
	if (r == 0) {
		uint64_t t0 = now_ns();
		r = c->concurrent ? run_rounds(&x) : run_in_order(&x);
		x.r.seconds = (double)(now_ns() - t0) / 1e9;
	}
	if (r == 0) {
		struct iopf_counters ctr;
		struct iopf_space_stats st;
		iopf_engine_counters(x.e, &ctr);
		iopf_space_get_stats(x.space, &st);
		x.r.groups = ctr.groups;
		x.r.invalid = iopf_counters_invalid_total(&ctr);
		x.r.reads = ctr.reads - ctr.empty_reads;
		x.r.maps = st.maps;
		x.r.unmaps = st.unmaps;
		x.r.evictions = st.evictions;
		x.r.mapped_bytes = st.mapped_bytes;
		x.r.pinned_peak = st.pinned_peak;
		*out = x.r;
	}
	*why = x.why;
	teardown(&x);
	return r;
}
