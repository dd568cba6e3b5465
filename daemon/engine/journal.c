/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iopf_abi.h"
#include "journal-format.h"
#include "journal.h"
#include "shared/cleanup.h"

#define ALIGN 64u

static size_t align_up(size_t v) {
	return (v + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

static size_t slot_stride(uint32_t slot_bytes) {
	return align_up(sizeof(struct iopf_jslot) + slot_bytes);
}

static size_t carry_stride(uint32_t carry_bytes) {
	return align_up(sizeof(struct iopf_jcarry) + carry_bytes);
}

static size_t worker_stride(const struct iopf_journal_shape *sh) {
	return slot_stride(sh->slot_bytes) + (size_t)sh->carry_slots * carry_stride(sh->carry_bytes);
}

size_t iopf_journal_size(const struct iopf_journal_shape *sh) {
	return align_up(sizeof(struct iopf_jheader)) + (size_t)sh->workers * worker_stride(sh);
}

static uint8_t *worker_base(const struct iopf_journal *j, unsigned w) {
	return (uint8_t *)j->base + align_up(sizeof(struct iopf_jheader)) + (size_t)w * worker_stride(&j->shape);
}

struct iopf_jslot *iopf_journal_slot(const struct iopf_journal *j, unsigned worker) {
	return (struct iopf_jslot *)worker_base(j, worker);
}

struct iopf_jcarry *iopf_journal_carry(const struct iopf_journal *j, unsigned worker, uint32_t i) {
	return (struct iopf_jcarry *)(worker_base(j, worker) + slot_stride(j->shape.slot_bytes) +
	                              (size_t)i * carry_stride(j->shape.carry_bytes));
}

int iopf_journal_format(void *base, size_t size, const struct iopf_journal_shape *sh, struct iopf_journal *out) {
	size_t need = iopf_journal_size(sh);
	if (!base || size < need || (uintptr_t)base % ALIGN || sh->slot_bytes > IOPF_JOURNAL_SLOT_MAX)
		return -EINVAL;
	/* Only the headers need clearing; data is meaningful only under a
	 * READ state or a non-zero carry owner. */
	struct iopf_jheader *h = base;
	memset(h, 0, sizeof(*h));
	*out = (struct iopf_journal){.base = base, .size = size, .shape = *sh};
	h->workers = sh->workers;
	h->slot_bytes = sh->slot_bytes;
	h->carry_slots = sh->carry_slots;
	h->carry_bytes = sh->carry_bytes;
	h->size = need;
	for (unsigned w = 0; w < sh->workers; w++) {
		struct iopf_jslot *s = iopf_journal_slot(out, w);
		memset(s, 0, sizeof(*s));
		memset(s->data, IOPF_JOURNAL_POISON, sh->slot_bytes);
		for (uint32_t i = 0; i < sh->carry_slots; i++)
			memset(iopf_journal_carry(out, w, i), 0, sizeof(struct iopf_jcarry));
	}
	/* The magic last, with release: a journal half formatted is no journal. */
	uint64_t magic;
	memcpy(&magic, IOPF_JOURNAL_MAGIC, sizeof(magic));
	__atomic_store_n((uint64_t *)(void *)h->magic, magic, __ATOMIC_RELEASE);
	return 0;
}

int iopf_journal_open(void *base, size_t size, struct iopf_journal *out) {
	const struct iopf_jheader *h = base;
	if (!base || size < sizeof(*h) || memcmp(h->magic, IOPF_JOURNAL_MAGIC, sizeof(h->magic)) != 0)
		return -EBADMSG;
	/* Bounds first, so that the size computed below cannot wrap: the
	 * header comes from a memfd that outlived whoever wrote it. */
	if (h->slot_bytes == 0 || h->slot_bytes > IOPF_JOURNAL_SLOT_MAX || h->carry_slots > (1u << 16) ||
	    h->carry_bytes > (1u << 24) || h->workers == 0 || h->workers > 1024)
		return -EBADMSG;
	struct iopf_journal_shape sh = {.workers = h->workers, .slot_bytes = h->slot_bytes,
	                                .carry_slots = h->carry_slots, .carry_bytes = h->carry_bytes};
	if (h->size > size || h->size != iopf_journal_size(&sh))
		return -EBADMSG;
	*out = (struct iopf_journal){.base = base, .size = size, .shape = sh};
	return 0;
}

size_t iopf_journal_reading_len(const struct iopf_journal *j, const struct iopf_jslot *s, int whole_records) {
	size_t end = j->shape.slot_bytes;
	while (end > s->len && s->data[end - 1] == IOPF_JOURNAL_POISON)
		end--;
	if (whole_records && (end - s->len) % IOPF_RECORD_SIZE)
		end += IOPF_RECORD_SIZE - (end - s->len) % IOPF_RECORD_SIZE;
	return end < j->shape.slot_bytes ? end : j->shape.slot_bytes;
}

/* --- the writer ---------------------------------------------------------------------- */

void iopf_jwriter_init(struct iopf_jwriter *w, const struct iopf_journal *j, unsigned worker) {
	*w = (struct iopf_jwriter){.j = j, .worker = worker, .slot = iopf_journal_slot(j, worker)};
}

uint8_t *iopf_jwriter_buffer(const struct iopf_jwriter *w) {
	return w->slot->data;
}

/* Before a read the slot turns READING, so that a SIGKILL landing while the
 * read is in the kernel (it finishes, then the thread dies before it sees
 * the count) still leaves the batch to be answered: its length is found by
 * the poison that fills unused slot data. */
void iopf_jwriter_reading(struct iopf_jwriter *w, uint32_t queue_id, size_t have, bool stream) {
	w->slot->queue_id = queue_id;
	w->slot->len = (uint32_t)have;
	w->slot->stream = stream;
	w->slot->answered = 0;
	__atomic_store_n(&w->slot->state, IOPF_JSLOT_READING, __ATOMIC_RELEASE);
}

void iopf_jwriter_read(struct iopf_jwriter *w, size_t len) {
	w->slot->len = (uint32_t)len;
	__atomic_store_n(&w->slot->state, IOPF_JSLOT_READ, __ATOMIC_RELEASE);
}

/*
 * Before answers are written. A SIGKILL landing while the write is in the
 * kernel lets the write finish, and then the thread dies. A kernel queue
 * can tell an answer it took from one it still needs: the slot turns
 * ANSWERING, and a restart answers what follows the answered records
 * again. A relay peer cannot tell a second answer from a first: the slice
 * counts as answered now (the last one by turning ANSWERING), and a kill
 * before the write loses it (docs/restart.md lists that window).
 */
void iopf_jwriter_answering(struct iopf_jwriter *w, size_t end) {
	if (w->slot->stream && end < w->slot->len) {
		__atomic_store_n(&w->slot->answered, (uint16_t)(end / IOPF_RECORD_SIZE), __ATOMIC_RELEASE);
		return;
	}
	__atomic_store_n(&w->slot->state, IOPF_JSLOT_ANSWERING, __ATOMIC_RELEASE);
}

void iopf_jwriter_sliced(struct iopf_jwriter *w, size_t end) {
	__atomic_store_n(&w->slot->answered, (uint16_t)(end / IOPF_RECORD_SIZE), __ATOMIC_RELEASE);
	__atomic_store_n(&w->slot->state, IOPF_JSLOT_READ, __ATOMIC_RELEASE);
}

/* Empty, and poison again for the next read. */
void iopf_jwriter_answered(struct iopf_jwriter *w, size_t len) {
	__atomic_store_n(&w->slot->state, IOPF_JSLOT_EMPTY, __ATOMIC_RELEASE);
	memset(w->slot->data, IOPF_JOURNAL_POISON, len);
}

size_t iopf_jwriter_carry_max(const struct iopf_jwriter *w) {
	return w->j->shape.carry_bytes;
}

int iopf_jwriter_carry(struct iopf_jwriter *w, int slot, uint32_t queue_id, enum iopf_jcarry_kind kind,
                       const void *p, size_t len) {
	if (len > w->j->shape.carry_bytes)
		return -1;
	struct iopf_jcarry *c = NULL;
	if (slot >= 0) {
		c = iopf_journal_carry(w->j, w->worker, (uint32_t)slot);
		/* Rewritten in place: unowned while it changes. */
		__atomic_store_n(&c->queue_id, 0, __ATOMIC_RELEASE);
	}
	for (uint32_t i = 0; !c && i < w->j->shape.carry_slots; i++) {
		struct iopf_jcarry *t = iopf_journal_carry(w->j, w->worker, i);
		if (__atomic_load_n(&t->queue_id, __ATOMIC_RELAXED) == 0) {
			c = t;
			slot = (int)i;
		}
	}
	if (!c)
		return -1;
	memcpy(c->data, p, len);
	c->len = (uint32_t)len;
	c->kind = kind;
	/* Owner last: a carry with an owner is whole. */
	__atomic_store_n(&c->queue_id, queue_id, __ATOMIC_RELEASE);
	return slot;
}

const uint8_t *iopf_jwriter_carried(const struct iopf_jwriter *w, int slot) {
	return iopf_journal_carry(w->j, w->worker, (uint32_t)slot)->data;
}

void iopf_jwriter_uncarry(struct iopf_jwriter *w, int slot) {
	__atomic_store_n(&iopf_journal_carry(w->j, w->worker, (uint32_t)slot)->queue_id, 0, __ATOMIC_RELEASE);
}

/* --- the reader ---------------------------------------------------------------------- */

struct entries {
	struct iopf_journal_entry *e;
	size_t n, cap;
};

static int entry_add(struct entries *es, uint32_t queue_id, enum iopf_journal_entry_kind kind, const void *data,
                     size_t len, uint32_t *done) {
	if (es->n == es->cap) {
		size_t cap = es->cap ? 2 * es->cap : 8;
		struct iopf_journal_entry *n = realloc(es->e, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		es->e = n;
		es->cap = cap;
	}
	uint8_t *copy = aligned_alloc(ALIGN, align_up(len ? len : 1));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, len);
	es->e[es->n++] = (struct iopf_journal_entry){
		.queue_id = queue_id, .kind = kind, .len = len, .data = copy, .done = done};
	return 0;
}

/* What one worker's slot and carries hold. */
static int collect_worker(const struct iopf_journal *j, unsigned w, bool live, struct entries *es) {
	struct iopf_jslot *s = iopf_journal_slot(j, w);
	uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
	size_t len = s->len, done = (size_t)s->answered * IOPF_RECORD_SIZE;
	/* Killed in (or right after) a read: its bytes end where the poison
	 * begins. A kernel queue returns whole records. */
	if (state == IOPF_JSLOT_READING)
		len = iopf_journal_reading_len(j, s, !s->stream);
	/* Killed while answering a kernel queue: whether the write happened
	 * is unknown, and the kernel can tell. A relay peer could not tell a
	 * second answer from a first, so there ANSWERING counts as answered. */
	bool reanswer = state == IOPF_JSLOT_ANSWERING && !s->stream;
	/* A batch answered in slices: what follows the answered records. */
	if (state == IOPF_JSLOT_READING || done > len)
		done = 0;
	bool batch = (state == IOPF_JSLOT_READ || state == IOPF_JSLOT_READING || reanswer) && len > done &&
	             len <= j->shape.slot_bytes;
	if (batch) {
		int r = entry_add(es, s->queue_id, reanswer ? IOPF_JOURNAL_REANSWER : IOPF_JOURNAL_BATCH, s->data + done,
		                  len - done, live ? &s->state : NULL);
		if (r < 0)
			return r;
	}
	size_t batch_entry = batch ? es->n - 1 : 0;
	for (uint32_t i = 0; i < j->shape.carry_slots; i++) {
		struct iopf_jcarry *c = iopf_journal_carry(j, w, i);
		uint32_t qid = __atomic_load_n(&c->queue_id, __ATOMIC_ACQUIRE);
		if (!qid || c->len > j->shape.carry_bytes)
			continue;
		bool answers = c->kind == IOPF_JCARRY_RESPONSES;
		/* The batch of the same worker and queue holds a partial
		 * group's bytes already (at its start or its end): the two go
		 * together. */
		if (!answers && batch && s->queue_id == qid) {
			if (live)
				es->e[batch_entry].held = &c->queue_id;
			continue;
		}
		int r = entry_add(es, qid, answers ? IOPF_JOURNAL_ANSWERS : IOPF_JOURNAL_PARTIAL, c->data, c->len,
		                  live ? &c->queue_id : NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

static int entry_order(const void *a, const void *b) {
	const struct iopf_journal_entry *x = a, *y = b;
	return (int)x->kind - (int)y->kind;
}

int iopf_journal_collect(const struct iopf_journal *j, bool live, struct iopf_journal_entry **out, size_t *n) {
	struct entries es = {0};
	for (unsigned w = 0; w < j->shape.workers; w++) {
		int r = collect_worker(j, w, live, &es);
		if (r < 0) {
			iopf_journal_entries_free(es.e, es.n);
			return r;
		}
	}
	/* The kinds are declared in the order they must be answered; within a
	 * kind the order does not matter (each queue has one worker). */
	if (es.n)
		qsort(es.e, es.n, sizeof(*es.e), entry_order);
	*out = es.e;
	*n = es.n;
	return 0;
}

void iopf_journal_entry_done(const struct iopf_journal_entry *e) {
	if (!e->done || e->kind == IOPF_JOURNAL_PARTIAL)
		return;
	/* The carry first: while the batch is there, it holds the bytes. */
	if (e->held)
		__atomic_store_n(e->held, 0, __ATOMIC_RELEASE);
	__atomic_store_n(e->done, 0, __ATOMIC_RELEASE);
}

void iopf_journal_entries_free(struct iopf_journal_entry *e, size_t n) {
	for (size_t i = 0; i < n; i++)
		free(e[i].data);
	free(e);
}
