/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "emu.h"

enum slot_state {
	SLOT_NEVER = 0, /* never allocated: a response for it is "unknown" */
	SLOT_INFLIGHT,
	SLOT_ANSWERED, /* free again: a response for it is a duplicate */
};

struct emu_slot {
	uint64_t t_emit;
	uint64_t end_off; /* stream offset just past the group's last record */
	uint32_t dev;
	int8_t expect;
	uint8_t state;
};

struct emu_queue {
	struct emu_config cfg;
	int fd;
	unsigned n_cookies;
	uint64_t *free_bits; /* bit set = cookie free */
	struct emu_slot *slot;
	unsigned *dev_out;   /* groups in flight per device */
	uint64_t *cursor;    /* per (device, PASID), for EMU_SEQUENTIAL */
	unsigned next_dev;

	uint8_t *sbuf;
	size_t s_off, s_len, s_cap;
	size_t r_len;

	bool stopped;
	bool started;       /* the open-loop schedule has its origin */
	uint64_t t0;        /* open loop: schedule origin (ns) */
	uint64_t sched;     /* open loop: index of the next scheduled group */
	double interval_ns; /* open loop: between scheduled groups */
	double zipf_h;      /* EMU_ZIPF: (N+1)^(1-s) - 1, or ln(N+1) when s = 1 */
	double zipf_inv;    /* EMU_ZIPF: 1 / (1 - s) */
	double geo_log;     /* EMU_SIZE_GEOMETRIC: ln(1 - p) */
	uint64_t enqueued; /* bytes of records ever put in sbuf */
	uint64_t rng;
	struct emu_stats st;
	iopf_record *scratch; /* one group, for expect() */
	/* The big ones last: the fields above share a page or two, which
	 * matters when thousands of queues each take one group per wake-up. */
	struct iopf_hist lat;
	uint8_t rbuf[8192];
};

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(struct emu_queue *q) {
	/* xorshift64*: fast, and reproducible from the seed. */
	q->rng ^= q->rng >> 12;
	q->rng ^= q->rng << 25;
	q->rng ^= q->rng >> 27;
	return q->rng * 0x2545f4914f6cdd1dull;
}

/* Uniform in (0, 1]: never 0, so its logarithm is finite. */
static double rnd_unit(struct emu_queue *q) {
	return (double)((rnd(q) >> 11) + 1) * 0x1p-53;
}

int emu_queue_new(const struct emu_config *cfg, int fd, struct emu_queue **out) {
	if (!cfg->devices || !cfg->outstanding || !cfg->group_min || cfg->group_max < cfg->group_min ||
	    !cfg->iova_pages || cfg->group_max > cfg->iova_pages || cfg->group_max > 4096 || cfg->rate < 0 ||
	    cfg->zipf_s < 0 || (cfg->sizes == EMU_SIZE_GEOMETRIC && cfg->group_mean < cfg->group_min) ||
	    (cfg->windows && !cfg->window_ns))
		return -EINVAL;
	struct emu_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->cfg = *cfg;
	q->fd = fd;
	q->n_cookies = cfg->devices * cfg->outstanding;
	size_t words = (q->n_cookies + 63) / 64;
	q->free_bits = calloc(words, sizeof(uint64_t));
	q->slot = calloc(q->n_cookies, sizeof(*q->slot));
	q->dev_out = calloc(cfg->devices, sizeof(unsigned));
	q->cursor = calloc((size_t)cfg->devices * (cfg->pasids ? cfg->pasids : 1), sizeof(uint64_t));
	/* Everything in flight may sit unsent at once. */
	q->s_cap = (size_t)q->n_cookies * cfg->group_max * sizeof(iopf_record);
	q->sbuf = malloc(q->s_cap);
	q->scratch = malloc(cfg->group_max * sizeof(iopf_record));
	if (!q->free_bits || !q->slot || !q->dev_out || !q->cursor || !q->sbuf || !q->scratch) {
		emu_queue_free(q);
		return -ENOMEM;
	}
	for (unsigned c = 0; c < q->n_cookies; c++)
		q->free_bits[c / 64] |= 1ull << (c % 64);
	q->rng = cfg->seed ? cfg->seed : 0x9e3779b97f4a7c15ull;
	if (cfg->rate > 0)
		q->interval_ns = 1e9 / cfg->rate;
	if (cfg->pattern == EMU_ZIPF) {
		double zs = cfg->zipf_s > 0 ? cfg->zipf_s : 0.99, np1 = (double)cfg->iova_pages + 1;
		if (fabs(zs - 1.0) < 1e-9) {
			q->zipf_inv = 0;
			q->zipf_h = log(np1);
		} else {
			q->zipf_inv = 1.0 / (1.0 - zs);
			q->zipf_h = pow(np1, 1.0 - zs) - 1.0;
		}
	}
	if (cfg->sizes == EMU_SIZE_GEOMETRIC && cfg->group_mean > cfg->group_min)
		q->geo_log = log(1.0 - 1.0 / (cfg->group_mean - cfg->group_min + 1.0));
	*out = q;
	return 0;
}

void emu_queue_free(struct emu_queue *q) {
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	free(q->free_bits);
	free(q->slot);
	free(q->dev_out);
	free(q->cursor);
	free(q->sbuf);
	free(q->scratch);
	free(q);
}

int emu_queue_fd(const struct emu_queue *q) {
	return q->fd;
}

void emu_queue_stop(struct emu_queue *q) {
	q->stopped = true;
}

bool emu_queue_done(const struct emu_queue *q) {
	bool emitting = !q->stopped && (!q->cfg.max_groups || q->st.emitted < q->cfg.max_groups);
	return !emitting && q->st.inflight == 0;
}

bool emu_queue_want_write(const struct emu_queue *q) {
	return q->s_off < q->s_len;
}

/* The kernel hands out the lowest free cookie. */
static int cookie_alloc(struct emu_queue *q) {
	size_t words = (q->n_cookies + 63) / 64;
	for (size_t i = 0; i < words; i++)
		if (q->free_bits[i]) {
			unsigned b = (unsigned)__builtin_ctzll(q->free_bits[i]);
			q->free_bits[i] &= ~(1ull << b);
			return (int)(i * 64 + b);
		}
	return -1;
}

static uint64_t pick_page(struct emu_queue *q, size_t stream, unsigned n) {
	uint64_t span = q->cfg.iova_pages - n + 1; /* start pages that keep the group inside */
	switch (q->cfg.pattern) {
	case EMU_SEQUENTIAL: {
		uint64_t p = q->cursor[stream] % span;
		q->cursor[stream] = p + n;
		return p;
	}
	case EMU_HOT:
		if (rnd(q) % 10 != 0) {
			uint64_t hot = span / 10 ? span / 10 : 1;
			return rnd(q) % hot;
		}
		return rnd(q) % span;
	case EMU_ZIPF: {
		/* Inverse of the continuous power law's CDF on [1, N+1): rank 0 is
		 * the hottest page. A close, cheap stand-in for a discrete Zipf
		 * draw. Ranks are scattered (multiplying by a prime is a bijection
		 * mod any span it does not divide), so hot pages are not all
		 * neighbours and fault-around does not get them for free. */
		double u = rnd_unit(q);
		double x = q->zipf_inv ? pow(1.0 + u * q->zipf_h, q->zipf_inv) : exp(u * q->zipf_h);
		uint64_t rank = x >= 1.0 ? (uint64_t)x - 1 : 0;
		if (rank >= q->cfg.iova_pages)
			rank = q->cfg.iova_pages - 1;
		return rank * 2654435761ull % span;
	}
	case EMU_RANDOM:
	default:
		return rnd(q) % span;
	}
}

static unsigned group_size(struct emu_queue *q) {
	unsigned n = q->cfg.group_min;
	if (q->cfg.group_max == q->cfg.group_min)
		return n;
	if (q->cfg.sizes == EMU_SIZE_GEOMETRIC) {
		if (q->geo_log == 0)
			return n;
		/* Failures before the first success, p = 1 / (mean - min + 1). */
		double extra = floor(log(rnd_unit(q)) / q->geo_log);
		return extra >= (double)(q->cfg.group_max - n) ? q->cfg.group_max : n + (unsigned)extra;
	}
	return n + (unsigned)(rnd(q) % (q->cfg.group_max - q->cfg.group_min + 1));
}

/* The bytes already sent go from the front of the send buffer. */
static void sbuf_compact(struct emu_queue *q) {
	memmove(q->sbuf, q->sbuf + q->s_off, q->s_len - q->s_off);
	q->s_len -= q->s_off;
	q->s_off = 0;
}

/* t_emit: when the group counts as emitted (now, or its scheduled time). */
static void emit_group(struct emu_queue *q, unsigned dev, uint64_t t_emit) {
	int cookie = cookie_alloc(q);
	if (cookie < 0)
		return; /* cannot happen: cookies = devices * outstanding */
	unsigned n = group_size(q);
	/* The buffer holds what is in flight and unsent, but the sent front
	 * of it stays until half the buffer is sent: a group answered from
	 * that front frees its cookie for a group that would not fit behind. */
	if (q->s_len + n * sizeof(iopf_record) > q->s_cap)
		sbuf_compact(q);
	unsigned pidx = q->cfg.pasids ? (unsigned)(rnd(q) % q->cfg.pasids) : 0;
	size_t stream = (size_t)dev * (q->cfg.pasids ? q->cfg.pasids : 1) + pidx;
	uint64_t page = pick_page(q, stream, n);

	iopf_record *recs = (iopf_record *)(q->sbuf + q->s_len);
	for (unsigned i = 0; i < n; i++) {
		recs[i] = (iopf_record){
			.flags = (q->cfg.pasids ? IOMMU_PGFAULT_FLAGS_PASID_VALID : 0) |
			         (i == n - 1 ? IOMMU_PGFAULT_FLAGS_LAST_PAGE : 0),
			.dev_id = q->cfg.dev_id_base + dev,
			.pasid = q->cfg.pasids ? q->cfg.pasid_base + pidx : 0,
			.grpid = (uint32_t)cookie & 0x1ff,
			.perm = q->cfg.perm,
			.addr = q->cfg.iova_base + ((page + i) << 12),
			.length = q->cfg.length_hint,
			.cookie = (uint32_t)cookie,
		};
	}
	q->s_len += n * sizeof(iopf_record);
	q->enqueued += n * sizeof(iopf_record);

	struct emu_slot *s = &q->slot[cookie];
	s->end_off = q->enqueued;
	s->state = SLOT_INFLIGHT;
	s->dev = dev;
	s->expect = q->cfg.expect ? (int8_t)q->cfg.expect(q->cfg.expect_ud, recs, n) : -1;
	s->t_emit = t_emit;
	q->dev_out[dev]++;
	q->st.emitted++;
	q->st.faults += n;
	q->st.inflight++;
}

static bool at_limit(const struct emu_queue *q) {
	return q->stopped || (q->cfg.max_groups && q->st.emitted >= q->cfg.max_groups);
}

static uint64_t sched_time(const struct emu_queue *q, uint64_t k) {
	return q->t0 + q->cfg.phase_ns + (uint64_t)((double)k * q->interval_ns);
}

void emu_queue_start(struct emu_queue *q, uint64_t t0) {
	q->t0 = t0;
	q->started = true;
}

/* Open loop: every group whose time has come, each to the next device
 * (round robin) with a free slot; the rest wait for responses. */
static void emit_scheduled(struct emu_queue *q) {
	uint64_t now = now_ns();
	if (!q->started)
		emu_queue_start(q, now);
	while (!at_limit(q) && q->st.inflight < q->n_cookies) {
		uint64_t t = sched_time(q, q->sched);
		if (t > now)
			return;
		unsigned d = q->next_dev;
		while (q->dev_out[d] >= q->cfg.outstanding)
			d = (d + 1) % q->cfg.devices;
		q->next_dev = (d + 1) % q->cfg.devices;
		emit_group(q, d, t);
		q->sched++;
	}
}

static void emit(struct emu_queue *q) {
	if (q->interval_ns > 0) {
		emit_scheduled(q);
		return;
	}
	/* One clock read for the lot: they all leave with the same send. */
	uint64_t now = now_ns();
	for (unsigned k = 0; k < q->cfg.devices; k++) {
		if (at_limit(q))
			return;
		unsigned d = q->next_dev;
		q->next_dev = (q->next_dev + 1) % q->cfg.devices;
		while (q->dev_out[d] < q->cfg.outstanding && !at_limit(q))
			emit_group(q, d, now);
	}
}

/* Open loop: when this queue next has a group to emit; UINT64_MAX when it
 * has none, or when all its cookies are in flight (a response wakes it). */
static uint64_t next_due(const struct emu_queue *q) {
	if (q->interval_ns <= 0 || at_limit(q) || q->st.inflight >= q->n_cookies)
		return UINT64_MAX;
	return sched_time(q, q->sched);
}

static void take_response(struct emu_queue *q, const iopf_response *r, uint64_t now) {
	if (r->cookie >= q->n_cookies) {
		q->st.unknown_cookie++;
		return;
	}
	struct emu_slot *s = &q->slot[r->cookie];
	if (s->state == SLOT_NEVER) {
		q->st.unknown_cookie++;
		return;
	}
	if (s->state == SLOT_ANSWERED) {
		q->st.duplicate++;
		return;
	}
	if (r->code == IOMMUFD_PAGE_RESP_SUCCESS)
		q->st.success++;
	else if (r->code == IOMMUFD_PAGE_RESP_INVALID)
		q->st.invalid++;
	else
		q->st.bad_code++;
	if (s->expect >= 0 && (uint32_t)s->expect != r->code)
		q->st.unexpected++;
	iopf_hist_add(&q->lat, now - s->t_emit);
	if (q->cfg.windows && s->t_emit >= q->t0) {
		uint64_t w = (s->t_emit - q->t0) / q->cfg.window_ns;
		if (w < q->cfg.n_windows)
			iopf_hist_add(&q->cfg.windows[w], now - s->t_emit);
	}
	s->state = SLOT_ANSWERED;
	q->free_bits[r->cookie / 64] |= 1ull << (r->cookie % 64);
	q->dev_out[s->dev]--;
	q->st.inflight--;
}

static int receive(struct emu_queue *q) {
	for (;;) {
		size_t room = sizeof(q->rbuf) - q->r_len;
		ssize_t n = recv(q->fd, q->rbuf + q->r_len, room, MSG_DONTWAIT);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return errno == ECONNRESET ? -EPIPE : -errno;
		}
		size_t len = q->r_len + (size_t)n, i = 0;
		uint64_t now = now_ns();
		for (; i + sizeof(iopf_response) <= len; i += sizeof(iopf_response)) {
			iopf_response r;
			memcpy(&r, q->rbuf + i, sizeof(r));
			take_response(q, &r, now);
		}
		memmove(q->rbuf, q->rbuf + i, len - i);
		q->r_len = len - i;
		/* A short read emptied the socket: asking again would only
		 * return EAGAIN, one wasted system call per wake-up. More
		 * arriving later makes the fd readable again. */
		if ((size_t)n < room)
			return 0;
	}
}

static int send_pending(struct emu_queue *q) {
	while (q->s_off < q->s_len) {
		ssize_t n = send(q->fd, q->sbuf + q->s_off, q->s_len - q->s_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return errno == ECONNRESET ? -EPIPE : -errno;
		}
		q->s_off += (size_t)n;
	}
	if (q->s_off == q->s_len)
		q->s_off = q->s_len = 0;
	else if (q->s_off > q->s_cap / 2)
		sbuf_compact(q);
	return 0;
}

int emu_queue_pump(struct emu_queue *q) {
	int r = receive(q);
	if (r < 0)
		return r;
	emit(q);
	return send_pending(q);
}

void emu_queue_finish(struct emu_queue *q) {
	q->st.missing += q->st.inflight;
	q->st.inflight = 0;
	q->stopped = true;
}

void emu_queue_stats(const struct emu_queue *q, struct emu_stats *out) {
	*out = q->st;
}

uint64_t emu_queue_bytes_sent(const struct emu_queue *q) {
	return q->enqueued - (q->s_len - q->s_off);
}

uint64_t emu_queue_unanswered_before(const struct emu_queue *q, uint64_t offset) {
	uint64_t n = 0;
	for (unsigned c = 0; c < q->n_cookies; c++)
		if (q->slot[c].state == SLOT_INFLIGHT && q->slot[c].end_off <= offset)
			n++;
	return n;
}

const struct iopf_hist *emu_queue_latency(const struct emu_queue *q) {
	return &q->lat;
}

int emu_run(struct emu_queue **qs, unsigned n, unsigned duration_ms, unsigned timeout_ms, unsigned grace_ms) {
	return emu_run_progress(qs, n, duration_ms, timeout_ms, grace_ms, NULL, NULL, 0);
}

/* Open-loop timers: a binary min-heap of (due, queue), at most one entry per
 * queue, re-keyed lazily when it comes up. */
struct timer {
	uint64_t due;
	unsigned i;
};

struct timers {
	struct timer *h;
	size_t n;
};

static void timer_push(struct timers *t, uint64_t due, unsigned i) {
	size_t k = t->n++;
	while (k > 0 && t->h[(k - 1) / 2].due > due) {
		t->h[k] = t->h[(k - 1) / 2];
		k = (k - 1) / 2;
	}
	t->h[k] = (struct timer){due, i};
}

static struct timer timer_pop(struct timers *t) {
	struct timer top = t->h[0], last = t->h[--t->n];
	size_t k = 0;
	for (;;) {
		size_t c = 2 * k + 1;
		if (c >= t->n)
			break;
		if (c + 1 < t->n && t->h[c + 1].due < t->h[c].due)
			c++;
		if (t->h[c].due >= last.due)
			break;
		t->h[k] = t->h[c];
		k = c;
	}
	if (t->n)
		t->h[k] = last;
	return top;
}

struct runner {
	struct emu_queue **qs;
	unsigned n;
	int ep;
	uint32_t *interest;
	bool *dead, *done, *armed;
	unsigned n_done;
	struct timers tm;
};

/* After queue i did something: its epoll interest, whether it is done, and
 * its open-loop timer. O(1), so a wake-up costs what its events cost. */
static void settle(struct runner *r, unsigned i) {
	struct emu_queue *q = r->qs[i];
	uint32_t want = r->dead[i] ? 0 : EPOLLIN | (emu_queue_want_write(q) ? EPOLLOUT : 0);
	if (want != r->interest[i]) {
		struct epoll_event e = {.events = want, .data.u32 = i};
		epoll_ctl(r->ep, EPOLL_CTL_MOD, q->fd, &e);
		r->interest[i] = want;
	}
	bool d = r->dead[i] || emu_queue_done(q);
	if (d != r->done[i]) {
		r->done[i] = d;
		if (d)
			r->n_done++;
		else
			r->n_done--;
	}
	if (!r->armed[i] && !r->dead[i]) {
		uint64_t due = next_due(q);
		if (due != UINT64_MAX) {
			timer_push(&r->tm, due, i);
			r->armed[i] = true;
		}
	}
}

static void pump_one(struct runner *r, unsigned i) {
	if (!r->dead[i] && emu_queue_pump(r->qs[i]) < 0)
		r->dead[i] = true;
	settle(r, i);
}

/* Timers that came due: emit and send, without a receive that would find
 * nothing (responses arrive as events). */
static void run_timers(struct runner *r, uint64_t now) {
	while (r->tm.n && r->tm.h[0].due <= now) {
		struct timer t = timer_pop(&r->tm);
		unsigned i = t.i;
		r->armed[i] = false;
		if (r->dead[i])
			continue;
		struct emu_queue *q = r->qs[i];
		uint64_t due = next_due(q);
		if (due == UINT64_MAX)
			continue; /* stopped, or waiting for a response */
		if (due <= now) {
			emit(q);
			if (send_pending(q) < 0)
				r->dead[i] = true;
		}
		settle(r, i);
	}
}

#define SPIN_NS 200000

int emu_run_progress(struct emu_queue **qs, unsigned n, unsigned duration_ms, unsigned timeout_ms, unsigned grace_ms,
                     void (*progress)(void *ud, unsigned elapsed_ms), void *ud, unsigned interval_ms) {
	struct runner r = {.qs = qs, .n = n};
	/* Timers of this thread fire when asked, not up to 50 us later. */
	int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	if (r.ep < 0)
		return -errno;
	r.interest = calloc(n ? n : 1, sizeof(uint32_t));
	r.dead = calloc(n ? n : 1, sizeof(bool));
	r.done = calloc(n ? n : 1, sizeof(bool));
	r.armed = calloc(n ? n : 1, sizeof(bool));
	r.tm.h = calloc(n ? n : 1, sizeof(struct timer));
	int ret = 0;
	if (!r.interest || !r.dead || !r.done || !r.armed || !r.tm.h) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		r.interest[i] = EPOLLIN;
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		epoll_ctl(r.ep, EPOLL_CTL_ADD, qs[i]->fd, &ev);
	}

	uint64_t start = now_ns();
	uint64_t stop_at = duration_ms ? start + (uint64_t)duration_ms * 1000000 : 0;
	uint64_t timeout_at = start + (uint64_t)timeout_ms * 1000000;
	uint64_t give_up_at = 0, next_progress = start + (uint64_t)interval_ms * 1000000;
	bool stopped = false;
	struct epoll_event ev[256];

	/* Everything pumps once to emit its first groups. */
	for (unsigned i = 0; i < n; i++)
		emu_queue_start(qs[i], start);
	for (unsigned i = 0; i < n; i++)
		pump_one(&r, i);

	for (;;) {
		uint64_t now = now_ns();
		if (!stopped && ((stop_at && now >= stop_at) || now >= timeout_at)) {
			for (unsigned i = 0; i < n; i++)
				emu_queue_stop(qs[i]);
			for (unsigned i = 0; i < n; i++)
				settle(&r, i);
			stopped = true;
			give_up_at = now + (uint64_t)grace_ms * 1000000;
		}
		if (give_up_at && now >= give_up_at)
			break;
		if (progress && now >= next_progress) {
			progress(ud, (unsigned)((now - start) / 1000000));
			next_progress += (uint64_t)interval_ms * 1000000;
		}
		if (r.n_done == n)
			break;

		run_timers(&r, now);
		int k;
		if (r.tm.n) {
			/* Open loop: a group due within SPIN_NS is waited for
			 * by polling, since a sleeping thread wakes tens of
			 * microseconds late (more on a virtual CPU) and that
			 * lateness would be charged to the handler. Further
			 * ones: sleep until due (at most 10 ms). */
			uint64_t wait = r.tm.h[0].due > now ? r.tm.h[0].due - now : 0;
			if (wait <= SPIN_NS)
				wait = 0;
			else if (wait > 10000000)
				wait = 10000000;
			else
				wait -= SPIN_NS;
			struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait};
			k = epoll_pwait2(r.ep, ev, 256, &ts, NULL);
		} else {
			k = epoll_wait(r.ep, ev, 256, 10);
		}
		for (int j = 0; j < k; j++)
			pump_one(&r, ev[j].data.u32);
		if (k == 0 && !stopped && !r.tm.n) {
			/* Nothing readable: emit what the limits allow anyway. */
			for (unsigned i = 0; i < n; i++)
				pump_one(&r, i);
		}
	}
out:
	free(r.interest);
	free(r.dead);
	free(r.done);
	free(r.armed);
	free(r.tm.h);
	close(r.ep);
	if (slack > 0)
		prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
	return ret;
}
