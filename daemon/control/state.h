/* SPDX-License-Identifier: MIT */
/*
 * The persistent objects' description, as a restarted daemon reads it: a
 * JSON object kept in a state memfd (restart.c keeps two, written in turn).
 * Parsing checks everything against what a daemon could have written:
 * anything implausible refuses the whole state (-EBADMSG), never a field
 * defaulted to 0.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/queue.h"
#include "engine/space.h"

struct manager;

struct state_region {
	uint64_t id, iova, length, offset;
	uint32_t perm;
	bool memfd; /* its memfd is in the fd store */
};

struct state_space {
	uint64_t id;
	char *name;
	uid_t uid;
	struct iopf_space_config cfg; /* iommufd: -1 (the fd store has it) */
	bool watched;                 /* its creator's pidfd is in the fd store */
	struct state_region *regions;
	size_t n_regions;
};

struct state_queue {
	uint64_t id;
	char *name;
	uid_t uid;
	enum iopf_transport_kind transport;
	bool watched;
};

struct state_binding {
	uint64_t queue, space;
	uint32_t device, pasid;
};

struct state {
	uint64_t generation;
	uint64_t next_queue_id, next_space_id;
	struct state_queue *queues;
	size_t n_queues;
	struct state_space *spaces;
	size_t n_spaces;
	struct state_binding *bindings;
	size_t n_bindings;
};

/* The persistent objects of m as JSON text, with this generation. */
int state_format(struct manager *m, uint64_t generation, char **ret);
/* Parse and check a state's text. */
int state_parse(const char *text, struct state *ret);
void state_done(struct state *s);
