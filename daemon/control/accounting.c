/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "accounting.h"
#include "shared/string-table.h"

struct uid_usage {
	uid_t uid;
	uint64_t used[_ACCT_RESOURCE_MAX];
	struct cds_list_head node;
};

static const char *const acct_resource_table[_ACCT_RESOURCE_MAX] = {
	[ACCT_QUEUES] = "queues",
	[ACCT_SPACES] = "spaces",
	[ACCT_REGIONS] = "regions",
	[ACCT_QUOTA] = "quota",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(acct_resource, enum acct_resource)

void accounting_init(struct accounting *a, const struct iopfd_limits *limits) {
	a->limits = *limits;
	CDS_INIT_LIST_HEAD(&a->uids);
}

void accounting_done(struct accounting *a) {
	struct uid_usage *u, *t;
	cds_list_for_each_entry_safe(u, t, &a->uids, node) {
		cds_list_del(&u->node);
		free(u);
	}
}

static struct uid_usage *find(struct accounting *a, uid_t uid) {
	struct uid_usage *u;
	cds_list_for_each_entry(u, &a->uids, node)
		if (u->uid == uid)
			return u;
	return NULL;
}

uint64_t accounting_used(struct accounting *a, uid_t uid, enum acct_resource r) {
	struct uid_usage *u = find(a, uid);
	return u ? u->used[r] : 0;
}

bool accounting_allows(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount, bool exempt,
                       uint64_t *max) {
	uint64_t limit = a->limits.max[r], used = accounting_used(a, uid, r);
	*max = limit;
	return exempt || (amount <= limit && used <= limit - amount);
}

int accounting_charge(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount) {
	struct uid_usage *u = find(a, uid);
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return -ENOMEM;
		u->uid = uid;
		cds_list_add(&u->node, &a->uids);
	}
	u->used[r] += amount;
	return 0;
}

void accounting_release(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount) {
	struct uid_usage *u = find(a, uid);
	if (u)
		u->used[r] -= amount < u->used[r] ? amount : u->used[r];
}
