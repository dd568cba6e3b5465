/* SPDX-License-Identifier: MIT */
/*
 * The kernel ABI iopfd speaks: iommufd fault records and responses, and the
 * iommufd ioctls the daemon issues.
 *
 * The system <linux/iommufd.h> is used when it has the fault uAPI (6.11+);
 * otherwise the definitions below stand in, laid out exactly as the kernel
 * defines them. Newer ioctls (IOMMU_IOAS_MAP_FILE, 6.13+) are defined here
 * when the system header predates them: the daemon detects at run time
 * whether the running kernel has them (ENOTTY), not at build time.
 *
 * The same records travel over relay sockets (see include/iopfd/queue.h), so
 * this header is the wire contract for both transports.
 */
#pragma once

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/types.h>

#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#endif

#ifndef IOMMUFD_TYPE
#define IOMMUFD_TYPE (';')
#endif

/* 6.11 added the fault uAPI; IOMMU_FAULT_QUEUE_ALLOC came with it. */
#ifndef IOMMU_FAULT_QUEUE_ALLOC
enum iommu_hwpt_pgfault_flags {
	IOMMU_PGFAULT_FLAGS_PASID_VALID = (1 << 0),
	IOMMU_PGFAULT_FLAGS_LAST_PAGE = (1 << 1),
};

enum iommu_hwpt_pgfault_perm {
	IOMMU_PGFAULT_PERM_READ = (1 << 0),
	IOMMU_PGFAULT_PERM_WRITE = (1 << 1),
	IOMMU_PGFAULT_PERM_EXEC = (1 << 2),
	IOMMU_PGFAULT_PERM_PRIV = (1 << 3),
};

struct iommu_hwpt_pgfault {
	__u32 flags;
	__u32 dev_id;
	__u32 pasid;
	__u32 grpid;
	__u32 perm;
	__u32 __reserved;
	__aligned_u64 addr;
	__u32 length;
	__u32 cookie;
};

enum iommufd_page_response_code {
	IOMMUFD_PAGE_RESP_SUCCESS = 0,
	IOMMUFD_PAGE_RESP_INVALID = 1,
};

struct iommu_hwpt_page_response {
	__u32 cookie;
	__u32 code;
};

struct iommu_fault_alloc {
	__u32 size;
	__u32 flags;
	__u32 out_fault_id;
	__u32 out_fault_fd;
};
#define IOMMU_FAULT_QUEUE_ALLOC _IO(IOMMUFD_TYPE, 0x8e)
#endif /* IOMMU_FAULT_QUEUE_ALLOC */

/* 6.13 added mapping a file (memfd) range into an IOAS. */
#ifndef IOMMU_IOAS_MAP_FILE
struct iommu_ioas_map_file {
	__u32 size;
	__u32 flags;
	__u32 ioas_id;
	__s32 fd;
	__aligned_u64 start;
	__aligned_u64 length;
	__aligned_u64 iova;
};
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, 0x8f)
#endif

/* Map and unmap have been there since 6.2, but keep the build independent of
 * how old the system header is. */
#ifndef IOMMU_IOAS_MAP
enum iommufd_ioas_map_flags {
	IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
	IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
	IOMMU_IOAS_MAP_READABLE = 1 << 2,
};

struct iommu_ioas_map {
	__u32 size;
	__u32 flags;
	__u32 ioas_id;
	__u32 __reserved;
	__aligned_u64 user_va;
	__aligned_u64 length;
	__aligned_u64 iova;
};
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, 0x85)

struct iommu_ioas_iova_ranges {
	__u32 size;
	__u32 ioas_id;
	__u32 num_iovas;
	__u32 __reserved;
	__aligned_u64 allowed_iovas;
	__aligned_u64 out_iova_alignment;
};
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, 0x84)

struct iommu_ioas_unmap {
	__u32 size;
	__u32 ioas_id;
	__aligned_u64 iova;
	__aligned_u64 length;
};
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, 0x86)
#endif

/* Short names used throughout iopfd. */
typedef struct iommu_hwpt_pgfault iopf_record;
typedef struct iommu_hwpt_page_response iopf_response;

#define IOPF_RECORD_SIZE 40u
#define IOPF_RESPONSE_SIZE 8u

/* Not in the uAPI enum, but set on real hardware: iommufd copies the IOMMU
 * core's fault flags verbatim (iommufd/eventq.c, hwpt_fault->flags =
 * fault->prm.flags), and Intel's page request handler adds
 * IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID (include/linux/iommu.h, 1 << 2) to
 * every request with a PASID (intel/prq.c, intel_prq_report). Seen with the
 * guest's VT-d driver in tools/dev vmtest --real-iommu; the mock device
 * never sets it. The kernel puts the PASID in the response itself. */
#define IOPF_PGFAULT_FLAGS_RESPONSE_NEEDS_PASID (1u << 2)
#define IOPF_FLAGS_KNOWN                                                                     \
	(IOMMU_PGFAULT_FLAGS_PASID_VALID | IOMMU_PGFAULT_FLAGS_LAST_PAGE |                  \
	 IOPF_PGFAULT_FLAGS_RESPONSE_NEEDS_PASID)
#define IOPF_PERM_KNOWN                                                                      \
	(IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE | IOMMU_PGFAULT_PERM_EXEC |    \
	 IOMMU_PGFAULT_PERM_PRIV)

/* The kernel rejects any read that is not a multiple of the record size
 * (ESPIPE) and any response array that is not a multiple of 8; these layouts
 * are fixed forever by the uAPI, so a mismatch here is a build break. */
static_assert(sizeof(struct iommu_hwpt_pgfault) == IOPF_RECORD_SIZE, "fault record is 40 bytes");
static_assert(offsetof(struct iommu_hwpt_pgfault, flags) == 0, "flags at 0");
static_assert(offsetof(struct iommu_hwpt_pgfault, dev_id) == 4, "dev_id at 4");
static_assert(offsetof(struct iommu_hwpt_pgfault, pasid) == 8, "pasid at 8");
static_assert(offsetof(struct iommu_hwpt_pgfault, grpid) == 12, "grpid at 12");
static_assert(offsetof(struct iommu_hwpt_pgfault, perm) == 16, "perm at 16");
static_assert(offsetof(struct iommu_hwpt_pgfault, __reserved) == 20, "__reserved at 20");
static_assert(offsetof(struct iommu_hwpt_pgfault, addr) == 24, "addr at 24");
static_assert(offsetof(struct iommu_hwpt_pgfault, length) == 32, "length at 32");
static_assert(offsetof(struct iommu_hwpt_pgfault, cookie) == 36, "cookie at 36");
static_assert(sizeof(struct iommu_hwpt_page_response) == IOPF_RESPONSE_SIZE, "response is 8 bytes");
static_assert(offsetof(struct iommu_hwpt_page_response, cookie) == 0, "cookie at 0");
static_assert(offsetof(struct iommu_hwpt_page_response, code) == 4, "code at 4");
static_assert(sizeof(struct iommu_ioas_map_file) == 40, "map_file is 40 bytes");
static_assert(offsetof(struct iommu_ioas_map_file, fd) == 12, "map_file.fd at 12");
static_assert(offsetof(struct iommu_ioas_map_file, start) == 16, "map_file.start at 16");
static_assert(offsetof(struct iommu_ioas_map_file, iova) == 32, "map_file.iova at 32");
static_assert(sizeof(struct iommu_ioas_map) == 40, "ioas_map is 40 bytes");
static_assert(sizeof(struct iommu_ioas_unmap) == 24, "ioas_unmap is 24 bytes");
