/* SPDX-License-Identifier: MIT */
/*
 * Splitting a buffer of fault records into fault groups.
 *
 * Both transports deliver the same 40-byte records: a group is a run of
 * records that ends with IOMMU_PGFAULT_FLAGS_LAST_PAGE, and every record of a
 * group carries the group's cookie. The parser only checks structure and
 * fields; it never looks anything up. Groups point into the caller's buffer.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "iopf_abi.h"

/* PASIDs are 20 bits wide; this value means "no PASID" (PASID_VALID clear). */
#define IOPF_PASID_NONE UINT32_MAX

/* Why a whole group must be answered INVALID without being resolved. The
 * group itself is well delimited and has one cookie, so it can be answered. */
enum iopf_group_defect {
	IOPF_GROUP_OK = 0,
	IOPF_GROUP_RESERVED,      /* a record's __reserved field is not zero */
	IOPF_GROUP_UNKNOWN_FLAGS, /* flag bits this daemon does not know */
	IOPF_GROUP_UNKNOWN_PERM,  /* permission bits this daemon does not know */
	IOPF_GROUP_MIXED_SOURCE,  /* dev_id, PASID or group index differ inside the group */
	_IOPF_GROUP_DEFECT_MAX,
};

/* Why parsing stopped before the end of the buffer. */
enum iopf_batch_error {
	IOPF_BATCH_OK = 0,
	IOPF_BATCH_PARTIAL_RECORD, /* the buffer ends inside a record */
	IOPF_BATCH_PARTIAL_GROUP,  /* the buffer ends inside a group (no LAST_PAGE yet) */
	IOPF_BATCH_MIXED_COOKIE,   /* records of one group carry different cookies */
	IOPF_BATCH_GROUP_TOO_LONG, /* a group runs past the caller's limit */
	_IOPF_BATCH_ERROR_MAX,
};

struct iopf_group {
	const iopf_record *faults; /* first record, inside the parsed buffer */
	uint32_t n_faults;
	uint32_t cookie;
	uint32_t dev_id;
	uint32_t pasid;  /* IOPF_PASID_NONE when PASID_VALID is clear */
	uint32_t defect; /* enum iopf_group_defect */
};

struct iopf_batch {
	size_t n_groups;            /* groups written to the caller's array */
	size_t consumed;            /* bytes taken by those groups */
	enum iopf_batch_error error; /* why parsing stopped short of the end */
	size_t error_offset;        /* byte offset of the record at fault */
};

/*
 * Parse whole groups from buf[0..len) into groups[0..max_groups).
 *
 * Returns 0 when the buffer parsed cleanly up to the end, up to max_groups,
 * or up to a partial record or group (out->error says which; a stream
 * transport keeps the rest for its next read, the kernel transport never
 * sees one). Returns -EBADMSG for mixed cookies and -EMSGSIZE for a group
 * longer than max_group_faults: the stream cannot be resynchronized. Returns
 * -EINVAL for bad arguments (buf must be 8-byte aligned). Groups before the
 * failure are still reported in out.
 */
int iopf_batch_parse(const void *buf, size_t len, uint32_t max_group_faults,
                     struct iopf_group *groups, size_t max_groups, struct iopf_batch *out);

/* What a defect or an error is, in words (NULL when out of range). */
const char *iopf_group_defect_to_string(enum iopf_group_defect d);
const char *iopf_batch_error_to_string(enum iopf_batch_error e);
