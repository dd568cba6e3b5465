/* SPDX-License-Identifier: MIT */
/* The batch parser on arbitrary bytes: it must never read outside the
 * buffer, and every group it reports must be well formed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                        \
	do {                            \
		if (!(c))               \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 2)
		return 0;
	uint32_t max_faults = 1 + data[0] % 64;
	size_t max_groups = 1 + data[1] % 128;
	data += 2;
	size -= 2;
	/* Records are read in place: give the parser the alignment it needs,
	 * in a buffer of exactly `size` bytes so ASan sees any overrun. */
	void *buf = size ? aligned_alloc(8, (size + 7) & ~(size_t)7) : NULL;
	if (size)
		memcpy(buf, data, size);
	struct iopf_group *g = calloc(max_groups, sizeof(*g));
	struct iopf_batch b;
	int r = iopf_batch_parse(buf, size, max_faults, g, max_groups, &b);
	CHECK(r == 0 || r == -EBADMSG || r == -EMSGSIZE);
	CHECK(b.consumed <= size && b.n_groups <= max_groups);
	size_t off = 0;
	for (size_t i = 0; i < b.n_groups; i++) {
		CHECK(g[i].n_faults >= 1 && g[i].n_faults <= max_faults);
		CHECK((const uint8_t *)g[i].faults == (const uint8_t *)buf + off);
		const iopf_record *last = &g[i].faults[g[i].n_faults - 1];
		CHECK(last->flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE);
		for (uint32_t j = 0; j < g[i].n_faults; j++) {
			CHECK(g[i].faults[j].cookie == g[i].cookie);
			CHECK(j == g[i].n_faults - 1 || !(g[i].faults[j].flags & IOMMU_PGFAULT_FLAGS_LAST_PAGE));
		}
		CHECK(g[i].defect < _IOPF_GROUP_DEFECT_MAX);
		off += g[i].n_faults * IOPF_RECORD_SIZE;
	}
	CHECK(off == b.consumed);
	CHECK(b.error < _IOPF_BATCH_ERROR_MAX);
	free(g);
	free(buf);
	return 0;
}
