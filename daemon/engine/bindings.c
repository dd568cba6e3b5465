/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "bindings.h"

struct iopf_bindings {
	struct cds_lfht *ht;
	size_t count;   /* control thread only */
	uint64_t gen;   /* bumped (release) after every change to the table */
};

/* After the table changed: cached lookups made before are stale. */
static void bump(struct iopf_bindings *b) {
	__atomic_store_n(&b->gen, b->gen + 1, __ATOMIC_RELEASE);
}

uint64_t iopf_bindings_generation(struct iopf_bindings *b) {
	return __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
}

static unsigned long key_hash(const struct iopf_binding_key *k) {
	/* A 64-bit mix of the three words (splitmix64's finalizer). */
	uint64_t x = ((uint64_t)k->queue_id << 32 | k->dev_id) ^ ((uint64_t)k->pasid * 0x9e3779b97f4a7c15ull);
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (unsigned long)x;
}

static int key_match(struct cds_lfht_node *node, const void *key) {
	const struct iopf_binding *b = caa_container_of(node, struct iopf_binding, node);
	IOPF_TSAN_CONSUME((void *)b);
	const struct iopf_binding_key *k = key;
	return b->key.queue_id == k->queue_id && b->key.dev_id == k->dev_id && b->key.pasid == k->pasid;
}

int iopf_bindings_new(struct iopf_bindings **out) {
	struct iopf_bindings *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->gen = 1; /* 0 marks an empty cache */
	b->ht = cds_lfht_new_flavor(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
	                            &IOPF_RCU_FLAVOR, NULL);
	if (!b->ht) {
		free(b);
		return -ENOMEM;
	}
	*out = b;
	return 0;
}

static void binding_free_rcu(struct rcu_head *h) {
	IOPF_RCU_AFTER_GP();
	free(caa_container_of(h, struct iopf_binding, rcu));
}

int iopf_bindings_add(struct iopf_bindings *b, const struct iopf_binding_key *k, struct iopf_space *s) {
	struct iopf_binding *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->key = *k;
	n->space = s;
	cds_lfht_node_init(&n->node);
	IOPF_TSAN_PUBLISH(n);
	iopf_rcu_online();
	iopf_rcu_read_lock();
	struct cds_lfht_node *got = cds_lfht_add_unique(b->ht, key_hash(k), key_match, k, &n->node);
	iopf_rcu_read_unlock();
	iopf_rcu_offline();
	if (got != &n->node) {
		free(n);
		return -EEXIST;
	}
	b->count++;
	bump(b);
	return 0;
}

int iopf_bindings_remove(struct iopf_bindings *b, const struct iopf_binding_key *k) {
	struct cds_lfht_iter it;
	int r = -ENOENT;
	iopf_rcu_online();
	iopf_rcu_read_lock();
	cds_lfht_lookup(b->ht, key_hash(k), key_match, k, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	if (node && cds_lfht_del(b->ht, node) == 0) {
		iopf_rcu_call(&caa_container_of(node, struct iopf_binding, node)->rcu, binding_free_rcu);
		b->count--;
		r = 0;
	}
	iopf_rcu_read_unlock();
	iopf_rcu_offline();
	if (r == 0)
		bump(b);
	return r;
}

/* Calls fn for every binding (stopping when it returns non-zero), inside
 * one read-side section: the control thread's walk of the table. */
void iopf_bindings_foreach(struct iopf_bindings *b, int (*fn)(const struct iopf_binding *, void *), void *ud) {
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	iopf_rcu_online();
	iopf_rcu_read_lock();
	cds_lfht_for_each(b->ht, &it, node) {
		if (fn(caa_container_of(node, struct iopf_binding, node), ud))
			break;
	}
	iopf_rcu_read_unlock();
	iopf_rcu_offline();
}

struct where {
	struct iopf_bindings *b;
	int (*pred)(const struct iopf_binding *, const void *);
	const void *arg;
	size_t n;
};

static int count_one(const struct iopf_binding *bd, void *ud) {
	struct where *w = ud;
	w->n += w->pred(bd, w->arg) != 0;
	return 0;
}

/* Deleting while walking is what cds_lfht allows inside the section. */
static int remove_one(const struct iopf_binding *bd, void *ud) {
	struct where *w = ud;
	struct iopf_binding *n = (struct iopf_binding *)bd;
	if (w->pred(bd, w->arg) && cds_lfht_del(w->b->ht, &n->node) == 0) {
		iopf_rcu_call(&n->rcu, binding_free_rcu);
		w->n++;
	}
	return 0;
}

static int is_queue(const struct iopf_binding *bd, const void *arg) {
	return bd->key.queue_id == *(const uint32_t *)arg;
}

static int is_space(const struct iopf_binding *bd, const void *arg) {
	return bd->space == arg;
}

static size_t remove_where(struct iopf_bindings *b, int (*pred)(const struct iopf_binding *, const void *),
                           const void *arg) {
	struct where w = {.b = b, .pred = pred, .arg = arg};
	iopf_bindings_foreach(b, remove_one, &w);
	b->count -= w.n;
	if (w.n)
		bump(b);
	return w.n;
}

static size_t count_where(struct iopf_bindings *b, int (*pred)(const struct iopf_binding *, const void *),
                          const void *arg) {
	struct where w = {.b = b, .pred = pred, .arg = arg};
	iopf_bindings_foreach(b, count_one, &w);
	return w.n;
}

static int is_any(const struct iopf_binding *bd, const void *arg) {
	return 1;
}

void iopf_bindings_free(struct iopf_bindings *b) {
	if (!b)
		return;
	remove_where(b, is_any, NULL);
	/* Removed nodes are freed by call_rcu; the table itself may go now. */
	cds_lfht_destroy(b->ht, NULL);
	free(b);
}

size_t iopf_bindings_remove_queue(struct iopf_bindings *b, uint32_t queue_id) {
	return remove_where(b, is_queue, &queue_id);
}

size_t iopf_bindings_remove_space(struct iopf_bindings *b, const struct iopf_space *s) {
	return remove_where(b, is_space, s);
}

size_t iopf_bindings_count_queue(struct iopf_bindings *b, uint32_t queue_id) {
	return count_where(b, is_queue, &queue_id);
}

size_t iopf_bindings_count_space(struct iopf_bindings *b, const struct iopf_space *s) {
	return count_where(b, is_space, s);
}

size_t iopf_bindings_count(struct iopf_bindings *b) {
	return b->count;
}

struct iopf_space *iopf_bindings_lookup(struct iopf_bindings *b, const struct iopf_binding_key *k) {
	struct cds_lfht_iter it;
	cds_lfht_lookup(b->ht, key_hash(k), key_match, k, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	return node ? rcu_dereference(caa_container_of(node, struct iopf_binding, node)->space) : NULL;
}
