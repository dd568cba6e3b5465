/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-json.h>

#include "engine/batch.h"
#include "engine/bindings.h"
#include "log.h"
#include "manager.h"
#include "shared/cleanup.h"
#include "state.h"

/* --- writing ------------------------------------------------------------------------------ */

static int region_json(const struct iopf_region_info *g, void *ud) {
	sd_json_variant **arr = ud;
	return sd_json_variant_append_arraybo(
		       arr, SD_JSON_BUILD_PAIR_UNSIGNED("id", g->id), SD_JSON_BUILD_PAIR_UNSIGNED("iova", g->iova),
		       SD_JSON_BUILD_PAIR_UNSIGNED("length", g->length), SD_JSON_BUILD_PAIR_UNSIGNED("offset", g->offset),
		       SD_JSON_BUILD_PAIR_UNSIGNED("perm", g->perm), SD_JSON_BUILD_PAIR_BOOLEAN("memfd", g->memfd >= 0)) < 0;
}

static int space_json(struct object *o, sd_json_variant **arr) {
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *regions = NULL;
	int r = sd_json_variant_new_array(&regions, NULL, 0);
	if (r < 0)
		return r;
	iopf_space_foreach_region(o->s, region_json, &regions);
	if (sd_json_variant_elements(regions) != iopf_space_region_count(o->s))
		return -ENOMEM;
	const struct iopf_space_config *c = iopf_space_config(o->s);
	return sd_json_variant_append_arraybo(
		arr, SD_JSON_BUILD_PAIR_UNSIGNED("id", o->id), SD_JSON_BUILD_PAIR_STRING("name", o->name),
		SD_JSON_BUILD_PAIR_UNSIGNED("uid", o->uid),
		SD_JSON_BUILD_PAIR_STRING("backend", iopf_backend_kind_to_string(c->backend)),
		SD_JSON_BUILD_PAIR_UNSIGNED("quota", c->quota), SD_JSON_BUILD_PAIR_UNSIGNED("pageSize", c->page_size),
		SD_JSON_BUILD_PAIR_UNSIGNED("windowMin", c->window_min),
		SD_JSON_BUILD_PAIR_UNSIGNED("windowMax", c->window_max), SD_JSON_BUILD_PAIR_UNSIGNED("ioasId", c->ioas_id),
		SD_JSON_BUILD_PAIR_STRING("faultAround", iopf_fault_around_to_string(c->fault_around)),
		SD_JSON_BUILD_PAIR_STRING("eviction", iopf_eviction_to_string(c->eviction)),
		SD_JSON_BUILD_PAIR_BOOLEAN("watched", o->pidfd >= 0), SD_JSON_BUILD_PAIR_VARIANT("regions", regions));
}

struct binding_ctx {
	struct manager *m;
	sd_json_variant **arr;
	int r;
};

/* Bindings between persistent queues and spaces; the others go with their
 * objects anyway. */
static int binding_json(const struct iopf_binding *bd, void *ud) {
	struct binding_ctx *x = ud;
	struct object *q = object_find(x->m, OBJECT_QUEUE, bd->key.queue_id);
	struct object *s = object_find(x->m, OBJECT_SPACE, iopf_space_id(bd->space));
	if (!q || !s || !q->persistent || !s->persistent)
		return 0;
	x->r = sd_json_variant_append_arraybo(x->arr, SD_JSON_BUILD_PAIR_UNSIGNED("queue", bd->key.queue_id),
	                                      SD_JSON_BUILD_PAIR_UNSIGNED("device", bd->key.dev_id),
	                                      SD_JSON_BUILD_PAIR_UNSIGNED("pasid", bd->key.pasid),
	                                      SD_JSON_BUILD_PAIR_UNSIGNED("space", s->id));
	return x->r < 0;
}

int state_format(struct manager *m, uint64_t generation, char **ret) {
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *queues = NULL, *spaces = NULL, *bindings = NULL, *v = NULL;
	int r = sd_json_variant_new_array(&queues, NULL, 0);
	if (r >= 0)
		r = sd_json_variant_new_array(&spaces, NULL, 0);
	if (r >= 0)
		r = sd_json_variant_new_array(&bindings, NULL, 0);
	struct object *o;
	objects_foreach(o, m, OBJECT_QUEUE) {
		if (r < 0 || !o->persistent)
			continue;
		r = sd_json_variant_append_arraybo(
			&queues, SD_JSON_BUILD_PAIR_UNSIGNED("id", o->id), SD_JSON_BUILD_PAIR_STRING("name", o->name),
			SD_JSON_BUILD_PAIR_UNSIGNED("uid", o->uid),
			SD_JSON_BUILD_PAIR_STRING("transport", iopf_transport_kind_to_string(iopf_queue_kind(o->q))),
			SD_JSON_BUILD_PAIR_BOOLEAN("watched", o->pidfd >= 0));
	}
	objects_foreach(o, m, OBJECT_SPACE)
		if (r >= 0 && o->persistent)
			r = space_json(o, &spaces);
	struct binding_ctx ctx = {.m = m, .arr = &bindings};
	if (r >= 0) {
		iopf_bindings_foreach(iopf_engine_bindings(m->engine), binding_json, &ctx);
		r = ctx.r;
	}
	if (r >= 0)
		r = sd_json_buildo(&v, SD_JSON_BUILD_PAIR_UNSIGNED("generation", generation),
		                   SD_JSON_BUILD_PAIR_UNSIGNED("nextQueueId", m->next_id[OBJECT_QUEUE]),
		                   SD_JSON_BUILD_PAIR_UNSIGNED("nextSpaceId", m->next_id[OBJECT_SPACE]),
		                   SD_JSON_BUILD_PAIR_VARIANT("queues", queues), SD_JSON_BUILD_PAIR_VARIANT("spaces", spaces),
		                   SD_JSON_BUILD_PAIR_VARIANT("bindings", bindings));
	if (r < 0)
		return r;
	return sd_json_variant_format(v, 0, ret);
}

/* --- reading ------------------------------------------------------------------------------ */

#define PASID_MAX ((1u << 20) - 1)
#define ELEMENTS_MAX (1u << 20)

static int dispatch_name(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	int r = sd_json_dispatch_string(name, v, flags, userdata);
	char **s = userdata;
	return r < 0 ? r : *s && strlen(*s) > 255 ? -EBADMSG : 0;
}

static int dispatch_transport(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	int k = iopf_transport_kind_from_string(sd_json_variant_string(v));
	if (k < 0)
		return -EBADMSG;
	*(enum iopf_transport_kind *)userdata = (enum iopf_transport_kind)k;
	return 0;
}

static int dispatch_fault_around(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags,
                                 void *userdata) {
	int k = iopf_fault_around_from_string(sd_json_variant_string(v));
	if (k < 0)
		return -EBADMSG;
	*(enum iopf_fault_around *)userdata = (enum iopf_fault_around)k;
	return 0;
}

static int dispatch_eviction(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	int k = iopf_eviction_from_string(sd_json_variant_string(v));
	if (k < 0)
		return -EBADMSG;
	*(enum iopf_eviction *)userdata = (enum iopf_eviction)k;
	return 0;
}

static int dispatch_backend(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	int k = iopf_backend_kind_from_string(sd_json_variant_string(v));
	if (k < 0)
		return -EBADMSG;
	*(enum iopf_backend_kind *)userdata = (enum iopf_backend_kind)k;
	return 0;
}

/* An array whose elements are each dispatched with `table` into a new
 * element of `size` bytes. */
static int dispatch_array(sd_json_variant *v, const sd_json_dispatch_field table[], size_t size, void **ret,
                          size_t *n) {
	size_t count = sd_json_variant_elements(v);
	if (count > ELEMENTS_MAX || *ret)
		return -EBADMSG; /* too many, or the same key twice */
	uint8_t *a = calloc(count ? count : 1, size);
	if (!a)
		return -ENOMEM;
	/* The caller's from here on, with what it holds (state_done()). */
	*ret = a;
	*n = 0;
	for (size_t i = 0; i < count; i++) {
		(*n)++;
		int r = sd_json_dispatch(sd_json_variant_by_index(v, i), table, SD_JSON_ALLOW_EXTENSIONS, a + i * size);
		if (r < 0)
			return r;
	}
	return 0;
}

static int dispatch_regions(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	static const sd_json_dispatch_field table[] = {
		{"id", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_region, id), SD_JSON_MANDATORY},
		{"iova", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_region, iova), SD_JSON_MANDATORY},
		{"length", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_region, length), SD_JSON_MANDATORY},
		{"offset", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_region, offset), SD_JSON_MANDATORY},
		{"perm", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint32, offsetof(struct state_region, perm), SD_JSON_MANDATORY},
		{"memfd", SD_JSON_VARIANT_BOOLEAN, sd_json_dispatch_stdbool, offsetof(struct state_region, memfd), SD_JSON_MANDATORY},
		{},
	};
	struct state_space *s = userdata;
	return dispatch_array(v, table, sizeof(struct state_region), (void **)&s->regions, &s->n_regions);
}

static void space_done(struct state_space *s) {
	free(s->name);
	free(s->regions);
}

static int dispatch_spaces(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	static const sd_json_dispatch_field table[] = {
		{"id", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_space, id), SD_JSON_MANDATORY},
		{"name", SD_JSON_VARIANT_STRING, dispatch_name, offsetof(struct state_space, name), SD_JSON_NULLABLE},
		{"uid", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uid_gid, offsetof(struct state_space, uid), SD_JSON_MANDATORY},
		{"backend", SD_JSON_VARIANT_STRING, dispatch_backend, offsetof(struct state_space, cfg.backend), SD_JSON_MANDATORY},
		{"quota", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_space, cfg.quota), SD_JSON_MANDATORY},
		{"pageSize", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint32, offsetof(struct state_space, cfg.page_size), SD_JSON_MANDATORY},
		{"windowMin", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_space, cfg.window_min), SD_JSON_MANDATORY},
		{"windowMax", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_space, cfg.window_max), SD_JSON_MANDATORY},
		{"ioasId", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint32, offsetof(struct state_space, cfg.ioas_id), SD_JSON_MANDATORY},
		/* Absent from states saved before spaces had policies: such a
		 * space keeps what it had then (set below). */
		{"faultAround", SD_JSON_VARIANT_STRING, dispatch_fault_around, offsetof(struct state_space, cfg.fault_around), 0},
		{"eviction", SD_JSON_VARIANT_STRING, dispatch_eviction, offsetof(struct state_space, cfg.eviction), 0},
		{"watched", SD_JSON_VARIANT_BOOLEAN, sd_json_dispatch_stdbool, offsetof(struct state_space, watched), SD_JSON_MANDATORY},
		{"regions", SD_JSON_VARIANT_ARRAY, dispatch_regions, 0, SD_JSON_MANDATORY},
		{},
	};
	struct state *st = userdata;
	int r = dispatch_array(v, table, sizeof(struct state_space), (void **)&st->spaces, &st->n_spaces);
	for (size_t i = 0; i < st->n_spaces; i++) {
		struct iopf_space_config *c = &st->spaces[i].cfg;
		c->iommufd = -1;
		if (c->fault_around == IOPF_FAULT_AROUND_DEFAULT)
			c->fault_around = IOPF_FAULT_AROUND_FIXED;
		if (c->eviction == IOPF_EVICTION_DEFAULT)
			c->eviction = IOPF_EVICTION_CLOCK;
	}
	return r;
}

static int dispatch_queues(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	static const sd_json_dispatch_field table[] = {
		{"id", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_queue, id), SD_JSON_MANDATORY},
		{"name", SD_JSON_VARIANT_STRING, dispatch_name, offsetof(struct state_queue, name), SD_JSON_NULLABLE},
		{"uid", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uid_gid, offsetof(struct state_queue, uid), SD_JSON_MANDATORY},
		{"transport", SD_JSON_VARIANT_STRING, dispatch_transport, offsetof(struct state_queue, transport), SD_JSON_MANDATORY},
		{"watched", SD_JSON_VARIANT_BOOLEAN, sd_json_dispatch_stdbool, offsetof(struct state_queue, watched), SD_JSON_MANDATORY},
		{},
	};
	struct state *st = userdata;
	return dispatch_array(v, table, sizeof(struct state_queue), (void **)&st->queues, &st->n_queues);
}

static int dispatch_bindings(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	static const sd_json_dispatch_field table[] = {
		{"queue", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_binding, queue), SD_JSON_MANDATORY},
		{"device", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint32, offsetof(struct state_binding, device), SD_JSON_MANDATORY},
		{"pasid", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint32, offsetof(struct state_binding, pasid), SD_JSON_MANDATORY},
		{"space", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state_binding, space), SD_JSON_MANDATORY},
		{},
	};
	struct state *st = userdata;
	return dispatch_array(v, table, sizeof(struct state_binding), (void **)&st->bindings, &st->n_bindings);
}

static bool is_pow2(uint64_t v) {
	return v && !(v & (v - 1));
}

static const struct state_space *space_of(const struct state *st, uint64_t id) {
	for (size_t i = 0; i < st->n_spaces; i++)
		if (st->spaces[i].id == id)
			return &st->spaces[i];
	return NULL;
}

static const struct state_queue *queue_of(const struct state *st, uint64_t id) {
	for (size_t i = 0; i < st->n_queues; i++)
		if (st->queues[i].id == id)
			return &st->queues[i];
	return NULL;
}

/* What a daemon could have written; a reason why not, or NULL. */
static const char *implausible(const struct state *st) {
	if (st->generation == 0)
		return "generation 0";
	for (size_t i = 0; i < st->n_queues; i++) {
		const struct state_queue *q = &st->queues[i];
		if (q->id == 0 || q->id > st->next_queue_id || q->id > UINT32_MAX || queue_of(st, q->id) != q)
			return "a queue id out of range or given twice";
	}
	for (size_t i = 0; i < st->n_spaces; i++) {
		const struct state_space *s = &st->spaces[i];
		const struct iopf_space_config *c = &s->cfg;
		if (s->id == 0 || s->id > st->next_space_id || space_of(st, s->id) != s)
			return "a space id out of range or given twice";
		if (!is_pow2(c->page_size) || c->page_size < 4096 || c->page_size > (1u << 30) || c->quota < c->page_size ||
		    c->window_min > c->window_max || c->window_max > (1ull << 30))
			return "a space's page size, quota or window";
		uint64_t mask = c->page_size - 1;
		for (size_t k = 0; k < s->n_regions; k++) {
			const struct state_region *g = &s->regions[k];
			if (g->id == 0 || !g->length || ((g->iova | g->length | g->offset) & mask) ||
			    g->iova + g->length < g->iova || (g->perm & ~IOPF_PERM_ALL) ||
			    !(g->perm & (IOPF_PERM_READ | IOPF_PERM_WRITE)))
				return "a region's id, addresses or access";
			for (size_t j = 0; j < k; j++)
				if (s->regions[j].id == g->id)
					return "a region id given twice";
		}
	}
	for (size_t i = 0; i < st->n_bindings; i++) {
		const struct state_binding *b = &st->bindings[i];
		if (!queue_of(st, b->queue) || !space_of(st, b->space))
			return "a binding of a queue or space not in the state";
		if (b->pasid > PASID_MAX && b->pasid != IOPF_PASID_NONE)
			return "a binding's PASID";
	}
	return NULL;
}

int state_parse(const char *text, struct state *ret) {
	static const sd_json_dispatch_field table[] = {
		{"generation", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state, generation), SD_JSON_MANDATORY},
		{"nextQueueId", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state, next_queue_id), SD_JSON_MANDATORY},
		{"nextSpaceId", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct state, next_space_id), SD_JSON_MANDATORY},
		{"queues", SD_JSON_VARIANT_ARRAY, dispatch_queues, 0, SD_JSON_MANDATORY},
		{"spaces", SD_JSON_VARIANT_ARRAY, dispatch_spaces, 0, SD_JSON_MANDATORY},
		{"bindings", SD_JSON_VARIANT_ARRAY, dispatch_bindings, 0, SD_JSON_MANDATORY},
		{},
	};
	*ret = (struct state){0};
	_cleanup_(sd_json_variant_unrefp) sd_json_variant *v = NULL;
	if (sd_json_parse(text, 0, &v, NULL, NULL) < 0)
		return -EBADMSG;
	const char *bad = NULL;
	int r = sd_json_dispatch_full(v, table, NULL, SD_JSON_ALLOW_EXTENSIONS, ret, &bad);
	if (r < 0) {
		log_warning("state: field %s is not what a daemon writes", bad ? bad : "(unknown)");
		state_done(ret);
		return r == -ENOMEM ? r : -EBADMSG;
	}
	const char *why = implausible(ret);
	if (why) {
		log_warning("state: implausible: %s", why);
		state_done(ret);
		return -EBADMSG;
	}
	return 0;
}

void state_done(struct state *s) {
	for (size_t i = 0; i < s->n_queues; i++)
		free(s->queues[i].name);
	for (size_t i = 0; i < s->n_spaces; i++)
		space_done(&s->spaces[i]);
	free(s->queues);
	free(s->spaces);
	free(s->bindings);
	*s = (struct state){0};
}
