/* SPDX-License-Identifier: MIT */
/*
 * The journal's layout in its memfd: a header, then per worker one batch
 * slot and carry_slots carry slots, each 64-byte aligned. Only journal.c
 * (and the tests of it) know it; docs/restart.md tells the protocol.
 *
 * The layout is the same as that of journals written before the header's
 * padding stopped holding fault-injection marks, so a daemon of either
 * kind reads the other's.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "iopf_abi.h"
#include "journal.h"

#define IOPF_JOURNAL_MAGIC "iopfdjn2"

enum iopf_jslot_state {
	IOPF_JSLOT_EMPTY = 0,
	IOPF_JSLOT_READ = 1,      /* data[0..len) was read from queue_id; what follows the
	                           * answered records is not answered */
	IOPF_JSLOT_ANSWERING = 2, /* a kernel queue's answers (of what follows the answered
	                           * records) are being written; for a relay, the last slice's */
	IOPF_JSLOT_READING = 3,   /* a read into data[len..) is in the kernel: the bytes
	                           * it returned end where the poison begins */
};

struct iopf_jslot {
	uint32_t state; /* enum iopf_jslot_state, stored with release */
	uint32_t queue_id;
	uint32_t len;
	uint16_t stream;   /* the queue's transport splits records (relay) */
	uint16_t answered; /* records at the start of data[] whose groups are
	                    * answered (a batch answered in slices); 0 in
	                    * journals written before slices, where this half of
	                    * the word was the zero top of `stream` */
	uint8_t data[];    /* slot_bytes; 64-byte aligned */
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
};

/* Slot data not holding a batch is poison (all bytes 0xFF): a read that a
 * SIGKILL cut off from its return value still left its bytes, and they end
 * where the poison starts. No kernel fault record is all 0xFF (its flags'
 * high bits are zero). */
#define IOPF_JOURNAL_POISON 0xFF

/* A slot's records are counted in 16 bits (answered). */
#define IOPF_JOURNAL_SLOT_MAX (UINT16_MAX * IOPF_RECORD_SIZE)

struct iopf_jslot *iopf_journal_slot(const struct iopf_journal *j, unsigned worker);
struct iopf_jcarry *iopf_journal_carry(const struct iopf_journal *j, unsigned worker, uint32_t i);
/* The length of a READING slot's data: the last byte that is not poison,
 * plus one (rounded up to whole records when `whole_records`). */
size_t iopf_journal_reading_len(const struct iopf_journal *j, const struct iopf_jslot *s, int whole_records);
