/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "iopfd/client.h"
#include "metrics.h"

enum kind { COUNTER, GAUGE, HISTOGRAM, INFO };

struct family {
	const char *name; /* without the _total of counters, the _info of infos */
	enum kind kind;
	const char *unit; /* "bytes", "seconds", or NULL; the name ends in it */
	const char *help;
};

struct out {
	FILE *f;
	enum metrics_format format;
};

static const char *const kind_name[] = {
	[COUNTER] = "counter", [GAUGE] = "gauge", [HISTOGRAM] = "histogram", [INFO] = "info"};

/* What the samples of a family are called after its name: OpenMetrics names
 * the family without it, the Prometheus text format with it. */
static const char *kind_suffix(enum kind k) {
	return k == COUNTER ? "_total" : k == INFO ? "_info" : "";
}

static void header(const struct out *o, const struct family *fam) {
	if (o->format == METRICS_OPENMETRICS) {
		fprintf(o->f, "# TYPE %s %s\n", fam->name, kind_name[fam->kind]);
		if (fam->unit)
			fprintf(o->f, "# UNIT %s %s\n", fam->name, fam->unit);
		fprintf(o->f, "# HELP %s %s\n", fam->name, fam->help);
	} else {
		/* 0.0.4 has no info type: a gauge of 1 is what it means. */
		const char *sfx = kind_suffix(fam->kind);
		fprintf(o->f, "# HELP %s%s %s\n", fam->name, sfx, fam->help);
		fprintf(o->f, "# TYPE %s%s %s\n", fam->name, sfx, fam->kind == INFO ? "gauge" : kind_name[fam->kind]);
	}
}

/* {k1="v1",...} from NULL-terminated pairs, values escaped; pairs with a
 * NULL or empty value are left out, as Prometheus reads an empty label. */
static void labels(char *buf, size_t size, ...) {
	va_list ap;
	va_start(ap, size);
	size_t n = 0;
	const char *k;
	buf[0] = '\0';
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);
		if (!v || !*v)
			continue;
		n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s=\"", n ? "," : "{", k);
		for (; *v && n + 3 < size; v++) {
			if (*v == '\\' || *v == '"')
				buf[n++] = '\\', buf[n++] = *v;
			else if (*v == '\n')
				buf[n++] = '\\', buf[n++] = 'n';
			else
				buf[n++] = *v;
		}
		n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "\"");
	}
	if (n)
		snprintf(buf + n, n < size ? size - n : 0, "}");
	va_end(ap);
}

static void sample_u64(const struct out *o, const struct family *fam, const char *suffix, const char *lbl,
                       uint64_t v) {
	fprintf(o->f, "%s%s%s %" PRIu64 "\n", fam->name, suffix ? suffix : kind_suffix(fam->kind), lbl ? lbl : "", v);
}

static void sample_f64(const struct out *o, const struct family *fam, const char *suffix, const char *lbl, double v) {
	fprintf(o->f, "%s%s%s ", fam->name, suffix ? suffix : kind_suffix(fam->kind), lbl ? lbl : "");
	if (v == __builtin_inf())
		fputs("+Inf\n", o->f);
	else
		fprintf(o->f, "%.12g\n", v);
}

static sd_json_variant *by_key(sd_json_variant *o, const char *k) {
	return o ? sd_json_variant_by_key(o, k) : NULL;
}

static const char *str(sd_json_variant *o, const char *k) {
	sd_json_variant *v = by_key(o, k);
	return v && sd_json_variant_is_string(v) ? sd_json_variant_string(v) : NULL;
}

static double real(sd_json_variant *o, const char *k) {
	sd_json_variant *v = by_key(o, k);
	return v && sd_json_variant_is_number(v) ? sd_json_variant_real(v) : 0;
}

/* --- the metrics ----------------------------------------------------------------------------- */

/* Figures of Statistics that are one sample each. */
static const struct {
	struct family fam;
	const char *key;
} scalars[] = {
	{{"iopfd_groups_answered", COUNTER, NULL, "Fault groups answered, each exactly once."}, "groups"},
	{{"iopfd_faults_answered", COUNTER, NULL, "Fault records in the groups answered."}, "faults"},
	{{"iopfd_queue_reads", COUNTER, NULL, "Reads of fault queues."}, "reads"},
	{{"iopfd_queue_writes", COUNTER, NULL, "Writes of responses to fault queues."}, "writes"},
	{{"iopfd_queue_io_errors", COUNTER, NULL, "Failed reads and writes on fault queues."}, "ioErrors"},
	{{"iopfd_responses_rejected", COUNTER, NULL, "Responses the kernel refused (a bug if ever non-zero)."},
	 "writeRejects"},
	{{"iopfd_relay_protocol_errors", COUNTER, NULL, "Relay peers dropped for breaking the protocol."},
	 "protocolErrors"},
	{{"iopfd_relay_hangups", COUNTER, NULL, "Relay peers that went away."}, "hangups"},
	{{"iopfd_relay_cut_groups", COUNTER, NULL,
	  "Relay groups half read when their queue was taken back, whose rest never came."},
	 "cutGroups"},
	{{"iopfd_relay_unsent_responses", COUNTER, NULL,
	  "Relay answers never taken by a peer that had stopped reading when its queue was taken back."},
	 "unsentResponses"},
	{{"iopfd_restored_objects", COUNTER, NULL, "Persistent objects this daemon took back from its predecessor."},
	 "restoredObjects"},
	{{"iopfd_recovered_groups", COUNTER, NULL,
	  "Groups the predecessor read but had not answered, answered from the journal at start."},
	 "recoveredGroups"},
	{{"iopfd_reanswered_groups", COUNTER, NULL,
	  "Kernel queue groups whose answers were being written when the predecessor died, answered again."},
	 "reansweredGroups"},
	{{"iopfd_pinned_bytes", GAUGE, "bytes", "Bytes pinned now, over all address spaces."}, "pinned"},
	{{"iopfd_queues", GAUGE, NULL, "Registered fault queues."}, "queues"},
	{{"iopfd_spaces", GAUGE, NULL, "Address spaces."}, "spaces"},
	{{"iopfd_bindings", GAUGE, NULL, "Bindings of (queue, device, PASID) to address spaces."}, "bindings"},
	{{"iopfd_devices", GAUGE, NULL, "Distinct devices among the bindings."}, "devices"},
	{{"iopfd_clients", GAUGE, NULL, "Connected clients."}, "clients"},
	{{"iopfd_workers", GAUGE, NULL, "Worker threads."}, "workers"},
};

/* A map of counters (reason -> n) as one labelled family. */
static void counter_map(const struct out *o, const struct family *fam, const char *label, sd_json_variant *map) {
	header(o, fam);
	size_t n = map && sd_json_variant_is_object(map) ? sd_json_variant_elements(map) : 0;
	for (size_t i = 0; i + 1 < n; i += 2) {
		char lbl[256];
		labels(lbl, sizeof(lbl), label, sd_json_variant_string(sd_json_variant_by_index(map, i)), NULL);
		sample_u64(o, fam, NULL, lbl, sd_json_variant_unsigned(sd_json_variant_by_index(map, i + 1)));
	}
}

static void service_time(const struct out *o, sd_json_variant *st) {
	static const struct family fam = {
		"iopfd_service_time_seconds", HISTOGRAM, "seconds",
		"Time from reading a fault group to writing its answer; the sum is estimated from finer buckets, "
		"within 3.2 %."};
	header(o, &fam);
	sd_json_variant *b = by_key(st, "buckets");
	for (size_t i = 0; b && i < sd_json_variant_elements(b); i++) {
		sd_json_variant *e = sd_json_variant_by_index(b, i);
		char le[32], lbl[64];
		snprintf(le, sizeof(le), "%.12g", (double)iopfc_u64(e, "leNs") / 1e9);
		labels(lbl, sizeof(lbl), "le", le, NULL);
		sample_u64(o, &fam, "_bucket", lbl, iopfc_u64(e, "count"));
	}
	sample_u64(o, &fam, "_bucket", "{le=\"+Inf\"}", iopfc_u64(st, "count"));
	sample_f64(o, &fam, "_sum", NULL, (double)iopfc_u64(st, "sumNs") / 1e9);
	sample_u64(o, &fam, "_count", NULL, iopfc_u64(st, "count"));
}

/* Per address space: counters and gauges of ListSpaces. */
static void spaces_families(const struct out *o, sd_json_variant *spaces) {
	static const struct {
		struct family fam;
		const char *key;
	} per_space[] = {
		{{"iopfd_space_map_calls", COUNTER, NULL, "Backend map calls of the address space."}, "maps"},
		{{"iopfd_space_unmap_calls", COUNTER, NULL, "Backend unmap calls of the address space."}, "unmaps"},
		{{"iopfd_space_map_errors", COUNTER, NULL, "Backend map calls of the address space that failed."},
		 "mapErrors"},
		{{"iopfd_space_evictions", COUNTER, NULL, "Areas evicted to keep the address space under its quota."},
		 "evictions"},
		{{"iopfd_space_pinned_bytes", GAUGE, "bytes", "Bytes the address space pins now."}, "pinned"},
		{{"iopfd_space_pinned_peak_bytes", GAUGE, "bytes", "Most bytes the address space ever pinned at once."},
		 "pinnedPeak"},
		{{"iopfd_space_quota_bytes", GAUGE, "bytes", "Bytes the address space may pin at once."}, "quota"},
		{{"iopfd_space_regions", GAUGE, NULL, "Regions of the address space."}, "regions"},
	};
	for (size_t m = 0; m < sizeof(per_space) / sizeof(per_space[0]); m++) {
		header(o, &per_space[m].fam);
		for (size_t i = 0; spaces && i < sd_json_variant_elements(spaces); i++) {
			sd_json_variant *s = sd_json_variant_by_index(spaces, i);
			char id[24], uid[24], lbl[1024];
			snprintf(id, sizeof(id), "%" PRIu64, iopfc_u64(s, "id"));
			snprintf(uid, sizeof(uid), "%" PRIu64, iopfc_u64(s, "uid"));
			labels(lbl, sizeof(lbl), "space", id, "name", str(s, "name"), "backend", str(s, "backend"), "uid", uid,
			       NULL);
			sample_u64(o, &per_space[m].fam, NULL, lbl, iopfc_u64(s, per_space[m].key));
		}
	}
}

/* Per user: the pin budget (+Inf: unlimited) and what the user holds. */
static void users_families(const struct out *o, sd_json_variant *users) {
	static const struct family budget = {"iopfd_user_pin_budget_bytes", GAUGE, "bytes",
	                                     "Bytes the user's pinning address spaces may reserve in all."};
	header(o, &budget);
	for (size_t i = 0; users && i < sd_json_variant_elements(users); i++) {
		sd_json_variant *u = sd_json_variant_by_index(users, i), *b = by_key(u, "pinBudget");
		char uid[24], lbl[256];
		snprintf(uid, sizeof(uid), "%" PRIu64, iopfc_u64(u, "uid"));
		labels(lbl, sizeof(lbl), "uid", uid, "grant", str(u, "pinGrant"), NULL);
		sample_f64(o, &budget, NULL, lbl,
		           b && sd_json_variant_is_unsigned(b) ? (double)sd_json_variant_unsigned(b) : __builtin_inf());
	}
	static const struct {
		struct family fam;
		const char *key;
	} per_user[] = {
		{{"iopfd_user_pin_reserved_bytes", GAUGE, "bytes",
		  "Bytes of the user's pin budget its address spaces reserve (their quotas)."},
		 "pinReserved"},
		{{"iopfd_user_pinned_bytes", GAUGE, "bytes", "Bytes the user's address spaces pin now."}, "pinned"},
		{{"iopfd_user_queues", GAUGE, NULL, "The user's queues."}, "queues"},
		{{"iopfd_user_spaces", GAUGE, NULL, "The user's address spaces."}, "spaces"},
		{{"iopfd_user_regions", GAUGE, NULL, "The user's regions."}, "regions"},
	};
	for (size_t m = 0; m < sizeof(per_user) / sizeof(per_user[0]); m++) {
		header(o, &per_user[m].fam);
		for (size_t i = 0; users && i < sd_json_variant_elements(users); i++) {
			sd_json_variant *u = sd_json_variant_by_index(users, i);
			char uid[24], lbl[64];
			snprintf(uid, sizeof(uid), "%" PRIu64, iopfc_u64(u, "uid"));
			labels(lbl, sizeof(lbl), "uid", uid, NULL);
			sample_u64(o, &per_user[m].fam, NULL, lbl, iopfc_u64(u, per_user[m].key));
		}
	}
}

int metrics_write(FILE *f, enum metrics_format format, sd_json_variant *stats, sd_json_variant *spaces,
                  const char *version, double now) {
	const struct out o = {f, format};

	static const struct family build = {"iopfd_build", INFO, NULL, "The daemon's version."};
	char lbl[128];
	header(&o, &build);
	labels(lbl, sizeof(lbl), "version", version, NULL);
	sample_u64(&o, &build, NULL, lbl, 1);
	static const struct family start = {"iopfd_start_time_seconds", GAUGE, "seconds",
	                                    "When the daemon started, in seconds since the Unix epoch."};
	header(&o, &start);
	sample_f64(&o, &start, NULL, NULL, now - real(stats, "uptime"));

	for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
		header(&o, &scalars[i].fam);
		sample_u64(&o, &scalars[i].fam, NULL, NULL, iopfc_u64(stats, scalars[i].key));
	}
	/* Statistics counts system calls; the epoll waits are what is left. */
	static const struct family waits = {"iopfd_epoll_waits", COUNTER, NULL, "epoll waits of the workers."};
	header(&o, &waits);
	uint64_t sys = iopfc_u64(stats, "syscalls"), rw = iopfc_u64(stats, "reads") + iopfc_u64(stats, "writes");
	sample_u64(&o, &waits, NULL, NULL, sys > rw ? sys - rw : 0);

	static const struct family invalid = {"iopfd_groups_invalid", COUNTER, NULL,
	                                      "Fault groups answered INVALID, by reason."};
	counter_map(&o, &invalid, "reason", by_key(stats, "invalid"));
	static const struct family errors = {"iopfd_request_errors", COUNTER, NULL,
	                                     "Control requests refused, by error name."};
	counter_map(&o, &errors, "error", by_key(stats, "requestErrors"));

	service_time(&o, by_key(stats, "serviceTime"));
	spaces_families(&o, spaces);
	users_families(&o, by_key(stats, "users"));

	if (format == METRICS_OPENMETRICS)
		fputs("# EOF\n", f);
	return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
