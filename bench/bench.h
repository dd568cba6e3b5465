/* SPDX-License-Identifier: MIT */
/*
 * What iopf-bench's parts share: the shape of a run, its result, the load
 * (address space, bindings, socket pairs, emulators) and the handlers that
 * are measured against each other on that same load.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "emu.h"
#include "engine/space.h"
#include "engine/stats.h"

struct iopf_bindings;

enum bench_mode {
	MODE_IOPFD,       /* the engine in this process */
	MODE_NAIVE,       /* one record per read, one write per response */
	MODE_PERQUEUE,    /* one blocking thread per queue, batched reads, one write per group */
	MODE_ECHO,        /* do-nothing epoll handler: batched reads, one write per batch, no lookup */
	MODE_PINGPONG,    /* the do-nothing handler, one queue, one group in flight: the latency floor */
	MODE_MLOCK_FLOOR, /* mlock/munlock of the same windows in a tight loop */
	MODE_DAEMON,      /* a real iopfd over its Varlink socket */
	_MODE_MAX,
};

extern const char *const bench_mode_name[_MODE_MAX];

struct bench_cfg {
	const char *scenario; /* suite: which scenario a run belongs to */
	unsigned queues, devices, pasids, outstanding, workers;
	unsigned group_min, group_max;
	enum emu_sizes sizes;
	double group_mean;
	enum emu_pattern pattern;
	double zipf_s;
	uint64_t pages;
	double rate; /* open loop: groups/s over all queues; 0: closed loop */
	unsigned duration_ms;
	uint64_t seed;
	enum iopf_backend_kind backend;
	uint64_t quota, window;
	unsigned modes; /* 1 << enum bench_mode */
	/* daemon mode */
	const char *socket, *spawn, *then;
	bool demo;
};

struct bench_result {
	enum bench_mode mode;
	bool ran;
	double seconds;
	/* CPU time over the run: the emulator's thread, and the rest of this
	 * process (the handler: the engine's workers, or a baseline's threads;
	 * not measured for a daemon in another process). A side near
	 * `seconds` of CPU was saturated. */
	double emu_cpu, handler_cpu;
	uint64_t groups, faults, invalid, violations;
	uint64_t syscalls; /* the handler's reads + writes + epoll_waits (0: not counted) */
	struct iopf_hist lat;
	/* mlock backend (iopfd) and the mlock floor */
	uint64_t maps, unmaps, mapped_bytes;
	uint64_t window_bytes; /* floor: bytes per window */
};

struct bench_load {
	struct iopf_space *space;
	int memfd;
	int *dfd; /* handler ends */
	struct emu_queue **emu;
};

uint64_t bench_now_ns(void);
_Noreturn void bench_die(const char *what, int r);

/* Address space and bindings (when b is not NULL), socket pairs, emulators. */
void bench_load_new(const struct bench_cfg *c, struct iopf_bindings *b, struct bench_load *l);
/* Drive the emulators for the run's duration; seconds into res. */
void bench_load_drive(const struct bench_cfg *c, struct bench_load *l, struct bench_result *res);
/* Finish the emulators and add their figures to res. */
void bench_load_collect(const struct bench_cfg *c, struct bench_load *l, struct bench_result *res);
void bench_load_free(const struct bench_cfg *c, struct iopf_bindings *b, struct bench_load *l);

/* The baselines (baselines.c), each on c's load. */
void bench_run_naive(const struct bench_cfg *c, struct bench_result *res);
void bench_run_perqueue(const struct bench_cfg *c, struct bench_result *res);
void bench_run_echo(const struct bench_cfg *c, struct bench_result *res);
/* mlock() windows of window_bytes at random aligned offsets of base[0..len)
 * for duration_ms, munlock()ing the oldest beyond quota bytes, as the mlock
 * backend does on a miss. */
void bench_run_mlock_floor(void *base, uint64_t len, uint64_t window_bytes, uint64_t quota, unsigned duration_ms,
                           uint64_t seed, struct bench_result *res);
