/* SPDX-License-Identifier: MIT */
/*
 * Resolving a batch of fault groups into responses.
 *
 * One resolver per worker. A batch runs inside one RCU read-side section:
 *
 *   iopf_resolver_begin(r);
 *   for each group: code = iopf_resolve_group(r, queue_id, g);
 *   ... write the responses ...
 *   iopf_resolver_end(r);   // releases the pages the batch held
 *
 * Between begin and end every page a SUCCESS depends on is held, so no
 * eviction (by any worker) can take it before the device has its answer.
 * Pages faulted twice in one batch are resolved once.
 *
 * Coalescing: given the batch (iopf_resolver_batch()), the first group
 * that has to map something also maps the pages the batch's later groups
 * miss, adjacent ones with one call per run, so that a device streaming
 * through memory costs one map call per batch rather than one per page.
 * A batch whose pages are all mapped costs nothing more. With a span, it
 * looks only that many groups ahead, and the first group past them that
 * maps looks again: a batch answered in slices of span groups then makes
 * no slice's answers wait for the maps (or the look) of later slices.
 * Once the holds are let go (iopf_resolver_release(): a slice, or the
 * quota's retry), the next group that maps looks again too.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "space-internal.h"
#include "stats.h"

struct iopf_bindings;

struct iopf_resolver {
	struct iopf_bindings *bindings;
	struct iopf_counters *c;

	struct iopf_page_ref *holds;
	size_t n_holds, cap_holds;

	/* Pages resolved in this batch: (space, page address) -> region,
	 * open addressing, entries valid when their gen is the batch's. */
	struct iopf_dedup_slot *dedup;
	size_t dedup_mask;
	/* Cookies seen in this batch, same scheme. */
	struct iopf_cookie_slot *cookies;
	size_t cookie_mask;
	uint64_t gen;        /* of the dedup entries: bumped when holds go */
	uint64_t cookie_gen; /* of the cookie entries: bumped per batch */

	/* The binding cache in use (the queue's, or one for this batch only),
	 * and the table's generation when the batch began. */
	struct iopf_binding_cache own;
	struct iopf_binding_cache *cache;
	uint64_t bindings_gen;

	/* The batch being resolved, how far ahead coalescing looks (0: to
	 * the end), and the first group it has not looked at. */
	const struct iopf_group *batch;
	size_t batch_n, span;
	const struct iopf_group *coalesce_end;
	struct iopf_miss *misses; /* cap_holds of them */
};

/* max_faults: the most fault records one batch can hold. */
int iopf_resolver_init(struct iopf_resolver *r, struct iopf_bindings *b, size_t max_faults,
                       struct iopf_counters *c);
void iopf_resolver_fini(struct iopf_resolver *r);

void iopf_resolver_begin(struct iopf_resolver *r);
/* The groups of this batch, for coalescing (optional; after begin), and
 * how many groups after a map coalescing looks at (0: all the rest). */
void iopf_resolver_batch(struct iopf_resolver *r, const struct iopf_group *groups, size_t n, size_t span);
/* Keep the lookups of this batch's queue in a cache of its own, which
 * outlives the batch while the bindings do not change. Call after begin. */
void iopf_resolver_use_cache(struct iopf_resolver *r, struct iopf_binding_cache *cache);
/* False when the cookie was already seen in this batch (a relay protocol
 * error: the kernel never has two groups in flight with one cookie). */
bool iopf_resolver_claim_cookie(struct iopf_resolver *r, uint32_t cookie);
/*
 * Resolve one group: IOMMUFD_PAGE_RESP_SUCCESS or _INVALID (counted). When
 * the quota has no room and this batch holds pages for groups resolved
 * before it (not yet answered), it returns IOPF_RESOLVE_AGAIN instead,
 * counting nothing and holding nothing for this group: answer those
 * groups, let their pages go (iopf_resolver_release()), and resolve it
 * again. A group is refused for quota only when it alone does not fit.
 */
#define IOPF_RESOLVE_AGAIN UINT32_MAX
uint32_t iopf_resolve_group(struct iopf_resolver *r, uint32_t queue_id, const struct iopf_group *g);
/* The pages held so far go (their groups are answered); the batch goes on. */
void iopf_resolver_release(struct iopf_resolver *r);
void iopf_resolver_end(struct iopf_resolver *r);
