/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "carry.h"

const uint8_t *iopf_partial_bytes(const struct iopf_queue *q, const struct iopf_jwriter *jw) {
	return q->partial.slot >= 0 ? iopf_jwriter_carried(jw, q->partial.slot) : q->partial.buf;
}

int iopf_partial_keep(struct iopf_queue *q, struct iopf_jwriter *jw, const uint8_t *p, size_t len,
                      struct iopf_counters *c) {
	if (jw) {
		int slot = iopf_jwriter_carry(jw, -1, q->id, IOPF_JCARRY_RECORDS, p, len);
		if (slot >= 0) {
			q->partial.slot = slot;
			q->partial.len = len;
			return 0;
		}
		IOPF_STAT_INC(c->carry_overflows);
	}
	if (len > q->partial.cap) {
		uint8_t *n = realloc(q->partial.buf, len);
		if (!n)
			return -ENOMEM;
		q->partial.buf = n;
		q->partial.cap = len;
	}
	memcpy(q->partial.buf, p, len);
	q->partial.len = len;
	return 0;
}

void iopf_partial_drop(struct iopf_queue *q, struct iopf_jwriter *jw) {
	if (q->partial.slot >= 0) {
		iopf_jwriter_uncarry(jw, q->partial.slot);
		q->partial.slot = -1;
	}
	q->partial.len = 0;
}

void iopf_backlog_mirror(struct iopf_queue *q, struct iopf_jwriter *jw, struct iopf_counters *c) {
	struct iopf_backlog *b = &q->backlog;
	if (!jw)
		return;
	size_t len = b->len - b->off;
	if (len == 0 || len > iopf_jwriter_carry_max(jw)) {
		if (len)
			IOPF_STAT_INC(c->carry_overflows);
		if (b->slot >= 0)
			iopf_jwriter_uncarry(jw, b->slot);
		b->slot = -1;
		return;
	}
	b->slot = iopf_jwriter_carry(jw, b->slot, q->id, IOPF_JCARRY_RESPONSES, b->buf + b->off, len);
	if (b->slot < 0)
		IOPF_STAT_INC(c->carry_overflows);
}

void iopf_carries_journal(struct iopf_queue *q, struct iopf_jwriter *jw, struct iopf_counters *c) {
	if (!jw)
		return;
	if (q->partial.slot < 0 && q->partial.len) {
		/* Into a free slot; when none is free it stays where it is. */
		int slot = iopf_jwriter_carry(jw, -1, q->id, IOPF_JCARRY_RECORDS, q->partial.buf, q->partial.len);
		if (slot >= 0) {
			q->partial.slot = slot;
			free(q->partial.buf);
			q->partial.buf = NULL;
			q->partial.cap = 0;
		} else {
			IOPF_STAT_INC(c->carry_overflows);
		}
	}
	if (!iopf_backlog_empty(q))
		iopf_backlog_mirror(q, jw, c);
}

void iopf_carries_hand_on(struct iopf_queue *q, struct iopf_jwriter *jw, struct iopf_counters *c) {
	iopf_carries_journal(q, jw, c);
	q->partial.slot = q->backlog.slot = -1;
}

void iopf_carries_release(struct iopf_queue *q, struct iopf_jwriter *jw) {
	iopf_partial_drop(q, jw);
	if (q->backlog.slot >= 0) {
		iopf_jwriter_uncarry(jw, q->backlog.slot);
		q->backlog.slot = -1;
	}
}
