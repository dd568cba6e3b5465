/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kcmp.h>

#include "engine/bindings.h"
#include "engine/engine.h"
#include "fdstore.h"
#include "log.h"
#include "manager.h"
#include "objects.h"
#include "shared/cleanup.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct iopf_queue *, iopf_queue_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct iopf_space *, iopf_space_destroy)

static const char *const type_name[_OBJECT_TYPE_MAX] = {[OBJECT_QUEUE] = "queue", [OBJECT_SPACE] = "space"};
static const enum fdstore_kind creator_kind[_OBJECT_TYPE_MAX] = {
	[OBJECT_QUEUE] = FDSTORE_QUEUE_CREATOR, [OBJECT_SPACE] = FDSTORE_SPACE_CREATOR};

struct object *object_find(struct manager *m, enum object_type type, uint64_t id) {
	struct object *o;
	objects_foreach(o, m, type)
		if (o->id == id)
			return o;
	return NULL;
}

/* Whether two fds of this process are the same open file. kcmp() tells;
 * without it a socket still has an inode of its own, but every fault queue
 * shares the one anon inode, so those cannot be told apart. */
static bool same_file(int a, int b) {
	pid_t self = getpid();
	long r = syscall(SYS_kcmp, self, self, KCMP_FILE, a, b);
	if (r >= 0)
		return r == 0;
	struct stat x, y;
	return fstat(a, &x) == 0 && fstat(b, &y) == 0 && S_ISSOCK(x.st_mode) && x.st_dev == y.st_dev &&
	       x.st_ino == y.st_ino;
}

struct object *object_find_queue_file(struct manager *m, int fd) {
	struct object *o;
	objects_foreach(o, m, OBJECT_QUEUE)
		if (iopf_queue_fd(o->q) >= 0 && same_file(fd, iopf_queue_fd(o->q)))
			return o;
	return NULL;
}

/* --- the creators of persistent objects ----------------------------------------------- */

static int on_creator_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	struct object *o = userdata;
	log_info("%s %lu: the process that created it exited", type_name[o->type], (unsigned long)o->id);
	object_destroy(o, OBJECT_FORGET, NULL);
	return 0;
}

/* A pidfd turns readable when its process exits. */
static void watch_creator(struct object *o, int pidfd) {
	o->pidfd = pidfd;
	if (pidfd < 0)
		return;
	fdstore_put(creator_kind[o->type], o->id, 0, pidfd);
	if (sd_event_add_io(o->m->event, &o->pid_source, pidfd, EPOLLIN, on_creator_exit, o) < 0)
		log_warning("%s %lu: cannot watch its creator; it lasts until destroyed", type_name[o->type],
		            (unsigned long)o->id);
}

static void unwatch_creator(struct object *o, enum object_end how) {
	if (o->pidfd < 0)
		return;
	if (how == OBJECT_FORGET)
		fdstore_remove(creator_kind[o->type], o->id, 0);
	o->pid_source = sd_event_source_disable_unref(o->pid_source);
	close(o->pidfd);
	o->pidfd = -1;
}

/* --- adding ------------------------------------------------------------------------------ */

static struct object *object_new(struct manager *m, enum object_type type, uint64_t id, const struct object_new *n) {
	_cleanup_free_ struct object *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	if (n->name && !(o->name = strdup(n->name)))
		return NULL;
	o->m = m;
	o->type = type;
	o->id = id;
	o->owner = n->owner;
	o->uid = n->uid;
	o->persistent = n->persistent;
	o->pidfd = -1;
	return TAKE_PTR(o);
}

static void object_free(struct object *o) {
	free(o->name);
	free(o);
}

/* Listed, and for a persistent object its creator watched and the state
 * saved (its own fds are in the store already). */
static void object_link(struct object *o, int pidfd) {
	struct manager *m = o->m;
	cds_list_add_tail(&o->node, &m->objects[o->type]);
	m->n_objects[o->type]++;
	if (o->persistent) {
		watch_creator(o, pidfd);
		manager_state_changed(m);
	} else if (pidfd >= 0) {
		close(pidfd);
	}
}

int object_add_queue(struct manager *m, struct iopf_queue *q, const struct object_new *n, struct object **out) {
	_cleanup_(iopf_queue_freep) struct iopf_queue *queue = q;
	_cleanup_close_ int pidfd = n->pidfd;
	struct object *o = object_new(m, OBJECT_QUEUE, iopf_queue_id(q), n);
	if (!o)
		return -ENOMEM;
	int r = accounting_charge(&m->acct, o->uid, ACCT_QUEUES, 1);
	if (r >= 0) {
		r = iopf_engine_add_queue(m->engine, queue);
		if (r < 0)
			accounting_release(&m->acct, o->uid, ACCT_QUEUES, 1);
	}
	if (r < 0) {
		object_free(o);
		return r;
	}
	o->q = TAKE_PTR(queue);
	if (o->persistent)
		fdstore_put(FDSTORE_QUEUE, o->id, 0, iopf_queue_fd(o->q));
	object_link(o, TAKE_FD(pidfd));
	*out = o;
	return 0;
}

int object_add_space(struct manager *m, struct iopf_space *s, const struct object_new *n, struct object **out) {
	_cleanup_(iopf_space_destroyp) struct iopf_space *space = s;
	_cleanup_close_ int pidfd = n->pidfd;
	struct object *o = object_new(m, OBJECT_SPACE, iopf_space_id(s), n);
	if (!o)
		return -ENOMEM;
	uint64_t pin = accounting_pin_reservation(iopf_space_config(s));
	int r = accounting_charge(&m->acct, o->uid, ACCT_SPACES, 1);
	if (r >= 0) {
		r = accounting_charge(&m->acct, o->uid, ACCT_PIN, pin);
		if (r < 0)
			accounting_release(&m->acct, o->uid, ACCT_SPACES, 1);
	}
	if (r < 0) {
		object_free(o);
		return r;
	}
	o->s = TAKE_PTR(space);
	int fd = iopf_space_backend_fd(o->s);
	if (o->persistent && fd >= 0)
		fdstore_put(FDSTORE_SPACE_IOMMUFD, o->id, 0, fd);
	object_link(o, TAKE_FD(pidfd));
	*out = o;
	return 0;
}

int object_region_added(struct object *o, const struct iopf_region_info *info) {
	int r = accounting_charge(&o->m->acct, o->uid, ACCT_REGIONS, 1);
	if (r < 0)
		return r;
	if (o->persistent) {
		if (info->memfd >= 0)
			fdstore_put(FDSTORE_REGION_MEMFD, o->id, info->id, info->memfd);
		manager_state_changed(o->m);
	}
	return 0;
}

void object_region_removed(struct object *o, uint64_t region_id) {
	accounting_release(&o->m->acct, o->uid, ACCT_REGIONS, 1);
	if (o->persistent) {
		fdstore_remove(FDSTORE_REGION_MEMFD, o->id, region_id);
		manager_state_changed(o->m);
	}
}

/* --- destroying ----------------------------------------------------------------------------- */

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
	_cleanup_free_ uint32_t *ids = bq.cap ? calloc(bq.cap, sizeof(*ids)) : NULL;
	bq.ids = ids;
	if (ids)
		iopf_bindings_foreach(b, collect_bound_queue, &bq);
	else if (bq.cap)
		log_warning("out of memory: unbinding a space without pausing its queues");
	for (size_t i = 0; i < bq.n; i++) {
		struct object *q = object_find(m, OBJECT_QUEUE, bq.ids[i]);
		if (q)
			iopf_engine_pause_queue(m->engine, q->q);
	}
	iopf_bindings_remove_space(b, s);
	for (size_t i = 0; i < bq.n; i++) {
		struct object *q = object_find(m, OBJECT_QUEUE, bq.ids[i]);
		if (q)
			iopf_engine_resume_queue(m->engine, q->q);
	}
}

static void queue_release(struct object *o, enum object_end how, struct iopf_queue_stats *final) {
	struct manager *m = o->m;
	iopf_engine_remove_queue(m->engine, o->q,
	                         how == OBJECT_KEEP_STORED ? IOPF_RELEASE_TO_NEXT_DAEMON : IOPF_RELEASE_TO_HOLDER);
	if (how == OBJECT_FORGET)
		iopf_bindings_remove_queue(iopf_engine_bindings(m->engine), (uint32_t)o->id);
	if (final)
		iopf_queue_get_stats(o->q, final);
	if (o->persistent && how == OBJECT_FORGET)
		fdstore_remove(FDSTORE_QUEUE, o->id, 0);
	iopf_queue_free(o->q);
	accounting_release(&m->acct, o->uid, ACCT_QUEUES, 1);
}

static int forget_region_memfd(const struct iopf_region_info *r, void *ud) {
	const struct object *o = ud;
	fdstore_remove(FDSTORE_REGION_MEMFD, o->id, r->id);
	return 0;
}

static void space_release(struct object *o, enum object_end how) {
	struct manager *m = o->m;
	if (how == OBJECT_FORGET)
		unbind_space(m, o->s);
	accounting_release(&m->acct, o->uid, ACCT_REGIONS, iopf_space_region_count(o->s));
	accounting_release(&m->acct, o->uid, ACCT_SPACES, 1);
	accounting_release(&m->acct, o->uid, ACCT_PIN, accounting_pin_reservation(iopf_space_config(o->s)));
	if (o->persistent && how == OBJECT_FORGET) {
		fdstore_remove(FDSTORE_SPACE_IOMMUFD, o->id, 0);
		iopf_space_foreach_region(o->s, forget_region_memfd, o);
	}
	/* Waits for a grace period, then unmaps everything it pinned. */
	iopf_space_destroy(o->s);
}

void object_destroy(struct object *o, enum object_end how, struct iopf_queue_stats *final) {
	struct manager *m = o->m;
	if (o->type == OBJECT_QUEUE)
		queue_release(o, how, final);
	else
		space_release(o, how);
	if (o->persistent)
		unwatch_creator(o, how);
	cds_list_del(&o->node);
	m->n_objects[o->type]--;
	if (o->persistent && how == OBJECT_FORGET)
		manager_state_changed(m);
	log_debug("%s %lu released", type_name[o->type], (unsigned long)o->id);
	object_free(o);
}

void objects_drop_client(struct manager *m, struct client *c) {
	/* Queues first: each answers what it read while the spaces its
	 * groups resolve in are still there. */
	for (int t = OBJECT_QUEUE; t < _OBJECT_TYPE_MAX; t++) {
		struct object *o, *tmp;
		cds_list_for_each_entry_safe(o, tmp, &m->objects[t], node) {
			if (o->owner != c)
				continue;
			if (o->persistent)
				o->owner = NULL;
			else
				object_destroy(o, OBJECT_FORGET, NULL);
		}
	}
}

void objects_drain(struct manager *m) {
	for (int t = OBJECT_QUEUE; t < _OBJECT_TYPE_MAX; t++) {
		struct object *o, *tmp;
		cds_list_for_each_entry_safe(o, tmp, &m->objects[t], node)
			object_destroy(o, o->persistent ? OBJECT_KEEP_STORED : OBJECT_FORGET, NULL);
	}
}
