/* SPDX-License-Identifier: MIT */
/*
 * What each uid holds, and the limits on it: the one place that counts
 * per-uid use and checks a request against the configured limits and pin
 * budgets (config.h). The per-uid counts do not apply to root; the pin
 * budget applies to everyone, root included (its compiled-in grant is
 * unlimited). Control thread only.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <urcu/list.h>

struct iopf_space_config;
struct iopfd_config;

enum acct_resource {
	ACCT_QUEUES,
	ACCT_SPACES,
	ACCT_REGIONS,
	ACCT_PIN, /* bytes: the quotas of the uid's address spaces whose backend pins */
	_ACCT_RESOURCE_MAX,
};

/* "queues", "spaces", "regions", "pin": as LimitReached names them. */
const char *acct_resource_to_string(enum acct_resource r);

struct iopfd_limits {
	unsigned connections_per_uid; /* checked when a client connects (clients.c) */
	uint64_t max[_ACCT_RESOURCE_MAX]; /* counts; [ACCT_PIN] is the budgets' */
};

/* A uid's use, and its pin budget as the configuration gives it. */
struct uid_usage {
	uid_t uid;
	uint64_t used[_ACCT_RESOURCE_MAX];
	uint64_t pin_budget;
	char pin_source[96]; /* "user root", "group kvm", "default" */
	struct cds_list_head node;
};

struct accounting {
	const struct iopfd_config *cfg;
	struct cds_list_head uids; /* struct uid_usage */
};

void accounting_init(struct accounting *a, const struct iopfd_config *cfg);
void accounting_done(struct accounting *a);
/* A new configuration: every known uid's budget is worked out again. What
 * is reserved stays; only new reservations meet the new budgets. */
void accounting_reconfigure(struct accounting *a, const struct iopfd_config *cfg);

/* The uid's entry, made (with its budget) when it has none: NULL only
 * without memory. */
struct uid_usage *accounting_user(struct accounting *a, uid_t uid);
/* Every uid seen so far, in no particular order: start with NULL. */
const struct uid_usage *accounting_next(const struct accounting *a, const struct uid_usage *prev);

/* Whether `amount` more of `r` stays within uid's limit (root: counts are
 * not limited) or budget. On false, *max is the limit or the budget. */
bool accounting_allows(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount, uint64_t *max);
/* Count it (or give it back). -ENOMEM when the uid's entry cannot be made. */
int accounting_charge(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount);
void accounting_release(struct accounting *a, uid_t uid, enum acct_resource r, uint64_t amount);
uint64_t accounting_used(struct accounting *a, uid_t uid, enum acct_resource r);

/* What an address space reserves of its owner's pin budget: its quota when
 * its backend pins, else nothing. */
uint64_t accounting_pin_reservation(const struct iopf_space_config *sc);
