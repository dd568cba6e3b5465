/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/bindings.h"
#include "engine/engine.h"
#include "iopf_abi.h"
#include "log.h"
#include "manager.h"
#include "restart.h"
#include "shared/cleanup.h"
#include "state.h"
#include "test-hooks.h"

#define STATE_MAX (16u << 20)

void restart_init(struct restart *r) {
	*r = (struct restart){.state_fd = {-1, -1}, .journal_fd = -1};
}

void restart_done(struct restart *r) {
	iopf_journal_entries_free(r->pending, r->n_pending);
	fdstore_release_rest(&r->passed);
	if (r->journal_map)
		munmap(r->journal_map, r->journal_size);
	for (int i = 0; i < 2; i++)
		if (r->state_fd[i] >= 0)
			close(r->state_fd[i]);
	if (r->journal_fd >= 0)
		close(r->journal_fd);
	restart_init(r);
}

static int make_memfd(const char *name, size_t size) {
	_cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (size && ftruncate(fd, (off_t)size) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* --- the journal ------------------------------------------------------------------------ */

/* What the previous daemon's journal held, if it is readable. `live`: j
 * goes on being this run's journal, and its entries are marked answered in
 * it one by one. */
static void journal_take_over(struct restart *r, const struct iopf_journal *j, bool live) {
	int e = iopf_journal_collect(j, live, &r->pending, &r->n_pending);
	if (e < 0)
		log_warning_errno(e, "Failed to read what the last journal held: %m");
}

int restart_prepare(struct manager *m) {
	struct restart *r = &m->restart;
	int n = fdstore_collect(&r->passed);
	if (n < 0)
		log_warning_errno(n, "Failed to take the passed fds: %m");
	else if (n > 0)
		log_info("fd store: %d fds handed back", n);

	const struct iopf_journal_shape shape = {
		.workers = m->cfg.workers,
		.slot_bytes = IOPF_ENGINE_READ_BYTES,
		.carry_slots = 64,
		.carry_bytes = IOPF_ENGINE_MAX_GROUP_FAULTS * IOPF_RECORD_SIZE,
	};
	size_t size = iopf_journal_size(&shape);
	_cleanup_close_ int fd = fdstore_take(&r->passed, FDSTORE_JOURNAL, 0, 0);
	if (fd >= 0) {
		off_t old = lseek(fd, 0, SEEK_END);
		void *map = old > 0 ? mmap(NULL, (size_t)old, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
		struct iopf_journal j;
		if (map != MAP_FAILED && iopf_journal_open(map, (size_t)old, &j) == 0) {
			if ((size_t)old == size && memcmp(&j.shape, &shape, sizeof(shape)) == 0) {
				/* The same shape: go on with it as it is, formatted
				 * only once what it holds is answered, so that a crash
				 * during the restore loses nothing. */
				journal_take_over(r, &j, true);
				r->journal = j;
				r->journal_map = map;
				r->journal_size = size;
				r->journal_fd = TAKE_FD(fd);
				r->journal_deferred = true;
				return 0;
			}
			journal_take_over(r, &j, false);
		} else {
			log_warning("the stored journal is unreadable; starting a new one");
		}
		if (map != MAP_FAILED)
			munmap(map, (size_t)old);
		if (ftruncate(fd, (off_t)size) < 0)
			fd = -1; /* closed by its cleanup: a new one below */
	}
	if (fd < 0) {
		fd = make_memfd("iopfd-journal", size);
		if (fd < 0)
			return log_error_errno(fd, "Failed to make the journal: %m");
		fdstore_put(FDSTORE_JOURNAL, 0, 0, fd);
	}
	void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return log_error_errno(errno, "Failed to map the journal: %m");
	r->journal_map = map;
	r->journal_size = size;
	r->journal_fd = TAKE_FD(fd);
	return iopf_journal_format(map, size, &shape, &r->journal);
}

/* --- the state ---------------------------------------------------------------------------- */

static int state_read(int fd, struct state *ret) {
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size > STATE_MAX)
		return -EBADMSG;
	_cleanup_free_ char *text = malloc((size_t)size + 1);
	if (!text)
		return -ENOMEM;
	if (pread(fd, text, (size_t)size, 0) != size)
		return -EIO;
	text[size] = '\0';
	return state_parse(text, ret);
}

/* The newer of the two copies that is whole and plausible (generation 0
 * when neither is). Makes the copies that are not there. */
static int states_take(struct manager *m, struct state *best) {
	struct restart *r = &m->restart;
	*best = (struct state){0};
	for (unsigned i = 0; i < 2; i++) {
		int fd = fdstore_take(&r->passed, FDSTORE_STATE, i, 0);
		if (fd < 0) {
			fd = make_memfd("iopfd-state", 0);
			if (fd < 0)
				return log_error_errno(fd, "Failed to make the state memfd: %m");
			fdstore_put(FDSTORE_STATE, i, 0, fd);
		}
		r->state_fd[i] = fd;
		struct state s;
		if (state_read(fd, &s) < 0)
			continue;
		if (s.generation > best->generation) {
			state_done(best);
			*best = s;
			r->state_next = i ^ 1;
		} else {
			state_done(&s);
		}
	}
	r->state_gen = best->generation;
	return 0;
}

int restart_save_state(struct manager *m) {
	struct restart *r = &m->restart;
	if (r->state_fd[0] < 0)
		return 0;
	_cleanup_free_ char *text = NULL;
	int e = state_format(m, r->state_gen + 1, &text);
	if (e < 0)
		return log_error_errno(e, "Failed to describe the persistent objects: %m");
	/* The older of the two copies is rewritten; a crash half way leaves
	 * the other, whole, with the previous generation. */
	int fd = r->state_fd[r->state_next];
	size_t len = strlen(text);
	if (ftruncate(fd, 0) < 0 || pwrite(fd, text, len, 0) != (ssize_t)len)
		return log_error_errno(errno, "Failed to write the state: %m");
	r->state_gen++;
	r->state_next ^= 1;
	return 0;
}

/* --- the objects -------------------------------------------------------------------------- */

static int take_if(struct restart *r, bool stored, enum fdstore_kind k, uint64_t id, uint64_t sub) {
	return stored ? fdstore_take(&r->passed, k, id, sub) : -1;
}

static void restore_space(struct manager *m, const struct state_space *st) {
	struct restart *r = &m->restart;
	struct iopf_space_config cfg = st->cfg;
	cfg.iommufd = take_if(r, cfg.backend == IOPF_BACKEND_IOMMUFD, FDSTORE_SPACE_IOMMUFD, st->id, 0);
	if (cfg.backend == IOPF_BACKEND_IOMMUFD && cfg.iommufd < 0) {
		log_warning("space %lu: its iommufd did not come back; dropped", (unsigned long)st->id);
		return;
	}
	struct iopf_space *s;
	int e = iopf_space_new(st->id, &cfg, &s);
	if (e < 0) {
		log_warning_errno(e, "space %lu: cannot be made again: %m", (unsigned long)st->id);
		return;
	}
	for (size_t i = 0; i < st->n_regions; i++) {
		const struct state_region *g = &st->regions[i];
		struct iopf_region_config rc = {.iova = g->iova, .length = g->length, .offset = g->offset,
		                                .perm = g->perm,
		                                .memfd = take_if(r, g->memfd, FDSTORE_REGION_MEMFD, st->id, g->id)};
		enum iopf_region_refusal why = g->memfd && rc.memfd < 0 ? IOPF_REGION_NOT_MEMFD
		                                                       : iopf_space_add_region(s, &rc, g->id, NULL, NULL);
		if (why != IOPF_REGION_ADDED) {
			log_warning("space %lu region %lu: cannot be made again (%d)", (unsigned long)st->id,
			            (unsigned long)g->id, why);
			continue;
		}
		/* The previous daemon's mappings are still in a kept IOAS; this
		 * one starts from nothing pinned. */
		iopf_space_unmap_stale(s, g->id);
	}
	struct object_new n = {.uid = st->uid, .name = st->name, .persistent = true,
	                       .pidfd = take_if(r, st->watched, FDSTORE_SPACE_CREATOR, st->id, 0)};
	struct object *o;
	if (object_add_space(m, s, &n, &o) >= 0)
		r->restored_objects++;
}

struct restored_queue {
	struct iopf_queue *q;
	const struct state_queue *st;
	bool broken; /* its journal could not be answered: it cannot go on */
};

static struct restored_queue *restored_find(struct restored_queue *rq, size_t n, uint32_t id) {
	for (size_t i = 0; i < n; i++)
		if (iopf_queue_id(rq[i].q) == id)
			return &rq[i];
	return NULL;
}

/* Every group the previous daemon read and did not answer, before any new
 * fault is served, in the order the journal gives. */
static void answer_journal(struct manager *m, struct restored_queue *rq, size_t n) {
	struct restart *r = &m->restart;
	uint64_t refused = 0;
	for (size_t i = 0; i < r->n_pending; i++) {
		const struct iopf_journal_entry *e = &r->pending[i];
		struct restored_queue *x = restored_find(rq, n, e->queue_id);
		if (!x) {
			log_warning("journal: groups of queue %u, which did not come back, are lost", e->queue_id);
			continue;
		}
		struct iopf_recovery rec;
		int err = iopf_engine_recover(m->engine, x->q, e, &rec);
		if (err < 0) {
			log_warning_errno(err, "journal: queue %u: %m", e->queue_id);
			continue;
		}
		if (e->kind == IOPF_JOURNAL_REANSWER) {
			r->reanswered_groups += rec.answered - rec.refused;
			refused += rec.refused;
		} else {
			r->recovered_groups += rec.answered;
		}
		x->broken |= rec.closed != IOPF_QUEUE_OPEN;
		/* Answered: a crash from here on must not answer it again. */
		iopf_journal_entry_done(e);
	}
	if (r->n_pending)
		log_info("journal: %lu groups read by the previous daemon answered", (unsigned long)r->recovered_groups);
	if (r->reanswered_groups || refused)
		log_info("journal: %lu groups whose answers were being written answered again; the kernel had taken "
		         "%lu already",
		         (unsigned long)r->reanswered_groups, (unsigned long)refused);
	iopf_journal_entries_free(r->pending, r->n_pending);
	r->pending = NULL;
	r->n_pending = 0;
}

/* Spaces, queues and bindings as the state names them, then every group
 * the journal holds answered through them. The queues stay here: the
 * workers have them only once the journal is formatted for this run. */
static struct restored_queue *restore_objects(struct manager *m, const struct state *st, size_t *ret_n) {
	struct restart *r = &m->restart;
	m->next_id[OBJECT_QUEUE] = st->next_queue_id;
	m->next_id[OBJECT_SPACE] = st->next_space_id;
	for (size_t i = 0; i < st->n_spaces; i++)
		restore_space(m, &st->spaces[i]);

	struct restored_queue *rq = calloc(st->n_queues + 1, sizeof(*rq));
	size_t n = 0;
	for (size_t i = 0; rq && i < st->n_queues; i++) {
		const struct state_queue *q = &st->queues[i];
		int fd = fdstore_take(&r->passed, FDSTORE_QUEUE, q->id, 0);
		if (fd < 0 || iopf_queue_new((uint32_t)q->id, fd, q->transport, &rq[n].q) < 0) {
			log_warning("queue %lu: did not come back; dropped", (unsigned long)q->id);
			continue;
		}
		rq[n++].st = q;
	}
	for (size_t i = 0; i < st->n_bindings; i++) {
		const struct state_binding *b = &st->bindings[i];
		struct object *so = object_find(m, OBJECT_SPACE, b->space);
		struct iopf_binding_key k = {.queue_id = (uint32_t)b->queue, .dev_id = b->device, .pasid = b->pasid};
		if (so)
			iopf_bindings_add(iopf_engine_bindings(m->engine), &k, so->s);
	}

	test_hook_before_recovery(m);
	answer_journal(m, rq, n);
	*ret_n = n;
	return rq;
}

/* Now the workers may have them: each puts a restored partial group into
 * its own, freshly formatted, carry slots. */
static void hand_queues(struct manager *m, struct restored_queue *rq, size_t n) {
	struct restart *r = &m->restart;
	for (size_t i = 0; i < n; i++) {
		const struct state_queue *q = rq[i].st;
		if (rq[i].broken) {
			log_warning("queue %lu: its journal could not be answered through it; dropped", (unsigned long)q->id);
			iopf_bindings_remove_queue(iopf_engine_bindings(m->engine), (uint32_t)q->id);
			iopf_queue_free(rq[i].q);
			continue;
		}
		struct object_new on = {.uid = q->uid, .name = q->name, .persistent = true,
		                        .pidfd = take_if(r, q->watched, FDSTORE_QUEUE_CREATOR, q->id, 0)};
		struct object *o;
		int e = object_add_queue(m, rq[i].q, &on, &o);
		if (e < 0)
			log_warning_errno(e, "queue %lu: cannot be served again: %m", (unsigned long)q->id);
		else
			r->restored_objects++;
	}
}

int restart_restore(struct manager *m) {
	struct restart *r = &m->restart;
	struct state st;
	int e = states_take(m, &st);
	if (e < 0)
		return e;
	_cleanup_free_ struct restored_queue *rq = NULL;
	size_t n = 0;
	if (st.generation)
		rq = restore_objects(m, &st, &n);
	else
		answer_journal(m, NULL, 0); /* nothing came back to answer through */

	/* What the journal held is answered: from here on it is this run's.
	 * Formatted before any worker has a queue, since the format resets
	 * the workers' batch and carry slots. A partial group restored into a
	 * queue is in memory only from here until its worker carries it:
	 * a crash in that window loses that group alone. */
	if (r->journal_deferred) {
		r->journal_deferred = false;
		struct iopf_journal_shape shape = r->journal.shape;
		e = iopf_journal_format(r->journal_map, r->journal_size, &shape, &r->journal);
		if (e < 0) {
			for (size_t i = 0; i < n; i++)
				iopf_queue_free(rq[i].q);
			state_done(&st);
			return log_error_errno(e, "Failed to format the journal: %m");
		}
	}
	hand_queues(m, rq, n);
	state_done(&st);
	fdstore_release_rest(&r->passed);
	if (r->restored_objects)
		log_info("restored %lu persistent objects", (unsigned long)r->restored_objects);
	/* Once, now that every object is back: a state saved while they came
	 * back one by one would name only some, and a crash then would let
	 * the others' fds go. */
	return restart_save_state(m);
}
