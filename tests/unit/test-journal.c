/* SPDX-License-Identifier: MIT */
/*
 * The journal: a header that cannot be forged into a wrong size, a worker
 * writing through it (a partial group in a carry slot, the batch slot empty
 * and poisoned once answered), and the reader a restart uses: what it finds
 * in each slot state, and in which order.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../common.h"
#include "iopf_abi.h"
#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/engine.h"
#include "engine/journal-format.h"
#include "engine/journal.h"
#include "engine/space.h"

#define PG 4096ull
#define IOVA 0x200000000ull
#define LAST IOMMU_PGFAULT_FLAGS_LAST_PAGE

TestSuite(journal, .timeout = 60);

static struct iopf_journal make(const struct iopf_journal_shape *shape, void **mem) {
	size_t size = iopf_journal_size(shape);
	*mem = aligned_alloc(64, size);
	cr_assert_not_null(*mem);
	struct iopf_journal j;
	cr_assert_eq(iopf_journal_format(*mem, size, shape, &j), 0);
	return j;
}

/* A journal is taken back only when its header describes exactly what
 * lies behind it: fields out of bounds (whose products could wrap) or a
 * size that does not match are refused. */
Test(journal, open_refuses_forged_headers) {
	const struct iopf_journal_shape shape = {.workers = 2, .slot_bytes = 4096, .carry_slots = 4, .carry_bytes = 1024};
	void *mem;
	struct iopf_journal j = make(&shape, &mem);
	size_t size = iopf_journal_size(&shape);
	cr_assert_eq(iopf_journal_open(mem, size, &j), 0);
	struct iopf_jheader *h = mem, saved = *h;
	h->carry_slots = 1u << 31;
	cr_assert_eq(iopf_journal_open(mem, size, &j), -EBADMSG, "carry slots out of bounds");
	*h = saved;
	h->carry_bytes = UINT32_MAX;
	cr_assert_eq(iopf_journal_open(mem, size, &j), -EBADMSG, "carry bytes out of bounds");
	*h = saved;
	h->slot_bytes = 0;
	cr_assert_eq(iopf_journal_open(mem, size, &j), -EBADMSG, "no slot data");
	*h = saved;
	h->workers = 3;
	cr_assert_eq(iopf_journal_open(mem, size, &j), -EBADMSG, "more workers than the memory holds");
	*h = saved;
	cr_assert_eq(iopf_journal_open(mem, size - 64, &j), -EBADMSG, "memory shorter than the header says");
	cr_assert_eq(iopf_journal_open(mem, size, &j), 0);
	cr_assert_eq(memcmp(&j.shape, &shape, sizeof(shape)), 0);
	free(mem);
}

static iopf_record rec(uint32_t flags, uint32_t cookie, uint64_t page) {
	return (iopf_record){.flags = flags, .perm = IOMMU_PGFAULT_PERM_READ, .addr = IOVA + page * PG, .cookie = cookie};
}

static void on_closed(struct iopf_queue *q, enum iopf_queue_close why, void *ud) {
}

static size_t read_answers(int fd, iopf_response *r, size_t n) {
	size_t got = 0;
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < n * sizeof(*r)) {
		ssize_t k = recv(fd, (uint8_t *)r + got, n * sizeof(*r) - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got / sizeof(*r);
}

/* What the reader finds in a live journal right now. */
static size_t collect(const struct iopf_journal *j, struct iopf_journal_entry **e) {
	size_t n;
	cr_assert_eq(iopf_journal_collect(j, false, e, &n), 0);
	return n;
}

/* A relay queue of the engine, device 0 bound to s; sv[1] is the device. */
static struct iopf_queue *relay(struct iopf_engine *e, struct iopf_space *s, uint32_t id, int *dev) {
	struct iopf_binding_key k = {.queue_id = id, .dev_id = 0, .pasid = IOPF_PASID_NONE};
	cr_assert_eq(iopf_bindings_add(iopf_engine_bindings(e), &k, s), 0);
	int sv[2];
	relay_pair(sv);
	struct iopf_queue *q;
	cr_assert_eq(iopf_queue_new(id, sv[0], IOPF_TRANSPORT_RELAY, &q), 0);
	cr_assert_eq(iopf_engine_add_queue(e, q), 0);
	*dev = sv[1];
	return q;
}

/* With a journal, a partial group waits in a carry slot of the worker's
 * journal, and a queue that goes on in the next daemon leaves it there for
 * it; a partial group completed by a later read leaves nothing; the batch
 * slot is empty, its data poison again, once everything read is answered.
 * (The journal is read once the worker let go of the queues: the reader is
 * for a journal nobody writes.) */
Test(journal, holds_partial_groups_and_empties_after_answering) {
	iopf_rcu_register();
	const struct iopf_journal_shape shape = {
		.workers = 1, .slot_bytes = 64 * 1024, .carry_slots = 8, .carry_bytes = 512 * IOPF_RECORD_SIZE};
	void *mem;
	struct iopf_journal j = make(&shape, &mem);
	struct iopf_engine_config cfg = {.workers = 1, .on_queue_closed = on_closed, .journal = &j};
	struct iopf_engine *engine;
	cr_assert_eq(iopf_engine_new(&cfg, &engine), 0);
	struct iopf_space_config sc = {.backend = IOPF_BACKEND_NONE, .quota = 1 << 20, .page_size = PG, .iommufd = -1};
	struct iopf_space *s;
	cr_assert_eq(iopf_space_new(1, &sc, &s), 0);
	struct iopf_region_config rc = {.iova = IOVA, .length = 64 * PG, .memfd = -1, .perm = IOPF_PERM_READ};
	cr_assert_eq(iopf_space_add_region(s, &rc, 0, NULL, NULL), IOPF_REGION_ADDED);
	int held_dev, done_dev;
	struct iopf_queue *held = relay(engine, s, 3, &held_dev), *done = relay(engine, s, 4, &done_dev);

	/* One whole group and 60 bytes of the next, two-record one, on each;
	 * then the rest of the second group on one of them. */
	iopf_record recs[] = {rec(LAST, 1, 1), rec(0, 2, 2), rec(LAST, 2, 3)};
	iopf_response r[2];
	cr_assert_eq(send(held_dev, recs, sizeof(iopf_record) + 60, 0), (ssize_t)(sizeof(iopf_record) + 60));
	cr_assert_eq(send(done_dev, recs, sizeof(iopf_record) + 60, 0), (ssize_t)(sizeof(iopf_record) + 60));
	cr_assert_eq(read_answers(held_dev, r, 1), 1);
	cr_assert_eq(r[0].cookie, 1);
	cr_assert_eq(read_answers(done_dev, r, 1), 1);
	cr_assert_eq(send(done_dev, (uint8_t *)&recs[1] + 60, 20, 0), 20);
	cr_assert_eq(read_answers(done_dev, r, 1), 1);
	cr_assert_eq(r[0].cookie, 2);
	cr_assert_eq(r[0].code, IOMMUFD_PAGE_RESP_SUCCESS);

	cr_assert_eq(iopf_engine_remove_queue(engine, held, IOPF_RELEASE_TO_NEXT_DAEMON), 0);
	cr_assert_eq(iopf_engine_remove_queue(engine, done, IOPF_RELEASE_TO_NEXT_DAEMON), 0);
	struct iopf_journal_entry *e;
	size_t n = collect(&j, &e);
	cr_assert_eq(n, 1, "only the partial group is held (the batch slot is empty, the other carry free)");
	cr_assert_eq(e[0].kind, IOPF_JOURNAL_PARTIAL);
	cr_assert_eq(e[0].queue_id, 3);
	cr_assert_eq(e[0].len, 60);
	cr_assert_eq(memcmp(e[0].data, &recs[1], 60), 0);
	iopf_journal_entries_free(e, n);
	/* Unused slot data is poison, so that a read cut short by a kill can be
	 * measured. */
	struct iopf_jslot *slot = iopf_journal_slot(&j, 0);
	for (size_t i = 0; i < 200; i++)
		cr_assert_eq(slot->data[i], IOPF_JOURNAL_POISON, "byte %zu not poisoned after answering", i);

	iopf_queue_free(held);
	iopf_queue_free(done);
	close(held_dev);
	close(done_dev);
	iopf_bindings_remove_space(iopf_engine_bindings(engine), s);
	iopf_engine_free(engine);
	iopf_space_destroy(s);
	free(mem);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
}

/* A slot as a worker leaves it, written through the writer. */
static void slot_in(struct iopf_jwriter *w, uint32_t queue, bool stream, const void *p, size_t len,
                    enum iopf_jslot_state state) {
	iopf_jwriter_reading(w, queue, 0, stream);
	memcpy(iopf_jwriter_buffer(w), p, len);
	if (state == IOPF_JSLOT_READING)
		return;
	iopf_jwriter_read(w, len);
	if (state == IOPF_JSLOT_ANSWERING)
		iopf_jwriter_answering(w, len);
	else if (state == IOPF_JSLOT_EMPTY)
		iopf_jwriter_answered(w, len);
}

/* What a restart finds, slot state by slot state, and the order it must
 * answer it in: answers first, then batches, then batches whose answers
 * were being written, partial groups last. */
Test(journal, reader_finds_each_state_in_answering_order) {
	const struct iopf_journal_shape shape = {.workers = 4, .slot_bytes = 4096, .carry_slots = 4, .carry_bytes = 1024};
	void *mem;
	struct iopf_journal j = make(&shape, &mem);
	struct iopf_jwriter w[4];
	for (unsigned i = 0; i < 4; i++)
		iopf_jwriter_init(&w[i], &j, i);
	iopf_record batch[3] = {rec(LAST, 1, 1), rec(LAST, 2, 2), rec(LAST, 3, 3)};

	/* Worker 0: a kernel batch killed while answering; worker 1: a relay
	 * batch killed while answering (answered, for a relay); worker 2: a
	 * kernel read cut off from its count; worker 3: answered. */
	slot_in(&w[0], 10, false, batch, sizeof(batch), IOPF_JSLOT_ANSWERING);
	slot_in(&w[1], 11, true, batch, sizeof(batch), IOPF_JSLOT_ANSWERING);
	slot_in(&w[2], 12, false, batch, 2 * sizeof(batch[0]), IOPF_JSLOT_READING);
	slot_in(&w[3], 13, false, batch, sizeof(batch), IOPF_JSLOT_EMPTY);
	iopf_response answers[2] = {{.cookie = 7}, {.cookie = 8}};
	cr_assert_geq(iopf_jwriter_carry(&w[3], -1, 14, IOPF_JCARRY_RESPONSES, answers, sizeof(answers)), 0);
	cr_assert_geq(iopf_jwriter_carry(&w[3], -1, 15, IOPF_JCARRY_RECORDS, &batch[0], 20), 0);
	/* A relay's partial group whose batch holds its bytes already. */
	int dup = iopf_jwriter_carry(&w[1], -1, 11, IOPF_JCARRY_RECORDS, &batch[0], 20);
	cr_assert_geq(dup, 0);
	slot_in(&w[1], 11, true, batch, sizeof(batch), IOPF_JSLOT_READ);

	struct iopf_journal_entry *e;
	size_t n;
	cr_assert_eq(iopf_journal_collect(&j, true, &e, &n), 0);
	cr_assert_eq(n, 5);
	cr_assert(e[0].kind == IOPF_JOURNAL_ANSWERS && e[0].queue_id == 14 && e[0].len == sizeof(answers));
	cr_assert(e[1].kind == IOPF_JOURNAL_BATCH && e[2].kind == IOPF_JOURNAL_BATCH);
	for (int i = 1; i <= 2; i++) {
		if (e[i].queue_id == 12)
			cr_assert_eq(e[i].len, 2 * sizeof(batch[0]), "measured by the poison");
		else
			cr_assert(e[i].queue_id == 11 && e[i].len == sizeof(batch));
	}
	cr_assert(e[3].kind == IOPF_JOURNAL_REANSWER && e[3].queue_id == 10, "the kernel can tell what it took");
	cr_assert(e[4].kind == IOPF_JOURNAL_PARTIAL && e[4].queue_id == 15 && e[4].len == 20);

	/* Marked answered one by one in the live journal; a partial group
	 * stays until the journal is formatted, but not one whose bytes the
	 * answered batch held (a crash before the format would carry them
	 * twice). */
	for (size_t i = 0; i < n; i++)
		iopf_journal_entry_done(&e[i]);
	iopf_journal_entries_free(e, n);
	cr_assert_eq(iopf_journal_collect(&j, false, &e, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert(e[0].kind == IOPF_JOURNAL_PARTIAL && e[0].queue_id == 15);
	iopf_journal_entries_free(e, n);
	free(mem);
}

/*
 * A batch answered in slices. A kernel batch killed between two slices
 * leaves the groups after the answered ones as a batch to answer; killed
 * while a slice's answers are written, the same groups to answer again (the
 * kernel refuses what it took). A relay's slice counts as answered the
 * moment it is being written, so a relay killed in a middle slice leaves
 * only the groups after that slice.
 */
Test(journal, reader_skips_the_answered_slices) {
	const struct iopf_journal_shape shape = {.workers = 3, .slot_bytes = 4096, .carry_slots = 4, .carry_bytes = 1024};
	void *mem;
	struct iopf_journal j = make(&shape, &mem);
	struct iopf_jwriter w[3];
	for (unsigned i = 0; i < 3; i++)
		iopf_jwriter_init(&w[i], &j, i);
	iopf_record batch[4] = {rec(LAST, 1, 1), rec(LAST, 2, 2), rec(LAST, 3, 3), rec(LAST, 4, 4)};
	const size_t R = sizeof(batch[0]);

	/* Worker 0, kernel: the first slice (one group) written, then killed. */
	slot_in(&w[0], 20, false, batch, sizeof(batch), IOPF_JSLOT_READ);
	iopf_jwriter_answering(&w[0], R);
	iopf_jwriter_sliced(&w[0], R);
	/* Worker 1, kernel: killed while the second slice (groups 2-3) is written. */
	slot_in(&w[1], 21, false, batch, sizeof(batch), IOPF_JSLOT_READ);
	iopf_jwriter_answering(&w[1], R);
	iopf_jwriter_sliced(&w[1], R);
	iopf_jwriter_answering(&w[1], 3 * R);
	/* Worker 2, relay: killed while the middle slice (groups 2-3) is written. */
	slot_in(&w[2], 22, true, batch, sizeof(batch), IOPF_JSLOT_READ);
	iopf_jwriter_answering(&w[2], R);
	iopf_jwriter_sliced(&w[2], R);
	iopf_jwriter_answering(&w[2], 3 * R);

	struct iopf_journal_entry *e;
	size_t n;
	cr_assert_eq(iopf_journal_collect(&j, false, &e, &n), 0);
	cr_assert_eq(n, 3);
	for (size_t i = 0; i < n; i++) {
		if (e[i].queue_id == 20) {
			cr_assert_eq(e[i].kind, IOPF_JOURNAL_BATCH);
			cr_assert_eq(e[i].len, 3 * R, "the groups after the first slice");
			cr_assert_eq(memcmp(e[i].data, &batch[1], 3 * R), 0);
		} else if (e[i].queue_id == 21) {
			cr_assert_eq(e[i].kind, IOPF_JOURNAL_REANSWER, "the kernel can tell which it took");
			cr_assert_eq(e[i].len, 3 * R, "from the slice being written on");
			cr_assert_eq(memcmp(e[i].data, &batch[1], 3 * R), 0);
		} else {
			cr_assert_eq(e[i].queue_id, 22);
			cr_assert_eq(e[i].kind, IOPF_JOURNAL_BATCH);
			cr_assert_eq(e[i].len, R, "a relay's slice counts as answered once being written");
			cr_assert_eq(memcmp(e[i].data, &batch[3], R), 0);
		}
	}
	iopf_journal_entries_free(e, n);

	/* A new read starts with nothing answered. */
	slot_in(&w[0], 20, false, batch, sizeof(batch), IOPF_JSLOT_READ);
	cr_assert_eq(iopf_journal_collect(&j, false, &e, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (e[i].queue_id == 20)
			cr_assert_eq(e[i].len, sizeof(batch));
	iopf_journal_entries_free(e, n);
	free(mem);
}
