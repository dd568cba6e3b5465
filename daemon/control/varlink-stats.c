/* SPDX-License-Identifier: MIT */
/* The daemon's figures over Varlink: once, or streamed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "engine/bindings.h"
#include "log.h"
#include "manager.h"
#include "shared/cleanup.h"
#include "shared/time-util.h"
#include "varlink-methods.h"

struct monitor {
	struct manager *m;
	uid_t uid; /* who asked: root sees every user's figures, others their own */
	sd_varlink *link;
	sd_event_source *timer;
	uint64_t interval_us;
	struct cds_list_head node;
};

struct dev_ctx {
	uint32_t *ids;
	size_t n, cap;
};

static int collect_device(const struct iopf_binding *b, void *ud) {
	struct dev_ctx *d = ud;
	for (size_t i = 0; i < d->n; i++)
		if (d->ids[i] == b->key.dev_id)
			return 0;
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 64;
		uint32_t *n = realloc(d->ids, cap * sizeof(*n));
		if (!n)
			return 1;
		d->ids = n;
		d->cap = cap;
	}
	d->ids[d->n++] = b->key.dev_id;
	return 0;
}

/* Each user's budget and use; all of them for root, else the viewer's. */
static int users_build(struct manager *m, uid_t viewer, sd_json_variant **ret) {
	if (!accounting_user(&m->acct, viewer)) /* the viewer's own budget, seen or not */
		return -ENOMEM;
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *list = NULL;
	for (const struct uid_usage *u = accounting_next(&m->acct, NULL); u; u = accounting_next(&m->acct, u)) {
		if (viewer != 0 && u->uid != viewer)
			continue;
		uint64_t pinned = 0;
		struct object *o;
		objects_foreach(o, m, OBJECT_SPACE) {
			if (o->uid != u->uid)
				continue;
			struct iopf_space_stats st;
			iopf_space_get_stats(o->s, &st);
			pinned += st.pinned_bytes;
		}
		bool unlimited = u->pin_budget == IOPFD_PIN_UNLIMITED;
		int r = sd_json_variant_append_arraybo(
			&list, SD_JSON_BUILD_PAIR_UNSIGNED("uid", u->uid),
			SD_JSON_BUILD_PAIR_CONDITION(!unlimited, "pinBudget", SD_JSON_BUILD_UNSIGNED(u->pin_budget)),
			SD_JSON_BUILD_PAIR_CONDITION(unlimited, "pinBudget", SD_JSON_BUILD_NULL),
			SD_JSON_BUILD_PAIR_STRING("pinGrant", u->pin_source),
			SD_JSON_BUILD_PAIR_UNSIGNED("pinReserved", u->used[ACCT_PIN]),
			SD_JSON_BUILD_PAIR_UNSIGNED("pinned", pinned),
			SD_JSON_BUILD_PAIR_UNSIGNED("queues", u->used[ACCT_QUEUES]),
			SD_JSON_BUILD_PAIR_UNSIGNED("spaces", u->used[ACCT_SPACES]),
			SD_JSON_BUILD_PAIR_UNSIGNED("regions", u->used[ACCT_REGIONS]));
		if (r < 0)
			return r;
	}
	if (!list)
		return sd_json_variant_new_array(ret, NULL, 0);
	*ret = TAKE_PTR(list);
	return 0;
}

/* The values bucket i of an iopf_hist holds, [*lo, *hi], from the layout
 * stats.h describes: below IOPF_HIST_SUB a bucket per value, then
 * IOPF_HIST_SUB buckets per power of two. tests/unit/test-servicetime.c
 * holds this to the engine's own iopf_hist_add(). */
static void hist_bucket_bounds(unsigned i, uint64_t *lo, uint64_t *hi) {
	if (i < IOPF_HIST_SUB) {
		*lo = *hi = i;
		return;
	}
	unsigned shift = i / IOPF_HIST_SUB - 1;
	*lo = (uint64_t)(IOPF_HIST_SUB + i % IOPF_HIST_SUB) << shift;
	*hi = *lo + ((1ull << shift) - 1);
}

int stats_service_time(const struct iopf_hist *h, sd_json_variant **ret) {
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *buckets = NULL;
	double sum = 0;
	uint64_t below = 0; /* samples in the buckets walked so far */
	unsigned i = 0;
	int r = sd_json_variant_new_array(&buckets, NULL, 0);
	for (unsigned k = SERVICE_TIME_FIRST_POW2; r >= 0 && k <= SERVICE_TIME_LAST_POW2; k++) {
		uint64_t le = (1ull << k) - 1, lo, hi;
		for (; i < IOPF_HIST_BUCKETS; i++) {
			hist_bucket_bounds(i, &lo, &hi);
			if (hi > le)
				break;
			below += h->bucket[i];
			sum += (double)h->bucket[i] * ((double)lo + (double)hi) / 2;
		}
		r = sd_json_variant_append_arraybo(&buckets, SD_JSON_BUILD_PAIR_UNSIGNED("leNs", le),
		                                   SD_JSON_BUILD_PAIR_UNSIGNED("count", below));
	}
	if (r < 0)
		return r;
	for (; i < IOPF_HIST_BUCKETS; i++) {
		uint64_t lo, hi;
		hist_bucket_bounds(i, &lo, &hi);
		sum += (double)h->bucket[i] * ((double)lo + (double)hi) / 2;
	}
	return sd_json_buildo(ret, SD_JSON_BUILD_PAIR_UNSIGNED("count", h->count),
	                      SD_JSON_BUILD_PAIR_UNSIGNED("sumNs", (uint64_t)sum),
	                      SD_JSON_BUILD_PAIR_UNSIGNED("maxNs", h->max),
	                      SD_JSON_BUILD_PAIR_VARIANT("buckets", buckets));
}

int stats_build(struct manager *m, uid_t viewer, sd_json_variant **ret) {
	struct iopf_counters c;
	struct iopf_hist h;
	iopf_engine_counters(m->engine, &c);
	iopf_engine_service_time(m->engine, &h);

	uint64_t pinned = 0;
	struct object *o;
	objects_foreach(o, m, OBJECT_SPACE) {
		struct iopf_space_stats st;
		iopf_space_get_stats(o->s, &st);
		pinned += st.pinned_bytes;
	}
	struct dev_ctx d = {0};
	struct iopf_bindings *b = iopf_engine_bindings(m->engine);
	iopf_bindings_foreach(b, collect_device, &d);
	size_t devices = d.n;
	free(d.ids);

	_cleanup_(sd_json_variant_unrefp) sd_json_variant *invalid = NULL, *errors = NULL;
	int r = 0;
	for (int i = IOPF_SERVED + 1; i < _IOPF_VERDICT_MAX && r >= 0; i++)
		r = sd_json_variant_set_field_unsigned(&invalid, iopf_verdict_to_string(i), c.invalid[i]);
	for (int i = 0; i < _VL_ERROR_MAX && r >= 0; i++)
		if (m->request_errors[i])
			r = sd_json_variant_set_field_unsigned(&errors, vl_error_to_string(i), m->request_errors[i]);
	if (r < 0)
		return r;
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *users = NULL, *service = NULL;
	if ((r = users_build(m, viewer, &users)) < 0 || (r = stats_service_time(&h, &service)) < 0)
		return r;
	const struct restart *rs = &m->restart;
	return sd_json_buildo(
		ret,
		SD_JSON_BUILD_PAIR_REAL("uptime", (double)(now_usec() - m->started_usec) / 1e6),
		SD_JSON_BUILD_PAIR_UNSIGNED("workers", iopf_engine_workers(m->engine)),
		SD_JSON_BUILD_PAIR_UNSIGNED("queues", m->n_objects[OBJECT_QUEUE]),
		SD_JSON_BUILD_PAIR_UNSIGNED("spaces", m->n_objects[OBJECT_SPACE]),
		SD_JSON_BUILD_PAIR_UNSIGNED("bindings", iopf_bindings_count(b)),
		SD_JSON_BUILD_PAIR_UNSIGNED("devices", devices),
		SD_JSON_BUILD_PAIR_UNSIGNED("clients", m->n_clients),
		SD_JSON_BUILD_PAIR_UNSIGNED("groups", c.groups),
		SD_JSON_BUILD_PAIR_UNSIGNED("faults", c.faults),
		SD_JSON_BUILD_PAIR_UNSIGNED("success", c.success),
		SD_JSON_BUILD_PAIR("invalid", SD_JSON_BUILD_VARIANT(invalid)),
		SD_JSON_BUILD_PAIR_UNSIGNED("syscalls", c.reads + c.writes + c.epoll_waits),
		SD_JSON_BUILD_PAIR_UNSIGNED("reads", c.reads),
		SD_JSON_BUILD_PAIR_UNSIGNED("writes", c.writes),
		SD_JSON_BUILD_PAIR_UNSIGNED("writeRejects", c.write_rejects),
		SD_JSON_BUILD_PAIR_UNSIGNED("protocolErrors", c.protocol_errors),
		SD_JSON_BUILD_PAIR_UNSIGNED("hangups", c.hangups),
		SD_JSON_BUILD_PAIR_UNSIGNED("ioErrors", c.read_errors + c.write_errors),
		SD_JSON_BUILD_PAIR_UNSIGNED("cutGroups", c.cut_groups),
		SD_JSON_BUILD_PAIR_UNSIGNED("unsentResponses", c.unsent_responses),
		SD_JSON_BUILD_PAIR_UNSIGNED("pinned", pinned),
		SD_JSON_BUILD_PAIR("users", SD_JSON_BUILD_VARIANT(users)),
		SD_JSON_BUILD_PAIR_REAL("p50us", (double)iopf_hist_quantile(&h, 0.5) / 1000.0),
		SD_JSON_BUILD_PAIR_REAL("p99us", (double)iopf_hist_quantile(&h, 0.99) / 1000.0),
		SD_JSON_BUILD_PAIR_REAL("p999us", (double)iopf_hist_quantile(&h, 0.999) / 1000.0),
		SD_JSON_BUILD_PAIR("serviceTime", SD_JSON_BUILD_VARIANT(service)),
		SD_JSON_BUILD_PAIR_CONDITION(!!errors, "requestErrors", SD_JSON_BUILD_VARIANT(errors)),
		SD_JSON_BUILD_PAIR_CONDITION(!errors, "requestErrors", SD_JSON_BUILD_EMPTY_OBJECT),
		SD_JSON_BUILD_PAIR_UNSIGNED("restoredObjects", rs->restored_objects),
		SD_JSON_BUILD_PAIR_UNSIGNED("recoveredGroups", rs->recovered_groups),
		SD_JSON_BUILD_PAIR_UNSIGNED("reansweredGroups", rs->reanswered_groups));
}

static int method_get_statistics(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c;
	int r = vl_begin(link, p, (const sd_json_dispatch_field[]){{}}, NULL, &c);
	if (r <= 0)
		return r;
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *st = NULL;
	r = stats_build(c->m, c->uid, &st);
	if (r < 0)
		return r;
	return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR("statistics", SD_JSON_BUILD_VARIANT(st)));
}

static int monitor_tick(sd_event_source *s, uint64_t usec, void *userdata) {
	struct monitor *mon = userdata;
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *st = NULL;
	int r = stats_build(mon->m, mon->uid, &st);
	if (r >= 0)
		r = sd_varlink_notifybo(mon->link, SD_JSON_BUILD_PAIR("statistics", SD_JSON_BUILD_VARIANT(st)));
	if (r < 0) {
		log_debug("monitor stopped: %s", strerror(-r));
		sd_event_source_set_enabled(s, SD_EVENT_OFF);
		return 0;
	}
	/* Time sources fire once; arm it again. */
	r = sd_event_source_set_time_relative(s, mon->interval_us);
	return r < 0 ? r : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int method_monitor(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	static const sd_json_dispatch_field table[] = {
		{"intervalMs", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, 0, SD_JSON_NULLABLE},
		{},
	};
	uint64_t interval = 1000;
	struct client *c;
	int r = vl_begin(link, p, table, &interval, &c);
	if (r <= 0)
		return r;
	struct manager *m = c->m;
	if (!(f & SD_VARLINK_METHOD_MORE))
		return sd_varlink_error(link, "org.varlink.service.ExpectedMore", NULL);
	if (interval < 100 || interval > 3600 * 1000)
		return vl_error_invalid_parameter(link, m, "intervalMs");
	_cleanup_free_ struct monitor *mon = calloc(1, sizeof(*mon));
	if (!mon)
		return -ENOMEM;
	mon->m = m;
	mon->uid = c->uid;
	mon->interval_us = interval * 1000;
	r = sd_event_add_time_relative(m->event, &mon->timer, CLOCK_MONOTONIC, 0, 1000, monitor_tick, mon);
	if (r < 0)
		return r;
	mon->link = sd_varlink_ref(link);
	cds_list_add(&mon->node, &m->monitors);
	TAKE_PTR(mon);
	return 0;
}

void monitors_drop_link(struct manager *m, sd_varlink *link) {
	struct monitor *mon, *t;
	cds_list_for_each_entry_safe(mon, t, &m->monitors, node) {
		if (link && mon->link != link)
			continue;
		cds_list_del(&mon->node);
		sd_event_source_disable_unref(mon->timer);
		sd_varlink_unref(mon->link);
		free(mon);
	}
}

const struct vl_method vl_stats_methods[] = {
	{"io.iopfd.GetStatistics", method_get_statistics},
	{"io.iopfd.Monitor", method_monitor},
	{},
};
