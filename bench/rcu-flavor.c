/* SPDX-License-Identifier: MIT */
/*
 * rcu-flavor: the cost of the fault path's RCU pattern under one liburcu
 * flavor (this file is built once per flavor). Reader threads do what a
 * worker does per wake-up: go online, take the read lock, look up B keys in
 * a cds_lfht, unlock, report a quiescent state, go offline. A writer
 * replaces entries and retires them with call_rcu, and times
 * synchronize_rcu. Prints one SUMMARY line.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/rcu.h"

#if defined(__SANITIZE_THREAD__)
char iopf_rcu_tsan_gp;
#endif

#define KEYS 4096

struct node {
	struct cds_lfht_node n;
	unsigned long key;
	struct rcu_head rcu;
};

static struct cds_lfht *ht;
static volatile int stop;

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned long hash(unsigned long k) {
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	return k ^ (k >> 33);
}

static int match(struct cds_lfht_node *n, const void *key) {
	return caa_container_of(n, struct node, n)->key == *(const unsigned long *)key;
}

struct reader {
	pthread_t th;
	unsigned batch;
	uint64_t lookups, found;
};

static void *reader_main(void *arg) {
	struct reader *r = arg;
	iopf_rcu_register();
	unsigned long k = (unsigned long)(uintptr_t)r;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		iopf_rcu_online();
		iopf_rcu_read_lock();
		for (unsigned i = 0; i < r->batch; i++) {
			struct cds_lfht_iter it;
			k = k * 6364136223846793005ull + 1;
			unsigned long key = (k >> 20) % KEYS;
			cds_lfht_lookup(ht, hash(key), match, &key, &it);
			r->found += cds_lfht_iter_get_node(&it) != NULL;
		}
		iopf_rcu_read_unlock();
		iopf_rcu_quiescent();
		iopf_rcu_offline();
		r->lookups += r->batch;
	}
	iopf_rcu_unregister();
	return NULL;
}

static void free_node(struct rcu_head *h) {
	free(caa_container_of(h, struct node, rcu));
}

static void add(unsigned long key) {
	struct node *n = calloc(1, sizeof(*n));
	n->key = key;
	cds_lfht_node_init(&n->n);
	iopf_rcu_read_lock();
	struct cds_lfht_node *old = cds_lfht_add_replace(ht, hash(key), match, &key, &n->n);
	iopf_rcu_read_unlock();
	if (old)
		iopf_rcu_call(&caa_container_of(old, struct node, n)->rcu, free_node);
}

int main(int argc, char **argv) {
	unsigned readers = argc > 1 ? (unsigned)atoi(argv[1]) : 1;
	unsigned batch = argc > 2 ? (unsigned)atoi(argv[2]) : 64;
	unsigned ms = argc > 3 ? (unsigned)atoi(argv[3]) : 1000;

	iopf_rcu_register();
	ht = cds_lfht_new_flavor(KEYS, KEYS, 0, CDS_LFHT_AUTO_RESIZE, &IOPF_RCU_FLAVOR, NULL);
	for (unsigned long k = 0; k < KEYS; k++)
		add(k);

	struct reader *r = calloc(readers, sizeof(*r));
	for (unsigned i = 0; i < readers; i++) {
		r[i].batch = batch;
		pthread_create(&r[i].th, NULL, reader_main, &r[i]);
	}
	uint64_t t0 = now_ns(), sync_ns = 0, syncs = 0, replaced = 0;
	while (now_ns() - t0 < (uint64_t)ms * 1000000) {
		/* A control plane at a brisk pace: 100 replacements, one
		 * synchronize, then a millisecond's rest. */
		for (int i = 0; i < 100; i++)
			add((replaced++ * 7919) % KEYS);
		uint64_t s = now_ns();
		iopf_rcu_synchronize();
		sync_ns += now_ns() - s;
		syncs++;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	stop = 1;
	uint64_t lookups = 0;
	for (unsigned i = 0; i < readers; i++) {
		pthread_join(r[i].th, NULL);
		lookups += r[i].lookups;
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	printf("SUMMARY flavor=%s readers=%u batch=%u lookups_per_s=%.0f ns_per_lookup=%.2f "
	       "synchronize_us=%.1f replaced=%lu\n",
	       IOPF_RCU_NAME, readers, batch, (double)lookups / secs,
	       secs * 1e9 * readers / (double)(lookups ? lookups : 1), syncs ? (double)sync_ns / syncs / 1000 : 0,
	       (unsigned long)replaced);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
	return 0;
}
