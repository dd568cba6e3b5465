/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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
	uint8_t rbuf[8192];
	size_t r_len;

	bool stopped;
	uint64_t enqueued; /* bytes of records ever put in sbuf */
	uint64_t rng;
	struct emu_stats st;
	struct iopf_hist lat;
	iopf_record *scratch; /* one group, for expect() */
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

int emu_queue_new(const struct emu_config *cfg, int fd, struct emu_queue **out) {
	if (!cfg->devices || !cfg->outstanding || !cfg->group_min || cfg->group_max < cfg->group_min ||
	    !cfg->iova_pages || cfg->group_max > cfg->iova_pages || cfg->group_max > 4096)
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
	case EMU_RANDOM:
	default:
		return rnd(q) % span;
	}
}

static void emit_group(struct emu_queue *q, unsigned dev) {
	int cookie = cookie_alloc(q);
	if (cookie < 0)
		return; /* cannot happen: cookies = devices * outstanding */
	unsigned n = q->cfg.group_min;
	if (q->cfg.group_max > q->cfg.group_min)
		n += (unsigned)(rnd(q) % (q->cfg.group_max - q->cfg.group_min + 1));
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
	s->t_emit = now_ns();
	q->dev_out[dev]++;
	q->st.emitted++;
	q->st.faults += n;
	q->st.inflight++;
}

static void emit(struct emu_queue *q) {
	for (unsigned k = 0; k < q->cfg.devices; k++) {
		if (q->stopped || (q->cfg.max_groups && q->st.emitted >= q->cfg.max_groups))
			return;
		unsigned d = q->next_dev;
		q->next_dev = (q->next_dev + 1) % q->cfg.devices;
		while (q->dev_out[d] < q->cfg.outstanding &&
		       !(q->cfg.max_groups && q->st.emitted >= q->cfg.max_groups))
			emit_group(q, d);
	}
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
	s->state = SLOT_ANSWERED;
	q->free_bits[r->cookie / 64] |= 1ull << (r->cookie % 64);
	q->dev_out[s->dev]--;
	q->st.inflight--;
}

static int receive(struct emu_queue *q) {
	for (;;) {
		ssize_t n = recv(q->fd, q->rbuf + q->r_len, sizeof(q->rbuf) - q->r_len, MSG_DONTWAIT);
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
	else if (q->s_off > q->s_cap / 2) {
		memmove(q->sbuf, q->sbuf + q->s_off, q->s_len - q->s_off);
		q->s_len -= q->s_off;
		q->s_off = 0;
	}
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

int emu_run_progress(struct emu_queue **qs, unsigned n, unsigned duration_ms, unsigned timeout_ms, unsigned grace_ms,
                     void (*progress)(void *ud, unsigned elapsed_ms), void *ud, unsigned interval_ms) {
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return -errno;
	uint32_t *interest = calloc(n, sizeof(uint32_t));
	bool *dead = calloc(n, sizeof(bool));
	if (!interest || !dead) {
		free(interest);
		free(dead);
		close(ep);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		interest[i] = EPOLLIN;
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		epoll_ctl(ep, EPOLL_CTL_ADD, qs[i]->fd, &ev);
	}

	uint64_t start = now_ns();
	uint64_t stop_at = duration_ms ? start + (uint64_t)duration_ms * 1000000 : 0;
	uint64_t timeout_at = start + (uint64_t)timeout_ms * 1000000;
	uint64_t give_up_at = 0, next_progress = start + (uint64_t)interval_ms * 1000000;
	bool stopped = false;
	struct epoll_event ev[256];

	/* Everything pumps once to emit its first groups. */
	for (unsigned i = 0; i < n; i++)
		if (emu_queue_pump(qs[i]) < 0)
			dead[i] = true;

	for (;;) {
		uint64_t now = now_ns();
		if (!stopped && ((stop_at && now >= stop_at) || now >= timeout_at)) {
			for (unsigned i = 0; i < n; i++)
				emu_queue_stop(qs[i]);
			stopped = true;
			give_up_at = now + (uint64_t)grace_ms * 1000000;
		}
		if (give_up_at && now >= give_up_at)
			break;
		if (progress && now >= next_progress) {
			progress(ud, (unsigned)((now - start) / 1000000));
			next_progress += (uint64_t)interval_ms * 1000000;
		}
		bool all_done = true;
		for (unsigned i = 0; i < n && all_done; i++)
			all_done = dead[i] || emu_queue_done(qs[i]);
		if (all_done)
			break;

		for (unsigned i = 0; i < n; i++) {
			uint32_t want = dead[i] ? 0 : EPOLLIN | (emu_queue_want_write(qs[i]) ? EPOLLOUT : 0);
			if (want != interest[i]) {
				struct epoll_event e = {.events = want, .data.u32 = i};
				epoll_ctl(ep, EPOLL_CTL_MOD, qs[i]->fd, &e);
				interest[i] = want;
			}
		}
		int k = epoll_wait(ep, ev, 256, 10);
		for (int j = 0; j < k; j++) {
			unsigned i = ev[j].data.u32;
			if (!dead[i] && emu_queue_pump(qs[i]) < 0)
				dead[i] = true;
		}
		if (k == 0 && !stopped) {
			/* Nothing readable: emit what the limits allow anyway. */
			for (unsigned i = 0; i < n; i++)
				if (!dead[i] && emu_queue_pump(qs[i]) < 0)
					dead[i] = true;
		}
	}
	free(interest);
	free(dead);
	close(ep);
	return 0;
}
