/* SPDX-License-Identifier: MIT */
/*
 * What clients created: queues and address spaces, who owns them, and how
 * much each uid uses. Control thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine/bindings.h"
#include "fdstore.h"
#include "log.h"
#include "manager.h"

bool client_may_touch(const struct client *c, uid_t owner) {
	return c->uid == 0 || c->uid == owner;
}

struct uid_usage *uid_usage_get(struct manager *m, uid_t uid) {
	struct uid_usage *u;
	cds_list_for_each_entry(u, &m->uids, node)
		if (u->uid == uid)
			return u;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	cds_list_add(&u->node, &m->uids);
	return u;
}

struct queue_obj *queue_obj_find(struct manager *m, uint32_t id) {
	struct queue_obj *qo;
	cds_list_for_each_entry(qo, &m->queues, node)
		if (qo->id == id)
			return qo;
	return NULL;
}

struct space_obj *space_obj_find(struct manager *m, uint64_t id) {
	struct space_obj *so;
	cds_list_for_each_entry(so, &m->spaces, node)
		if (so->id == id)
			return so;
	return NULL;
}

struct space_obj *space_obj_by_space(struct manager *m, const struct iopf_space *s) {
	struct space_obj *so;
	cds_list_for_each_entry(so, &m->spaces, node)
		if (so->s == s)
			return so;
	return NULL;
}


/* --- names in the fd store ------------------------------------------------------------- */

static void store_name(char *buf, size_t n, const char *kind, uint64_t id) {
	snprintf(buf, n, "%s%lu", kind, (unsigned long)id);
}

static void region_store_name(char *buf, size_t n, uint64_t space, uint64_t region) {
	snprintf(buf, n, "m%lu.%lu", (unsigned long)space, (unsigned long)region);
}

/* --- creators of persistent objects going away ------------------------------------------ */

static int on_queue_creator_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	struct queue_obj *qo = userdata;
	log_info("queue %u: the process that created it exited", qo->id);
	queue_obj_destroy(qo->m, qo, OBJ_FORGET, NULL);
	return 0;
}

static int on_space_creator_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	struct space_obj *so = userdata;
	log_info("space %lu: the process that created it exited", (unsigned long)so->id);
	space_obj_destroy(so->m, so, OBJ_FORGET);
	return 0;
}

/* A pidfd turns readable when its process exits. */
static int watch_creator(struct manager *m, int pidfd, const char *kind, uint64_t id, sd_event_source **src,
                         sd_event_io_handler_t fn, void *obj) {
	if (pidfd < 0)
		return 0;
	char name[32];
	store_name(name, sizeof(name), kind, id);
	fdstore_put(name, pidfd);
	return sd_event_add_io(m->event, src, pidfd, EPOLLIN, fn, obj);
}

static void unwatch_creator(int *pidfd, sd_event_source **src, const char *kind, uint64_t id, enum obj_end how) {
	if (*pidfd < 0)
		return;
	if (how == OBJ_FORGET) {
		char name[32];
		store_name(name, sizeof(name), kind, id);
		fdstore_remove(name);
	}
	*src = sd_event_source_disable_unref(*src);
	close(*pidfd);
	*pidfd = -1;
}

/* --- queues ----------------------------------------------------------------------------------- */

int queue_obj_add(struct manager *m, struct iopf_queue *q, const struct obj_opts *o, struct queue_obj **out) {
	/* The pidfd is ours whatever happens. */
	struct queue_obj *qo = calloc(1, sizeof(*qo));
	if (!qo)
		goto fail;
	qo->pidfd = -1;
	if (o->name && !(qo->name = strdup(o->name)))
		goto fail;
	int r = iopf_engine_add_queue(m->engine, q);
	if (r < 0) {
		free(qo->name);
		free(qo);
		if (o->pidfd >= 0)
			close(o->pidfd);
		return r;
	}
	qo->m = m;
	qo->id = q->id;
	qo->q = q;
	qo->owner = o->owner;
	qo->uid = o->uid;
	qo->persistent = o->persistent;
	q->userdata = qo;
	cds_list_add_tail(&qo->node, &m->queues);
	m->n_queues++;
	struct uid_usage *u = uid_usage_get(m, qo->uid);
	if (u)
		u->queues++;
	if (qo->persistent) {
		char name[32];
		store_name(name, sizeof(name), "q", qo->id);
		fdstore_put(name, q->fd);
		qo->pidfd = o->pidfd;
		if (watch_creator(m, qo->pidfd, "pq", qo->id, &qo->pid_source, on_queue_creator_exit, qo) < 0)
			log_warning("queue %u: cannot watch its creator; it lasts until unregistered", qo->id);
		state_save(m);
	} else if (o->pidfd >= 0) {
		close(o->pidfd);
	}
	*out = qo;
	return 0;
fail:
	if (qo)
		free(qo->name);
	free(qo);
	if (o->pidfd >= 0)
		close(o->pidfd);
	return -ENOMEM;
}

void queue_obj_destroy(struct manager *m, struct queue_obj *qo, enum obj_end how, struct iopf_queue_stats *final) {
	/* The worker first: it stops reading, and every group it read is
	 * answered while the queue's bindings still route it (a group read and
	 * then refused for want of a binding would fail a device's request for
	 * nothing). What it did not read stays in the queue for whoever else
	 * holds it. Then the bindings go; a queue kept in the store keeps them
	 * in the saved state. */
	qo->q->hand_on = how == OBJ_KEEP_STORED;
	iopf_engine_remove_queue(m->engine, qo->q);
	if (how == OBJ_FORGET)
		iopf_bindings_remove_queue(iopf_engine_bindings(m->engine), qo->id);
	if (final)
		*final = qo->q->st;
	log_debug("queue %u (%s) released: %lu groups answered", qo->id, qo->name ? qo->name : "-",
	          (unsigned long)qo->q->st.groups);
	if (qo->persistent) {
		unwatch_creator(&qo->pidfd, &qo->pid_source, "pq", qo->id, how);
		if (how == OBJ_FORGET) {
			char name[32];
			store_name(name, sizeof(name), "q", qo->id);
			fdstore_remove(name);
		}
	}
	iopf_queue_free(qo->q);
	cds_list_del(&qo->node);
	m->n_queues--;
	struct uid_usage *u = uid_usage_get(m, qo->uid);
	if (u && u->queues)
		u->queues--;
	bool save = qo->persistent && how == OBJ_FORGET;
	free(qo->name);
	free(qo);
	if (save)
		state_save(m);
}

/* --- address spaces ------------------------------------------------------------------------ */

int space_obj_add(struct manager *m, struct iopf_space *s, const struct obj_opts *o, struct space_obj **out) {
	/* The pidfd is ours whatever happens. */
	struct space_obj *so = calloc(1, sizeof(*so));
	if (!so || (o->name && !(so->name = strdup(o->name)))) {
		free(so);
		if (o->pidfd >= 0)
			close(o->pidfd);
		return -ENOMEM;
	}
	so->pidfd = -1;
	so->m = m;
	so->id = s->id;
	so->s = s;
	so->owner = o->owner;
	so->uid = o->uid;
	so->persistent = o->persistent;
	cds_list_add_tail(&so->node, &m->spaces);
	m->n_spaces++;
	struct uid_usage *u = uid_usage_get(m, so->uid);
	if (u) {
		u->spaces++;
		u->quota += s->cfg.quota;
	}
	if (so->persistent) {
		int fd = iopf_space_backend_fd(s);
		if (fd >= 0) {
			char name[32];
			store_name(name, sizeof(name), "s", so->id);
			fdstore_put(name, fd);
		}
		so->pidfd = o->pidfd;
		if (watch_creator(m, so->pidfd, "ps", so->id, &so->pid_source, on_space_creator_exit, so) < 0)
			log_warning("space %lu: cannot watch its creator; it lasts until destroyed", (unsigned long)so->id);
		state_save(m);
	} else if (o->pidfd >= 0) {
		close(o->pidfd);
	}
	*out = so;
	return 0;
}

void space_obj_region_added(struct manager *m, struct space_obj *so, uint64_t region_id) {
	if (!so->persistent)
		return;
	struct iopf_region *r = iopf_space_region(so->s, region_id);
	if (r && r->memfd >= 0) {
		char name[48];
		region_store_name(name, sizeof(name), so->id, region_id);
		fdstore_put(name, r->memfd);
	}
	state_save(m);
}

void space_obj_region_removed(struct manager *m, struct space_obj *so, uint64_t region_id) {
	if (!so->persistent)
		return;
	char name[48];
	region_store_name(name, sizeof(name), so->id, region_id);
	fdstore_remove(name);
	state_save(m);
}

struct bound_queues {
	const struct iopf_space *s;
	uint32_t *ids;
	size_t n, cap;
};

static int collect_bound_queue(const struct iopf_binding *b, void *ud) {
	struct bound_queues *bq = ud;
	if (b->space != bq->s)
		return 0;
	for (size_t i = 0; i < bq->n; i++)
		if (bq->ids[i] == b->key.queue_id)
			return 0;
	if (bq->n < bq->cap)
		bq->ids[bq->n++] = b->key.queue_id;
	return 0;
}

/* Every binding to the space goes, but no group that a worker has read
 * may meet its binding half gone: the queues that route to the space stop
 * reading and answer what they read (resolving it in the space), then the
 * bindings go, then they read again. Their devices' later faults find no
 * binding: the client removed the memory they fault on. */
static void unbind_space(struct manager *m, const struct iopf_space *s) {
	struct iopf_bindings *b = iopf_engine_bindings(m->engine);
	struct bound_queues bq = {.s = s, .cap = iopf_bindings_count_space(b, s)};
	if (bq.cap && (bq.ids = calloc(bq.cap, sizeof(*bq.ids))))
		iopf_bindings_foreach(b, collect_bound_queue, &bq);
	else if (bq.cap)
		log_warning("out of memory: unbinding a space without pausing its queues");
	for (size_t i = 0; i < bq.n; i++) {
		struct queue_obj *qo = queue_obj_find(m, bq.ids[i]);
		if (qo)
			iopf_engine_pause_queue(m->engine, qo->q);
	}
	iopf_bindings_remove_space(b, s);
	for (size_t i = 0; i < bq.n; i++) {
		struct queue_obj *qo = queue_obj_find(m, bq.ids[i]);
		if (qo)
			iopf_engine_resume_queue(m->engine, qo->q);
	}
	free(bq.ids);
}

void space_obj_destroy(struct manager *m, struct space_obj *so, enum obj_end how) {
	if (how == OBJ_FORGET)
		unbind_space(m, so->s);
	struct uid_usage *u = uid_usage_get(m, so->uid);
	if (u) {
		size_t n = iopf_space_region_count(so->s);
		u->regions -= n < u->regions ? n : u->regions;
		u->spaces -= u->spaces ? 1 : 0;
		u->quota -= so->s->cfg.quota < u->quota ? so->s->cfg.quota : u->quota;
	}
	if (so->persistent) {
		unwatch_creator(&so->pidfd, &so->pid_source, "ps", so->id, how);
		if (how == OBJ_FORGET) {
			char name[48];
			store_name(name, sizeof(name), "s", so->id);
			fdstore_remove(name);
			struct iopf_region_set *set = so->s->regions;
			for (size_t i = 0; set && i < set->n; i++) {
				region_store_name(name, sizeof(name), so->id, set->r[i]->id);
				fdstore_remove(name);
			}
		}
	}
	/* Waits for a grace period, then unmaps everything it pinned. */
	iopf_space_destroy(so->s);
	cds_list_del(&so->node);
	m->n_spaces--;
	bool save = so->persistent && how == OBJ_FORGET;
	free(so->name);
	free(so);
	if (save)
		state_save(m);
}

void client_destroy_objects(struct manager *m, struct client *c) {
	struct queue_obj *qo, *qt;
	cds_list_for_each_entry_safe(qo, qt, &m->queues, node) {
		if (qo->owner != c)
			continue;
		if (qo->persistent)
			qo->owner = NULL;
		else
			queue_obj_destroy(m, qo, OBJ_FORGET, NULL);
	}
	struct space_obj *so, *st;
	cds_list_for_each_entry_safe(so, st, &m->spaces, node) {
		if (so->owner != c)
			continue;
		if (so->persistent)
			so->owner = NULL;
		else
			space_obj_destroy(m, so, OBJ_FORGET);
	}
}
