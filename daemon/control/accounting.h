/* SPDX-License-Identifier: MIT */
/*
 * What each uid holds, and the limits on it: the one place that counts
 * per-uid use and checks a request against the limits. Root is not limited.
 * Control thread only.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <urcu/list.h>

enum acct_resource {
	ACCT_QUEUES,
	ACCT_SPACES,
	ACCT_REGIONS,
	ACCT_QUOTA, /* bytes: the sum of the quotas of a uid's address spaces */
	_ACCT_RESOURCE_MAX,
};

/* "queues", "spaces", "regions", "quota": as LimitReached names them. */
const char *acct_resource_to_string(enum acct_resource r);

struct iopfd_limits {
	unsigned connections_per_uid; /* enforced by the Varlink server itself */
	uint64_t max[_ACCT_RESOURCE_MAX];
};

struct accounting {
	struct iopfd_limits limits;
	struct cds_list_head uids; /* struct uid_usage */
};

void accounting_init(struct accounting *a, const struct iopfd_limits *limits);
void accounting_done(struct accounting *a);

/* Whether `amount` more of `r` for uid stays within its limit; a root
 * caller (`exempt`) may always. On false, *max is the limit. */
bool accounting_allows(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount, bool exempt,
                       uint64_t *max);
/* Count it (or give it back). -ENOMEM when the uid's entry cannot be made. */
int accounting_charge(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount);
void accounting_release(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount);
uint64_t accounting_used(struct accounting *a, uid_t uid, enum acct_resource r);
