/* SPDX-License-Identifier: MIT */
/* The batch parser: good batches, and each way a batch can be malformed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"

#define LAST IOMMU_PGFAULT_FLAGS_LAST_PAGE
#define PASID IOMMU_PGFAULT_FLAGS_PASID_VALID
#define RD IOMMU_PGFAULT_PERM_READ
#define WR IOMMU_PGFAULT_PERM_WRITE

static iopf_record rec(uint32_t flags, uint32_t dev, uint32_t pasid, uint32_t cookie, uint64_t addr) {
	return (iopf_record){
		.flags = flags, .dev_id = dev, .pasid = pasid, .grpid = cookie & 0x1ff,
		.perm = RD, .addr = addr, .cookie = cookie,
	};
}

/* Parse and expect success; returns the batch summary. */
static struct iopf_batch parse_ok(const void *buf, size_t len, struct iopf_group *g, size_t max) {
	struct iopf_batch b;
	int r = iopf_batch_parse(buf, len, 64, g, max, &b);
	cr_assert_eq(r, 0, "parse failed: %d (%s)", r, iopf_batch_error_to_string(b.error));
	return b;
}

Test(batch, empty_buffer_is_no_groups) {
	struct iopf_group g[4];
	iopf_record r[1] = {0};
	struct iopf_batch b = parse_ok(r, 0, g, 4);
	cr_assert_eq(b.n_groups, 0);
	cr_assert_eq(b.consumed, 0);
	cr_assert_eq(b.error, IOPF_BATCH_OK);
}

Test(batch, single_fault_group) {
	iopf_record r[] = {rec(LAST | PASID, 7, 3, 42, 0x1000)};
	struct iopf_group g[4];
	struct iopf_batch b = parse_ok(r, sizeof(r), g, 4);
	cr_assert_eq(b.n_groups, 1);
	cr_assert_eq(b.consumed, sizeof(r));
	cr_assert_eq(g[0].n_faults, 1);
	cr_assert_eq(g[0].cookie, 42);
	cr_assert_eq(g[0].dev_id, 7);
	cr_assert_eq(g[0].pasid, 3);
	cr_assert_eq(g[0].defect, IOPF_GROUP_OK);
	cr_assert_eq(g[0].faults, &r[0]);
}

Test(batch, pasid_none_without_pasid_valid) {
	iopf_record r[] = {rec(LAST, 7, 99, 1, 0x1000)};
	struct iopf_group g[1];
	parse_ok(r, sizeof(r), g, 1);
	cr_assert_eq(g[0].pasid, IOPF_PASID_NONE, "pasid field must be ignored without PASID_VALID");
}

Test(batch, several_groups_of_several_faults) {
	iopf_record r[] = {
		rec(PASID, 1, 5, 10, 0x1000), rec(PASID, 1, 5, 10, 0x2000), rec(PASID | LAST, 1, 5, 10, 0x3000),
		rec(LAST, 2, 0, 11, 0x9000),
		rec(0, 3, 0, 12, 0x5000), rec(LAST, 3, 0, 12, 0x6000),
	};
	struct iopf_group g[8];
	struct iopf_batch b = parse_ok(r, sizeof(r), g, 8);
	cr_assert_eq(b.n_groups, 3);
	cr_assert_eq(b.consumed, sizeof(r));
	cr_assert_eq(g[0].n_faults, 3);
	cr_assert_eq(g[1].n_faults, 1);
	cr_assert_eq(g[2].n_faults, 2);
	cr_assert_eq(g[1].faults, &r[3]);
	cr_assert_eq(g[2].cookie, 12);
}

Test(batch, stops_at_max_groups_and_resumes) {
	iopf_record r[] = {rec(LAST, 1, 0, 1, 0), rec(LAST, 1, 0, 2, 0), rec(LAST, 1, 0, 3, 0)};
	struct iopf_group g[2];
	struct iopf_batch b = parse_ok(r, sizeof(r), g, 2);
	cr_assert_eq(b.n_groups, 2);
	cr_assert_eq(b.consumed, 2 * sizeof(iopf_record));
	cr_assert_eq(b.error, IOPF_BATCH_OK);
	b = parse_ok((const char *)r + b.consumed, sizeof(r) - b.consumed, g, 2);
	cr_assert_eq(b.n_groups, 1);
	cr_assert_eq(g[0].cookie, 3);
}

Test(batch, truncated_record_after_whole_groups) {
	iopf_record r[2] = {rec(LAST, 1, 0, 1, 0), rec(LAST, 1, 0, 2, 0)};
	struct iopf_group g[4];
	size_t len = sizeof(iopf_record) + 17;
	struct iopf_batch b = parse_ok(r, len, g, 4);
	cr_assert_eq(b.n_groups, 1);
	cr_assert_eq(b.consumed, sizeof(iopf_record));
	cr_assert_eq(b.error, IOPF_BATCH_PARTIAL_RECORD);
	cr_assert_eq(b.error_offset, sizeof(iopf_record));
}

Test(batch, truncated_record_inside_group) {
	iopf_record r[2] = {rec(0, 1, 0, 1, 0), rec(LAST, 1, 0, 1, 0)};
	struct iopf_group g[4];
	struct iopf_batch b = parse_ok(r, sizeof(iopf_record) + 39, g, 4);
	cr_assert_eq(b.n_groups, 0);
	cr_assert_eq(b.consumed, 0);
	cr_assert_eq(b.error, IOPF_BATCH_PARTIAL_RECORD);
}

Test(batch, group_without_last_page_at_end) {
	iopf_record r[] = {rec(LAST, 1, 0, 1, 0), rec(0, 1, 0, 2, 0), rec(0, 1, 0, 2, 0x1000)};
	struct iopf_group g[4];
	struct iopf_batch b = parse_ok(r, sizeof(r), g, 4);
	cr_assert_eq(b.n_groups, 1);
	cr_assert_eq(b.consumed, sizeof(iopf_record));
	cr_assert_eq(b.error, IOPF_BATCH_PARTIAL_GROUP);
	cr_assert_eq(b.error_offset, sizeof(iopf_record));
}

Test(batch, mixed_cookies_inside_group) {
	iopf_record r[] = {rec(LAST, 1, 0, 1, 0), rec(0, 1, 0, 2, 0), rec(LAST, 1, 0, 3, 0x1000)};
	struct iopf_group g[4];
	struct iopf_batch b;
	cr_assert_eq(iopf_batch_parse(r, sizeof(r), 64, g, 4, &b), -EBADMSG);
	cr_assert_eq(b.error, IOPF_BATCH_MIXED_COOKIE);
	cr_assert_eq(b.error_offset, 2 * sizeof(iopf_record));
	cr_assert_eq(b.n_groups, 1, "the good group before the bad one is still reported");
	cr_assert_eq(b.consumed, sizeof(iopf_record));
}

Test(batch, group_longer_than_limit) {
	enum { N = 100 };
	iopf_record *r = calloc(N, sizeof(*r));
	for (int i = 0; i < N; i++)
		r[i] = rec(i == N - 1 ? LAST : 0, 1, 0, 5, (uint64_t)i << 12);
	struct iopf_group g[4];
	struct iopf_batch b;
	cr_assert_eq(iopf_batch_parse(r, N * sizeof(*r), 64, g, 4, &b), -EMSGSIZE);
	cr_assert_eq(b.error, IOPF_BATCH_GROUP_TOO_LONG);
	cr_assert_eq(b.n_groups, 0);
	/* The same group is fine under a limit that allows it. */
	cr_assert_eq(iopf_batch_parse(r, N * sizeof(*r), N, g, 4, &b), 0);
	cr_assert_eq(b.n_groups, 1);
	cr_assert_eq(g[0].n_faults, N);
	free(r);
}

Test(batch, huge_batch_of_one_fault_groups) {
	enum { N = 1 << 18 }; /* 10 MiB of records */
	iopf_record *r = malloc((size_t)N * sizeof(*r));
	for (uint32_t i = 0; i < N; i++)
		r[i] = rec(LAST | PASID, i % 64, i % 16, i % 4096, (uint64_t)i << 12);
	struct iopf_group *g = malloc((size_t)N * sizeof(*g));
	struct iopf_batch b = parse_ok(r, (size_t)N * sizeof(*r), g, N);
	cr_assert_eq(b.n_groups, N);
	cr_assert_eq(b.consumed, (size_t)N * sizeof(*r));
	for (uint32_t i = 0; i < N; i += 4099) {
		cr_assert_eq(g[i].cookie, i % 4096);
		cr_assert_eq(g[i].dev_id, i % 64);
		cr_assert_eq(g[i].pasid, i % 16);
	}
	free(g);
	free(r);
}

Test(batch, reserved_field_marks_group_defective) {
	iopf_record r[] = {rec(0, 1, 0, 1, 0), rec(LAST, 1, 0, 1, 0x1000), rec(LAST, 1, 0, 2, 0)};
	r[1].__reserved = 1;
	struct iopf_group g[4];
	struct iopf_batch b = parse_ok(r, sizeof(r), g, 4);
	cr_assert_eq(b.n_groups, 2);
	cr_assert_eq(g[0].defect, IOPF_GROUP_RESERVED);
	cr_assert_eq(g[0].cookie, 1, "a defective group is still answerable by its cookie");
	cr_assert_eq(g[1].defect, IOPF_GROUP_OK, "a defect does not spill into the next group");
}

Test(batch, unknown_flag_bits) {
	iopf_record r[] = {rec(LAST | 0x80, 1, 0, 1, 0)};
	struct iopf_group g[1];
	parse_ok(r, sizeof(r), g, 1);
	cr_assert_eq(g[0].defect, IOPF_GROUP_UNKNOWN_FLAGS);
}

/* What Intel's VT-d driver hands iommufd for a page request with a PASID:
 * the kernel-internal "response needs PASID" bit comes through. */
Test(batch, vtd_response_needs_pasid_bit_is_known) {
	iopf_record r[] = {rec(LAST | IOMMU_PGFAULT_FLAGS_PASID_VALID | IOPF_PGFAULT_FLAGS_RESPONSE_NEEDS_PASID, 1, 1, 1,
	                       0x1000)};
	struct iopf_group g[1];
	parse_ok(r, sizeof(r), g, 1);
	cr_assert_eq(g[0].defect, IOPF_GROUP_OK);
	cr_assert_eq(g[0].pasid, 1);
}

Test(batch, unknown_perm_bits) {
	iopf_record r[] = {rec(LAST, 1, 0, 1, 0)};
	r[0].perm = RD | 0x10;
	struct iopf_group g[1];
	parse_ok(r, sizeof(r), g, 1);
	cr_assert_eq(g[0].defect, IOPF_GROUP_UNKNOWN_PERM);
}

Test(batch, mixed_device_pasid_or_grpid_in_group) {
	struct iopf_group g[1];
	iopf_record dev[] = {rec(0, 1, 0, 1, 0), rec(LAST, 2, 0, 1, 0)};
	parse_ok(dev, sizeof(dev), g, 1);
	cr_assert_eq(g[0].defect, IOPF_GROUP_MIXED_SOURCE);

	iopf_record pasid[] = {rec(PASID, 1, 4, 1, 0), rec(PASID | LAST, 1, 5, 1, 0)};
	parse_ok(pasid, sizeof(pasid), g, 1);
	cr_assert_eq(g[0].defect, IOPF_GROUP_MIXED_SOURCE);

	iopf_record valid[] = {rec(PASID, 1, 4, 1, 0), rec(LAST, 1, 4, 1, 0)};
	parse_ok(valid, sizeof(valid), g, 1);
	cr_assert_eq(g[0].defect, IOPF_GROUP_MIXED_SOURCE, "PASID_VALID must agree too");

	iopf_record grp[] = {rec(0, 1, 0, 1, 0), rec(LAST, 1, 0, 1, 0)};
	grp[1].grpid ^= 1;
	parse_ok(grp, sizeof(grp), g, 1);
	cr_assert_eq(g[0].defect, IOPF_GROUP_MIXED_SOURCE);
}

Test(batch, bad_arguments) {
	iopf_record r[2] = {rec(LAST, 1, 0, 1, 0)};
	struct iopf_group g[1];
	struct iopf_batch b;
	cr_assert_eq(iopf_batch_parse(NULL, 40, 64, g, 1, &b), -EINVAL);
	cr_assert_eq(iopf_batch_parse(r, 40, 64, g, 1, NULL), -EINVAL);
	cr_assert_eq(iopf_batch_parse(r, 40, 0, g, 1, &b), -EINVAL);
	cr_assert_eq(iopf_batch_parse((char *)r + 4, 40, 64, g, 1, &b), -EINVAL, "misaligned buffer");
	cr_assert_eq(iopf_batch_parse(r, 40, 64, NULL, 1, &b), -EINVAL);
}

Test(batch, error_strings_cover_every_value) {
	for (int i = 0; i < _IOPF_GROUP_DEFECT_MAX; i++)
		cr_assert_not_null(iopf_group_defect_to_string(i), "defect %d has no name", i);
	for (int i = 0; i < _IOPF_BATCH_ERROR_MAX; i++)
		cr_assert_not_null(iopf_batch_error_to_string(i), "error %d has no name", i);
	cr_assert_null(iopf_batch_error_to_string(_IOPF_BATCH_ERROR_MAX));
	cr_assert_null(iopf_group_defect_to_string(_IOPF_GROUP_DEFECT_MAX));
}
