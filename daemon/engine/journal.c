/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "journal.h"

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

static size_t worker_stride(uint32_t slot_bytes, uint32_t carry_slots, uint32_t carry_bytes) {
	return slot_stride(slot_bytes) + (size_t)carry_slots * carry_stride(carry_bytes);
}

size_t iopf_journal_size(unsigned workers, uint32_t slot_bytes, uint32_t carry_slots, uint32_t carry_bytes) {
	return align_up(sizeof(struct iopf_jheader)) +
	       (size_t)workers * worker_stride(slot_bytes, carry_slots, carry_bytes);
}

static uint8_t *worker_base(const struct iopf_journal *j, unsigned w) {
	return (uint8_t *)j->base + align_up(sizeof(struct iopf_jheader)) +
	       (size_t)w * worker_stride(j->h->slot_bytes, j->h->carry_slots, j->h->carry_bytes);
}

struct iopf_jslot *iopf_journal_slot(const struct iopf_journal *j, unsigned worker) {
	return (struct iopf_jslot *)worker_base(j, worker);
}

struct iopf_jcarry *iopf_journal_carry(const struct iopf_journal *j, unsigned worker, uint32_t i) {
	return (struct iopf_jcarry *)(worker_base(j, worker) + slot_stride(j->h->slot_bytes) +
	                              (size_t)i * carry_stride(j->h->carry_bytes));
}

int iopf_journal_format(void *base, size_t size, unsigned workers, uint32_t slot_bytes, uint32_t carry_slots,
                        uint32_t carry_bytes, struct iopf_journal *out) {
	size_t need = iopf_journal_size(workers, slot_bytes, carry_slots, carry_bytes);
	if (!base || size < need || (uintptr_t)base % ALIGN)
		return -EINVAL;
	/* Only the headers need clearing; data is meaningful only under a
	 * READ state or a non-zero carry owner. */
	struct iopf_jheader *h = base;
	memset(h, 0, sizeof(*h));
	*out = (struct iopf_journal){.base = base, .size = size, .h = h};
	h->workers = workers;
	h->slot_bytes = slot_bytes;
	h->carry_slots = carry_slots;
	h->carry_bytes = carry_bytes;
	h->size = need;
	for (unsigned w = 0; w < workers; w++) {
		struct iopf_jslot *s = iopf_journal_slot(out, w);
		memset(s, 0, sizeof(*s));
		memset(s->data, IOPF_JOURNAL_POISON, slot_bytes);
		for (uint32_t i = 0; i < carry_slots; i++)
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
	if (h->slot_bytes == 0 || h->slot_bytes > (1u << 24) || h->carry_slots > (1u << 16) ||
	    h->carry_bytes > (1u << 24))
		return -EBADMSG;
	if (h->size > size || h->workers == 0 || h->workers > 1024 ||
	    h->size != iopf_journal_size(h->workers, h->slot_bytes, h->carry_slots, h->carry_bytes))
		return -EBADMSG;
	*out = (struct iopf_journal){.base = base, .size = size, .h = h};
	return 0;
}

size_t iopf_journal_reading_len(const struct iopf_journal *j, const struct iopf_jslot *s, int whole_records) {
	size_t end = j->h->slot_bytes;
	while (end > s->len && s->data[end - 1] == IOPF_JOURNAL_POISON)
		end--;
	if (whole_records && (end - s->len) % 40)
		end += 40 - (end - s->len) % 40;
	return end < j->h->slot_bytes ? end : j->h->slot_bytes;
}
