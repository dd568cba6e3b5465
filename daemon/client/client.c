/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "iopfd/client.h"

int iopfc_connect(const char *path, sd_varlink **ret) {
	sd_varlink *v = NULL;
	int r = sd_varlink_connect_address(&v, path);
	if (r < 0)
		return r;
	r = sd_varlink_set_allow_fd_passing_output(v, true);
	if (r < 0) {
		sd_varlink_unref(v);
		return r;
	}
	*ret = v;
	return 0;
}

int iopfc_call(sd_varlink *v, const char *method, sd_json_variant *params, const int *fds, unsigned n_fds,
               sd_json_variant **reply, const char **error) {
	for (unsigned i = 0; i < n_fds; i++) {
		int r = sd_varlink_push_dup_fd(v, fds[i]);
		if (r < 0)
			return r;
	}
	sd_json_variant *rep = NULL;
	const char *err = NULL;
	int r = sd_varlink_call(v, method, params, &rep, &err);
	if (error)
		*error = err;
	if (reply)
		*reply = rep;
	if (r < 0)
		return r;
	return err ? -EREMOTEIO : 0;
}

uint64_t iopfc_u64(sd_json_variant *obj, const char *field) {
	sd_json_variant *f = obj ? sd_json_variant_by_key(obj, field) : NULL;
	return f && sd_json_variant_is_unsigned(f) ? sd_json_variant_unsigned(f) : 0;
}

/* Build parameters, call, free them. */
static int callb(sd_varlink *v, const char *method, const int *fds, unsigned n_fds, sd_json_variant **reply,
                 const char **error, sd_json_variant *params) {
	int r = iopfc_call(v, method, params, fds, n_fds, reply, error);
	sd_json_variant_unref(params);
	return r;
}

int iopfc_register_queue(sd_varlink *v, int fd, const char *transport, const char *name, uint32_t *queue,
                         const char **error) {
	sd_json_variant *p = NULL, *rep;
	int r = sd_json_buildo(&p, SD_JSON_BUILD_PAIR_INTEGER("fdIndex", 0),
	                       SD_JSON_BUILD_PAIR_CONDITION(!!transport, "transport", SD_JSON_BUILD_STRING(transport)),
	                       SD_JSON_BUILD_PAIR_CONDITION(!!name, "name", SD_JSON_BUILD_STRING(name)));
	if (r < 0)
		return r;
	r = callb(v, "io.iopfd.RegisterQueue", &fd, 1, &rep, error, p);
	if (r == 0 && queue)
		*queue = (uint32_t)iopfc_u64(rep, "queue");
	return r;
}

int iopfc_unregister_queue(sd_varlink *v, uint32_t queue, const char **error) {
	sd_json_variant *p = NULL;
	int r = sd_json_buildo(&p, SD_JSON_BUILD_PAIR_UNSIGNED("queue", queue));
	return r < 0 ? r : callb(v, "io.iopfd.UnregisterQueue", NULL, 0, NULL, error, p);
}

int iopfc_create_space(sd_varlink *v, const char *backend, uint64_t quota, uint64_t window_min,
                       uint64_t window_max, int iommufd, uint32_t ioas_id, uint64_t *space, const char **error) {
	sd_json_variant *p = NULL, *rep;
	bool fd = iommufd >= 0;
	int r = sd_json_buildo(&p, SD_JSON_BUILD_PAIR_STRING("backend", backend),
	                       SD_JSON_BUILD_PAIR_UNSIGNED("quota", quota),
	                       SD_JSON_BUILD_PAIR_CONDITION(window_min > 0, "windowMin", SD_JSON_BUILD_UNSIGNED(window_min)),
	                       SD_JSON_BUILD_PAIR_CONDITION(window_max > 0, "windowMax", SD_JSON_BUILD_UNSIGNED(window_max)),
	                       SD_JSON_BUILD_PAIR_CONDITION(fd, "iommufdIndex", SD_JSON_BUILD_INTEGER(0)),
	                       SD_JSON_BUILD_PAIR_CONDITION(fd, "ioasId", SD_JSON_BUILD_UNSIGNED(ioas_id)));
	if (r < 0)
		return r;
	r = callb(v, "io.iopfd.CreateSpace", fd ? &iommufd : NULL, fd ? 1 : 0, &rep, error, p);
	if (r == 0 && space)
		*space = iopfc_u64(rep, "space");
	return r;
}

int iopfc_destroy_space(sd_varlink *v, uint64_t space, const char **error) {
	sd_json_variant *p = NULL;
	int r = sd_json_buildo(&p, SD_JSON_BUILD_PAIR_UNSIGNED("space", space));
	return r < 0 ? r : callb(v, "io.iopfd.DestroySpace", NULL, 0, NULL, error, p);
}

int iopfc_add_region(sd_varlink *v, uint64_t space, uint64_t iova, uint64_t length, int memfd, uint64_t offset,
                     uint32_t access, uint64_t *region, const char **error) {
	sd_json_variant *p = NULL, *acc = NULL, *rep;
	static const char *const names[] = {"read", "write", "exec", "priv"};
	int r = sd_json_variant_new_array(&acc, NULL, 0);
	for (int i = 0; i < 4 && r >= 0; i++)
		if (access & (1u << i))
			r = sd_json_variant_append_arrayb(&acc, SD_JSON_BUILD_STRING(names[i]));
	if (r >= 0)
		r = sd_json_buildo(&p, SD_JSON_BUILD_PAIR_UNSIGNED("space", space), SD_JSON_BUILD_PAIR_UNSIGNED("iova", iova),
		                   SD_JSON_BUILD_PAIR_UNSIGNED("length", length), SD_JSON_BUILD_PAIR_INTEGER("memfdIndex", 0),
		                   SD_JSON_BUILD_PAIR_UNSIGNED("offset", offset), SD_JSON_BUILD_PAIR_VARIANT("access", acc));
	sd_json_variant_unref(acc);
	if (r < 0)
		return r;
	r = callb(v, "io.iopfd.AddRegion", &memfd, 1, &rep, error, p);
	if (r == 0 && region)
		*region = iopfc_u64(rep, "region");
	return r;
}

int iopfc_remove_region(sd_varlink *v, uint64_t space, uint64_t region, const char **error) {
	sd_json_variant *p = NULL;
	int r = sd_json_buildo(&p, SD_JSON_BUILD_PAIR_UNSIGNED("space", space), SD_JSON_BUILD_PAIR_UNSIGNED("region", region));
	return r < 0 ? r : callb(v, "io.iopfd.RemoveRegion", NULL, 0, NULL, error, p);
}

static int bind_call(sd_varlink *v, const char *method, uint32_t queue, uint32_t device, uint32_t pasid,
                     int64_t space, const char **error) {
	sd_json_variant *p = NULL;
	int r = sd_json_buildo(&p, SD_JSON_BUILD_PAIR_UNSIGNED("queue", queue), SD_JSON_BUILD_PAIR_UNSIGNED("device", device),
	                       SD_JSON_BUILD_PAIR_CONDITION(pasid != IOPFC_PASID_NONE, "pasid", SD_JSON_BUILD_UNSIGNED(pasid)),
	                       SD_JSON_BUILD_PAIR_CONDITION(space >= 0, "space", SD_JSON_BUILD_UNSIGNED((uint64_t)space)));
	return r < 0 ? r : callb(v, method, NULL, 0, NULL, error, p);
}

int iopfc_bind(sd_varlink *v, uint32_t queue, uint32_t device, uint32_t pasid, uint64_t space, const char **error) {
	return bind_call(v, "io.iopfd.Bind", queue, device, pasid, (int64_t)space, error);
}

int iopfc_unbind(sd_varlink *v, uint32_t queue, uint32_t device, uint32_t pasid, const char **error) {
	return bind_call(v, "io.iopfd.Unbind", queue, device, pasid, -1, error);
}

int iopfc_statistics(sd_varlink *v, sd_json_variant **stats, const char **error) {
	sd_json_variant *rep = NULL;
	int r = iopfc_call(v, "io.iopfd.GetStatistics", NULL, NULL, 0, &rep, error);
	if (r == 0 && stats)
		*stats = sd_json_variant_by_key(rep, "statistics");
	return r;
}
