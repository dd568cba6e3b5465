/* SPDX-License-Identifier: MIT */
/*
 * A run of iopf-bench: which handler it measures, the load it is asked for,
 * and the figures it yields. Types only, so that every part (the load, the
 * baselines, the harness) can speak of a run without depending on another
 * part's code.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "emu.h"
#include "engine/space.h"
#include "engine/stats.h"

enum bench_mode {
	MODE_IOPFD,       /* the engine in this process */
	MODE_NAIVE,       /* one record per read, one write per response */
	MODE_PERQUEUE,    /* one blocking thread per queue, batched reads, one write per group */
	MODE_ECHO,        /* do-nothing epoll handler: batched reads, one write per batch, no lookup */
	MODE_PINGPONG,    /* the do-nothing handler, one queue, one group in flight: the latency floor */
	MODE_MLOCK_FLOOR, /* mlock/munlock of the same windows in a tight loop */
	MODE_DAEMON,      /* a real iopfd over its Varlink socket */
	MODE_IOPFD_POLL,  /* the engine with busy polling (busy_poll_ns) */
	_MODE_MAX,
};

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
	uint64_t busy_poll_ns; /* iopfd-poll: how long a worker polls before it sleeps */
	/* echo: CPU time it spends on each queue visit besides its system
	 * calls, standing in for a handler's own work: what a handler's cost
	 * per visit does to its tail near saturation. 0: none. */
	uint64_t echo_visit_ns;
	/* The emulator's thread and the handler's threads each on a CPU of
	 * their own (busy polling needs one); -1: wherever the kernel puts them. */
	int cpu_emu, cpu_handler;
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
	uint64_t polls;    /* iopfd: busy-poll rounds that found nothing */
	struct iopf_hist lat;
	/* Open loop: the median, over the run's windows (load.c), of
	 * each window's p99; 0 when the run had too few. A virtual CPU the
	 * host deschedules for a few milliseconds delays every group in
	 * flight, and a few such gaps a second are more than 1 % of a run's
	 * groups: the run's p99 would be the host's. They spoil a window,
	 * not the median of them; a handler that cannot keep up spoils
	 * every window. */
	double p99_window_us;
	unsigned windows; /* the windows that median is over */
	/* mlock backend (iopfd) and the mlock floor */
	uint64_t maps, unmaps, mapped_bytes;
	uint64_t window_bytes; /* floor: bytes per window */
};
