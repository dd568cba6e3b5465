/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "batch.h"
#include "shared/string-table.h"

static uint32_t record_pasid(const iopf_record *r) {
	return (r->flags & IOMMU_PGFAULT_FLAGS_PASID_VALID) ? r->pasid : IOPF_PASID_NONE;
}

/* Field checks for one record of a group that starts at `first`. Only the
 * first defect found is kept: one is enough to refuse the group. */
static enum iopf_group_defect record_defect(const iopf_record *r, const iopf_record *first) {
	if (r->__reserved != 0)
		return IOPF_GROUP_RESERVED;
	if (r->flags & ~(uint32_t)IOPF_FLAGS_KNOWN)
		return IOPF_GROUP_UNKNOWN_FLAGS;
	if (r->perm & ~(uint32_t)IOPF_PERM_KNOWN)
		return IOPF_GROUP_UNKNOWN_PERM;
	if (r->dev_id != first->dev_id || r->grpid != first->grpid ||
	    record_pasid(r) != record_pasid(first))
		return IOPF_GROUP_MIXED_SOURCE;
	return IOPF_GROUP_OK;
}

int iopf_batch_parse(const void *buf, size_t len, uint32_t max_group_faults,
                     struct iopf_group *groups, size_t max_groups, struct iopf_batch *out) {
	if (!out || (len > 0 && !buf) || (max_groups > 0 && !groups) || max_group_faults == 0)
		return -EINVAL;
	/* Records hold a u64; reading them in place needs natural alignment. */
	if ((uintptr_t)buf % _Alignof(iopf_record) != 0)
		return -EINVAL;

	*out = (struct iopf_batch){0};
	const iopf_record *recs = buf;
	size_t n_recs = len / IOPF_RECORD_SIZE;
	size_t i = 0;

	while (i < n_recs && out->n_groups < max_groups) {
		const iopf_record *first = &recs[i];
		enum iopf_group_defect defect = IOPF_GROUP_OK;
		size_t j = i;

		for (;;) {
			if (j - i >= max_group_faults) {
				out->error = IOPF_BATCH_GROUP_TOO_LONG;
				out->error_offset = j * IOPF_RECORD_SIZE;
				return -EMSGSIZE;
			}
			const iopf_record *r = &recs[j];
			if (r->cookie != first->cookie) {
				out->error = IOPF_BATCH_MIXED_COOKIE;
				out->error_offset = j * IOPF_RECORD_SIZE;
				return -EBADMSG;
			}
			if (defect == IOPF_GROUP_OK)
				defect = record_defect(r, first);
			j++;
			if (r->flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE)
				break;
			if (j == n_recs) {
				/* The group goes on past what we have. */
				out->error = (len % IOPF_RECORD_SIZE) ? IOPF_BATCH_PARTIAL_RECORD
				                                      : IOPF_BATCH_PARTIAL_GROUP;
				out->error_offset = i * IOPF_RECORD_SIZE;
				return 0;
			}
		}

		groups[out->n_groups++] = (struct iopf_group){
			.faults = first,
			.n_faults = (uint32_t)(j - i),
			.cookie = first->cookie,
			.dev_id = first->dev_id,
			.pasid = record_pasid(first),
			.defect = defect,
		};
		out->consumed = j * IOPF_RECORD_SIZE;
		i = j;
	}

	if (out->n_groups < max_groups && out->consumed < len && i == n_recs) {
		/* Whole groups all taken; what is left is less than one record. */
		out->error = IOPF_BATCH_PARTIAL_RECORD;
		out->error_offset = out->consumed;
	}
	return 0;
}

static const char *const iopf_group_defect_table[_IOPF_GROUP_DEFECT_MAX] = {
	[IOPF_GROUP_OK] = "ok",
	[IOPF_GROUP_RESERVED] = "reserved field not zero",
	[IOPF_GROUP_UNKNOWN_FLAGS] = "unknown flag bits",
	[IOPF_GROUP_UNKNOWN_PERM] = "unknown permission bits",
	[IOPF_GROUP_MIXED_SOURCE] = "device, PASID or group index differ within the group",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(iopf_group_defect, enum iopf_group_defect)

static const char *const iopf_batch_error_table[_IOPF_BATCH_ERROR_MAX] = {
	[IOPF_BATCH_OK] = "ok",
	[IOPF_BATCH_PARTIAL_RECORD] = "buffer ends inside a record",
	[IOPF_BATCH_PARTIAL_GROUP] = "buffer ends inside a group (no LAST_PAGE)",
	[IOPF_BATCH_MIXED_COOKIE] = "records of one group carry different cookies",
	[IOPF_BATCH_GROUP_TOO_LONG] = "group longer than the limit",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(iopf_batch_error, enum iopf_batch_error)
