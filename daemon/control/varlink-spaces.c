/* SPDX-License-Identifier: MIT */
/* Address spaces and regions over Varlink. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients.h"
#include "engine/bindings.h"
#include "log.h"
#include "manager.h"
#include "shared/cleanup.h"
#include "varlink-methods.h"

struct create_args {
	const char *backend;
	uint64_t quota;
	uint64_t page_size;
	uint64_t window_min;
	uint64_t window_max;
	int64_t iommufd_index;
	int64_t ioas_id;
	const char *fault_around;
	const char *eviction;
	const char *name;
	bool persistent;
};

/* Whether the configuration passes the checks that need no fd; else the
 * call has been answered. */
static bool create_args_ok(sd_varlink *link, struct client *c, const struct create_args *a, int backend) {
	struct manager *m = c->m;
	uint64_t max;
	if (a->page_size > UINT32_MAX)
		return vl_error_reason(link, m, VL_INVALID_CONFIGURATION, "pageSize too large"), false;
	if (!accounting_allows(&m->acct, c->uid, ACCT_SPACES, 1, &max))
		return vl_error_limit(link, m, "spaces", max), false;
	/* The whole quota of a pinning space is reserved up front: everything
	 * it pins later (windows and prefetch too) stays within it. */
	struct iopf_space_config sc = {.backend = (enum iopf_backend_kind)backend, .quota = a->quota};
	uint64_t pin = accounting_pin_reservation(&sc);
	if (!accounting_allows(&m->acct, c->uid, ACCT_PIN, pin, &max)) {
		struct uid_usage *u = accounting_user(&m->acct, c->uid);
		if (u)
			vl_error_pin_budget(link, m, u, pin);
		else
			sd_varlink_error_errno(link, -ENOMEM);
		return false;
	}
	bool iommufd = backend == IOPF_BACKEND_IOMMUFD;
	if (iommufd && (a->iommufd_index < 0 || a->ioas_id < 0 || a->ioas_id > UINT32_MAX))
		return vl_error_reason(link, m, VL_INVALID_CONFIGURATION, "the iommufd backend needs iommufdIndex and ioasId"),
		       false;
	if (!iommufd && (a->iommufd_index >= 0 || a->ioas_id >= 0))
		return vl_error_reason(link, m, VL_INVALID_CONFIGURATION,
		                       "iommufdIndex and ioasId are for the iommufd backend"),
		       false;
	return true;
}

static int method_create_space(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	static const sd_json_dispatch_field table[] = {
		{"backend", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct create_args, backend), SD_JSON_MANDATORY},
		{"quota", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct create_args, quota), SD_JSON_MANDATORY},
		{"pageSize", _SD_JSON_VARIANT_TYPE_INVALID, vl_dispatch_opt_u64, offsetof(struct create_args, page_size), SD_JSON_NULLABLE},
		{"windowMin", _SD_JSON_VARIANT_TYPE_INVALID, vl_dispatch_opt_u64, offsetof(struct create_args, window_min), SD_JSON_NULLABLE},
		{"windowMax", _SD_JSON_VARIANT_TYPE_INVALID, vl_dispatch_opt_u64, offsetof(struct create_args, window_max), SD_JSON_NULLABLE},
		{"iommufdIndex", _SD_JSON_VARIANT_TYPE_INVALID, vl_dispatch_opt_i64, offsetof(struct create_args, iommufd_index), SD_JSON_NULLABLE},
		{"ioasId", _SD_JSON_VARIANT_TYPE_INVALID, vl_dispatch_opt_i64, offsetof(struct create_args, ioas_id), SD_JSON_NULLABLE},
		{"faultAround", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct create_args, fault_around), SD_JSON_NULLABLE},
		{"eviction", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct create_args, eviction), SD_JSON_NULLABLE},
		{"name", SD_JSON_VARIANT_STRING, sd_json_dispatch_const_string, offsetof(struct create_args, name), SD_JSON_NULLABLE},
		{"persistent", SD_JSON_VARIANT_BOOLEAN, sd_json_dispatch_stdbool, offsetof(struct create_args, persistent), SD_JSON_NULLABLE},
		{},
	};
	struct create_args a = {.page_size = 4096, .iommufd_index = -1, .ioas_id = -1};
	struct client *c;
	int r = vl_begin(link, p, table, &a, &c);
	if (r <= 0)
		return r;
	struct manager *m = c->m;
	if (m->shutting_down)
		return vl_error(link, m, VL_SHUTTING_DOWN);
	int backend = iopf_backend_kind_from_string(a.backend);
	if (backend < 0)
		return vl_error_invalid_parameter(link, m, "backend");
	if (a.name && strlen(a.name) > 255)
		return vl_error_invalid_parameter(link, m, "name");
	int fault_around = a.fault_around ? iopf_fault_around_from_string(a.fault_around) : IOPF_FAULT_AROUND_DEFAULT;
	if (fault_around < 0)
		return vl_error_invalid_parameter(link, m, "faultAround");
	int eviction = a.eviction ? iopf_eviction_from_string(a.eviction) : IOPF_EVICTION_DEFAULT;
	if (eviction < 0)
		return vl_error_invalid_parameter(link, m, "eviction");
	if (!create_args_ok(link, c, &a, backend))
		return 0;
	int iommufd = -1;
	if (backend == IOPF_BACKEND_IOMMUFD && (iommufd = vl_take_fd(link, m, a.iommufd_index, "iommufdIndex")) < 0)
		return 0;

	struct iopf_space_config sc = {
		.backend = (enum iopf_backend_kind)backend,
		.quota = a.quota,
		.page_size = (uint32_t)a.page_size,
		.window_min = a.window_min,
		.window_max = a.window_max,
		.fault_around = (enum iopf_fault_around)fault_around,
		.eviction = (enum iopf_eviction)eviction,
		.iommufd = iommufd,
		.ioas_id = (uint32_t)(a.ioas_id < 0 ? 0 : a.ioas_id),
	};
	struct iopf_space *s;
	r = iopf_space_new(++m->next_id[OBJECT_SPACE], &sc, &s);
	if (r == -EINVAL)
		return vl_error_reason(link, m, VL_INVALID_CONFIGURATION,
		                       "pageSize must be a power of two >= 4096, quota at least one page, "
		                       "windowMin <= windowMax <= 1 GiB");
	if (r == -ENOTTY)
		return vl_error_bad_fd(link, m, "iommufdIndex", "not an iommufd");
	if (r < 0)
		return vl_error_backend(link, m, -r, strerror(-r));
	struct object_new n = {.owner = c, .uid = c->uid, .name = a.name, .persistent = a.persistent,
	                       .pidfd = a.persistent ? client_pidfd(c) : -1};
	struct object *o;
	r = object_add_space(m, s, &n, &o);
	if (r < 0)
		return r;
	log_info("space %lu created (%s, quota %lu) by uid %u", (unsigned long)o->id, a.backend, (unsigned long)a.quota,
	         (unsigned)c->uid);
	return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_UNSIGNED("space", o->id));
}

static int method_destroy_space(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	static const sd_json_dispatch_field table[] = {
		{"space", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, 0, SD_JSON_MANDATORY},
		{},
	};
	uint64_t id = 0;
	struct client *c;
	int r = vl_begin(link, p, table, &id, &c);
	if (r <= 0)
		return r;
	struct object *o = vl_touch(link, c, OBJECT_SPACE, id);
	if (!o)
		return 0;
	log_info("space %lu destroyed", (unsigned long)o->id);
	object_destroy(o, OBJECT_FORGET, NULL);
	return sd_varlink_reply(link, NULL);
}

struct region_args {
	uint64_t space;
	uint64_t iova;
	uint64_t length;
	int64_t memfd_index;
	uint64_t offset;
	sd_json_variant *access;
	bool allocated;
};

/* Whether every page of [offset, offset + length) of the memfd is allocated:
 * then whoever allocated them was charged for them, and iopfd's pins
 * allocate nothing. Written pages are data to SEEK_HOLE; pages allocated
 * with fallocate() but not written yet are holes to it, so a memfd whose
 * blocks cover all of it counts too. */
static bool fully_allocated(int fd, uint64_t offset, uint64_t length) {
	off_t hole = lseek(fd, (off_t)offset, SEEK_HOLE);
	if (hole >= 0 && (uint64_t)hole >= offset + length)
		return true;
	struct stat st;
	return fstat(fd, &st) == 0 && (uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size;
}

static int access_mask(sd_json_variant *access, uint32_t *out) {
	static const char *const names[] = {"read", "write", "exec", "priv"};
	static const uint32_t bits[] = {IOPF_PERM_READ, IOPF_PERM_WRITE, IOPF_PERM_EXEC, IOPF_PERM_PRIV};
	*out = 0;
	for (size_t i = 0; i < sd_json_variant_elements(access); i++) {
		const char *s = sd_json_variant_string(sd_json_variant_by_index(access, i));
		size_t k = 0;
		while (k < 4 && !(s && strcmp(s, names[k]) == 0))
			k++;
		if (k == 4)
			return -EINVAL;
		*out |= bits[k];
	}
	return 0;
}

/* The reply to a region the address space refused. */
static int region_refused(sd_varlink *link, struct manager *m, enum iopf_region_refusal why, int err) {
	switch (why) {
	case IOPF_REGION_INVALID:
		return vl_error_reason(link, m, VL_INVALID_REGION,
		                       "iova, length and offset must be page aligned, length non-zero, "
		                       "iova + length within 64 bits, access at least read or write");
	case IOPF_REGION_NOT_MEMFD:
		return vl_error_bad_fd(link, m, "memfdIndex", "not a sealable memory file (memfd)");
	case IOPF_REGION_UNSEALED:
		return vl_error(link, m, VL_UNSEALED_MEMORY);
	case IOPF_REGION_OUT_OF_RANGE:
		return vl_error(link, m, VL_REGION_OUT_OF_RANGE);
	case IOPF_REGION_OVERLAP:
		return vl_error(link, m, VL_REGION_OVERLAP);
	case IOPF_REGION_BACKEND:
		return vl_error_backend(link, m, err, strerror(err));
	default:
		return -ENOMEM;
	}
}

static int method_add_region(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	static const sd_json_dispatch_field table[] = {
		{"space", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct region_args, space), SD_JSON_MANDATORY},
		{"iova", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct region_args, iova), SD_JSON_MANDATORY},
		{"length", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct region_args, length), SD_JSON_MANDATORY},
		{"memfdIndex", SD_JSON_VARIANT_INTEGER, sd_json_dispatch_int64, offsetof(struct region_args, memfd_index), SD_JSON_MANDATORY},
		{"offset", _SD_JSON_VARIANT_TYPE_INVALID, vl_dispatch_opt_u64, offsetof(struct region_args, offset), SD_JSON_NULLABLE},
		{"access", SD_JSON_VARIANT_ARRAY, sd_json_dispatch_variant_noref, offsetof(struct region_args, access), SD_JSON_MANDATORY},
		{"allocated", SD_JSON_VARIANT_BOOLEAN, sd_json_dispatch_stdbool, offsetof(struct region_args, allocated), SD_JSON_NULLABLE},
		{},
	};
	struct region_args a = {.memfd_index = -1};
	struct client *c;
	int r = vl_begin(link, p, table, &a, &c);
	if (r <= 0)
		return r;
	struct manager *m = c->m;
	uint32_t perm;
	if (access_mask(a.access, &perm) < 0)
		return vl_error_invalid_parameter(link, m, "access");
	struct object *o = vl_touch(link, c, OBJECT_SPACE, a.space);
	if (!o)
		return 0;
	uint64_t max;
	if (!accounting_allows(&m->acct, o->uid, ACCT_REGIONS, 1, &max))
		return vl_error_limit(link, m, "regions", max);
	int memfd = vl_take_fd(link, m, a.memfd_index, "memfdIndex");
	if (memfd < 0)
		return 0;
	/* Pages iopfd pins but nobody allocated yet are allocated by the pin,
	 * and charged to iopfd's memory cgroup: the caller, or the operator
	 * for every user but root, may insist they are the client's already. */
	bool insist = a.allocated || (m->cfg.config.require_allocated && c->uid != 0);
	if (insist && iopf_space_config(o->s)->backend != IOPF_BACKEND_NONE && a.length &&
	    !fully_allocated(memfd, a.offset, a.length)) {
		close(memfd);
		return vl_error_reason(link, m, VL_INVALID_REGION,
		                       "the memfd has pages not allocated in that range: allocate them first "
		                       "(fallocate), so that they are charged to their owner, not to iopfd");
	}
	struct iopf_region_config rc = {
		.iova = a.iova, .length = a.length, .memfd = memfd, .offset = a.offset, .perm = perm,
	};
	struct iopf_region_info info;
	int err = 0;
	enum iopf_region_refusal why = iopf_space_add_region(o->s, &rc, 0, &info, &err);
	if (why != IOPF_REGION_ADDED)
		return region_refused(link, m, why, err);
	r = object_region_added(o, &info);
	if (r < 0)
		return r;
	return sd_varlink_replybo(link, SD_JSON_BUILD_PAIR_UNSIGNED("region", info.id));
}

struct remove_args {
	uint64_t space;
	uint64_t region;
};

static int method_remove_region(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	static const sd_json_dispatch_field table[] = {
		{"space", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct remove_args, space), SD_JSON_MANDATORY},
		{"region", SD_JSON_VARIANT_UNSIGNED, sd_json_dispatch_uint64, offsetof(struct remove_args, region), SD_JSON_MANDATORY},
		{},
	};
	struct remove_args a = {0};
	struct client *c;
	int r = vl_begin(link, p, table, &a, &c);
	if (r <= 0)
		return r;
	struct object *o = vl_touch(link, c, OBJECT_SPACE, a.space);
	if (!o)
		return 0;
	/* Unpublished, a grace period, then everything pinned in it unmapped:
	 * when the reply goes out, nothing of the region is mapped. */
	r = iopf_space_remove_region(o->s, a.region);
	if (r == -ENOENT)
		return vl_error_no_such(link, c->m, VL_NO_SUCH_REGION, a.region);
	if (r < 0)
		return r;
	object_region_removed(o, a.region);
	return sd_varlink_reply(link, NULL);
}

static int describe_space(struct manager *m, const struct object *o, sd_json_variant **arr) {
	struct iopf_space_stats st;
	iopf_space_get_stats(o->s, &st);
	const struct iopf_space_config *cfg = iopf_space_config(o->s);
	return sd_json_variant_append_arraybo(
		arr, SD_JSON_BUILD_PAIR_UNSIGNED("id", o->id), SD_JSON_BUILD_PAIR_STRING("name", o->name),
		SD_JSON_BUILD_PAIR_STRING("backend", iopf_backend_kind_to_string(cfg->backend)),
		SD_JSON_BUILD_PAIR_STRING("faultAround", iopf_fault_around_to_string(cfg->fault_around)),
		SD_JSON_BUILD_PAIR_STRING("eviction", iopf_eviction_to_string(cfg->eviction)),
		SD_JSON_BUILD_PAIR_UNSIGNED("uid", o->uid), SD_JSON_BUILD_PAIR_UNSIGNED("quota", cfg->quota),
		SD_JSON_BUILD_PAIR_UNSIGNED("pinned", st.pinned_bytes), SD_JSON_BUILD_PAIR_UNSIGNED("pinnedPeak", st.pinned_peak),
		SD_JSON_BUILD_PAIR_UNSIGNED("regions", iopf_space_region_count(o->s)),
		SD_JSON_BUILD_PAIR_UNSIGNED("bindings", iopf_bindings_count_space(iopf_engine_bindings(m->engine), o->s)),
		SD_JSON_BUILD_PAIR_UNSIGNED("maps", st.maps), SD_JSON_BUILD_PAIR_UNSIGNED("unmaps", st.unmaps),
		SD_JSON_BUILD_PAIR_UNSIGNED("evictions", st.evictions), SD_JSON_BUILD_PAIR_UNSIGNED("mapErrors", st.map_errors),
		SD_JSON_BUILD_PAIR_BOOLEAN("persistent", o->persistent));
}

static int method_list_spaces(sd_varlink *link, sd_json_variant *p, sd_varlink_method_flags_t f, void *ud) {
	return vl_reply_objects(link, p, OBJECT_SPACE, "spaces", describe_space);
}

const struct vl_method vl_space_methods[] = {
	{"io.iopfd.CreateSpace", method_create_space},
	{"io.iopfd.DestroySpace", method_destroy_space},
	{"io.iopfd.AddRegion", method_add_region},
	{"io.iopfd.RemoveRegion", method_remove_region},
	{"io.iopfd.ListSpaces", method_list_spaces},
	{},
};
