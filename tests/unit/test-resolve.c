/* SPDX-License-Identifier: MIT */
/* Resolution of fault groups: bindings, regions, permissions, dedup within a
 * batch, and holds kept until the batch ends. */
#include "../common.h"
#include "engine/bindings.h"
#include "engine/resolve.h"

#define PG 4096ull
#define IOVA 0x40000000ull
#define Q 7

static struct iopf_bindings *bindings;
static struct iopf_space *space;
static struct iopf_counters counters;
static struct iopf_resolver res;

static void setup(void) {
	iopf_rcu_register();
	cr_assert_eq(iopf_bindings_new(&bindings), 0);
	struct iopf_space_config cfg = {
		.backend = IOPF_BACKEND_SIMULATED, .quota = 1 << 30, .page_size = PG, .iommufd = -1,
		/* A map per missed page: what coalescing adds is then countable. */
		.fault_around = IOPF_FAULT_AROUND_FIXED, .window_min = PG, .window_max = PG,
	};
	cr_assert_eq(iopf_space_new(1, &cfg, &space), 0);
	struct iopf_region_config rc = {.iova = IOVA, .length = 256 * PG, .memfd = -1, .perm = IOPF_PERM_READ};
	cr_assert_eq(iopf_space_add_region(space, &rc, 0, NULL, NULL), IOPF_REGION_ADDED);
	struct iopf_binding_key k = {.queue_id = Q, .dev_id = 1, .pasid = 5};
	cr_assert_eq(iopf_bindings_add(bindings, &k, space), 0);
	memset(&counters, 0, sizeof(counters));
	cr_assert_eq(iopf_resolver_init(&res, bindings, 1024, &counters), 0);
}

static void teardown(void) {
	iopf_resolver_fini(&res);
	iopf_bindings_remove_space(bindings, space);
	iopf_space_destroy(space);
	iopf_bindings_free(bindings);
	iopf_rcu_barrier();
	iopf_rcu_unregister();
}

TestSuite(resolve, .init = setup, .fini = teardown);

static iopf_record recs[64];

/* A group of n faults at consecutive pages from `addr`. */
static struct iopf_group group(uint32_t dev, uint32_t pasid, uint64_t addr, uint32_t n, uint32_t perm) {
	for (uint32_t i = 0; i < n; i++)
		recs[i] = (iopf_record){
			.flags = IOMMU_PGFAULT_FLAGS_PASID_VALID | (i == n - 1 ? IOMMU_PGFAULT_FLAGS_LAST_PAGE : 0),
			.dev_id = dev, .pasid = pasid, .perm = perm, .addr = addr + i * PG, .cookie = 3,
		};
	return (struct iopf_group){.faults = recs, .n_faults = n, .cookie = 3, .dev_id = dev, .pasid = pasid};
}

static uint32_t resolve_one(struct iopf_group g) {
	iopf_rcu_read_lock();
	iopf_resolver_begin(&res);
	uint32_t code = iopf_resolve_group(&res, Q, &g);
	iopf_resolver_end(&res);
	iopf_rcu_read_unlock();
	return code;
}

Test(resolve, bound_device_in_region_succeeds) {
	cr_assert_eq(resolve_one(group(1, 5, IOVA, 4, IOPF_PERM_READ)), IOMMUFD_PAGE_RESP_SUCCESS);
	cr_assert_eq(counters.groups, 1);
	cr_assert_eq(counters.faults, 4);
	cr_assert_eq(counters.success, 1);
}

Test(resolve, unknown_device_pasid_or_queue_is_invalid) {
	cr_assert_eq(resolve_one(group(2, 5, IOVA, 1, IOPF_PERM_READ)), IOMMUFD_PAGE_RESP_INVALID, "device");
	cr_assert_eq(resolve_one(group(1, 6, IOVA, 1, IOPF_PERM_READ)), IOMMUFD_PAGE_RESP_INVALID, "PASID");
	struct iopf_group g = group(1, 5, IOVA, 1, IOPF_PERM_READ);
	g.pasid = IOPF_PASID_NONE;
	cr_assert_eq(resolve_one(g), IOMMUFD_PAGE_RESP_INVALID, "no PASID is another key");
	iopf_rcu_read_lock();
	iopf_resolver_begin(&res);
	g = group(1, 5, IOVA, 1, IOPF_PERM_READ);
	cr_assert_eq(iopf_resolve_group(&res, Q + 1, &g), IOMMUFD_PAGE_RESP_INVALID, "another queue");
	iopf_resolver_end(&res);
	iopf_rcu_read_unlock();
	cr_assert_eq(counters.invalid[IOPF_INVALID_NO_BINDING], 4);
	cr_assert_eq(counters.success, 0);
}

Test(resolve, fault_outside_region_fails_the_whole_group) {
	/* Three pages inside, the fourth past the end. */
	cr_assert_eq(resolve_one(group(1, 5, IOVA + 253 * PG, 4, IOPF_PERM_READ)), IOMMUFD_PAGE_RESP_INVALID);
	cr_assert_eq(counters.invalid[IOPF_INVALID_NO_REGION], 1);
}

Test(resolve, permission_is_checked_per_fault) {
	struct iopf_group g = group(1, 5, IOVA, 3, IOPF_PERM_READ);
	recs[1].perm = IOPF_PERM_WRITE;
	cr_assert_eq(resolve_one(g), IOMMUFD_PAGE_RESP_INVALID);
	cr_assert_eq(counters.invalid[IOPF_INVALID_PERM], 1);
	g = group(1, 5, IOVA, 1, IOPF_PERM_READ | IOPF_PERM_EXEC);
	cr_assert_eq(resolve_one(g), IOMMUFD_PAGE_RESP_INVALID, "EXEC needs a region that allows it");
	g = group(1, 5, IOVA, 1, IOPF_PERM_READ | IOPF_PERM_PRIV);
	cr_assert_eq(resolve_one(g), IOMMUFD_PAGE_RESP_INVALID, "so does PRIV");
	cr_assert_eq(counters.invalid[IOPF_INVALID_PERM], 3);
}

Test(resolve, defective_group_is_invalid_without_lookup) {
	struct iopf_group g = group(1, 5, IOVA, 1, IOPF_PERM_READ);
	g.defect = IOPF_GROUP_RESERVED;
	cr_assert_eq(resolve_one(g), IOMMUFD_PAGE_RESP_INVALID);
	cr_assert_eq(counters.invalid[IOPF_INVALID_DEFECT], 1);
}

Test(resolve, duplicate_pages_in_a_batch_resolve_once_and_hold_until_end) {
	iopf_record a[2], b[2];
	struct iopf_group g1 = group(1, 5, IOVA + 10 * PG, 2, IOPF_PERM_READ);
	memcpy(a, recs, sizeof(a));
	g1.faults = a;
	struct iopf_group g2 = group(1, 5, IOVA + 11 * PG, 2, IOPF_PERM_READ);
	memcpy(b, recs, sizeof(b));
	g2.faults = b;
	g2.cookie = 4;

	iopf_rcu_read_lock();
	iopf_resolver_begin(&res);
	cr_assert_eq(iopf_resolve_group(&res, Q, &g1), IOMMUFD_PAGE_RESP_SUCCESS);
	cr_assert_eq(iopf_resolve_group(&res, Q, &g2), IOMMUFD_PAGE_RESP_SUCCESS);
	cr_assert_eq(counters.dedup_hits, 1, "page 11 is in both groups");
	struct iopf_region *r = iopf_region_find(space->regions, IOVA);
	cr_assert_eq(r->page[10] >> IOPF_PAGE_HOLD_SHIFT, 1);
	cr_assert_eq(r->page[11] >> IOPF_PAGE_HOLD_SHIFT, 1, "held once, not twice");
	cr_assert_eq(r->page[12] >> IOPF_PAGE_HOLD_SHIFT, 1);
	iopf_resolver_end(&res);
	iopf_rcu_read_unlock();
	for (int p = 10; p <= 12; p++)
		cr_assert_eq(r->page[p] >> IOPF_PAGE_HOLD_SHIFT, 0, "released at the end of the batch");
}

Test(resolve, cookies_are_claimed_once_per_batch) {
	iopf_resolver_begin(&res);
	cr_assert(iopf_resolver_claim_cookie(&res, 17));
	cr_assert(iopf_resolver_claim_cookie(&res, 18));
	cr_assert_not(iopf_resolver_claim_cookie(&res, 17), "a second group with a cookie in flight");
	iopf_resolver_end(&res);
	iopf_resolver_begin(&res);
	cr_assert(iopf_resolver_claim_cookie(&res, 17), "cookies are reused across batches");
	iopf_resolver_end(&res);
}

Test(resolve, bindings_add_remove) {
	struct iopf_binding_key k = {.queue_id = Q, .dev_id = 1, .pasid = 5};
	cr_assert_eq(iopf_bindings_add(bindings, &k, space), -EEXIST);
	cr_assert_eq(iopf_bindings_count(bindings), 1);
	struct iopf_binding_key k2 = {.queue_id = Q, .dev_id = 1, .pasid = IOPF_PASID_NONE};
	cr_assert_eq(iopf_bindings_add(bindings, &k2, space), 0);
	struct iopf_binding_key k3 = {.queue_id = Q + 1, .dev_id = 1, .pasid = 5};
	cr_assert_eq(iopf_bindings_add(bindings, &k3, space), 0);
	cr_assert_eq(iopf_bindings_count(bindings), 3);
	cr_assert_eq(iopf_bindings_remove_queue(bindings, Q), 2);
	cr_assert_eq(iopf_bindings_remove(bindings, &k), -ENOENT);
	iopf_rcu_read_lock();
	cr_assert_eq(iopf_bindings_lookup(bindings, &k3), space);
	cr_assert_null(iopf_bindings_lookup(bindings, &k));
	iopf_rcu_read_unlock();
	cr_assert_eq(iopf_bindings_remove(bindings, &k3), 0);
	cr_assert_eq(iopf_bindings_count(bindings), 0);
}

Test(resolve, a_queues_binding_cache_never_outlives_a_change) {
	struct iopf_binding_cache cache = {0};
	struct iopf_group g = group(1, 5, IOVA, 1, IOPF_PERM_READ);
	for (int round = 0; round < 3; round++) {
		iopf_rcu_read_lock();
		iopf_resolver_begin(&res);
		iopf_resolver_use_cache(&res, &cache);
		cr_assert_eq(iopf_resolve_group(&res, Q, &g), IOMMUFD_PAGE_RESP_SUCCESS);
		iopf_resolver_end(&res);
		iopf_rcu_read_unlock();
	}
	cr_assert_eq(cache.space, space, "the cache holds the binding");
	struct iopf_binding_key k = {.queue_id = Q, .dev_id = 1, .pasid = 5};
	cr_assert_eq(iopf_bindings_remove(bindings, &k), 0);
	iopf_rcu_read_lock();
	iopf_resolver_begin(&res);
	iopf_resolver_use_cache(&res, &cache);
	cr_assert_eq(iopf_resolve_group(&res, Q, &g), IOMMUFD_PAGE_RESP_INVALID, "served from a stale cache");
	iopf_resolver_end(&res);
	iopf_rcu_read_unlock();
	cr_assert_eq(iopf_bindings_add(bindings, &k, space), 0);
	iopf_rcu_read_lock();
	iopf_resolver_begin(&res);
	iopf_resolver_use_cache(&res, &cache);
	cr_assert_eq(iopf_resolve_group(&res, Q, &g), IOMMUFD_PAGE_RESP_SUCCESS, "a new binding is seen");
	iopf_resolver_end(&res);
	iopf_rcu_read_unlock();
}

/* A batch of one-page groups on consecutive pages, resolved with a
 * coalescing span; the map calls it took. */
static uint64_t coalesce_maps(size_t span, bool *third_mapped_early) {
	enum { N = 8 };
	static iopf_record r[N];
	struct iopf_group g[N];
	for (uint32_t i = 0; i < N; i++) {
		r[i] = (iopf_record){.flags = IOMMU_PGFAULT_FLAGS_PASID_VALID | IOMMU_PGFAULT_FLAGS_LAST_PAGE,
		                     .dev_id = 1, .pasid = 5, .perm = IOPF_PERM_READ, .addr = IOVA + (64 + i) * PG,
		                     .cookie = i};
		g[i] = (struct iopf_group){.faults = &r[i], .n_faults = 1, .cookie = i, .dev_id = 1, .pasid = 5};
	}
	struct iopf_space_stats before, after;
	iopf_space_get_stats(space, &before);
	iopf_rcu_read_lock();
	iopf_resolver_begin(&res);
	iopf_resolver_batch(&res, g, N, span);
	for (uint32_t i = 0; i < N; i++) {
		cr_assert_eq(iopf_resolve_group(&res, Q, &g[i]), IOMMUFD_PAGE_RESP_SUCCESS);
		if (i == 0)
			*third_mapped_early = iopf_space_resident(space, IOVA + (64 + 3) * PG);
	}
	iopf_resolver_end(&res);
	iopf_rcu_read_unlock();
	iopf_space_get_stats(space, &after);
	return after.maps - before.maps;
}

Test(resolve, coalescing_maps_the_batchs_later_misses_in_one_call) {
	bool early;
	cr_assert_eq(coalesce_maps(0, &early), 2, "page 64, then 65..71 in one call");
	cr_assert(early);
}

Test(resolve, coalescing_looks_no_further_than_its_span) {
	/* Span 2: 64, then 65-66; 67, then 68-69; 70, then 71 alone (a
	 * lone miss is left to its own fault). */
	bool early;
	cr_assert_eq(coalesce_maps(2, &early), 6);
	cr_assert_not(early, "page 67 is past the first span: mapped when its group comes");
}
