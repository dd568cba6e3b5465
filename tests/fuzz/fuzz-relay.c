/* SPDX-License-Identifier: MIT */
/*
 * The relay path end to end: arbitrary bytes from a relay peer into a real
 * engine worker (stream reassembly, parsing, resolution, quota, responses),
 * then the peer hangs up. The engine must answer at most once per whole
 * group, with valid codes, and let go of the queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/batch.h"
#include "engine/bindings.h"
#include "engine/engine.h"
#include "engine/space.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                        \
	do {                            \
		if (!(c))               \
			__builtin_trap(); \
	} while (0)

static struct iopf_engine *engine;
static struct iopf_space *space;
static int closed;

static void on_closed(struct iopf_queue *q, enum iopf_queue_close why, void *ud) {
	__atomic_store_n(&closed, 1, __ATOMIC_RELEASE);
}

static void setup(void) {
	iopf_rcu_register();
	struct iopf_engine_config ec = {.workers = 1, .read_bytes = 4096 * 5, .max_group_faults = 64,
	                                .on_queue_closed = on_closed};
	CHECK(iopf_engine_new(&ec, &engine) == 0);
	/* A tight quota so that eviction runs too. */
	struct iopf_space_config sc = {.backend = IOPF_BACKEND_SIMULATED, .quota = 16 * 4096, .page_size = 4096,
	                               .window_min = 4096, .window_max = 4 * 4096, .iommufd = -1};
	CHECK(iopf_space_new(1, &sc, &space) == 0);
	struct iopf_region_config rc = {.iova = 0, .length = 256 * 4096, .memfd = -1,
	                                .perm = IOPF_PERM_READ | IOPF_PERM_WRITE | IOPF_PERM_EXEC};
	CHECK(iopf_space_add_region(space, &rc, 0, NULL, NULL) == IOPF_REGION_ADDED);
	for (uint32_t d = 0; d < 4; d++) {
		struct iopf_binding_key k = {.queue_id = 1, .dev_id = d, .pasid = d ? d : IOPF_PASID_NONE};
		CHECK(iopf_bindings_add(iopf_engine_bindings(engine), &k, space) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (!engine)
		setup();
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	struct iopf_queue *q;
	CHECK(iopf_queue_new(1, sv[0], IOPF_TRANSPORT_RELAY, &q) == 0);
	__atomic_store_n(&closed, 0, __ATOMIC_RELEASE);
	CHECK(iopf_engine_add_queue(engine, q) == 0);

	/* Send in pieces, so that groups and records straddle reads. */
	size_t off = 0, step = size ? 1 + data[0] % 97 : 1;
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		ssize_t w = send(sv[1], data + off, n, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the engine dropped us: protocol error */
		off += (size_t)w;
	}
	shutdown(sv[1], SHUT_WR);
	uint8_t resp[1 << 16];
	size_t got = 0;
	for (;;) {
		ssize_t r = recv(sv[1], resp + got, sizeof(resp) - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == sizeof(resp))
			got = 0; /* only shape is checked below, per response */
	}
	CHECK(got % sizeof(iopf_response) == 0);
	for (size_t i = 0; i < got; i += sizeof(iopf_response)) {
		iopf_response r;
		memcpy(&r, resp + i, sizeof(r));
		CHECK(r.code == IOMMUFD_PAGE_RESP_SUCCESS || r.code == IOMMUFD_PAGE_RESP_INVALID);
	}
	while (!__atomic_load_n(&closed, __ATOMIC_ACQUIRE))
		usleep(100);
	/* Whole groups in the input bound the answers. */
	struct iopf_queue_stats st;
	iopf_queue_get_stats(q, &st);
	CHECK(st.groups <= size / IOPF_RECORD_SIZE);
	CHECK(iopf_engine_remove_queue(engine, q, IOPF_RELEASE_TO_HOLDER) == 0);
	iopf_queue_free(q);
	close(sv[1]);
	return 0;
}
