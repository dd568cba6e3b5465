/* SPDX-License-Identifier: MIT */
/*
 * systemd's io.systemd.Metrics (systemd 260 and later), the interface
 * systemd-report reads from every socket in /run/systemd/report/: the
 * figures of Statistics as metric families named io.iopfd.*, the prefix
 * systemd-report requires of a source whose socket is named io.iopfd.
 * List() and Describe() take no parameters and stream their answers.
 *
 * The methods are bound without the interface's description: its
 * Metric.value is of type "any", which sd-varlink 257's IDL cannot express
 * (SD_VARLINK_ANY came with 258), and a description saying "object" would
 * fail every numeric value. systemd-report does not introspect.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clients.h"
#include "engine/space.h"
#include "manager.h"
#include "shared/cleanup.h"
#include "varlink-methods.h"

struct emit {
	struct manager *m;
	struct client *c;
	sd_json_variant *stats;  /* Statistics as the caller may see it */
	sd_json_variant *metrics; /* the answers, in order */
};

struct family {
	const char *name; /* after "io.iopfd." */
	const char *type; /* counter, gauge, string, object */
	const char *description;
	int (*emit)(struct emit *e, const struct family *f);
	const char *key;   /* what emit reads: a Statistics, space or user field */
	const char *label; /* the field that tells the metrics of a family apart */
};

static int add(struct emit *e, const struct family *f, const char *object, sd_json_variant *fields,
               sd_json_variant *value) {
	char name[128];
	snprintf(name, sizeof(name), "io.iopfd.%s", f->name);
	return sd_json_variant_append_arraybo(&e->metrics, SD_JSON_BUILD_PAIR_STRING("name", name),
	                                      SD_JSON_BUILD_PAIR_CONDITION(!!object, "object", SD_JSON_BUILD_STRING(object)),
	                                      SD_JSON_BUILD_PAIR_CONDITION(!!fields, "fields", SD_JSON_BUILD_VARIANT(fields)),
	                                      SD_JSON_BUILD_PAIR_VARIANT("value", value));
}

static int add_u64(struct emit *e, const struct family *f, const char *object, sd_json_variant *fields, uint64_t v) {
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *value = NULL;
	int r = sd_json_variant_new_unsigned(&value, v);
	return r < 0 ? r : add(e, f, object, fields, value);
}

/* A number of Statistics. */
static int emit_stat(struct emit *e, const struct family *f) {
	sd_json_variant *v = sd_json_variant_by_key(e->stats, f->key);
	return v ? add(e, f, NULL, NULL, v) : 0;
}

/* A map of Statistics (reason -> count), one metric per entry. */
static int emit_map(struct emit *e, const struct family *f) {
	sd_json_variant *map = sd_json_variant_by_key(e->stats, f->key);
	size_t n = map ? sd_json_variant_elements(map) : 0;
	for (size_t i = 0; i + 1 < n; i += 2) {
		_cleanup_(sd_json_variant_unrefp) sd_json_variant *fields = NULL;
		int r = sd_json_buildo(&fields, SD_JSON_BUILD_PAIR_VARIANT(f->label, sd_json_variant_by_index(map, i)));
		if (r >= 0)
			r = add(e, f, NULL, fields, sd_json_variant_by_index(map, i + 1));
		if (r < 0)
			return r;
	}
	return 0;
}

static int emit_service_time(struct emit *e, const struct family *f) {
	return add(e, f, NULL, NULL, sd_json_variant_by_key(e->stats, "serviceTime"));
}

static int emit_version(struct emit *e, const struct family *f) {
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *v = NULL;
	int r = sd_json_variant_new_string(&v, PROJECT_VERSION);
	return r < 0 ? r : add(e, f, NULL, NULL, v);
}

/* Per address space the caller may see: object "space-ID", fields
 * backend, uid and name (when it has one). */
static int emit_space(struct emit *e, const struct family *f) {
	struct object *o;
	objects_foreach(o, e->m, OBJECT_SPACE) {
		if (!client_may_touch(e->c, o->uid))
			continue;
		struct iopf_space_stats st;
		iopf_space_get_stats(o->s, &st);
		const struct iopf_space_config *cfg = iopf_space_config(o->s);
		const struct {
			const char *key;
			uint64_t v;
		} figures[] = {
			{"maps", st.maps},         {"unmaps", st.unmaps},      {"mapErrors", st.map_errors},
			{"evictions", st.evictions}, {"pinned", st.pinned_bytes}, {"quota", cfg->quota},
		};
		char object[32], uid[16];
		snprintf(object, sizeof(object), "space-%" PRIu64, o->id);
		snprintf(uid, sizeof(uid), "%u", (unsigned)o->uid);
		_cleanup_(sd_json_variant_unrefp) sd_json_variant *fields = NULL;
		int r = sd_json_buildo(&fields,
		                       SD_JSON_BUILD_PAIR_STRING("backend", iopf_backend_kind_to_string(cfg->backend)),
		                       SD_JSON_BUILD_PAIR_STRING("uid", uid),
		                       SD_JSON_BUILD_PAIR_CONDITION(!!o->name, "name", SD_JSON_BUILD_STRING(o->name)));
		for (size_t i = 0; r >= 0 && i < sizeof(figures) / sizeof(figures[0]); i++)
			if (!strcmp(figures[i].key, f->key))
				r = add_u64(e, f, object, fields, figures[i].v);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Per user of Statistics.users: object "uid-UID"; the budget also names
 * its grant, and is UINT64_MAX when unlimited. */
static int emit_user(struct emit *e, const struct family *f) {
	sd_json_variant *users = sd_json_variant_by_key(e->stats, "users");
	for (size_t i = 0; users && i < sd_json_variant_elements(users); i++) {
		sd_json_variant *u = sd_json_variant_by_index(users, i), *v = sd_json_variant_by_key(u, f->key);
		sd_json_variant *uid = sd_json_variant_by_key(u, "uid");
		char object[32];
		snprintf(object, sizeof(object), "uid-%" PRIu64, uid ? sd_json_variant_unsigned(uid) : 0);
		_cleanup_(sd_json_variant_unrefp) sd_json_variant *fields = NULL;
		int r = 0;
		if (f->label)
			r = sd_json_buildo(&fields, SD_JSON_BUILD_PAIR_VARIANT(f->label, sd_json_variant_by_key(u, "pinGrant")));
		if (r >= 0)
			r = v && sd_json_variant_is_unsigned(v) ? add(e, f, object, fields, v)
			                                        : add_u64(e, f, object, fields, UINT64_MAX);
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct family families[] = {
	{"Version", "string", "The daemon's version", emit_version},
	{"GroupsAnswered", "counter", "Fault groups answered, each exactly once", emit_stat, "groups"},
	{"FaultsAnswered", "counter", "Fault records in the groups answered", emit_stat, "faults"},
	{"GroupsInvalid", "counter",
	 "Fault groups answered INVALID, by reason (reason=defect|no_binding|no_region|permission|quota|backend|dropped)",
	 emit_map, "invalid", "reason"},
	{"ServiceTime", "object",
	 "Per-group service time, read to answer written: count, sumNs (estimated within 3.2 %), maxNs, and "
	 "cumulative buckets of leNs and count",
	 emit_service_time},
	{"QueueReads", "counter", "Reads of fault queues", emit_stat, "reads"},
	{"QueueWrites", "counter", "Writes of responses to fault queues", emit_stat, "writes"},
	{"QueueIOErrors", "counter", "Failed reads and writes on fault queues", emit_stat, "ioErrors"},
	{"ResponsesRejected", "counter", "Responses the kernel refused (a bug if ever non-zero)", emit_stat,
	 "writeRejects"},
	{"RelayProtocolErrors", "counter", "Relay peers dropped for breaking the protocol", emit_stat, "protocolErrors"},
	{"RelayHangups", "counter", "Relay peers that went away", emit_stat, "hangups"},
	{"RequestErrors", "counter", "Control requests refused, by error name (error=NAME)", emit_map, "requestErrors",
	 "error"},
	{"PinnedBytes", "gauge", "Bytes pinned now, over all address spaces", emit_stat, "pinned"},
	{"Queues", "gauge", "Registered fault queues", emit_stat, "queues"},
	{"Spaces", "gauge", "Address spaces", emit_stat, "spaces"},
	{"Bindings", "gauge", "Bindings of (queue, device, PASID) to address spaces", emit_stat, "bindings"},
	{"Devices", "gauge", "Distinct devices among the bindings", emit_stat, "devices"},
	{"Clients", "gauge", "Connected clients", emit_stat, "clients"},
	{"Workers", "gauge", "Worker threads", emit_stat, "workers"},
	{"SpaceMapCalls", "counter", "Backend map calls of an address space (object space-ID)", emit_space, "maps"},
	{"SpaceUnmapCalls", "counter", "Backend unmap calls of an address space", emit_space, "unmaps"},
	{"SpaceMapErrors", "counter", "Backend map calls of an address space that failed", emit_space, "mapErrors"},
	{"SpaceEvictions", "counter", "Areas evicted to keep an address space under its quota", emit_space,
	 "evictions"},
	{"SpacePinnedBytes", "gauge", "Bytes an address space pins now", emit_space, "pinned"},
	{"SpaceQuotaBytes", "gauge", "Bytes an address space may pin at once", emit_space, "quota"},
	{"UserPinBudgetBytes", "gauge",
	 "A user's pin budget (object uid-UID; grant=where it comes from); 18446744073709551615: unlimited", emit_user,
	 "pinBudget", "grant"},
	{"UserPinReservedBytes", "gauge", "Bytes of a user's pin budget its address spaces reserve", emit_user,
	 "pinReserved"},
	{"UserPinnedBytes", "gauge", "Bytes a user's address spaces pin now", emit_user, "pinned"},
};

/* Each answer but the last with `continues`, as a call with more expects. */
static int stream(sd_varlink *link, sd_json_variant *answers) {
	size_t n = answers ? sd_json_variant_elements(answers) : 0;
	if (n == 0)
		return sd_varlink_error(link, "io.systemd.Metrics.NoSuchMetric", NULL);
	for (size_t i = 0; i + 1 < n; i++) {
		int r = sd_varlink_notify(link, sd_json_variant_by_index(answers, i));
		if (r < 0)
			return r;
	}
	return sd_varlink_reply(link, sd_json_variant_by_index(answers, n - 1));
}

static int begin(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t flags, struct client **c) {
	int r = vl_begin(link, p, (const sd_json_dispatch_field[]){{}}, NULL, c);
	if (r <= 0)
		return r;
	if (!(flags & SD_VARLINK_METHOD_MORE))
		return sd_varlink_error(link, "org.varlink.service.ExpectedMore", NULL), 0;
	return 1;
}

static int method_list(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t flags, void *ud) {
	struct client *c;
	int r = begin(link, p, flags, &c);
	if (r <= 0)
		return r;
	struct emit e = {.m = c->m, .c = c};
	r = stats_build(c->m, c->uid, &e.stats);
	for (size_t i = 0; r >= 0 && i < sizeof(families) / sizeof(families[0]); i++)
		r = families[i].emit(&e, &families[i]);
	if (r >= 0)
		r = stream(link, e.metrics);
	sd_json_variant_unref(e.stats);
	sd_json_variant_unref(e.metrics);
	return r;
}

static int method_describe(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t flags, void *ud) {
	struct client *c;
	int r = begin(link, p, flags, &c);
	if (r <= 0)
		return r;
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *answers = NULL;
	for (size_t i = 0; r >= 0 && i < sizeof(families) / sizeof(families[0]); i++) {
		char name[128];
		snprintf(name, sizeof(name), "io.iopfd.%s", families[i].name);
		r = sd_json_variant_append_arraybo(&answers, SD_JSON_BUILD_PAIR_STRING("name", name),
		                                   SD_JSON_BUILD_PAIR_STRING("description", families[i].description),
		                                   SD_JSON_BUILD_PAIR_STRING("type", families[i].type));
	}
	return r < 0 ? r : stream(link, answers);
}

const struct vl_method vl_metrics_methods[] = {
	{"io.systemd.Metrics.List", method_list},
	{"io.systemd.Metrics.Describe", method_describe},
	{},
};
