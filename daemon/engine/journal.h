/* SPDX-License-Identifier: MIT */
/*
 * The journal: what the workers have read but not yet answered, in memory
 * that outlives the daemon (a memfd kept in systemd's fd store).
 *
 * A worker reads each batch straight into its journal slot and marks the
 * slot READ before resolving; once the batch's responses are written it marks
 * it EMPTY. A relay's partial group, carried to the next read, sits in one of
 * the worker's carry slots. So after a crash the next daemon finds, per
 * worker, the batch it was answering and the partial groups it was holding:
 * it re-resolves and answers the groups, restores the partial ones, and only
 * then serves new faults.
 *
 * Before a read the slot turns READING, so that a SIGKILL landing while the
 * read is in the kernel (it finishes, then the thread dies before it sees
 * the count) still leaves the batch to be answered: its length is found by
 * the poison that fills unused slot data. Before the batch's responses are
 * written the slot turns ANSWERING. For a kernel queue a restarted daemon
 * answers an ANSWERING batch again, after everything else: the kernel
 * refuses a cookie whose answer it already took, and gives a cookie out again
 * only after taking its answer, so nothing is lost and nothing is answered
 * twice. A relay peer cannot tell a second answer from a fresh one, so for a
 * relay an ANSWERING slot counts as answered: a SIGKILL landing while the
 * write is in the kernel lets the write finish and kills the thread on its
 * way back. Responses a slow relay peer has not taken yet wait in a carry
 * slot of kind RESPONSES and are sent again after a restart; a clean stop
 * leaves a kept queue's carries in place for the next daemon.
 *
 * Windows still open, each a few instructions wide, and all but the last
 * for relays only:
 * - a crash between marking ANSWERING and entering write() loses the
 *   batch's answers; one while a backlog is flushed may send part twice;
 * - a crash after a send() that took part of a batch's answers, before the
 *   rest is mirrored into a carry, loses the rest; so does one while a
 *   backlog carry is rewritten in place (it is unowned meanwhile);
 * - a crash right after a relay read, before the slot turns READ, measures
 *   the read by the poison: data that ends in 0xFF bytes comes back short
 *   and the stream loses its place (the queue is dropped);
 * - on start the next daemon answers what the journal held before it
 *   formats it, marking each batch done as it answers it; a partial group
 *   or unsent answers it takes back live in the queue's memory from then
 *   until the queue reaches its worker (milliseconds), and a crash there
 *   loses them. (When the journal's shape changed, e.g. another number of
 *   workers, it is formatted first and a crash during the restore loses
 *   all it held.)
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define IOPF_JOURNAL_MAGIC "iopfdjn2"

enum iopf_jslot_state {
	IOPF_JSLOT_EMPTY = 0,
	IOPF_JSLOT_READ = 1,      /* data[0..len) was read from queue_id and is not answered */
	IOPF_JSLOT_ANSWERING = 2, /* its responses are being written: answered for a restart */
	IOPF_JSLOT_READING = 3,   /* a read into data[len..) is in the kernel: the bytes
	                           * it returned end where the poison begins */
};


enum iopf_jcarry_kind {
	IOPF_JCARRY_RECORDS = 0,   /* the start of a partial group */
	IOPF_JCARRY_RESPONSES = 1, /* responses a relay peer has not taken yet */
};

struct iopf_jslot {
	uint32_t state; /* enum iopf_jslot_state, stored with release */
	uint32_t queue_id;
	uint32_t len;
	uint32_t stream; /* the queue's transport splits records (relay) */
	uint8_t data[]; /* slot_bytes; 64-byte aligned */
};

struct iopf_jcarry {
	uint32_t queue_id; /* 0: free; stored with release after data and len */
	uint32_t len;
	uint32_t kind;     /* enum iopf_jcarry_kind */
	uint32_t _pad;
	uint8_t data[]; /* carry_bytes */
};

struct iopf_jheader {
	char magic[8];
	uint32_t workers;
	uint32_t slot_bytes;  /* data bytes of a batch slot */
	uint32_t carry_slots; /* per worker */
	uint32_t carry_bytes; /* data bytes of a carry slot */
	uint64_t size;        /* of the whole journal */
	uint32_t test_marks;  /* fault injection: hooks that fired on this journal
	                       * (in the header's padding: the layout is unchanged) */
};

struct iopf_journal {
	void *base;
	size_t size;
	const struct iopf_jheader *h;
};

/* Bytes a journal for this shape needs. */
size_t iopf_journal_size(unsigned workers, uint32_t slot_bytes, uint32_t carry_slots, uint32_t carry_bytes);
/* Lay out a fresh, empty journal in base[0..size). */
int iopf_journal_format(void *base, size_t size, unsigned workers, uint32_t slot_bytes, uint32_t carry_slots,
                        uint32_t carry_bytes, struct iopf_journal *out);
/* Take an existing journal as it is (after a restart); -EBADMSG if it is not
 * one or does not fit in size. */
int iopf_journal_open(void *base, size_t size, struct iopf_journal *out);

struct iopf_jslot *iopf_journal_slot(const struct iopf_journal *j, unsigned worker);
struct iopf_jcarry *iopf_journal_carry(const struct iopf_journal *j, unsigned worker, uint32_t i);

/* Slot data not holding a batch is poison (all bytes 0xFF): a read that a
 * SIGKILL cut off from its return value still left its bytes, and they end
 * where the poison starts. No kernel fault record is all 0xFF (its flags'
 * high bits are zero). */
#define IOPF_JOURNAL_POISON 0xFF

/* The length of a READING slot's data: the last byte that is not poison,
 * plus one (rounded up to whole records when `whole_records`). */
size_t iopf_journal_reading_len(const struct iopf_journal *j, const struct iopf_jslot *s, int whole_records);
