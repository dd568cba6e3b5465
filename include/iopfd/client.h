/* SPDX-License-Identifier: MIT */
/*
 * libiopfd: a small C client of io.iopfd, iopfd's Varlink interface
 * (io.iopfd(7)), over sd-varlink. Build with
 *   cc ... $(pkg-config --cflags --libs iopfd)
 * iopfctl, the tests and the benchmark use it too; examples/ shows a VMM's
 * side of it.
 *
 * A connection is an sd_varlink (free it with sd_varlink_unref(); the
 * objects it made go with it unless persistent) and, like sd_varlink, is
 * used from one thread at a time. fds are pushed with the call as
 * duplicates: the caller keeps its own and closes them when it likes.
 *
 * Every call returns 0, -EREMOTEIO when the daemon answered with an error
 * (its name in *error, e.g. "io.iopfd.PinBudgetExceeded", valid until the
 * next call on the link), or another negative errno when the link failed.
 * The exported symbols are versioned LIBIOPFD_0.
 */
#pragma once

#include <stdint.h>

#include <systemd/sd-json.h>
#include <systemd/sd-varlink.h>

/* Where iopfd listens unless told otherwise (systemd's iopfd.socket too). */
#define IOPFD_SOCKET_DEFAULT "/run/iopfd/io.iopfd"

#define IOPFC_PASID_NONE UINT32_MAX

int iopfc_connect(const char *path, sd_varlink **ret);

/* A raw call with fds; *reply (optional) is valid until the next call. */
int iopfc_call(sd_varlink *v, const char *method, sd_json_variant *params, const int *fds, unsigned n_fds,
               sd_json_variant **reply, const char **error);

int iopfc_register_queue(sd_varlink *v, int fd, const char *transport, const char *name, uint32_t *queue,
                         const char **error);
int iopfc_unregister_queue(sd_varlink *v, uint32_t queue, const char **error);
/* iommufd < 0 for backends other than iommufd. window_* 0: the default. */
int iopfc_create_space(sd_varlink *v, const char *backend, uint64_t quota, uint64_t window_min,
                       uint64_t window_max, int iommufd, uint32_t ioas_id, uint64_t *space, const char **error);
int iopfc_destroy_space(sd_varlink *v, uint64_t space, const char **error);
/* access: a mask of IOPF_PERM_* bits (read 1, write 2, exec 4, priv 8). */
int iopfc_add_region(sd_varlink *v, uint64_t space, uint64_t iova, uint64_t length, int memfd, uint64_t offset,
                     uint32_t access, uint64_t *region, const char **error);
int iopfc_remove_region(sd_varlink *v, uint64_t space, uint64_t region, const char **error);
int iopfc_bind(sd_varlink *v, uint32_t queue, uint32_t device, uint32_t pasid, uint64_t space, const char **error);
int iopfc_unbind(sd_varlink *v, uint32_t queue, uint32_t device, uint32_t pasid, const char **error);
/* The Statistics object (valid until the next call). */
int iopfc_statistics(sd_varlink *v, sd_json_variant **stats, const char **error);
/* A field of an object as an unsigned (0 when absent). */
uint64_t iopfc_u64(sd_json_variant *obj, const char *field);
