/* SPDX-License-Identifier: MIT */
/*
 * Restart without loss (docs/restart.md). What a persistent object needs
 * lives outside the process: its fds in systemd's fd store, its description
 * in a state memfd (state.h; two of them written in turn, so that one is
 * always whole), and the groups read but not answered in the journal
 * (engine/journal.h). On start the daemon takes all of it back, answers
 * every journaled group, and only then serves new faults.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/journal.h"
#include "fdstore.h"

struct manager;

struct restart {
	struct fdstore_passed passed; /* what the fd store handed back, until restored */
	int state_fd[2];
	unsigned state_next; /* the copy written next (the older one) */
	uint64_t state_gen;
	int journal_fd;
	void *journal_map;
	size_t journal_size;
	struct iopf_journal journal;
	bool journal_deferred; /* the previous journal, formatted once all it held is answered */
	struct iopf_journal_entry *pending; /* what the previous daemon left */
	size_t n_pending;
	uint64_t restored_objects, recovered_groups, reanswered_groups;
};

void restart_init(struct restart *r);
void restart_done(struct restart *r);
/* Before the engine starts: take back what the fd store kept, and set up
 * this run's journal (keeping what the last one held). */
int restart_prepare(struct manager *m);
/* After the engine started: restore the persistent objects, answer every
 * group the journal holds, then hand the queues to the workers. */
int restart_restore(struct manager *m);
/* Write the persistent objects' state now. */
int restart_save_state(struct manager *m);
