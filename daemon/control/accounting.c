/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"
#include "config.h"
#include "engine/space.h"
#include "shared/string-table.h"

static const char *const acct_resource_table[_ACCT_RESOURCE_MAX] = {
	[ACCT_QUEUES] = "queues",
	[ACCT_SPACES] = "spaces",
	[ACCT_REGIONS] = "regions",
	[ACCT_PIN] = "pin",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(acct_resource, enum acct_resource)

void accounting_init(struct accounting *a, const struct iopfd_config *cfg) {
	a->cfg = cfg;
	CDS_INIT_LIST_HEAD(&a->uids);
}

void accounting_done(struct accounting *a) {
	struct uid_usage *u, *t;
	cds_list_for_each_entry_safe(u, t, &a->uids, node) {
		cds_list_del(&u->node);
		free(u);
	}
}

static void budget_of(struct accounting *a, struct uid_usage *u) {
	struct pin_budget b;
	config_pin_budget(a->cfg, u->uid, &b);
	u->pin_budget = b.bytes;
	snprintf(u->pin_source, sizeof(u->pin_source), "%s", b.source);
}

void accounting_reconfigure(struct accounting *a, const struct iopfd_config *cfg) {
	a->cfg = cfg;
	struct uid_usage *u;
	cds_list_for_each_entry(u, &a->uids, node)
		budget_of(a, u);
}

static struct uid_usage *find(const struct accounting *a, uid_t uid) {
	struct uid_usage *u;
	cds_list_for_each_entry(u, &a->uids, node)
		if (u->uid == uid)
			return u;
	return NULL;
}

struct uid_usage *accounting_user(struct accounting *a, uid_t uid) {
	struct uid_usage *u = find(a, uid);
	if (u)
		return u;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	budget_of(a, u);
	cds_list_add_tail(&u->node, &a->uids);
	return u;
}

const struct uid_usage *accounting_next(const struct accounting *a, const struct uid_usage *prev) {
	const struct cds_list_head *next = prev ? prev->node.next : a->uids.next;
	return next == &a->uids ? NULL : cds_list_entry(next, struct uid_usage, node);
}

uint64_t accounting_used(struct accounting *a, uid_t uid, enum acct_resource r) {
	struct uid_usage *u = find(a, uid);
	return u ? u->used[r] : 0;
}

bool accounting_allows(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount, uint64_t *max) {
	uint64_t limit;
	if (r == ACCT_PIN) {
		struct uid_usage *u = accounting_user(a, uid);
		if (!u) {
			*max = 0;
			return false; /* without memory nothing can be made anyway */
		}
		limit = u->pin_budget;
	} else {
		limit = a->cfg->limits.max[r];
		if (uid == 0)
			limit = UINT64_MAX;
	}
	uint64_t used = accounting_used(a, uid, r);
	*max = limit;
	return amount <= limit && used <= limit - amount;
}

int accounting_charge(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount) {
	struct uid_usage *u = accounting_user(a, uid);
	if (!u)
		return -ENOMEM;
	u->used[r] += amount;
	return 0;
}

void accounting_release(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount) {
	struct uid_usage *u = find(a, uid);
	if (u)
		u->used[r] -= amount < u->used[r] ? amount : u->used[r];
}

uint64_t accounting_pin_reservation(const struct iopf_space_config *sc) {
	return sc->backend == IOPF_BACKEND_NONE ? 0 : sc->quota;
}
