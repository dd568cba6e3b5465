/* SPDX-License-Identifier: MIT */
/*
 * What clients made: queues and address spaces, as one kind of object with
 * an id, a name, an owner, a uid, and, for a persistent one, the pidfd of
 * the process that made it. One path adds an object (it is charged to its
 * uid, its fds are kept in the fd store, its creator is watched), one
 * destroys it. Control thread only.
 *
 * A persistent object outlives its connection and daemon restarts (its fds
 * and state in systemd's fd store) until destroyed or until the process
 * that made it exits.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>
#include <urcu/list.h>

#include "engine/queue.h"
#include "engine/space.h"

struct client;
struct manager;

enum object_type {
	OBJECT_QUEUE,
	OBJECT_SPACE,
	_OBJECT_TYPE_MAX,
};

struct object {
	struct manager *m;
	enum object_type type;
	uint64_t id;
	char *name;
	struct client *owner; /* NULL once a persistent object's client is gone */
	uid_t uid;
	bool persistent;
	int pidfd; /* the creator's, for a persistent object; else -1 */
	sd_event_source *pid_source;
	struct cds_list_head node; /* in m->objects[type] */
	union {
		struct iopf_queue *q; /* OBJECT_QUEUE */
		struct iopf_space *s; /* OBJECT_SPACE */
	};
};

/* What a new object is. */
struct object_new {
	struct client *owner; /* NULL when restored after a restart */
	uid_t uid;
	const char *name;
	bool persistent;
	int pidfd; /* the creator's (taken), or -1 */
};

/* How an object ends: gone for good, or only out of this process (a stop
 * that will be followed by a start: its fds stay in the store). */
enum object_end {
	OBJECT_FORGET,
	OBJECT_KEEP_STORED,
};

/* Add a queue (handed to a worker) or an address space; q or s is the
 * object's from here on, also when this fails. */
int object_add_queue(struct manager *m, struct iopf_queue *q, const struct object_new *o, struct object **out);
int object_add_space(struct manager *m, struct iopf_space *s, const struct object_new *o, struct object **out);

/*
 * Destroy an object. A queue is taken back from its worker first (it stops
 * reading, every group it read is answered while its bindings still route
 * it, what it did not read stays for whoever else holds the fd), and only
 * then are its bindings removed. The queues bound to a space stop reading
 * while the space's bindings go. final (optional, queues): the queue's
 * figures once everything it read is answered.
 */
void object_destroy(struct object *o, enum object_end how, struct iopf_queue_stats *final);

struct object *object_find(struct manager *m, enum object_type type, uint64_t id);
/* The queue whose fd is the same open file as fd (a dup of it, or the fd
 * passed again): two readers would split one queue between them. */
struct object *object_find_queue_file(struct manager *m, int fd);

/* A persistent space's region was added or removed: its memfd kept in the
 * store (or dropped), the state saved, the uid charged. */
int object_region_added(struct object *o, const struct iopf_region_info *info);
void object_region_removed(struct object *o, uint64_t region_id);

/* A client left: its objects go, but persistent ones only lose their owner. */
void objects_drop_client(struct manager *m, struct client *c);
/* The daemon stops: everything read is answered, everything mapped
 * unmapped; persistent objects stay in the fd store for the next start. */
void objects_drain(struct manager *m);

#define objects_foreach(o, m, type) cds_list_for_each_entry(o, &(m)->objects[type], node)
