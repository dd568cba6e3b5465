/* SPDX-License-Identifier: MIT */
/*
 * Bindings: (queue, device, PASID | none) -> address space, in a liburcu
 * lock-free hash table. Workers look up one binding per fault group inside
 * their read-side section; the control thread adds and removes bindings and
 * retires removed ones with call_rcu.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "rcu.h"

struct iopf_space;

struct iopf_binding_key {
	uint32_t queue_id;
	uint32_t dev_id;
	uint32_t pasid; /* IOPF_PASID_NONE for requests without a PASID */
};

struct iopf_binding {
	struct cds_lfht_node node;
	struct iopf_binding_key key;
	struct iopf_space *space;
	struct rcu_head rcu;
};

struct iopf_bindings;

/* A worker's memory of the last binding a queue used, valid while the
 * table's generation has not moved (every change bumps it). Saves the hash
 * lookup, and its cache misses, when a queue's groups keep coming from one
 * device. */
struct iopf_binding_cache {
	uint64_t gen; /* generation it was filled at, 0: empty */
	uint32_t dev_id, pasid;
	struct iopf_space *space;
};

/* Read side: the table's generation (changes after every add and remove). */
uint64_t iopf_bindings_generation(struct iopf_bindings *b);

int iopf_bindings_new(struct iopf_bindings **out);
/* The table must be empty of readers (workers stopped). Frees remaining nodes. */
void iopf_bindings_free(struct iopf_bindings *b);

/* Control thread. -EEXIST when the key is bound already, -ENOMEM. */
int iopf_bindings_add(struct iopf_bindings *b, const struct iopf_binding_key *k, struct iopf_space *s);
/* -ENOENT when the key is not bound. */
int iopf_bindings_remove(struct iopf_bindings *b, const struct iopf_binding_key *k);
/* Remove every binding of a queue / to a space; returns how many. */
size_t iopf_bindings_remove_queue(struct iopf_bindings *b, uint32_t queue_id);
size_t iopf_bindings_remove_space(struct iopf_bindings *b, const struct iopf_space *s);
size_t iopf_bindings_count(struct iopf_bindings *b);
/* Bindings of one queue / to one space (control thread; walks the table). */
size_t iopf_bindings_count_queue(struct iopf_bindings *b, uint32_t queue_id);
size_t iopf_bindings_count_space(struct iopf_bindings *b, const struct iopf_space *s);
/* Calls fn for each binding (control thread; stop early by returning non-zero). */
void iopf_bindings_foreach(struct iopf_bindings *b, int (*fn)(const struct iopf_binding *, void *), void *ud);

/* Read side (inside iopf_rcu_read_lock): the bound space, or NULL. */
struct iopf_space *iopf_bindings_lookup(struct iopf_bindings *b, const struct iopf_binding_key *k);
