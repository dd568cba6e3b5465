/* SPDX-License-Identifier: MIT */
/*
 * What every method shares: finding the caller, reading the parameters,
 * taking the fds, and the replies. Each error io.iopfd defines has one
 * builder here, and every refusal is counted by name (Statistics'
 * requestErrors).
 */
#pragma once

#include <stdint.h>

#include <systemd/sd-json.h>
#include <systemd/sd-varlink.h>

#include "objects.h"

struct client;
struct manager;

enum vl_error {
	VL_NO_SUCH_QUEUE,
	VL_NO_SUCH_SPACE,
	VL_NO_SUCH_REGION,
	VL_NO_SUCH_BINDING,
	VL_BINDING_EXISTS,
	VL_BAD_FD,
	VL_UNSEALED_MEMORY,
	VL_REGION_OVERLAP,
	VL_REGION_OUT_OF_RANGE,
	VL_INVALID_REGION,
	VL_INVALID_CONFIGURATION,
	VL_LIMIT_REACHED,
	VL_PIN_BUDGET_EXCEEDED,
	VL_PERMISSION_DENIED,
	VL_BACKEND_FAILED,
	VL_SHUTTING_DOWN,
	VL_INVALID_PARAMETER,
	_VL_ERROR_MAX,
};

const char *vl_error_to_string(enum vl_error e);

/* A method of io.iopfd; each method file exports a table of them, ended by
 * an entry without a name. */
struct vl_method {
	const char *name;
	sd_varlink_method_t fn;
};

/*
 * The prologue of every method: the caller, and its parameters dispatched
 * into args with table. Returns 1 to go on; 0 when the call has been
 * answered (InvalidParameter, counted); a negative errno otherwise, so that
 * a method says: if (r <= 0) return r;
 */
int vl_begin(sd_varlink *link, sd_json_variant *parameters, const sd_json_dispatch_field table[], void *args,
             struct client **ret);

/* The fd passed with the call at index idx, or -EBADF with the call
 * answered BadFileDescriptor naming `param`. */
int vl_take_fd(sd_varlink *link, struct manager *m, int64_t idx, const char *param);

/* Replies, each counted. They return what sd_varlink_error() returns. */
int vl_error(sd_varlink *link, struct manager *m, enum vl_error e); /* errors without parameters */
int vl_error_no_such(sd_varlink *link, struct manager *m, enum vl_error e, uint64_t id); /* queue, space, region */
int vl_error_bad_fd(sd_varlink *link, struct manager *m, const char *parameter, const char *reason);
int vl_error_reason(sd_varlink *link, struct manager *m, enum vl_error e, const char *reason); /* Invalid* */
int vl_error_limit(sd_varlink *link, struct manager *m, const char *limit, uint64_t max);
struct uid_usage;
/* PinBudgetExceeded: `requested` more does not fit in u's budget. */
int vl_error_pin_budget(sd_varlink *link, struct manager *m, const struct uid_usage *u, uint64_t requested);
int vl_error_backend(sd_varlink *link, struct manager *m, int error, const char *message);
int vl_error_invalid_parameter(sd_varlink *link, struct manager *m, const char *name);

/* The object of that type and id if the caller may touch it; else the call
 * has been answered (NoSuch* or PermissionDenied) and NULL returned. */
struct object *vl_touch(sd_varlink *link, struct client *c, enum object_type type, uint64_t id);

/* An optional unsigned (or integer) parameter: absent or null leaves the
 * default in place. */
int vl_dispatch_opt_u64(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata);
int vl_dispatch_opt_i64(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata);

/* Reply with `key` set to the array (an empty one when arr is NULL). */
int vl_reply_array(sd_varlink *link, const char *key, sd_json_variant *arr);
/* A listing method: every object of `type` the caller may see, each
 * appended to the array by describe(), as `key`. */
int vl_reply_objects(sd_varlink *link, sd_json_variant *parameters, enum object_type type, const char *key,
                     int (*describe)(struct manager *m, const struct object *o, sd_json_variant **arr));
