/* SPDX-License-Identifier: MIT */
/*
 * What clients created: queues and address spaces, who owns them, and how
 * much each uid uses. Control thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iopfd/bindings.h"
#include "iopfd/log.h"
#include "iopfd/manager.h"

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

int queue_obj_add(struct manager *m, struct client *owner, struct iopf_queue *q, const char *name,
                  struct queue_obj **out) {
	struct queue_obj *qo = calloc(1, sizeof(*qo));
	if (!qo)
		return -ENOMEM;
	if (name && !(qo->name = strdup(name))) {
		free(qo);
		return -ENOMEM;
	}
	int r = iopf_engine_add_queue(m->engine, q);
	if (r < 0) {
		free(qo->name);
		free(qo);
		return r;
	}
	qo->id = q->id;
	qo->q = q;
	qo->owner = owner;
	qo->uid = owner->uid;
	q->userdata = qo;
	cds_list_add_tail(&qo->node, &m->queues);
	m->n_queues++;
	struct uid_usage *u = uid_usage_get(m, qo->uid);
	if (u)
		u->queues++;
	*out = qo;
	return 0;
}

void queue_obj_destroy(struct manager *m, struct queue_obj *qo) {
	/* Bindings first, so nothing routes to the queue any more; then the
	 * worker answers whatever it read and lets go. */
	iopf_bindings_remove_queue(iopf_engine_bindings(m->engine), qo->id);
	iopf_engine_remove_queue(m->engine, qo->q);
	log_debug("queue %u (%s) released: %lu groups answered", qo->id, qo->name ? qo->name : "-",
	          (unsigned long)qo->q->st.groups);
	iopf_queue_free(qo->q);
	cds_list_del(&qo->node);
	m->n_queues--;
	struct uid_usage *u = uid_usage_get(m, qo->uid);
	if (u && u->queues)
		u->queues--;
	free(qo->name);
	free(qo);
}

int space_obj_add(struct manager *m, struct client *owner, struct iopf_space *s, const char *name,
                  struct space_obj **out) {
	struct space_obj *so = calloc(1, sizeof(*so));
	if (!so)
		return -ENOMEM;
	if (name && !(so->name = strdup(name))) {
		free(so);
		return -ENOMEM;
	}
	so->id = s->id;
	so->s = s;
	so->owner = owner;
	so->uid = owner->uid;
	cds_list_add_tail(&so->node, &m->spaces);
	m->n_spaces++;
	struct uid_usage *u = uid_usage_get(m, so->uid);
	if (u) {
		u->spaces++;
		u->quota += s->cfg.quota;
	}
	*out = so;
	return 0;
}

void space_obj_destroy(struct manager *m, struct space_obj *so) {
	iopf_bindings_remove_space(iopf_engine_bindings(m->engine), so->s);
	struct uid_usage *u = uid_usage_get(m, so->uid);
	if (u) {
		size_t n = iopf_space_region_count(so->s);
		u->regions -= n < u->regions ? n : u->regions;
		u->spaces -= u->spaces ? 1 : 0;
		u->quota -= so->s->cfg.quota < u->quota ? so->s->cfg.quota : u->quota;
	}
	/* Waits for a grace period, then unmaps everything it pinned. */
	iopf_space_destroy(so->s);
	cds_list_del(&so->node);
	m->n_spaces--;
	free(so->name);
	free(so);
}

void client_destroy_objects(struct manager *m, struct client *c) {
	struct queue_obj *qo, *qt;
	cds_list_for_each_entry_safe(qo, qt, &m->queues, node)
		if (qo->owner == c)
			queue_obj_destroy(m, qo);
	struct space_obj *so, *st;
	cds_list_for_each_entry_safe(so, st, &m->spaces, node)
		if (so->owner == c)
			space_obj_destroy(m, so);
}
