/* SPDX-License-Identifier: MIT */
/*
 * The journal: what the workers have read but not yet answered, in memory
 * that outlives the daemon (a memfd kept in systemd's fd store), so that a
 * restarted daemon answers what a crashed one had read.
 *
 * This module owns the whole protocol (docs/restart.md): the writer calls a
 * worker makes around each batch and for the bytes it carries between
 * batches, and the reader a restart uses to find, in the order they must be
 * answered, what the previous daemon left.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iopf_journal_shape {
	unsigned workers;
	uint32_t slot_bytes;  /* a batch: the bytes one read may fill */
	uint32_t carry_slots; /* per worker: partial groups and unsent answers held */
	uint32_t carry_bytes; /* one carry: the longest group, or that many answers */
};

struct iopf_journal {
	void *base;
	size_t size;
	struct iopf_journal_shape shape;
};

/* Bytes a journal of this shape needs. */
size_t iopf_journal_size(const struct iopf_journal_shape *shape);
/* Lay out a fresh, empty journal in base[0..size) (64-byte aligned). */
int iopf_journal_format(void *base, size_t size, const struct iopf_journal_shape *shape, struct iopf_journal *out);
/* Take an existing journal as it is (after a restart); -EBADMSG if it is not
 * one, its header is implausible, or it does not fit in size. */
int iopf_journal_open(void *base, size_t size, struct iopf_journal *out);

/* --- the writer: one per worker, used on that worker's thread only ------------ */

struct iopf_jslot;

struct iopf_jwriter {
	const struct iopf_journal *j;
	unsigned worker;
	struct iopf_jslot *slot;
};

void iopf_jwriter_init(struct iopf_jwriter *w, const struct iopf_journal *j, unsigned worker);
/* Where the worker reads its batches: straight into the journal. */
uint8_t *iopf_jwriter_buffer(const struct iopf_jwriter *w);

/* A read into the buffer after its first `have` bytes (a carried partial
 * group, copied there) is about to start. */
void iopf_jwriter_reading(struct iopf_jwriter *w, uint32_t queue_id, size_t have, bool stream);
/* The buffer's first len bytes are read and not yet answered. */
void iopf_jwriter_read(struct iopf_jwriter *w, size_t len);
/* The answers of the groups up to byte `end` of the buffer are about to
 * be written (a slice of the batch, or all of it when end is its length). */
void iopf_jwriter_answering(struct iopf_jwriter *w, size_t end);
/* They were written, and the batch goes on past `end`. */
void iopf_jwriter_sliced(struct iopf_jwriter *w, size_t end);
/* Done with the first len bytes: nothing of them is owed any more. */
void iopf_jwriter_answered(struct iopf_jwriter *w, size_t len);

/* What a carry slot holds for a queue between batches. */
enum iopf_jcarry_kind {
	IOPF_JCARRY_RECORDS = 0,   /* the start of a partial group */
	IOPF_JCARRY_RESPONSES = 1, /* answers a relay peer has not taken yet */
};

/* The most bytes a carry holds. */
size_t iopf_jwriter_carry_max(const struct iopf_jwriter *w);
/* Put len bytes in carry `slot` (rewritten in place), or in a free one when
 * slot is -1. Returns the slot, or -1 when none is free or len is too
 * large. */
int iopf_jwriter_carry(struct iopf_jwriter *w, int slot, uint32_t queue_id, enum iopf_jcarry_kind kind,
                       const void *p, size_t len);
const uint8_t *iopf_jwriter_carried(const struct iopf_jwriter *w, int slot);
/* The slot is free again. */
void iopf_jwriter_uncarry(struct iopf_jwriter *w, int slot);

/* --- the reader: what a previous daemon left ----------------------------------------- */

enum iopf_journal_entry_kind {
	IOPF_JOURNAL_ANSWERS,  /* answers a relay peer had not taken: send them */
	IOPF_JOURNAL_BATCH,    /* a batch read and not answered: resolve and answer it */
	IOPF_JOURNAL_REANSWER, /* a kernel queue's batch whose answers were being written:
	                        * answer it again (the kernel refuses what it took) */
	IOPF_JOURNAL_PARTIAL,  /* the start of a partial group: carry it to the next read */
};

struct iopf_journal_entry {
	uint32_t queue_id;
	enum iopf_journal_entry_kind kind;
	size_t len;
	uint8_t *data;  /* a copy (64-byte aligned) */
	uint32_t *done; /* in a live journal: where it is marked answered */
	uint32_t *held; /* a batch's: the carry of the partial group it holds too */
};

/*
 * Copy out what the journal holds, in the order a restart must answer it:
 * answers already made first; then what was read and not answered; then the
 * batches that were being answered, whose answers the kernel may have taken
 * (it refuses a cookie it does not hold, and gives a cookie out again only
 * after taking its answer, so a cookie reused by a batch read later has been
 * answered by then and the old answer is refused rather than taken for the
 * new group); partial groups last. `live`: the journal goes on being this
 * run's, formatted only once all of it is answered, and each entry can be
 * marked answered in it.
 */
int iopf_journal_collect(const struct iopf_journal *j, bool live, struct iopf_journal_entry **out, size_t *n);
/* Answered: a crash from here on must not answer it again. (A partial group
 * is only carried: it stays until the journal is formatted.) */
void iopf_journal_entry_done(const struct iopf_journal_entry *e);
void iopf_journal_entries_free(struct iopf_journal_entry *e, size_t n);
