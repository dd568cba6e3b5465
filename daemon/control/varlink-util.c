/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <string.h>

#include "clients.h"
#include "manager.h"
#include "shared/cleanup.h"
#include "shared/string-table.h"
#include "varlink-util.h"

static const char *const vl_error_table[_VL_ERROR_MAX] = {
	[VL_NO_SUCH_QUEUE] = "io.iopfd.NoSuchQueue",
	[VL_NO_SUCH_SPACE] = "io.iopfd.NoSuchSpace",
	[VL_NO_SUCH_REGION] = "io.iopfd.NoSuchRegion",
	[VL_NO_SUCH_BINDING] = "io.iopfd.NoSuchBinding",
	[VL_BINDING_EXISTS] = "io.iopfd.BindingExists",
	[VL_BAD_FD] = "io.iopfd.BadFileDescriptor",
	[VL_UNSEALED_MEMORY] = "io.iopfd.UnsealedMemory",
	[VL_REGION_OVERLAP] = "io.iopfd.RegionOverlap",
	[VL_REGION_OUT_OF_RANGE] = "io.iopfd.RegionOutOfRange",
	[VL_INVALID_REGION] = "io.iopfd.InvalidRegion",
	[VL_INVALID_CONFIGURATION] = "io.iopfd.InvalidConfiguration",
	[VL_LIMIT_REACHED] = "io.iopfd.LimitReached",
	[VL_PIN_BUDGET_EXCEEDED] = "io.iopfd.PinBudgetExceeded",
	[VL_PERMISSION_DENIED] = "io.iopfd.PermissionDenied",
	[VL_BACKEND_FAILED] = "io.iopfd.BackendFailed",
	[VL_SHUTTING_DOWN] = "io.iopfd.ShuttingDown",
	[VL_INVALID_PARAMETER] = "org.varlink.service.InvalidParameter",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(vl_error, enum vl_error)

/* The parameter each NoSuch* error names. */
static const char *const no_such_key[_VL_ERROR_MAX] = {
	[VL_NO_SUCH_QUEUE] = "queue", [VL_NO_SUCH_SPACE] = "space", [VL_NO_SUCH_REGION] = "region"};

static int reply(sd_varlink *link, struct manager *m, enum vl_error e, sd_json_variant *parameters) {
	m->request_errors[e]++;
	return sd_varlink_error(link, vl_error_table[e], parameters);
}

static int replyb(sd_varlink *link, struct manager *m, enum vl_error e, ...) {
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *v = NULL;
	va_list ap;
	va_start(ap, e);
	int r = sd_json_buildv(&v, ap);
	va_end(ap);
	if (r < 0)
		return r;
	return reply(link, m, e, v);
}

int vl_error(sd_varlink *link, struct manager *m, enum vl_error e) {
	return reply(link, m, e, NULL);
}

int vl_error_no_such(sd_varlink *link, struct manager *m, enum vl_error e, uint64_t id) {
	return replyb(link, m, e, SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_UNSIGNED(no_such_key[e], id)));
}

int vl_error_bad_fd(sd_varlink *link, struct manager *m, const char *parameter, const char *reason) {
	return replyb(link, m, VL_BAD_FD,
	              SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("parameter", parameter),
	                                   SD_JSON_BUILD_PAIR_STRING("reason", reason)));
}

int vl_error_reason(sd_varlink *link, struct manager *m, enum vl_error e, const char *reason) {
	return replyb(link, m, e, SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("reason", reason)));
}

int vl_error_limit(sd_varlink *link, struct manager *m, const char *limit, uint64_t max) {
	return replyb(link, m, VL_LIMIT_REACHED,
	              SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("limit", limit),
	                                   SD_JSON_BUILD_PAIR_UNSIGNED("max", max)));
}

int vl_error_pin_budget(sd_varlink *link, struct manager *m, const struct uid_usage *u, uint64_t requested) {
	/* Say how to raise it: the line an operator would add. */
	char hint[256], size[32];
	struct passwd *pw = getpwuid(u->uid);
	format_size(u->used[ACCT_PIN] + requested, size, sizeof(size));
	if (pw)
		snprintf(hint, sizeof(hint), "grant it with 'User=%s %s' (or a Group= line) under [PinBudget] in %s",
		         pw->pw_name, size, IOPFD_CONFIG_FILE);
	else
		snprintf(hint, sizeof(hint), "grant it with 'User=%u %s' under [PinBudget] in %s", (unsigned)u->uid,
		         size, IOPFD_CONFIG_FILE);
	return replyb(link, m, VL_PIN_BUDGET_EXCEEDED,
	              SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_UNSIGNED("budget", u->pin_budget),
	                                   SD_JSON_BUILD_PAIR_UNSIGNED("reserved", u->used[ACCT_PIN]),
	                                   SD_JSON_BUILD_PAIR_UNSIGNED("requested", requested),
	                                   SD_JSON_BUILD_PAIR_STRING("grant", u->pin_source),
	                                   SD_JSON_BUILD_PAIR_STRING("hint", hint)));
}

int vl_error_backend(sd_varlink *link, struct manager *m, int error, const char *message) {
	return replyb(link, m, VL_BACKEND_FAILED,
	              SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_INTEGER("errno", error),
	                                   SD_JSON_BUILD_PAIR_STRING("message", message)));
}

int vl_error_invalid_parameter(sd_varlink *link, struct manager *m, const char *name) {
	m->request_errors[VL_INVALID_PARAMETER]++;
	return sd_varlink_error_invalid_parameter_name(link, name);
}

int vl_begin(sd_varlink *link, sd_json_variant *parameters, const sd_json_dispatch_field table[], void *args,
             struct client **ret) {
	struct client *c = client_of(link);
	if (!c)
		return -ENOMEM;
	const char *bad = NULL;
	int r = sd_json_dispatch_full(parameters, table, NULL, 0, args, &bad);
	if (r < 0) {
		c->m->request_errors[VL_INVALID_PARAMETER]++;
		r = bad ? sd_varlink_error_invalid_parameter_name(link, bad)
		        : sd_varlink_error_invalid_parameter(link, parameters);
		return r < 0 ? r : 0;
	}
	*ret = c;
	return 1;
}

int vl_take_fd(sd_varlink *link, struct manager *m, int64_t idx, const char *param) {
	int fd = idx < 0 ? -EBADF : sd_varlink_take_fd(link, (size_t)idx);
	if (fd < 0) {
		vl_error_bad_fd(link, m, param, "no fd passed at that index");
		return -EBADF;
	}
	return fd;
}

struct object *vl_touch(sd_varlink *link, struct client *c, enum object_type type, uint64_t id) {
	struct object *o = object_find(c->m, type, id);
	if (!o) {
		vl_error_no_such(link, c->m, type == OBJECT_QUEUE ? VL_NO_SUCH_QUEUE : VL_NO_SUCH_SPACE, id);
		return NULL;
	}
	if (!client_may_touch(c, o->uid)) {
		vl_error(link, c->m, VL_PERMISSION_DENIED);
		return NULL;
	}
	return o;
}

int vl_dispatch_opt_u64(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	if (sd_json_variant_is_null(v))
		return 0;
	if (!sd_json_variant_is_unsigned(v))
		return -EINVAL;
	*(uint64_t *)userdata = sd_json_variant_unsigned(v);
	return 0;
}

int vl_dispatch_opt_i64(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	if (sd_json_variant_is_null(v))
		return 0;
	if (!sd_json_variant_is_integer(v) && !sd_json_variant_is_unsigned(v))
		return -EINVAL;
	*(int64_t *)userdata = sd_json_variant_integer(v);
	return 0;
}

int vl_reply_array(sd_varlink *link, const char *key, sd_json_variant *arr) {
	return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_CONDITION(!!arr, key, SD_JSON_BUILD_VARIANT(arr)),
	                          SD_JSON_BUILD_PAIR_CONDITION(!arr, key, SD_JSON_BUILD_EMPTY_ARRAY));
}

int vl_reply_objects(sd_varlink *link, sd_json_variant *parameters, enum object_type type, const char *key,
                     int (*describe)(struct manager *m, const struct object *o, sd_json_variant **arr)) {
	struct client *c;
	int r = vl_begin(link, parameters, (const sd_json_dispatch_field[]){{}}, NULL, &c);
	if (r <= 0)
		return r;
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *arr = NULL;
	struct object *o;
	objects_foreach(o, c->m, type)
		if (client_may_touch(c, o->uid) && (r = describe(c->m, o, &arr)) < 0)
			return r;
	return vl_reply_array(link, key, arr);
}
