/* SPDX-License-Identifier: MIT */
/*
 * The policy simulator: exact counts on traces small enough to work out by
 * hand (fault-around windows, the device's windows and streams, waste,
 * Belady's MIN, LRU, the density prefetcher), the trace file read back as
 * written, and invariants every policy keeps on the synthetic traces.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "../common.h"
#include "engine/rcu.h"
#include "sim-device.h"
#include "sim-policies.h"
#include "sim-trace.h"
#include "trace-synth.h"

#define BASE 0x100000ull /* a 2 MiB-aligned page number */

static void setup(void) {
	iopf_rcu_register();
}

static void teardown(void) {
	iopf_rcu_barrier();
	iopf_rcu_unregister();
}

TestSuite(sim, .init = setup, .fini = teardown, .timeout = 120);

/* A trace of one stream reading these pages (offsets from BASE). */
static struct sim_trace pages_trace(const uint64_t *page, size_t n) {
	struct trace tr = {.page_shift = 12};
	for (size_t i = 0; i < n; i++) {
		struct trace_access a = {.page = BASE + page[i]};
		cr_assert_eq(trace_push(&tr, &a), 0);
	}
	struct sim_trace t;
	cr_assert_eq(sim_trace_prepare(&tr, "hand", &t), 0);
	trace_free(&tr);
	return t;
}

static struct sim_counts run(const struct sim_trace *t, const char *policy, uint64_t quota_pages,
                             unsigned inflight) {
	const struct sim_policy *p = sim_policy_find(policy);
	cr_assert(p, "no policy %s", policy);
	struct sim_run r = {.t = t, .policy = p, .quota_pages = quota_pages, .inflight = inflight};
	struct sim_counts c;
	int err = sim_replay(&r, &c);
	cr_assert_eq(err, 0, "%s: %s", policy, strerror(-err));
	cr_assert_eq(c.quota_refusals, 0, "%s refused a fault", policy);
	return c;
}

#define PG 4096ull

/* --- fault-around: iopfd's own windows --------------------------------------- */

Test(sim, sequential_pages_fault_once_per_window) {
	uint64_t p[64];
	for (size_t i = 0; i < 64; i++)
		p[i] = i;
	struct sim_trace t = pages_trace(p, 64);
	cr_assert_eq(t.footprint, 64);

	struct sim_counts c = run(&t, "window-64k", 64, 1); /* 16 pages a window */
	cr_assert_eq(c.faults, 4);
	cr_assert_eq(c.maps, 4);
	cr_assert_eq(c.unmaps, 0);
	cr_assert_eq(c.mapped_bytes, 64 * PG);
	cr_assert_eq(c.pinned_peak, 64 * PG);
	cr_assert_eq(c.waste_bytes, 0, "every page mapped is read");

	c = run(&t, "window-16k", 64, 1);
	cr_assert_eq(c.faults, 16);
	cr_assert_eq(c.maps, 16);
	c = run(&t, "fixed", 64, 1);
	cr_assert_eq(c.faults, 64);
	cr_assert_eq(c.maps, 64);
	sim_trace_free(&t);
}

Test(sim, a_device_window_stalls_on_every_absent_page_but_maps_once) {
	uint64_t p[64];
	for (size_t i = 0; i < 64; i++)
		p[i] = i;
	struct sim_trace t = pages_trace(p, 64);
	/* Two windows of 32: every page of each is absent when it is issued
	 * (32 faults each, one batch each); the resolver maps two 16-page
	 * windows per batch and finds the other 30 pages mapped. */
	struct sim_counts c = run(&t, "window-64k", 64, 32);
	cr_assert_eq(c.faults, 64);
	cr_assert_eq(c.batches, 2);
	cr_assert_eq(c.maps, 4);
	sim_trace_free(&t);
}

Test(sim, pages_mapped_and_never_read_are_waste) {
	/* 16 KiB windows (4 pages) at a stride of 4: one page read of four. */
	uint64_t p[] = {0, 4, 8};
	struct sim_trace t = pages_trace(p, 3);
	struct sim_counts c = run(&t, "window-16k", 16, 1);
	cr_assert_eq(c.faults, 3);
	cr_assert_eq(c.mapped_bytes, 12 * PG);
	cr_assert_eq(c.waste_bytes, 9 * PG, "still mapped at the end, never read");

	/* An 8-page quota: the third window evicts the first, 3 pages unread;
	 * the other two are left with 3 unread each. */
	uint64_t q[] = {0, 4, 8};
	struct sim_trace t2 = pages_trace(q, 3);
	c = run(&t2, "window-16k", 8, 1);
	cr_assert_eq(c.maps, 3);
	cr_assert_eq(c.unmaps, 1);
	cr_assert_eq(c.evictions, 1);
	cr_assert_eq(c.waste_bytes, 9 * PG);
	cr_assert_eq(c.pinned_peak, 8 * PG);
	sim_trace_free(&t);
	sim_trace_free(&t2);
}

Test(sim, a_window_larger_than_the_quota_falls_back_to_the_page) {
	uint64_t p[] = {0, 1, 2};
	struct sim_trace t = pages_trace(p, 3);
	struct sim_counts c = run(&t, "window-64k", 2, 1);
	cr_assert_eq(c.faults, 3);
	cr_assert_eq(c.maps, 3);
	cr_assert_eq(c.mapped_bytes, 3 * PG);
	/* A window is at most half the quota: it never throws out what the
	 * quota holds only to fall back to the page (the peak stays 2). */
	cr_assert_eq(c.pinned_peak, 2 * PG);
	sim_trace_free(&t);
}

/* --- the device model ---------------------------------------------------- */

/* Streams 0 and 1 interleaved: 0:a 1:b 0:c 1:d ... */
static struct sim_trace two_streams(const uint64_t *page, size_t n) {
	struct trace tr = {.page_shift = 12};
	for (size_t i = 0; i < n; i++) {
		struct trace_access a = {.page = BASE + page[i], .stream = (uint16_t)(i % 2)};
		cr_assert_eq(trace_push(&tr, &a), 0);
	}
	struct sim_trace t;
	cr_assert_eq(sim_trace_prepare(&tr, "streams", &t), 0);
	trace_free(&tr);
	return t;
}

Test(sim, each_stream_is_a_device_with_its_own_window) {
	uint64_t p[] = {0, 100, 1, 101, 2, 102};
	struct sim_trace t = two_streams(p, 6);
	cr_assert_eq(t.streams, 2);
	struct sim_counts c = run(&t, "fixed", 16, 1);
	cr_assert_eq(c.faults, 6);
	cr_assert_eq(c.batches, 6);
	c = run(&t, "fixed", 16, 3);
	cr_assert_eq(c.faults, 6);
	cr_assert_eq(c.batches, 2, "one full window per device");
	c = run(&t, "fixed", 16, 4);
	cr_assert_eq(c.batches, 2, "the windows left at the end are issued too");
	cr_assert_eq(c.accesses, 6);
	sim_trace_free(&t);
}

Test(sim, a_page_twice_in_a_window_is_one_fault) {
	uint64_t p[] = {0, 1, 0, 1, 2};
	struct sim_trace t = pages_trace(p, 5);
	struct sim_counts c = run(&t, "fixed", 8, 5);
	cr_assert_eq(c.faults, 3);
	cr_assert_eq(c.batches, 1);
	cr_assert_eq(c.maps, 2, "page 0, then the batch's other misses (1, 2) coalesced into one call");
	c = run(&t, "lru", 8, 5);
	cr_assert_eq(c.faults, 3);
	sim_trace_free(&t);
}

/* --- the baselines, and iopfd's clock, on textbook strings ------------------- */

/* The reference string of the operating-systems textbooks, 3 frames:
 * OPT 9 faults, LRU 12, FIFO 15. */
static const uint64_t textbook[] = {7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1};

Test(sim, min_on_the_textbook_string) {
	struct sim_trace t = pages_trace(textbook, 20);
	struct sim_counts c = run(&t, "min", 3, 1);
	cr_assert_eq(c.faults, 9);
	cr_assert_eq(c.maps, 9);
	cr_assert_eq(c.evictions, 6);
	cr_assert_eq(c.pinned_peak, 3 * PG);
	sim_trace_free(&t);
}

Test(sim, lru_on_the_textbook_string) {
	struct sim_trace t = pages_trace(textbook, 20);
	cr_assert_eq(run(&t, "lru", 3, 1).faults, 12);
	sim_trace_free(&t);
}

/* A hit never reaches iopfd (the IOMMU translates it), so its clock sees
 * only faults: every page enters referenced and never is again, and the
 * clock is FIFO. */
Test(sim, iopfd_clock_sees_faults_only_and_is_fifo_here) {
	struct sim_trace t = pages_trace(textbook, 20);
	cr_assert_eq(run(&t, "fixed", 3, 1).faults, 15);
	sim_trace_free(&t);
}

Test(sim, lru_misses_every_access_of_a_loop_one_page_too_big) {
	uint64_t p[90];
	for (size_t i = 0; i < 90; i++)
		p[i] = i % 9;
	struct sim_trace t = pages_trace(p, 90);
	struct sim_counts c = run(&t, "lru", 8, 1);
	cr_assert_eq(c.faults, 90);
	cr_assert_eq(c.evictions, 82);
	/* MIN, after a fault on page x, evicts x - 1 (used furthest ahead):
	 * the next 7 accesses hit and the 8th faults. 9 faults in the first
	 * 9 accesses, then one at each of positions 16, 24, ..., 88. */
	c = run(&t, "min", 8, 1);
	cr_assert_eq(c.faults, 9 + 10);
	sim_trace_free(&t);
}

/* --- the density prefetcher -------------------------------------------------- */

Test(sim, density_doubles_what_it_fetches_as_a_block_fills) {
	/* 0: alone in its subtrees. 1: [0,2) is all resident or faulting:
	 * fetch it (page 1). 2: [0,4) has 3 of 4: fetch 2 and 3. 3: hit. */
	uint64_t p[] = {0, 1, 2, 3};
	struct sim_trace t = pages_trace(p, 4);
	struct sim_counts c = run(&t, "uvm-density", 16, 1);
	cr_assert_eq(c.faults, 3);
	cr_assert_eq(c.maps, 3);
	cr_assert_eq(c.mapped_bytes, 4 * PG);
	cr_assert_eq(c.waste_bytes, 0);
	sim_trace_free(&t);

	uint64_t q[] = {0, 1, 2};
	t = pages_trace(q, 3);
	c = run(&t, "uvm-density", 16, 1);
	cr_assert_eq(c.waste_bytes, PG, "page 3 came with page 2 and was never read");
	sim_trace_free(&t);
}

Test(sim, density_fetches_no_subtree_larger_than_the_quota) {
	uint64_t p[] = {0, 1, 2};
	struct sim_trace t = pages_trace(p, 3);
	struct sim_counts c = run(&t, "uvm-density", 2, 1);
	cr_assert_eq(c.faults, 3);
	cr_assert_eq(c.mapped_bytes, 3 * PG, "page 2 alone: [0,4) does not fit");
	cr_assert_eq(c.unmaps, 1);
	cr_assert_eq(c.pinned_peak, 2 * PG);
	sim_trace_free(&t);
}

Test(sim, density_sweeps_a_2mib_block_in_17_faults) {
	/* 51 % of a subtree, resident or faulting: the first page of each
	 * power of two, and a few more where 51 % needs one page over half
	 * (64, 65; 128..130; 256..258, 260, 264), then the block is whole. */
	uint64_t p[512];
	for (size_t i = 0; i < 512; i++)
		p[i] = i;
	struct sim_trace t = pages_trace(p, 512);
	struct sim_counts c = run(&t, "uvm-density", 512, 1);
	cr_assert_eq(c.faults, 17);
	cr_assert_eq(c.mapped_bytes, 512 * PG);
	sim_trace_free(&t);
}

/* --- trace files -------------------------------------------------------------- */

Test(sim, a_synthetic_trace_reads_back_as_written) {
	struct synth_size size = {.pages = 256, .accesses = 20000};
	struct trace tr;
	cr_assert_eq(trace_synth("zipf", &size, &tr), 0);
	cr_assert_eq(tr.n, 20000);
	char path[96], name[32];
	snprintf(name, sizeof(name), "sim-%d", (int)getpid());
	snprintf(path, sizeof(path), "/tmp/%s.trace", name);
	const char *why;
	cr_assert_eq(sim_trace_save(&tr, path, &why), 0);
	struct sim_trace a, b;
	cr_assert_eq(sim_trace_prepare(&tr, "zipf", &a), 0);
	int r = sim_trace_load(path, &b, &why);
	unlink(path);
	cr_assert_eq(r, 0, "%s", why ? why : strerror(-r));
	cr_assert_str_eq(b.name, name, "named after the file");
	cr_assert_eq(b.n, a.n, "the writer collapsed nothing: the generator had already");
	cr_assert_eq(memcmp(a.u, b.u, a.n * sizeof(*a.u)), 0);
	cr_assert_eq(memcmp(a.meta, b.meta, a.n * sizeof(*a.meta)), 0);
	struct sim_counts ca = run(&a, "window-16k", 64, 32), cb = run(&b, "window-16k", 64, 32);
	cr_assert_eq(memcmp(&ca, &cb, sizeof(ca)), 0);
	trace_free(&tr);
	sim_trace_free(&a);
	sim_trace_free(&b);
}

Test(sim, what_is_not_a_trace_is_refused) {
	char path[64];
	snprintf(path, sizeof(path), "/tmp/sim-bad-%d.trace", (int)getpid());
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs("not a trace at all", f);
	fclose(f);
	struct sim_trace t;
	const char *why;
	cr_assert_eq(sim_trace_load(path, &t, &why), -EBADMSG);
	unlink(path);
	cr_assert_eq(sim_trace_load("/nonexistent/x.trace.zst", &t, &why), -ENOENT);
}

/* Compressed traces go through zstd; where there is none, both ways say
 * so rather than read nothing. */
Test(sim, zst_files_go_through_zstd_or_say_it_is_missing) {
	struct synth_size size = {.pages = 64, .accesses = 1000};
	struct trace tr;
	cr_assert_eq(trace_synth("random", &size, &tr), 0);
	char path[96];
	snprintf(path, sizeof(path), "/tmp/sim-%d.trace.zst", (int)getpid());
	const char *why = NULL;
	struct sim_trace t;
	int r = sim_trace_save(&tr, path, &why);
	if (r == -ENOENT) {
		cr_assert(why && strstr(why, "zstd"), "the error names zstd");
		/* A file that exists, read without zstd: the same answer. */
		FILE *f = fopen(path, "w");
		cr_assert(f);
		fclose(f);
		why = NULL;
		cr_assert_eq(sim_trace_load(path, &t, &why), -ENOENT);
		cr_assert(why && strstr(why, "zstd"));
	} else {
		cr_assert_eq(r, 0, "%s", why ? why : strerror(-r));
		cr_assert_eq(sim_trace_load(path, &t, &why), 0);
		cr_assert_eq(t.n, tr.n);
		sim_trace_free(&t);
	}
	unlink(path);
	trace_free(&tr);
}

/* --- synthetic traces ------------------------------------------------------------ */

static uint64_t fnv(const struct trace *tr) {
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < tr->n; i++)
		for (int b = 0; b < 64; b += 8)
			h = (h ^ ((tr->w[i] >> b) & 0xff)) * 0x100000001b3ull;
	return h;
}

/* The same traces on every machine: these sums were taken once; a change
 * to a generator changes them on purpose, and every figure made with it. */
Test(sim, synthetic_traces_are_the_same_everywhere) {
	static const struct {
		const char *name;
		uint64_t sum;
	} want[] = {
		{"seq", 0x492b72e833876325ull},    {"stride", 0x266ca61984dd0325ull}, {"random", 0x6739b80e3e5c7a4aull},
		{"zipf", 0x8133dc812c363861ull},   {"phases", 0xe59c25b084f5ab8cull}, {"streams", 0xc8d8d96fdb7d76a9ull},
	};
	struct synth_size size = {.pages = 1024, .accesses = 65536};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct trace tr;
		cr_assert_eq(trace_synth(want[i].name, &size, &tr), 0);
		cr_assert_eq(tr.n, size.accesses, "%s", want[i].name);
		/* Zipf's coldest ranks may go unseen in a short trace. */
		if (strcmp(want[i].name, "zipf") != 0)
			cr_assert_eq(trace_footprint(&tr), size.pages, "%s touches every page", want[i].name);
		cr_assert_leq(trace_footprint(&tr), size.pages, "%s", want[i].name);
		cr_expect_eq(fnv(&tr), want[i].sum, "%s: %#llx", want[i].name, (unsigned long long)fnv(&tr));
		trace_free(&tr);
	}
	struct trace tr;
	cr_assert_eq(trace_synth("nonesuch", &size, &tr), -EINVAL);
}

/* Every policy, every synthetic trace, each quota and window. */
Test(sim, invariants_on_synthetic_traces) {
	static const unsigned quotas[] = {100, 50, 25}, inflight[] = {1, 32};
	size_t n_names, n_policies;
	const char *const *names = trace_synth_names(&n_names);
	const struct sim_policy *policies = sim_policies(&n_policies);
	struct synth_size size = {.pages = 512, .accesses = 1 << 15};
	for (size_t ti = 0; ti < n_names; ti++) {
		struct trace tr;
		struct sim_trace t;
		cr_assert_eq(trace_synth(names[ti], &size, &tr), 0);
		cr_assert_eq(sim_trace_prepare(&tr, names[ti], &t), 0);
		trace_free(&tr);
		for (size_t q = 0; q < 3; q++)
			for (size_t w = 0; w < 2; w++) {
				uint64_t quota = t.footprint * quotas[q] / 100;
				struct sim_counts c[16];
				cr_assert_leq(n_policies, 16);
				for (size_t pi = 0; pi < n_policies; pi++) {
					const char *pol = policies[pi].name;
					c[pi] = run(&t, pol, quota, inflight[w]);
					cr_assert_leq(c[pi].pinned_peak, quota * PG, "%s %s: over the quota", names[ti], pol);
					cr_assert_leq(c[pi].maps, c[pi].faults, "%s %s: a map without a fault", names[ti], pol);
					cr_assert_leq(c[pi].waste_bytes, c[pi].mapped_bytes);
					cr_assert_eq(c[pi].accesses, t.n);
					bool demand = !strcmp(pol, "fixed") || !strcmp(pol, "noprefetch") || !strcmp(pol, "lru") || !strcmp(pol, "min");
					if (demand)
						cr_assert_geq(c[pi].faults, t.footprint, "%s %s: every page faults", names[ti], pol);
					if (demand && quotas[q] == 100)
						cr_assert_eq(c[pi].faults, t.footprint, "%s %s: no page twice", names[ti], pol);
				}
				const struct sim_counts *min = &c[sim_policy_find("min") - policies];
				const struct sim_counts *lru = &c[sim_policy_find("lru") - policies];
				const struct sim_counts *def = &c[sim_policy_find("fixed") - policies];
				cr_assert_leq(min->faults, lru->faults, "%s %u%% N=%u", names[ti], quotas[q], inflight[w]);
				cr_assert_leq(min->faults, def->faults, "%s %u%% N=%u", names[ti], quotas[q], inflight[w]);
				/* One page per fault: nothing is mapped that is not read. */
				cr_assert_eq(def->waste_bytes, 0);
				cr_assert_eq(lru->waste_bytes, 0);
				cr_assert_eq(min->waste_bytes, 0);
				cr_assert_leq(def->maps, def->faults, "coalescing: never more calls than faults");
			}
		sim_trace_free(&t);
	}
}
