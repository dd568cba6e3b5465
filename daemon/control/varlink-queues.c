/* SPDX-License-Identifier: MIT */
/* Queues and bindings over Varlink. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "clients.h"
#include "engine/batch.h"
#include "engine/bindings.h"
#include "log.h"
#include "manager.h"
#include "shared/cleanup.h"
#include "varlink-methods.h"

#define PASID_MAX ((1u << 20) - 1)

/* A PASID: absent or null means "no PASID"; otherwise 20 bits. */
static int dispatch_pasid(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	uint32_t *p = userdata;
	if (sd_json_variant_is_null(v)) {
		*p = IOPF_PASID_NONE;
		return 0;
	}
	if (!sd_json_variant_is_unsigned(v) || sd_json_variant_unsigned(v) > PASID_MAX)
		return -ERANGE;
	*p = (uint32_t)sd_json_variant_unsigned(v);
	return 0;
}

/* Why an fd cannot be this queue, or NULL when it can. */
static const char *queue_fd_refusal(struct manager *m, int fd, int kind, int want) {
	if (kind == -ENOTSOCK || kind == -EBADFD)
		return "neither an iommufd fault queue nor an AF_UNIX stream socket";
	if (kind == -EPROTOTYPE)
		return "a relay must be a SOCK_STREAM socket";
	if (kind == -EAFNOSUPPORT)
		return "a relay must be an AF_UNIX socket";
	if (kind < 0)
		return "cannot be examined";
	if (want >= 0 && kind != want)
		return want == IOPF_TRANSPORT_RELAY ? "not a relay socket" : "not an iommufd fault queue";
	if (object_find_queue_file(m, fd))
		/* Two readers would split one queue between them. */
		return kind == IOPF_TRANSPORT_RELAY ? "this socket is registered already"
		                                    : "this fault queue is registered already";
	return NULL;
}

struct register_args {
	int64_t fd_index;
	const char *transport;
	const char *name;
	bool persistent;
};

static int method_register_queue(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	static const sd_json_dispatch_field table[] = {
		{"fdIndex", SD_JSON_VARIANT_INTEGER, sd_json_dispatch_int64, offsetof(struct register_args, fd_index), SD_JSON_MANDATORY},
		{"transport", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct register_args, transport), SD_JSON_NULLABLE},
		{"name", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct register_args, name), SD_JSON_NULLABLE},
		{"persistent", SD_JSON_VARIANT_BOOLEAN, sd_json_dispatch_stdbool, offsetof(struct register_args, persistent), SD_JSON_NULLABLE},
		{},
	};
	struct register_args a = {.fd_index = -1};
	struct client *c;
	int r = vl_begin(link, p, table, &a, &c);
	if (r <= 0)
		return r;
	struct manager *m = c->m;
	if (m->shutting_down)
		return vl_error(link, m, VL_SHUTTING_DOWN);
	if (a.name && strlen(a.name) > 255)
		return vl_error_invalid_parameter(link, m, "name");
	int want = -1;
	if (a.transport && (want = iopf_transport_kind_from_string(a.transport)) < 0)
		return vl_error_invalid_parameter(link, m, "transport");
	uint64_t max;
	if (!accounting_allows(&m->acct, c->uid, ACCT_QUEUES, 1, &max))
		return vl_error_limit(link, m, "queues", max);

	_cleanup_close_ int fd = vl_take_fd(link, m, a.fd_index, "fdIndex");
	if (fd < 0)
		return 0;
	int kind = iopf_queue_fd_kind(fd);
	const char *why = queue_fd_refusal(m, fd, kind, want);
	if (why)
		return vl_error_bad_fd(link, m, "fdIndex", why);

	struct iopf_queue *q;
	r = iopf_queue_new((uint32_t)++m->next_id[OBJECT_QUEUE], TAKE_FD(fd), (enum iopf_transport_kind)kind, &q);
	if (r < 0)
		return log_error_errno(r, "Failed to make a queue: %m");
	struct object_new n = {.owner = c, .uid = c->uid, .name = a.name, .persistent = a.persistent,
	                       .pidfd = a.persistent ? client_pidfd(c) : -1};
	struct object *o;
	r = object_add_queue(m, q, &n, &o);
	if (r < 0)
		return log_error_errno(r, "Failed to start serving a queue: %m");
	log_info("queue %lu registered (%s%s%s) by uid %u", (unsigned long)o->id,
	         iopf_transport_kind_to_string((enum iopf_transport_kind)kind), a.name ? ", " : "", a.name ? a.name : "",
	         (unsigned)c->uid);
	return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_UNSIGNED("queue", o->id),
	                          SD_JSON_BUILD_PAIR_STRING("transport",
	                                                    iopf_transport_kind_to_string((enum iopf_transport_kind)kind)));
}

static int method_unregister_queue(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	static const sd_json_dispatch_field table[] = {
		{"queue", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, 0, SD_JSON_MANDATORY},
		{},
	};
	uint64_t id = 0;
	struct client *c;
	int r = vl_begin(link, p, table, &id, &c);
	if (r <= 0)
		return r;
	struct object *o = vl_touch(link, c, OBJECT_QUEUE, id);
	if (!o)
		return 0;
	struct iopf_queue_stats st;
	object_destroy(o, OBJECT_FORGET, &st);
	log_info("queue %lu unregistered: %lu groups answered", (unsigned long)id, (unsigned long)st.groups);
	return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_UNSIGNED("groups", st.groups),
	                          SD_JSON_BUILD_PAIR_UNSIGNED("faults", st.faults),
	                          SD_JSON_BUILD_PAIR_UNSIGNED("invalid", st.invalid));
}

struct bind_args {
	uint64_t queue;
	uint32_t device;
	uint32_t pasid;
	uint64_t space;
};

/* A call naming a binding: its caller, its queue, its key. */
struct binding_call {
	struct bind_args a;
	struct client *c;
	struct object *queue;
	struct iopf_binding_key key;
	struct iopf_bindings *table;
};

/* Bind and Unbind name a binding the same way; Bind adds the space. The
 * interface makes `space` mandatory for Bind and refuses it for Unbind
 * before either is called. Returns 1 to go on, or as vl_begin(). */
static int binding_call(sd_varlink *link, sd_json_variant *p, struct binding_call *b) {
	static const sd_json_dispatch_field table[] = {
		{"queue", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct bind_args, queue), SD_JSON_MANDATORY},
		{"device", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint32, offsetof(struct bind_args, device), SD_JSON_MANDATORY},
		{"pasid", _SD_JSON_VARIANT_TYPE_INVALID, dispatch_pasid, offsetof(struct bind_args, pasid), SD_JSON_NULLABLE},
		{"space", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct bind_args, space), 0},
		{},
	};
	*b = (struct binding_call){.a = {.pasid = IOPF_PASID_NONE}};
	int r = vl_begin(link, p, table, &b->a, &b->c);
	if (r <= 0)
		return r;
	b->queue = vl_touch(link, b->c, OBJECT_QUEUE, b->a.queue);
	if (!b->queue)
		return 0;
	b->key = (struct iopf_binding_key){.queue_id = (uint32_t)b->queue->id, .dev_id = b->a.device, .pasid = b->a.pasid};
	b->table = iopf_engine_bindings(b->c->m->engine);
	return 1;
}

static int method_bind(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct binding_call b;
	int r = binding_call(link, p, &b);
	if (r <= 0)
		return r;
	struct object *so = vl_touch(link, b.c, OBJECT_SPACE, b.a.space);
	if (!so)
		return 0;
	r = iopf_bindings_add(b.table, &b.key, so->s);
	if (r == -EEXIST)
		return vl_error(link, b.c->m, VL_BINDING_EXISTS);
	if (r < 0)
		return r;
	if (b.queue->persistent && so->persistent)
		manager_state_changed(b.c->m);
	return sd_varlink_reply(link, NULL);
}

static int method_unbind(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct binding_call b;
	int r = binding_call(link, p, &b);
	if (r <= 0)
		return r;
	r = iopf_bindings_remove(b.table, &b.key);
	if (r == -ENOENT)
		return vl_error(link, b.c->m, VL_NO_SUCH_BINDING);
	if (r < 0)
		return r;
	if (b.queue->persistent)
		manager_state_changed(b.c->m);
	return sd_varlink_reply(link, NULL);
}

static int describe_queue(struct manager *m, const struct object *o, sd_json_variant **arr) {
	struct iopf_queue_stats st;
	iopf_queue_get_stats(o->q, &st);
	return sd_json_variant_append_arraybo(
		arr, SD_JSON_BUILD_PAIR_UNSIGNED("id", o->id), SD_JSON_BUILD_PAIR_STRING("name", o->name),
		SD_JSON_BUILD_PAIR_STRING("transport", iopf_transport_kind_to_string(iopf_queue_kind(o->q))),
		SD_JSON_BUILD_PAIR_UNSIGNED("uid", o->uid), SD_JSON_BUILD_PAIR_UNSIGNED("groups", st.groups),
		SD_JSON_BUILD_PAIR_UNSIGNED("faults", st.faults), SD_JSON_BUILD_PAIR_UNSIGNED("invalid", st.invalid),
		SD_JSON_BUILD_PAIR_UNSIGNED("bindings",
		                            iopf_bindings_count_queue(iopf_engine_bindings(m->engine), (uint32_t)o->id)),
		SD_JSON_BUILD_PAIR_BOOLEAN("persistent", o->persistent));
}

static int method_list_queues(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	return vl_reply_objects(link, p, OBJECT_QUEUE, "queues", describe_queue);
}

struct list_ctx {
	struct client *c;
	sd_json_variant *arr;
	int r;
};

static int list_binding(const struct iopf_binding *b, void *ud) {
	struct list_ctx *ctx = ud;
	struct object *qo = object_find(ctx->c->m, OBJECT_QUEUE, b->key.queue_id);
	if (!qo || !client_may_touch(ctx->c, qo->uid))
		return 0;
	ctx->r = sd_json_variant_append_arraybo(
		&ctx->arr, SD_JSON_BUILD_PAIR_UNSIGNED("queue", b->key.queue_id),
		SD_JSON_BUILD_PAIR_UNSIGNED("device", b->key.dev_id),
		SD_JSON_BUILD_PAIR_CONDITION(b->key.pasid != IOPF_PASID_NONE, "pasid", SD_JSON_BUILD_UNSIGNED(b->key.pasid)),
		SD_JSON_BUILD_PAIR_CONDITION(b->key.pasid == IOPF_PASID_NONE, "pasid", SD_JSON_BUILD_NULL),
		SD_JSON_BUILD_PAIR_UNSIGNED("space", iopf_space_id(b->space)));
	return ctx->r < 0;
}

static int method_list_bindings(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c;
	int r = vl_begin(link, p, (const sd_json_dispatch_field[]){{}}, NULL, &c);
	if (r <= 0)
		return r;
	struct list_ctx ctx = {.c = c};
	iopf_bindings_foreach(iopf_engine_bindings(c->m->engine), list_binding, &ctx);
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *arr = ctx.arr;
	if (ctx.r < 0)
		return ctx.r;
	return vl_reply_array(link, "bindings", arr);
}

const struct vl_method vl_queue_methods[] = {
	{"io.iopfd.RegisterQueue", method_register_queue},
	{"io.iopfd.UnregisterQueue", method_unregister_queue},
	{"io.iopfd.Bind", method_bind},
	{"io.iopfd.Unbind", method_unbind},
	{"io.iopfd.ListQueues", method_list_queues},
	{"io.iopfd.ListBindings", method_list_bindings},
	{},
};
