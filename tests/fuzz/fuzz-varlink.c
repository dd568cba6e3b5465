/* SPDX-License-Identifier: MIT */
/*
 * Every io.iopfd method's parameter handling: an in-process daemon (engine,
 * Varlink server, objects) gets one call with fuzzed JSON parameters and a
 * choice of passed fds, then the client disconnects and everything it made
 * must be torn down. Memory errors, leaks (LeakSanitizer) and crashes are
 * the findings; any reply is acceptable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control/log.h"
#include "control/manager.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                        \
	do {                            \
		if (!(c))               \
			__builtin_trap(); \
	} while (0)

static struct manager *m;

static const char *const methods[] = {
	"io.iopfd.RegisterQueue", "io.iopfd.UnregisterQueue", "io.iopfd.CreateSpace", "io.iopfd.DestroySpace",
	"io.iopfd.AddRegion", "io.iopfd.RemoveRegion", "io.iopfd.Bind", "io.iopfd.Unbind",
	"io.iopfd.ListQueues", "io.iopfd.ListSpaces", "io.iopfd.ListBindings", "io.iopfd.GetStatistics",
	"io.iopfd.Monitor", "io.systemd.Metrics.List", "io.systemd.Metrics.Describe",
};

static void setup(void) {
	log_set_max_level(LOG_CRIT);
	struct manager_config cfg = {.no_listen = true, .workers = 1};
	CHECK(config_defaults(&cfg.config) == 0);
	cfg.config.limits = (struct iopfd_limits){
		.connections_per_uid = 8, .max = {[ACCT_QUEUES] = 8, [ACCT_SPACES] = 8, [ACCT_REGIONS] = 8}};
	cfg.config.grants[0].bytes = 1 << 20; /* root's: the fuzzer pins little */
	CHECK(manager_new(&cfg, &m) == 0);
	CHECK(manager_startup(m) >= 0);
}

static int got_reply;

static int on_reply(sd_varlink *v, sd_json_variant *p, const char *error_id, sd_varlink_reply_flags_t f, void *ud) {
	got_reply = 1;
	return 0;
}

/* fds a caller might pass: 0 sealed memfd, 1 unsealed memfd, 2 relay
 * socket, 3 pipe, each chosen by a bit of `which`. */
static int push_fds(sd_varlink *v, uint8_t which, int *keep, int *n_keep) {
	for (int i = 0; i < 4; i++) {
		if (!(which & (1u << i)))
			continue;
		int fd = -1, sv[2];
		switch (i) {
		case 0:
		case 1:
			fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
			CHECK(fd >= 0 && ftruncate(fd, 1 << 16) == 0);
			if (i == 0)
				fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
			break;
		case 2:
			CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
			fd = sv[0];
			keep[(*n_keep)++] = sv[1];
			break;
		case 3:
			CHECK(pipe2(sv, O_CLOEXEC) == 0);
			fd = sv[0];
			keep[(*n_keep)++] = sv[1];
			break;
		}
		CHECK(sd_varlink_push_fd(v, fd) >= 0);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 2 || size > 4096)
		return 0;
	if (!m)
		setup();
	const char *method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
	uint8_t which = data[1];
	char *text = strndup((const char *)data + 2, size - 2);
	sd_json_variant *params = NULL;
	int r = sd_json_parse(text, 0, &params, NULL, NULL);
	free(text);
	if (r < 0 || !sd_json_variant_is_object(params)) {
		sd_json_variant_unref(params);
		return 0;
	}

	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(manager_add_connection(m, sv[0]) >= 0);
	sd_varlink *v = NULL;
	CHECK(sd_varlink_connect_fd(&v, sv[1]) >= 0);
	CHECK(sd_varlink_set_allow_fd_passing_output(v, true) >= 0);
	int keep[4], n_keep = 0;
	push_fds(v, which, keep, &n_keep);
	sd_varlink_bind_reply(v, on_reply);
	got_reply = 0;
	r = (which & 0x80) ? sd_varlink_observe(v, method, params) : sd_varlink_invoke(v, method, params);
	sd_json_variant_unref(params);
	CHECK(r >= 0);
	for (int i = 0; i < 1000 && !got_reply; i++) {
		sd_event_run(m->event, 0);
		if (sd_varlink_process(v) < 0)
			break;
	}
	sd_varlink_close_unref(v);
	/* The server notices the hang-up and tears the client's objects down. */
	for (int i = 0; i < 1000 && m->n_clients > 0; i++)
		sd_event_run(m->event, 1000);
	CHECK(m->n_clients == 0);
	/* Only persistent objects outlive their client; end them too. */
	for (int t = 0; t < _OBJECT_TYPE_MAX; t++) {
		struct object *o, *ot;
		cds_list_for_each_entry_safe(o, ot, &m->objects[t], node) {
			CHECK(o->persistent && !o->owner);
			object_destroy(o, OBJECT_FORGET, NULL);
		}
	}
	CHECK(m->n_objects[OBJECT_QUEUE] == 0 && m->n_objects[OBJECT_SPACE] == 0);
	for (int i = 0; i < n_keep; i++)
		close(keep[i]);
	return 0;
}
