/* SPDX-License-Identifier: MIT */
/*
 * Restart without loss. What a persistent object needs lives outside the
 * process: its fds in systemd's fd store (see fdstore.h for the names), its
 * description in a state memfd (JSON, two of them written in turn so that
 * one is always whole), and the groups read but not answered in the
 * journal (journal.h). On start the daemon takes all of it back, answers
 * every journaled group (re-resolved), and only then serves new faults.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/batch.h"
#include "engine/bindings.h"
#include "fdstore.h"
#include "log.h"
#include "manager.h"
#include "engine/resolve.h"

/* The journal's shape for this run (the engine's defaults). */
#define JOURNAL_SLOT_BYTES (64u * 1024)
#define JOURNAL_CARRY_SLOTS 64u
#define JOURNAL_CARRY_BYTES (512u * IOPF_RECORD_SIZE)

/* What the previous daemon's journal held, copied out before the journal is
 * formatted for this run. */
enum pending_kind {
	PENDING_BATCH,     /* a batch read and not answered: resolve and answer it */
	PENDING_PARTIAL,   /* the start of a partial group: carry it to the next read */
	PENDING_RESPONSES, /* answers a relay peer had not taken: send them */
	PENDING_REANSWER,  /* a kernel queue's batch whose answers were being
	                    * written: answer it again, last (see persist_restore) */
};

struct pending {
	uint32_t queue_id;
	enum pending_kind kind;
	size_t len;
	uint8_t *data;
	uint32_t *done; /* where the live journal learns it was answered (0), or NULL */
};

static struct fdstore_entry *stored;
static int n_stored;
static struct pending *pending;
static size_t n_pending;

/* --- state ------------------------------------------------------------------------------------ */

static int make_memfd(const char *name, size_t size) {
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (size && ftruncate(fd, (off_t)size) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

struct binding_ctx {
	struct manager *m;
	sd_json_variant **arr;
	int r;
};

static int add_binding(const struct iopf_binding *bd, void *ud) {
	struct binding_ctx *x = ud;
	struct queue_obj *qo = queue_obj_find(x->m, bd->key.queue_id);
	struct space_obj *so = space_obj_find(x->m, bd->space->id);
	if (!qo || !so || !qo->persistent || !so->persistent)
		return 0;
	x->r = sd_json_variant_append_arraybo(x->arr, SD_JSON_BUILD_PAIR_UNSIGNED("queue", bd->key.queue_id),
	                                      SD_JSON_BUILD_PAIR_UNSIGNED("device", bd->key.dev_id),
	                                      SD_JSON_BUILD_PAIR_UNSIGNED("pasid", bd->key.pasid),
	                                      SD_JSON_BUILD_PAIR_UNSIGNED("space", bd->space->id));
	return x->r < 0;
}

static int build_state(struct manager *m, sd_json_variant **ret) {
	sd_json_variant *queues = NULL, *spaces = NULL, *bindings = NULL;
	int r = sd_json_variant_new_array(&queues, NULL, 0);
	if (r >= 0)
		r = sd_json_variant_new_array(&spaces, NULL, 0);
	if (r >= 0)
		r = sd_json_variant_new_array(&bindings, NULL, 0);

	struct queue_obj *qo;
	cds_list_for_each_entry(qo, &m->queues, node) {
		if (r < 0 || !qo->persistent)
			continue;
		r = sd_json_variant_append_arraybo(
			&queues, SD_JSON_BUILD_PAIR_UNSIGNED("id", qo->id), SD_JSON_BUILD_PAIR_STRING("name", qo->name),
			SD_JSON_BUILD_PAIR_UNSIGNED("uid", qo->uid),
			SD_JSON_BUILD_PAIR_STRING("transport", iopf_transport_kind_str(qo->q->kind)),
			SD_JSON_BUILD_PAIR_BOOLEAN("watched", qo->pidfd >= 0));
	}
	struct space_obj *so;
	cds_list_for_each_entry(so, &m->spaces, node) {
		if (r < 0 || !so->persistent)
			continue;
		sd_json_variant *regions = NULL;
		r = sd_json_variant_new_array(&regions, NULL, 0);
		struct iopf_region_set *set = so->s->regions;
		for (size_t i = 0; r >= 0 && set && i < set->n; i++) {
			const struct iopf_region *g = set->r[i];
			r = sd_json_variant_append_arraybo(
				&regions, SD_JSON_BUILD_PAIR_UNSIGNED("id", g->id), SD_JSON_BUILD_PAIR_UNSIGNED("iova", g->iova),
				SD_JSON_BUILD_PAIR_UNSIGNED("length", g->length), SD_JSON_BUILD_PAIR_UNSIGNED("offset", g->offset),
				SD_JSON_BUILD_PAIR_UNSIGNED("perm", g->perm), SD_JSON_BUILD_PAIR_BOOLEAN("memfd", g->memfd >= 0));
		}
		const struct iopf_space_config *c = &so->s->cfg;
		if (r >= 0)
			r = sd_json_variant_append_arraybo(
				&spaces, SD_JSON_BUILD_PAIR_UNSIGNED("id", so->id), SD_JSON_BUILD_PAIR_STRING("name", so->name),
				SD_JSON_BUILD_PAIR_UNSIGNED("uid", so->uid),
				SD_JSON_BUILD_PAIR_STRING("backend", iopf_backend_kind_str(c->backend)),
				SD_JSON_BUILD_PAIR_UNSIGNED("quota", c->quota), SD_JSON_BUILD_PAIR_UNSIGNED("pageSize", c->page_size),
				SD_JSON_BUILD_PAIR_UNSIGNED("windowMin", c->window_min),
				SD_JSON_BUILD_PAIR_UNSIGNED("windowMax", c->window_max),
				SD_JSON_BUILD_PAIR_UNSIGNED("ioasId", c->ioas_id),
				SD_JSON_BUILD_PAIR_BOOLEAN("watched", so->pidfd >= 0),
				SD_JSON_BUILD_PAIR_VARIANT("regions", regions));
		sd_json_variant_unref(regions);
	}
	/* Bindings between persistent queues and spaces; the others go with
	 * their objects anyway. */
	struct binding_ctx ctx = {.m = m, .arr = &bindings};
	if (r >= 0) {
		iopf_bindings_foreach(iopf_engine_bindings(m->engine), add_binding, &ctx);
		r = ctx.r;
	}
	if (r >= 0)
		r = sd_json_buildo(ret, SD_JSON_BUILD_PAIR_UNSIGNED("generation", m->state_gen + 1),
		                   SD_JSON_BUILD_PAIR_UNSIGNED("nextQueueId", m->next_queue_id),
		                   SD_JSON_BUILD_PAIR_UNSIGNED("nextSpaceId", m->next_space_id),
		                   SD_JSON_BUILD_PAIR_VARIANT("queues", queues), SD_JSON_BUILD_PAIR_VARIANT("spaces", spaces),
		                   SD_JSON_BUILD_PAIR_VARIANT("bindings", bindings));
	sd_json_variant_unref(queues);
	sd_json_variant_unref(spaces);
	sd_json_variant_unref(bindings);
	return r;
}

void state_save(struct manager *m) {
	/* Not while objects come back one by one: a crash then would leave a
	 * state naming only some of them, and the next start would let the
	 * others' fds go. */
	if (m->state_fd[0] < 0 || m->shutting_down || m->restoring)
		return;
	sd_json_variant *v = NULL;
	char *text = NULL;
	int r = build_state(m, &v);
	if (r >= 0)
		r = sd_json_variant_format(v, 0, &text);
	sd_json_variant_unref(v);
	if (r < 0) {
		log_error_errno(r, "Failed to describe the persistent objects: %m");
		return;
	}
	/* The older of the two copies is rewritten; a crash half way leaves
	 * the other, whole, with the previous generation. */
	int fd = m->state_fd[m->state_next];
	size_t len = strlen(text);
	if (ftruncate(fd, 0) < 0 || pwrite(fd, text, len, 0) != (ssize_t)len)
		log_error_errno(errno, "Failed to write the state: %m");
	else {
		m->state_gen++;
		m->state_next ^= 1;
	}
	free(text);
}

static sd_json_variant *state_read(int fd) {
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size > (16 << 20))
		return NULL;
	char *text = malloc((size_t)size + 1);
	if (!text)
		return NULL;
	sd_json_variant *v = NULL;
	if (pread(fd, text, (size_t)size, 0) == size) {
		text[size] = '\0';
		if (sd_json_parse(text, 0, &v, NULL, NULL) < 0)
			v = NULL;
	}
	free(text);
	return v;
}

static uint64_t u64(sd_json_variant *o, const char *k) {
	sd_json_variant *v = sd_json_variant_by_key(o, k);
	return v && sd_json_variant_is_unsigned(v) ? sd_json_variant_unsigned(v) : 0;
}

static const char *str(sd_json_variant *o, const char *k) {
	sd_json_variant *v = sd_json_variant_by_key(o, k);
	return v && sd_json_variant_is_string(v) ? sd_json_variant_string(v) : NULL;
}

static bool boolean(sd_json_variant *o, const char *k) {
	sd_json_variant *v = sd_json_variant_by_key(o, k);
	return v && sd_json_variant_is_boolean(v) && sd_json_variant_boolean(v);
}

/* --- start-up: fds, state and journal ---------------------------------------------------- */

static int take(const char *kind, uint64_t a, int64_t b) {
	char name[64];
	if (b >= 0)
		snprintf(name, sizeof(name), "%s%lu.%lu", kind, (unsigned long)a, (unsigned long)b);
	else
		snprintf(name, sizeof(name), "%s%lu", kind, (unsigned long)a);
	return fdstore_take(stored, n_stored, name);
}

/* Copy out what the old journal holds. `live`: j is the journal this run
 * goes on with, formatted only once all of it is answered; each entry then
 * points at where to mark it done. */
static void journal_copy_out(const struct iopf_journal *j, bool live) {
	for (unsigned w = 0; w < j->h->workers; w++) {
		struct iopf_jslot *s = iopf_journal_slot(j, w);
		size_t first = n_pending;
		uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		size_t len = s->len;
		if (state == IOPF_JSLOT_READING) {
			/* Killed in (or right after) a read: its bytes end where the
			 * poison begins. A kernel queue returns whole records. */
			len = iopf_journal_reading_len(j, s, !s->stream);
		}
		/* Killed while answering a kernel queue: whether the write
		 * happened is unknown, and the kernel can tell. */
		bool reanswer = state == IOPF_JSLOT_ANSWERING && !s->stream;
		if ((state == IOPF_JSLOT_READ || state == IOPF_JSLOT_READING || reanswer) && len > 0 &&
		    len <= j->h->slot_bytes) {
			struct pending *p = realloc(pending, (n_pending + 1) * sizeof(*p));
			if (!p)
				return;
			pending = p;
			pending[n_pending] = (struct pending){.queue_id = s->queue_id,
			                                     .kind = reanswer ? PENDING_REANSWER : PENDING_BATCH,
			                                     .len = len,
			                                     .done = live ? &s->state : NULL};
			pending[n_pending].data = aligned_alloc(64, (len + 63) & ~(size_t)63);
			if (pending[n_pending].data)
				memcpy(pending[n_pending++].data, s->data, len);
		}
		for (uint32_t i = 0; i < j->h->carry_slots; i++) {
			struct iopf_jcarry *c = iopf_journal_carry(j, w, i);
			uint32_t qid = __atomic_load_n(&c->queue_id, __ATOMIC_ACQUIRE);
			if (!qid || c->len > j->h->carry_bytes)
				continue;
			enum pending_kind kind = c->kind == IOPF_JCARRY_RESPONSES ? PENDING_RESPONSES : PENDING_PARTIAL;
			/* A batch of the same worker and queue already holds a
			 * partial group's bytes (at its start or its end). */
			bool in_batch = false;
			for (size_t k = first; k < n_pending; k++)
				in_batch |= pending[k].kind == PENDING_BATCH && pending[k].queue_id == qid;
			if (in_batch && kind == PENDING_PARTIAL)
				continue;
			struct pending *p = realloc(pending, (n_pending + 1) * sizeof(*p));
			if (!p)
				return;
			pending = p;
			pending[n_pending] = (struct pending){
				.queue_id = qid, .kind = kind, .len = c->len, .done = live ? &c->queue_id : NULL};
			pending[n_pending].data = malloc(c->len ? c->len : 1);
			if (pending[n_pending].data)
				memcpy(pending[n_pending++].data, c->data, c->len);
		}
	}
}

static int journal_setup(struct manager *m) {
	unsigned workers = m->cfg.workers;
	if (!workers) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		workers = n > 0 ? (unsigned)n : 1;
		m->cfg.workers = workers;
	}
	size_t size = iopf_journal_size(workers, JOURNAL_SLOT_BYTES, JOURNAL_CARRY_SLOTS, JOURNAL_CARRY_BYTES);

	int fd = fdstore_take(stored, n_stored, "journal");
	if (fd >= 0 && lseek(fd, 0, SEEK_END) == (off_t)size) {
		/* The same shape: go on with it as it is, and format it only
		 * once what it holds is answered (persist_restore), so that a
		 * crash during the restore loses nothing. */
		void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		struct iopf_journal j;
		if (map != MAP_FAILED && iopf_journal_open(map, size, &j) == 0 && j.h->workers == workers &&
		    j.h->slot_bytes == JOURNAL_SLOT_BYTES && j.h->carry_slots == JOURNAL_CARRY_SLOTS &&
		    j.h->carry_bytes == JOURNAL_CARRY_BYTES) {
			journal_copy_out(&j, true);
			m->journal_fd = fd;
			m->journal_size = size;
			m->journal_map = map;
			m->journal = j;
			m->journal_deferred = true;
			return 0;
		}
		if (map != MAP_FAILED)
			munmap(map, size);
	}
	if (fd >= 0) {
		off_t old = lseek(fd, 0, SEEK_END);
		void *map = old > 0 ? mmap(NULL, (size_t)old, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
		struct iopf_journal j;
		if (map != MAP_FAILED && iopf_journal_open(map, (size_t)old, &j) == 0)
			journal_copy_out(&j, false);
		else
			log_warning("the stored journal is unreadable; starting a new one");
		if (map != MAP_FAILED)
			munmap(map, (size_t)old);
		if (ftruncate(fd, (off_t)size) < 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		fd = make_memfd("iopfd-journal", size);
		if (fd < 0)
			return log_error_errno(fd, "Failed to make the journal: %m");
		fdstore_put("journal", fd);
	}
	m->journal_fd = fd;
	m->journal_size = size;
	m->journal_map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m->journal_map == MAP_FAILED) {
		m->journal_map = NULL;
		return log_error_errno(errno, "Failed to map the journal: %m");
	}
	return iopf_journal_format(m->journal_map, size, workers, JOURNAL_SLOT_BYTES, JOURNAL_CARRY_SLOTS,
	                           JOURNAL_CARRY_BYTES, &m->journal);
}

int persist_prepare(struct manager *m) {
	m->state_fd[0] = m->state_fd[1] = m->journal_fd = -1;
	n_stored = fdstore_collect(&stored);
	if (n_stored < 0) {
		log_warning_errno(n_stored, "Failed to take the passed fds: %m");
		n_stored = 0;
	}
	if (n_stored > 0)
		log_info("fd store: %d fds handed back", n_stored);
	return journal_setup(m);
}

/* --- start-up: objects ------------------------------------------------------------------ */

static void restore_space(struct manager *m, sd_json_variant *o) {
	uint64_t id = u64(o, "id");
	int backend = iopf_backend_kind_from_str(str(o, "backend"));
	struct iopf_space_config cfg = {
		.backend = backend < 0 ? IOPF_BACKEND_NONE : (enum iopf_backend_kind)backend,
		.quota = u64(o, "quota"),
		.page_size = (uint32_t)u64(o, "pageSize"),
		.window_min = u64(o, "windowMin"),
		.window_max = u64(o, "windowMax"),
		.iommufd = -1,
		.ioas_id = (uint32_t)u64(o, "ioasId"),
	};
	if (backend < 0 || !id) {
		log_warning("state: a space of unknown shape; dropped");
		return;
	}
	if (cfg.backend == IOPF_BACKEND_IOMMUFD && (cfg.iommufd = take("s", id, -1)) < 0) {
		log_warning("space %lu: its iommufd did not come back; dropped", (unsigned long)id);
		return;
	}
	struct iopf_space *s;
	int r = iopf_space_new(id, &cfg, &s);
	if (cfg.iommufd >= 0)
		close(cfg.iommufd);
	if (r < 0) {
		log_warning_errno(r, "space %lu: cannot be made again: %m", (unsigned long)id);
		return;
	}
	sd_json_variant *regions = sd_json_variant_by_key(o, "regions");
	for (size_t i = 0; i < sd_json_variant_elements(regions); i++) {
		sd_json_variant *g = sd_json_variant_by_index(regions, i);
		uint64_t rid = u64(g, "id");
		int memfd = boolean(g, "memfd") ? take("m", id, (int64_t)rid) : -1;
		struct iopf_region_config rc = {.iova = u64(g, "iova"), .length = u64(g, "length"), .memfd = memfd,
		                                .offset = u64(g, "offset"), .perm = (uint32_t)u64(g, "perm")};
		r = boolean(g, "memfd") && memfd < 0 ? -EBADF : iopf_space_add_region_id(s, &rc, rid);
		if (memfd >= 0)
			close(memfd);
		if (r < 0) {
			log_warning_errno(r, "space %lu region %lu: cannot be made again: %m", (unsigned long)id,
			                  (unsigned long)rid);
			continue;
		}
		/* The previous daemon's mappings are still in a kept IOAS; this
		 * one starts from nothing pinned. */
		iopf_space_forget_mappings(s, rid);
	}
	int pidfd = boolean(o, "watched") ? take("ps", id, -1) : -1;
	struct obj_opts opts = {.uid = (uid_t)u64(o, "uid"), .name = str(o, "name"), .persistent = true, .pidfd = pidfd};
	struct space_obj *so;
	if (space_obj_add(m, s, &opts, &so) < 0) {
		iopf_space_destroy(s);
		return;
	}
	struct uid_usage *u = uid_usage_get(m, so->uid);
	if (u)
		u->regions += iopf_space_region_count(s);
	if (id > m->next_space_id)
		m->next_space_id = id;
	m->restored_objects++;
}

/* Answer the groups a batch held, re-resolved; keep a trailing partial
 * group. Returns how many groups were answered. */
static size_t recover_batch(struct iopf_queue *q, const struct pending *p, struct iopf_resolver *res,
                            struct iopf_counters *c) {
	size_t n = 0;
	size_t max = p->len / IOPF_RECORD_SIZE + 1;
	struct iopf_group *groups = calloc(max, sizeof(*groups));
	iopf_response *resp = calloc(max, sizeof(*resp));
	if (!groups || !resp)
		goto out;
	struct iopf_batch b;
	iopf_batch_parse(p->data, p->len, JOURNAL_CARRY_BYTES / IOPF_RECORD_SIZE, groups, max, &b);
	iopf_rcu_read_lock();
	iopf_resolver_begin(res);
	for (size_t i = 0; i < b.n_groups; i++) {
		if (!iopf_resolver_claim_cookie(res, groups[i].cookie))
			continue;
		resp[n++] = (iopf_response){.cookie = groups[i].cookie, .code = iopf_resolve_group(res, q->id, &groups[i])};
	}
	if (n)
		q->ops->respond(q, resp, n, c);
	iopf_resolver_end(res);
	iopf_rcu_read_unlock();
	if (q->ops->stream && b.consumed < p->len && (q->rem = malloc(p->len - b.consumed))) {
		memcpy(q->rem, p->data + b.consumed, p->len - b.consumed);
		q->rem_len = q->rem_cap = p->len - b.consumed;
	}
out:
	free(groups);
	free(resp);
	return n;
}

/* The order recovery goes in. Answers already made first; then what was
 * read and not answered; last the batches that were being answered, whose
 * answers the kernel may have taken: it refuses a cookie it does not hold,
 * and it gives a cookie out again only after taking its answer, so a
 * cookie reused by a batch read later has been answered by then and the
 * old answer is refused rather than taken for the new group. */
static int recovery_pass(enum pending_kind k) {
	return k == PENDING_RESPONSES ? 0 : k == PENDING_REANSWER ? 2 : 1;
}

int persist_restore(struct manager *m) {
	int r = 0;
	m->restoring = true;
	/* The state: two copies, the newer whole one wins. */
	sd_json_variant *best = NULL;
	for (int i = 0; i < 2; i++) {
		char name[16];
		snprintf(name, sizeof(name), "state%d", i);
		int fd = fdstore_take(stored, n_stored, name);
		if (fd < 0) {
			fd = make_memfd(name, 0);
			if (fd < 0)
				return log_error_errno(fd, "Failed to make the state memfd: %m");
			fdstore_put(name, fd);
		}
		m->state_fd[i] = fd;
		sd_json_variant *v = state_read(fd);
		if (v && (!best || u64(v, "generation") > u64(best, "generation"))) {
			sd_json_variant_unref(best);
			best = v;
			m->state_next = (unsigned)i ^ 1;
		} else {
			sd_json_variant_unref(v);
		}
	}

	struct iopf_queue **restored = NULL;
	size_t n_restored = 0;
	if (best) {
		m->state_gen = u64(best, "generation");
		m->next_queue_id = (uint32_t)u64(best, "nextQueueId");
		m->next_space_id = u64(best, "nextSpaceId");
		sd_json_variant *spaces = sd_json_variant_by_key(best, "spaces");
		for (size_t i = 0; i < sd_json_variant_elements(spaces); i++)
			restore_space(m, sd_json_variant_by_index(spaces, i));

		sd_json_variant *queues = sd_json_variant_by_key(best, "queues");
		restored = calloc(sd_json_variant_elements(queues) + 1, sizeof(*restored));
		for (size_t i = 0; restored && i < sd_json_variant_elements(queues); i++) {
			sd_json_variant *o = sd_json_variant_by_index(queues, i);
			uint32_t id = (uint32_t)u64(o, "id");
			int kind = iopf_transport_kind_from_str(str(o, "transport"));
			int fd = take("q", id, -1);
			struct iopf_queue *q;
			if (kind < 0 || fd < 0 || iopf_queue_new(id, fd, (enum iopf_transport_kind)kind, &q) < 0) {
				log_warning("queue %u: did not come back; dropped", id);
				if (fd >= 0)
					close(fd);
				continue;
			}
			close(fd);
			/* Remember who owns it until it is handed to a worker. */
			q->userdata = o;
			restored[n_restored++] = q;
		}

		sd_json_variant *bindings = sd_json_variant_by_key(best, "bindings");
		for (size_t i = 0; i < sd_json_variant_elements(bindings); i++) {
			sd_json_variant *o = sd_json_variant_by_index(bindings, i);
			struct space_obj *so = space_obj_find(m, u64(o, "space"));
			struct iopf_binding_key k = {.queue_id = (uint32_t)u64(o, "queue"), .dev_id = (uint32_t)u64(o, "device"),
			                             .pasid = (uint32_t)u64(o, "pasid")};
			if (so)
				iopf_bindings_add(iopf_engine_bindings(m->engine), &k, so->s);
		}
	}

	/* Every group the previous daemon read and did not answer, before any
	 * new fault is served: first the answers it had made but not sent,
	 * then the batches it had not answered. */
	if (n_pending && getenv("IOPFD_TEST_DIE_IN_RECOVERY") && m->journal_map) {
		/* Fault injection, once per journal: die before answering a
		 * batch that was being answered when the last daemon died. */
		struct iopf_jheader *h = m->journal_map;
		bool reanswer = false;
		for (size_t i = 0; i < n_pending; i++)
			reanswer |= pending[i].kind == PENDING_REANSWER;
		if (reanswer && !(h->test_marks & 1)) {
			h->test_marks |= 1;
			log_warning("fault injection: dying before the journal is answered");
			kill(getpid(), SIGKILL);
		}
	}
	if (n_pending) {
		struct iopf_counters c = {0};
		uint64_t reanswer_refused = 0;
		struct iopf_resolver res;
		if (iopf_resolver_init(&res, iopf_engine_bindings(m->engine), JOURNAL_SLOT_BYTES / IOPF_RECORD_SIZE, &c) == 0) {
			for (int pass = 0; pass < 3; pass++)
				for (size_t i = 0; i < n_pending; i++) {
					struct pending *p = &pending[i];
					if (recovery_pass(p->kind) != pass)
						continue;
					struct iopf_queue *q = NULL;
					for (size_t k = 0; k < n_restored; k++)
						if (restored[k]->id == p->queue_id)
							q = restored[k];
					if (!q) {
						log_warning("journal: groups of queue %u, which did not come back, are lost",
						            p->queue_id);
						continue;
					}
					if (p->kind == PENDING_PARTIAL) {
						/* Only carried: it stays in the journal until the
						 * journal is formatted. */
						if ((q->rem = malloc(p->len))) {
							memcpy(q->rem, p->data, p->len);
							q->rem_len = q->rem_cap = p->len;
						}
						continue;
					}
					if (p->kind == PENDING_RESPONSES) {
						q->ops->respond(q, (const iopf_response *)p->data, p->len / sizeof(iopf_response), &c);
						m->recovered_groups += p->len / sizeof(iopf_response);
					} else if (p->kind == PENDING_BATCH) {
						m->recovered_groups += recover_batch(q, p, &res, &c);
					} else {
						struct iopf_counters rc = {0};
						size_t n = recover_batch(q, p, &res, &rc);
						m->reanswered_groups += n - rc.write_rejects;
						reanswer_refused += rc.write_rejects;
					}
					/* Answers sent: a crash from here on must not send
					 * them again. */
					if (p->done)
						__atomic_store_n(p->done, 0, __ATOMIC_RELEASE);
				}
			iopf_resolver_fini(&res);
		}
		log_info("journal: %lu groups read by the previous daemon answered", (unsigned long)m->recovered_groups);
		if (m->reanswered_groups || reanswer_refused)
			log_info("journal: %lu groups whose answers were being written answered again; the kernel had "
			         "taken %lu already",
			         (unsigned long)m->reanswered_groups, (unsigned long)reanswer_refused);
	}
	for (size_t i = 0; i < n_pending; i++)
		free(pending[i].data);
	free(pending);
	pending = NULL;
	n_pending = 0;

	/* What the journal held is answered: from here on it is this run's. */
	if (m->journal_deferred) {
		m->journal_deferred = false;
		r = iopf_journal_format(m->journal_map, m->journal_size, m->cfg.workers, JOURNAL_SLOT_BYTES,
		                        JOURNAL_CARRY_SLOTS, JOURNAL_CARRY_BYTES, &m->journal);
		if (r < 0)
			return log_error_errno(r, "Failed to format the journal: %m");
	}

	/* Now the workers may have them. */
	for (size_t i = 0; i < n_restored; i++) {
		struct iopf_queue *q = restored[i];
		sd_json_variant *o = q->userdata;
		int pidfd = boolean(o, "watched") ? take("pq", q->id, -1) : -1;
		struct obj_opts opts = {.uid = (uid_t)u64(o, "uid"), .name = str(o, "name"), .persistent = true,
		                        .pidfd = pidfd};
		struct queue_obj *qo;
		if (q->id > m->next_queue_id)
			m->next_queue_id = q->id;
		r = queue_obj_add(m, q, &opts, &qo);
		if (r < 0) {
			log_warning_errno(r, "queue %u: cannot be served again: %m", q->id);
			iopf_queue_free(q);
			continue;
		}
		m->restored_objects++;
	}
	free(restored);
	sd_json_variant_unref(best);
	fdstore_release_rest(stored, n_stored);
	stored = NULL;
	n_stored = 0;
	if (m->restored_objects)
		log_info("restored %lu persistent objects", (unsigned long)m->restored_objects);
	m->restoring = false;
	state_save(m);
	return 0;
}
