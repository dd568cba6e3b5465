/* SPDX-License-Identifier: MIT */
/* Address spaces and regions over Varlink. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "engine/bindings.h"
#include "log.h"
#include "manager.h"

/* An optional unsigned: absent or null leaves the default. */
static int dispatch_opt_u64(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	if (sd_json_variant_is_null(v))
		return 0;
	if (!sd_json_variant_is_unsigned(v))
		return -EINVAL;
	*(uint64_t *)userdata = sd_json_variant_unsigned(v);
	return 0;
}

static int dispatch_opt_i64(const char *name, sd_json_variant *v, sd_json_dispatch_flags_t flags, void *userdata) {
	if (sd_json_variant_is_null(v))
		return 0;
	if (!sd_json_variant_is_integer(v) && !sd_json_variant_is_unsigned(v))
		return -EINVAL;
	*(int64_t *)userdata = sd_json_variant_integer(v);
	return 0;
}

static int reply_reason(sd_varlink *link, struct manager *m, enum vl_error e, const char *reason) {
	return vl_reply_errorb(link, m, e, SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("reason", reason)));
}

static int reply_limit(sd_varlink *link, struct manager *m, const char *limit, uint64_t max) {
	return vl_reply_errorb(link, m, VL_LIMIT_REACHED,
	                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("limit", limit),
	                                            SD_JSON_BUILD_PAIR_UNSIGNED("max", max)));
}

struct create_args {
	const char *backend;
	uint64_t quota;
	uint64_t page_size;
	uint64_t window_min;
	uint64_t window_max;
	int64_t iommufd_index;
	int64_t ioas_id;
	const char *name;
	int persistent;
};

int vl_method_create_space(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	struct manager *m = c->m;
	struct create_args a = {.page_size = 4096, .iommufd_index = -1, .ioas_id = -1};
	static const sd_json_dispatch_field table[] = {
		{"backend", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct create_args, backend), SD_JSON_MANDATORY},
		{"quota", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct create_args, quota), SD_JSON_MANDATORY},
		{"pageSize", _SD_JSON_VARIANT_TYPE_INVALID, dispatch_opt_u64, offsetof(struct create_args, page_size), SD_JSON_NULLABLE},
		{"windowMin", _SD_JSON_VARIANT_TYPE_INVALID, dispatch_opt_u64, offsetof(struct create_args, window_min), SD_JSON_NULLABLE},
		{"windowMax", _SD_JSON_VARIANT_TYPE_INVALID, dispatch_opt_u64, offsetof(struct create_args, window_max), SD_JSON_NULLABLE},
		{"iommufdIndex", _SD_JSON_VARIANT_TYPE_INVALID, dispatch_opt_i64, offsetof(struct create_args, iommufd_index), SD_JSON_NULLABLE},
		{"ioasId", _SD_JSON_VARIANT_TYPE_INVALID, dispatch_opt_i64, offsetof(struct create_args, ioas_id), SD_JSON_NULLABLE},
		{"name", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct create_args, name), SD_JSON_NULLABLE},
		{"persistent", SD_JSON_VARIANT_BOOLEAN, sd_json_dispatch_stdbool, offsetof(struct create_args, persistent), SD_JSON_NULLABLE},
		{},
	};
	int r = vl_dispatch(link, m, p, table, &a);
	if (r != 0)
		return r;
	if (m->shutting_down)
		return vl_reply_error(link, m, VL_SHUTTING_DOWN, NULL);
	int backend = iopf_backend_kind_from_str(a.backend);
	if (backend < 0)
		return vl_invalid_parameter(link, m, "backend");
	if (a.name && strlen(a.name) > 255)
		return vl_invalid_parameter(link, m, "name");
	if (a.page_size > UINT32_MAX)
		return reply_reason(link, m, VL_INVALID_CONFIGURATION, "pageSize too large");

	struct uid_usage *u = uid_usage_get(m, c->uid);
	if (!u)
		return -ENOMEM;
	if (c->uid != 0 && u->spaces >= m->cfg.limits.spaces_per_uid)
		return reply_limit(link, m, "spaces", m->cfg.limits.spaces_per_uid);
	if (c->uid != 0 && (a.quota > m->cfg.limits.quota_per_uid || u->quota > m->cfg.limits.quota_per_uid - a.quota))
		return reply_limit(link, m, "quota", m->cfg.limits.quota_per_uid);

	int iommufd = -1;
	if (backend == IOPF_BACKEND_IOMMUFD) {
		if (a.iommufd_index < 0 || a.ioas_id < 0 || a.ioas_id > UINT32_MAX)
			return reply_reason(link, m, VL_INVALID_CONFIGURATION,
			                    "the iommufd backend needs iommufdIndex and ioasId");
		iommufd = vl_take_fd(link, m, a.iommufd_index, "iommufdIndex");
		if (iommufd < 0)
			return 0;
	} else if (a.iommufd_index >= 0 || a.ioas_id >= 0) {
		return reply_reason(link, m, VL_INVALID_CONFIGURATION, "iommufdIndex and ioasId are for the iommufd backend");
	}

	struct iopf_space_config sc = {
		.backend = (enum iopf_backend_kind)backend,
		.quota = a.quota,
		.page_size = (uint32_t)a.page_size,
		.window_min = a.window_min,
		.window_max = a.window_max,
		.iommufd = iommufd,
		.ioas_id = (uint32_t)(a.ioas_id < 0 ? 0 : a.ioas_id),
	};
	struct iopf_space *s;
	r = iopf_space_new(++m->next_space_id, &sc, &s);
	if (iommufd >= 0)
		close(iommufd);
	if (r == -EINVAL)
		return reply_reason(link, m, VL_INVALID_CONFIGURATION,
		                    "pageSize must be a power of two >= 4096, quota at least one page, "
		                    "windowMin <= windowMax <= 1 GiB");
	if (r == -ENOTTY)
		return vl_reply_errorb(link, m, VL_BAD_FD,
		                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("parameter", "iommufdIndex"),
		                                            SD_JSON_BUILD_PAIR_STRING("reason", "not an iommufd")));
	if (r < 0)
		return vl_reply_errorb(link, m, VL_BACKEND_FAILED,
		                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_INTEGER("errno", -r),
		                                            SD_JSON_BUILD_PAIR_STRING("message", strerror(-r))));
	struct obj_opts opts = {.owner = c, .uid = c->uid, .name = a.name, .persistent = a.persistent,
	                        .pidfd = a.persistent ? vl_peer_pidfd(link) : -1};
	struct space_obj *so;
	r = space_obj_add(m, s, &opts, &so);
	if (r < 0) {
		iopf_space_destroy(s);
		return r;
	}
	log_info("space %lu created (%s, quota %lu) by uid %u", (unsigned long)so->id, a.backend,
	         (unsigned long)a.quota, (unsigned)c->uid);
	return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_UNSIGNED("space", so->id));
}

int vl_method_destroy_space(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	uint64_t id = 0;
	static const sd_json_dispatch_field table[] = {
		{"space", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, 0, SD_JSON_MANDATORY},
		{},
	};
	int r = vl_dispatch(link, c->m, p, table, &id);
	if (r != 0)
		return r;
	struct space_obj *so = vl_touch_space(link, c, id);
	if (!so)
		return 0;
	log_info("space %lu destroyed", (unsigned long)so->id);
	space_obj_destroy(c->m, so, OBJ_FORGET);
	return sd_varlink_reply(link, NULL);
}

struct region_args {
	uint64_t space;
	uint64_t iova;
	uint64_t length;
	int64_t memfd_index;
	uint64_t offset;
	sd_json_variant *access;
};

int vl_method_add_region(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	struct manager *m = c->m;
	struct region_args a = {.memfd_index = -1};
	static const sd_json_dispatch_field table[] = {
		{"space", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct region_args, space), SD_JSON_MANDATORY},
		{"iova", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct region_args, iova), SD_JSON_MANDATORY},
		{"length", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct region_args, length), SD_JSON_MANDATORY},
		{"memfdIndex", SD_JSON_VARIANT_INTEGER, sd_json_dispatch_int64, offsetof(struct region_args, memfd_index), SD_JSON_MANDATORY},
		{"offset", _SD_JSON_VARIANT_TYPE_INVALID, dispatch_opt_u64, offsetof(struct region_args, offset), SD_JSON_NULLABLE},
		{"access", SD_JSON_VARIANT_ARRAY, sd_json_dispatch_variant_noref, offsetof(struct region_args, access), SD_JSON_MANDATORY},
		{},
	};
	int r = vl_dispatch(link, m, p, table, &a);
	if (r != 0)
		return r;
	uint32_t perm = 0;
	for (size_t i = 0; i < sd_json_variant_elements(a.access); i++) {
		const char *s = sd_json_variant_string(sd_json_variant_by_index(a.access, i));
		uint32_t bit = !s ? 0 : !strcmp(s, "read") ? IOPF_PERM_READ : !strcmp(s, "write") ? IOPF_PERM_WRITE
		             : !strcmp(s, "exec") ? IOPF_PERM_EXEC : !strcmp(s, "priv") ? IOPF_PERM_PRIV : 0;
		if (!bit)
			return vl_invalid_parameter(link, m, "access");
		perm |= bit;
	}
	struct space_obj *so = vl_touch_space(link, c, a.space);
	if (!so)
		return 0;
	struct uid_usage *u = uid_usage_get(m, so->uid);
	if (!u)
		return -ENOMEM;
	if (c->uid != 0 && u->regions >= m->cfg.limits.regions_per_uid)
		return reply_limit(link, m, "regions", m->cfg.limits.regions_per_uid);

	int memfd = vl_take_fd(link, m, a.memfd_index, "memfdIndex");
	if (memfd < 0)
		return 0;
	struct iopf_region_config rc = {
		.iova = a.iova, .length = a.length, .memfd = memfd, .offset = a.offset, .perm = perm,
	};
	uint64_t id;
	r = iopf_space_add_region(so->s, &rc, &id);
	close(memfd);
	switch (r) {
	case 0:
		break;
	case -EINVAL:
		return reply_reason(link, m, VL_INVALID_REGION,
		                    "iova, length and offset must be page aligned, length non-zero, "
		                    "iova + length within 64 bits, access at least read or write");
	case -EBADF:
	case -EBADFD:
		return vl_reply_errorb(link, m, VL_BAD_FD,
		                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_STRING("parameter", "memfdIndex"),
		                                            SD_JSON_BUILD_PAIR_STRING("reason", "not a sealable memory file (memfd)")));
	case -EPERM:
		return vl_reply_error(link, m, VL_UNSEALED_MEMORY, NULL);
	case -ERANGE:
		return vl_reply_error(link, m, VL_REGION_OUT_OF_RANGE, NULL);
	case -EEXIST:
		return vl_reply_error(link, m, VL_REGION_OVERLAP, NULL);
	default:
		return vl_reply_errorb(link, m, VL_BACKEND_FAILED,
		                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_INTEGER("errno", -r),
		                                            SD_JSON_BUILD_PAIR_STRING("message", strerror(-r))));
	}
	u->regions++;
	space_obj_region_added(m, so, id);
	return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_UNSIGNED("region", id));
}

struct remove_args {
	uint64_t space;
	uint64_t region;
};

int vl_method_remove_region(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	struct remove_args a = {0};
	static const sd_json_dispatch_field table[] = {
		{"space", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct remove_args, space), SD_JSON_MANDATORY},
		{"region", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct remove_args, region), SD_JSON_MANDATORY},
		{},
	};
	int r = vl_dispatch(link, c->m, p, table, &a);
	if (r != 0)
		return r;
	struct space_obj *so = vl_touch_space(link, c, a.space);
	if (!so)
		return 0;
	/* Unpublished, a grace period, then everything pinned in it unmapped:
	 * when the reply goes out, nothing of the region is mapped. */
	r = iopf_space_remove_region(so->s, a.region);
	if (r == -ENOENT)
		return vl_reply_errorb(link, c->m, VL_NO_SUCH_REGION,
		                       SD_JSON_BUILD_OBJECT(SD_JSON_BUILD_PAIR_UNSIGNED("region", a.region)));
	if (r < 0)
		return r;
	struct uid_usage *u = uid_usage_get(c->m, so->uid);
	if (u && u->regions)
		u->regions--;
	space_obj_region_removed(c->m, so, a.region);
	return sd_varlink_reply(link, NULL);
}

int vl_method_list_spaces(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	struct client *c = vl_client(link);
	if (!c)
		return -ENOMEM;
	struct manager *m = c->m;
	int r = vl_dispatch(link, m, p, (const sd_json_dispatch_field[]){{}}, NULL);
	if (r != 0)
		return r;
	sd_json_variant *arr = NULL;
	struct space_obj *so;
	cds_list_for_each_entry(so, &m->spaces, node) {
		if (!client_may_touch(c, so->uid))
			continue;
		struct iopf_space_stats st;
		iopf_space_get_stats(so->s, &st);
		size_t nb = iopf_bindings_count_space(iopf_engine_bindings(m->engine), so->s);
		r = sd_json_variant_append_arraybo(
			&arr, SD_JSON_BUILD_PAIR_UNSIGNED("id", so->id),
			SD_JSON_BUILD_PAIR_STRING("name", so->name),
			SD_JSON_BUILD_PAIR_STRING("backend", iopf_backend_kind_str(so->s->cfg.backend)),
			SD_JSON_BUILD_PAIR_UNSIGNED("uid", so->uid),
			SD_JSON_BUILD_PAIR_UNSIGNED("quota", so->s->cfg.quota),
			SD_JSON_BUILD_PAIR_UNSIGNED("pinned", st.pinned_bytes),
			SD_JSON_BUILD_PAIR_UNSIGNED("pinnedPeak", st.pinned_peak),
			SD_JSON_BUILD_PAIR_UNSIGNED("regions", iopf_space_region_count(so->s)),
			SD_JSON_BUILD_PAIR_UNSIGNED("bindings", nb),
			SD_JSON_BUILD_PAIR_UNSIGNED("maps", st.maps),
			SD_JSON_BUILD_PAIR_UNSIGNED("unmaps", st.unmaps),
			SD_JSON_BUILD_PAIR_UNSIGNED("evictions", st.evictions),
			SD_JSON_BUILD_PAIR_UNSIGNED("mapErrors", st.map_errors),
			SD_JSON_BUILD_PAIR_BOOLEAN("persistent", so->persistent));
		if (r < 0)
			goto out;
	}
	r = sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_CONDITION(!!arr, "spaces", SD_JSON_BUILD_VARIANT(arr)),
	                       SD_JSON_BUILD_PAIR_CONDITION(!arr, "spaces", SD_JSON_BUILD_EMPTY_ARRAY));
out:
	sd_json_variant_unref(arr);
	return r;
}
