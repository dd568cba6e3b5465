/* SPDX-License-Identifier: MIT */
/* Queues and bindings over Varlink. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/batch.h"
#include "engine/bindings.h"
#include "log.h"
#include "manager.h"

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

/* Whether the socket behind fd is a relay queue already (each socket has an
 * inode of its own). */
static bool relay_registered(struct manager *m, int fd) {
	struct stat a, b;
	if (fstat(fd, &a) < 0)
		return false;
	struct queue_obj *qo;
	cds_list_for_each_entry(qo, &m->queues, node)
		if (qo->q->kind == IOPF_TRANSPORT_RELAY && qo->q->fd >= 0 && fstat(qo->q->fd, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return true;
	return false;
}

struct register_args {
	int64_t fd_index;
	const char *transport;
	const char *name;
	int persistent;
};

int vl_method_register_queue(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	struct manager *m = c->m;
	struct register_args a = {.fd_index = -1};
	static const sd_json_dispatch_field table[] = {
		{"fdIndex", SD_JSON_VARIANT_INTEGER, sd_json_dispatch_int64, offsetof(struct register_args, fd_index), SD_JSON_MANDATORY},
		{"transport", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct register_args, transport), SD_JSON_NULLABLE},
		{"name", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct register_args, name), SD_JSON_NULLABLE},
		{"persistent", SD_JSON_VARIANT_BOOLEAN, sd_json_dispatch_stdbool, offsetof(struct register_args, persistent), SD_JSON_NULLABLE},
		{},
	};
	int r = vl_dispatch(link, m, p, table, &a);
	if (r != 0)
		return r;
	if (m->shutting_down)
		return vl_reply_error(link, m, VL_SHUTTING_DOWN, NULL);
	if (a.name && strlen(a.name) > 255)
		return vl_invalid_parameter(link, m, "name");
	int want = -1;
	if (a.transport) {
		want = iopf_transport_kind_from_str(a.transport);
		if (want < 0)
			return vl_invalid_parameter(link, m, "transport");
	}
	struct uid_usage *u = uid_usage_get(m, c->uid);
	if (!u)
		return -ENOMEM;
	if (c->uid != 0 && u->queues >= m->cfg.limits.queues_per_uid)
		return vl_reply_errorb(link, m, VL_LIMIT_REACHED,
		                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("limit", "queues"),
		                                            SD_JSON_BUILD_PAIR_UNSIGNED("max", m->cfg.limits.queues_per_uid)));

	int fd = vl_take_fd(link, m, a.fd_index, "fdIndex");
	if (fd < 0)
		return 0;
	int kind = iopf_queue_fd_kind(fd);
	const char *why = NULL;
	if (kind == -ENOTSOCK || kind == -EBADFD)
		why = "neither an iommufd fault queue nor an AF_UNIX stream socket";
	else if (kind == -EPROTOTYPE)
		why = "a relay must be a SOCK_STREAM socket";
	else if (kind == -EAFNOSUPPORT)
		why = "a relay must be an AF_UNIX socket";
	else if (kind < 0)
		why = "cannot be examined";
	else if (want >= 0 && kind != want)
		why = want == IOPF_TRANSPORT_RELAY ? "not a relay socket" : "not an iommufd fault queue";
	else if (kind == IOPF_TRANSPORT_RELAY && relay_registered(m, fd))
		/* Two readers would split one stream between them. */
		why = "this socket is registered already";
	if (why) {
		close(fd);
		return vl_reply_errorb(link, m, VL_BAD_FD,
		                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("parameter", "fdIndex"),
		                                            SD_JSON_BUILD_PAIR_STRING("reason", why)));
	}

	struct iopf_queue *q;
	r = iopf_queue_new(++m->next_queue_id, fd, (enum iopf_transport_kind)kind, &q);
	close(fd);
	if (r < 0)
		return log_error_errno(r, "Failed to make a queue: %m");
	struct obj_opts opts = {.owner = c, .uid = c->uid, .name = a.name, .persistent = a.persistent,
	                        .pidfd = a.persistent ? vl_peer_pidfd(link) : -1};
	struct queue_obj *qo;
	r = queue_obj_add(m, q, &opts, &qo);
	if (r < 0) {
		iopf_queue_free(q);
		return log_error_errno(r, "Failed to start serving a queue: %m");
	}
	log_info("queue %u registered (%s%s%s) by uid %u", qo->id, iopf_transport_kind_str(q->kind),
	         a.name ? ", " : "", a.name ? a.name : "", (unsigned)c->uid);
	return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_UNSIGNED("queue", qo->id),
	                          SD_JSON_BUILD_PAIR_STRING("transport", iopf_transport_kind_str(q->kind)));
}

int vl_method_unregister_queue(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	uint64_t id = 0;
	static const sd_json_dispatch_field table[] = {
		{"queue", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, 0, SD_JSON_MANDATORY},
		{},
	};
	int r = vl_dispatch(link, c->m, p, table, &id);
	if (r != 0)
		return r;
	struct queue_obj *qo = vl_touch_queue(link, c, id);
	if (!qo)
		return 0;
	uint32_t qid = qo->id;
	struct iopf_queue_stats st;
	queue_obj_destroy(c->m, qo, OBJ_FORGET, &st);
	log_info("queue %u unregistered: %lu groups answered", qid, (unsigned long)st.groups);
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

/* Bind and Unbind name a binding the same way; Bind adds the space. The
 * interface makes `space` mandatory for Bind and refuses it for Unbind
 * before either is called. Returns the queue, or NULL with the call
 * answered (or *r < 0). */
static struct queue_obj *binding_args(sd_varlink *link, struct client *c, sd_json_variant *p, struct bind_args *a,
                                      int *r) {
	static const sd_json_dispatch_field table[] = {
		{"queue", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct bind_args, queue), SD_JSON_MANDATORY},
		{"device", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint32, offsetof(struct bind_args, device), SD_JSON_MANDATORY},
		{"pasid", _SD_JSON_VARIANT_TYPE_INVALID, dispatch_pasid, offsetof(struct bind_args, pasid), SD_JSON_NULLABLE},
		{"space", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct bind_args, space), 0},
		{},
	};
	*a = (struct bind_args){.pasid = IOPF_PASID_NONE};
	*r = vl_dispatch(link, c->m, p, table, a);
	if (*r != 0)
		return NULL;
	return vl_touch_queue(link, c, a->queue);
}

int vl_method_bind(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	struct bind_args a;
	int r;
	struct queue_obj *qo = binding_args(link, c, p, &a, &r);
	if (!qo)
		return r;
	struct space_obj *so = vl_touch_space(link, c, a.space);
	if (!so)
		return 0;
	struct iopf_binding_key k = {.queue_id = qo->id, .dev_id = a.device, .pasid = a.pasid};
	r = iopf_bindings_add(iopf_engine_bindings(c->m->engine), &k, so->s);
	if (r == -EEXIST)
		return vl_reply_error(link, c->m, VL_BINDING_EXISTS, NULL);
	if (r < 0)
		return r;
	if (qo->persistent && so->persistent)
		state_save(c->m);
	return sd_varlink_reply(link, NULL);
}

int vl_method_unbind(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	struct bind_args a;
	int r;
	struct queue_obj *qo = binding_args(link, c, p, &a, &r);
	if (!qo)
		return r;
	struct iopf_binding_key k = {.queue_id = qo->id, .dev_id = a.device, .pasid = a.pasid};
	r = iopf_bindings_remove(iopf_engine_bindings(c->m->engine), &k);
	if (r == -ENOENT)
		return vl_reply_error(link, c->m, VL_NO_SUCH_BINDING, NULL);
	if (r < 0)
		return r;
	if (qo->persistent)
		state_save(c->m);
	return sd_varlink_reply(link, NULL);
}

/* --- listings ------------------------------------------------------------------------ */

int vl_method_list_queues(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	struct manager *m = c->m;
	int r = vl_dispatch(link, m, p, (const sd_json_dispatch_field[]){{}}, NULL);
	if (r != 0)
		return r;
	sd_json_variant *arr = NULL;
	struct queue_obj *qo;
	cds_list_for_each_entry(qo, &m->queues, node) {
		if (!client_may_touch(c, qo->uid))
			continue;
		size_t nb = iopf_bindings_count_queue(iopf_engine_bindings(m->engine), qo->id);
		r = sd_json_variant_append_arraybo(
			&arr, SD_JSON_BUILD_PAIR_UNSIGNED("id", qo->id),
			SD_JSON_BUILD_PAIR_STRING("name", qo->name),
			SD_JSON_BUILD_PAIR_STRING("transport", iopf_transport_kind_str(qo->q->kind)),
			SD_JSON_BUILD_PAIR_UNSIGNED("uid", qo->uid),
			SD_JSON_BUILD_PAIR_UNSIGNED("groups", IOPF_STAT_GET(qo->q->st.groups)),
			SD_JSON_BUILD_PAIR_UNSIGNED("faults", IOPF_STAT_GET(qo->q->st.faults)),
			SD_JSON_BUILD_PAIR_UNSIGNED("invalid", IOPF_STAT_GET(qo->q->st.invalid)),
			SD_JSON_BUILD_PAIR_UNSIGNED("bindings", nb),
			SD_JSON_BUILD_PAIR_BOOLEAN("persistent", qo->persistent));
		if (r < 0)
			goto out;
	}
	r = sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_CONDITION(!!arr, "queues", SD_JSON_BUILD_VARIANT(arr)),
	                       SD_JSON_BUILD_PAIR_CONDITION(!arr, "queues", SD_JSON_BUILD_EMPTY_ARRAY));
out:
	sd_json_variant_unref(arr);
	return r;
}

struct list_ctx {
	struct manager *m;
	struct client *c;
	sd_json_variant *arr;
	int r;
};

static int add_binding(const struct iopf_binding *b, void *ud) {
	struct list_ctx *ctx = ud;
	struct queue_obj *qo = queue_obj_find(ctx->m, b->key.queue_id);
	if (!qo || !client_may_touch(ctx->c, qo->uid))
		return 0;
	ctx->r = sd_json_variant_append_arraybo(
		&ctx->arr, SD_JSON_BUILD_PAIR_UNSIGNED("queue", b->key.queue_id),
		SD_JSON_BUILD_PAIR_UNSIGNED("device", b->key.dev_id),
		SD_JSON_BUILD_PAIR_CONDITION(b->key.pasid != IOPF_PASID_NONE, "pasid", SD_JSON_BUILD_UNSIGNED(b->key.pasid)),
		SD_JSON_BUILD_PAIR_CONDITION(b->key.pasid == IOPF_PASID_NONE, "pasid", SD_JSON_BUILD_NULL),
		SD_JSON_BUILD_PAIR_UNSIGNED("space", b->space->id));
	return ctx->r < 0;
}

int vl_method_list_bindings(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	int r = vl_dispatch(link, c->m, p, (const sd_json_dispatch_field[]){{}}, NULL);
	if (r != 0)
		return r;
	struct list_ctx ctx = {.m = c->m, .c = c};
	iopf_bindings_foreach(iopf_engine_bindings(c->m->engine), add_binding, &ctx);
	if (ctx.r < 0) {
		sd_json_variant_unref(ctx.arr);
		return ctx.r;
	}
	r = sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_CONDITION(!!ctx.arr, "bindings", SD_JSON_BUILD_VARIANT(ctx.arr)),
	                       SD_JSON_BUILD_PAIR_CONDITION(!ctx.arr, "bindings", SD_JSON_BUILD_EMPTY_ARRAY));
	sd_json_variant_unref(ctx.arr);
	return r;
}
