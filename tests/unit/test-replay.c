/* SPDX-License-Identifier: MIT */
/*
 * The engine replay (bench/replay.c) against the policy simulator: devices
 * that issue the simulator's windows in trace order to a real engine on
 * one worker stall on the same accesses, and the space maps, unmaps, evicts
 * and peaks the same, for every policy of iopfd's, on either backend that
 * pins. What the engine evicts, a device faults on again. Devices running
 * in rounds, several windows in flight on several workers, get every group
 * answered within the quota.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "../common.h"
#include "engine/rcu.h"
#include "replay.h"
#include "sim-device.h"
#include "sim-policies.h"
#include "sim-trace.h"
#include "trace-synth.h"

static void setup(void) {
	iopf_rcu_register();
}

static void teardown(void) {
	iopf_rcu_barrier();
	iopf_rcu_unregister();
}

TestSuite(replay, .init = setup, .fini = teardown, .timeout = 300);

static struct sim_trace synth(const char *name, size_t pages, size_t accesses) {
	struct synth_size size = {.pages = pages, .accesses = accesses};
	struct trace tr;
	cr_assert_eq(trace_synth(name, &size, &tr), 0);
	struct sim_trace t;
	cr_assert_eq(sim_trace_prepare(&tr, name, &t), 0);
	trace_free(&tr);
	return t;
}

struct both {
	struct replay_result e;
	struct sim_counts s;
	size_t first_diff; /* SIZE_MAX when every access stalled in both or neither */
};

static struct both replay_and_simulate(const struct sim_trace *t, const char *policy, unsigned quota_pct,
                                       unsigned inflight, const struct replay_config *shape) {
	const struct sim_policy *p = sim_policy_find(policy);
	cr_assert(p, "no policy %s", policy);
	uint64_t quota = t->footprint * quota_pct / 100;
	uint8_t *ef = calloc(t->n, 1), *sf = calloc(t->n, 1);
	cr_assert(ef && sf);
	struct both b = {.first_diff = SIZE_MAX};
	struct replay_config rc = *shape;
	rc.t = t;
	rc.policy = p;
	rc.quota_pages = quota ? quota : 1;
	rc.inflight = inflight;
	rc.faulted = ef;
	const char *why;
	int r = replay_run(&rc, &b.e, &why);
	cr_assert_eq(r, 0, "%s, %s: %s (%s)", t->name, policy, strerror(-r), why ? why : "");
	struct sim_run sr = {.t = t, .policy = p, .quota_pages = rc.quota_pages, .inflight = inflight, .faulted = sf};
	cr_assert_eq(sim_replay(&sr, &b.s), 0);
	for (size_t i = 0; i < t->n && b.first_diff == SIZE_MAX; i++)
		if (ef[i] != sf[i])
			b.first_diff = i;
	free(ef);
	free(sf);
	return b;
}

/* Every count the simulator has, the same; and the engine read each
 * window as one batch. */
static void assert_same(const struct both *b, const char *what) {
	const struct replay_result *e = &b->e;
	const struct sim_counts *s = &b->s;
	cr_assert_eq(b->first_diff, SIZE_MAX, "%s: access %zu stalled in one replay only", what, b->first_diff);
	cr_assert_eq(e->accesses, s->accesses, "%s", what);
	cr_assert_eq(e->faults, s->faults, "%s: faults %lu, simulator %lu", what, (unsigned long)e->faults,
	             (unsigned long)s->faults);
	cr_assert_eq(e->windows, s->batches, "%s", what);
	cr_assert_eq(e->reads, s->batches, "%s: the engine read %lu batches for %lu windows", what,
	             (unsigned long)e->reads, (unsigned long)s->batches);
	cr_assert_eq(e->maps, s->maps, "%s: maps %lu, simulator %lu", what, (unsigned long)e->maps,
	             (unsigned long)s->maps);
	cr_assert_eq(e->unmaps, s->unmaps, "%s", what);
	cr_assert_eq(e->evictions, s->evictions, "%s", what);
	cr_assert_eq(e->mapped_bytes, s->mapped_bytes, "%s", what);
	cr_assert_eq(e->pinned_peak, s->pinned_peak, "%s", what);
	cr_assert_eq(e->groups, e->faults, "%s: every stall is one group, answered once", what);
	cr_assert_eq(e->invalid, 0, "%s: %lu groups refused", what, (unsigned long)e->invalid);
}

static const struct replay_config in_order = {.workers = 1, .backend = IOPF_BACKEND_SIMULATED};

Test(replay, every_policy_stalls_where_the_simulator_does) {
	static const char *const traces[] = {"seq", "zipf", "streams", "phases"};
	static const unsigned quotas[] = {50, 25}, inflight[] = {1, 32};
	size_t n;
	const struct sim_policy *all = sim_policies(&n);
	for (size_t k = 0; k < sizeof(traces) / sizeof(traces[0]); k++) {
		struct sim_trace t = synth(traces[k], 256, 4096);
		for (size_t p = 0; p < n; p++) {
			if (!sim_policy_is_iopfd(&all[p]))
				continue;
			for (size_t q = 0; q < 2; q++)
				for (size_t f = 0; f < 2; f++) {
					struct both b = replay_and_simulate(&t, all[p].name, quotas[q], inflight[f], &in_order);
					char what[128];
					snprintf(what, sizeof(what), "%s, %s, quota %u%%, N=%u", traces[k], all[p].name, quotas[q],
					         inflight[f]);
					assert_same(&b, what);
				}
		}
		sim_trace_free(&t);
	}
}

/* A sweep over twice the quota, one page a fault: each page is evicted
 * before the sweep comes back to it, so every access stalls, every time. */
Test(replay, an_evicted_page_faults_again) {
	struct sim_trace t = synth("seq", 64, 64 * 4);
	struct both b = replay_and_simulate(&t, "fixed", 50, 1, &in_order);
	assert_same(&b, "seq");
	cr_assert_eq(b.e.faults, 256, "four sweeps of 64 pages under a 32-page quota");
	cr_assert_eq(b.e.maps, 256);
	cr_assert_eq(b.e.evictions, 256 - 32);
	cr_assert_eq(b.e.pinned_peak, 32 * 4096);
	sim_trace_free(&t);
}

/* The same replay with real pinning: mlock()ed windows of a sealed memfd. */
Test(replay, mlock_counts_what_the_simulator_counts) {
	struct sim_trace t = synth("zipf", 256, 4096);
	struct replay_config mlock = {.workers = 1, .backend = IOPF_BACKEND_MLOCK};
	for (unsigned f = 1; f <= 32; f *= 32) {
		struct both b = replay_and_simulate(&t, "adaptive-2q", 25, f, &mlock);
		assert_same(&b, "zipf on mlock");
	}
	sim_trace_free(&t);
}

/* One device in rounds issues its windows one after another: trace order. */
Test(replay, one_stream_in_rounds_is_in_trace_order) {
	struct sim_trace t = synth("phases", 256, 4096);
	struct replay_config rounds = {.workers = 2, .backend = IOPF_BACKEND_SIMULATED, .concurrent = true};
	struct both b = replay_and_simulate(&t, "adaptive", 25, 32, &rounds);
	assert_same(&b, "phases in rounds");
	sim_trace_free(&t);
}

/* Four devices in rounds on two workers: their windows are in flight
 * together and take room from each other in the engine's order, so the
 * counts are the engine's own; every group is answered once, SUCCESS, and
 * the pinned peak stays within the quota. */
Test(replay, devices_in_rounds_get_every_group_answered) {
	struct sim_trace t = synth("streams", 256, 8192);
	struct replay_config rounds = {.workers = 2, .backend = IOPF_BACKEND_SIMULATED, .concurrent = true};
	struct both b = replay_and_simulate(&t, "window-16k", 25, 32, &rounds);
	cr_assert_eq(b.e.accesses, t.n);
	cr_assert_eq(b.e.groups, b.e.faults);
	cr_assert_eq(b.e.invalid, 0);
	cr_assert_leq(b.e.pinned_peak, 64 * 4096);
	cr_assert_geq(b.e.reads, b.e.windows, "a window is one send, read at once or in parts");
	sim_trace_free(&t);
}

Test(replay, baselines_are_not_the_engines_to_run) {
	struct sim_trace t = synth("seq", 64, 64);
	struct replay_config rc = {.t = &t, .policy = sim_policy_find("lru"), .quota_pages = 8, .inflight = 1};
	struct replay_result r;
	const char *why;
	cr_assert_eq(replay_run(&rc, &r, &why), -EINVAL);
	cr_assert_not_null(why);
	sim_trace_free(&t);
}
