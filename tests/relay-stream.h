/* SPDX-License-Identifier: MIT */
/*
 * Both ends of a relay stream, for the tests that take a queue back: the
 * device's groups going in, its answers coming out, and what a queue's
 * next reader finds left in the stream (which must be whole groups).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "common.h"
#include "iopf_abi.h"
#include "engine/batch.h"

#define STREAM_MAX_COOKIES 4096
#define STREAM_PG 4096ull

/* Group `cookie` of device `dev`, n read faults on pages of [iova, iova +
 * pages * 4 KiB), at buf; returns its length. */
static inline size_t stream_put_group(uint8_t *buf, uint32_t dev, uint32_t cookie, unsigned n, uint64_t iova,
                                      uint64_t pages) {
	for (unsigned i = 0; i < n; i++) {
		iopf_record rec = {.flags = i + 1 == n ? IOMMU_PGFAULT_FLAGS_LAST_PAGE : 0, .dev_id = dev,
		                   .perm = IOMMU_PGFAULT_PERM_READ,
		                   .addr = iova + ((cookie * 7 + i) % pages) * STREAM_PG, .cookie = cookie};
		memcpy(buf + i * sizeof(rec), &rec, sizeof(rec));
	}
	return n * sizeof(iopf_record);
}

static inline void stream_send(int fd, const void *p, size_t len) {
	cr_assert_eq(send(fd, p, len, 0), (ssize_t)len, "send: %s", strerror(errno));
}

/* Bytes queued in a socket and not read yet. */
static inline int stream_unread(int fd) {
	int n = -1;
	cr_assert_eq(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

static inline void stream_wait_unread(int fd, int want) {
	for (int i = 0; i < 2000 && stream_unread(fd) != want; i++)
		usleep(1000);
	cr_assert_eq(stream_unread(fd), want);
}

/* The answers read at a device end, and the start of one not all there. */
struct stream_answers {
	uint8_t seen[STREAM_MAX_COOKIES]; /* answers per cookie */
	size_t n;
	iopf_response tail;
	size_t tail_len;
};

/* Take every whole answer waiting at the device end; all must be SUCCESS. */
static inline void stream_take_answers(int dev, struct stream_answers *a) {
	iopf_response r[256];
	for (;;) {
		memcpy(r, &a->tail, a->tail_len);
		ssize_t n = recv(dev, (uint8_t *)r + a->tail_len, sizeof(r) - a->tail_len, MSG_DONTWAIT);
		if (n <= 0)
			break;
		size_t len = a->tail_len + (size_t)n, k = len / sizeof(r[0]);
		for (size_t i = 0; i < k; i++) {
			cr_assert_lt(r[i].cookie, STREAM_MAX_COOKIES);
			cr_assert_eq(r[i].code, IOMMUFD_PAGE_RESP_SUCCESS, "group %u", r[i].cookie);
			a->seen[r[i].cookie]++;
			a->n++;
		}
		a->tail_len = len - k * sizeof(r[0]);
		memcpy(&a->tail, &r[k], a->tail_len);
	}
}

/* What the queue's reader left in the stream: whole groups from its first
 * byte to its last. Each group's cookie is counted in left[], and its
 * records in records[] (optional). */
static inline size_t stream_take_rest(int fd, uint8_t *left, uint8_t *records) {
	static uint8_t buf[1 << 21];
	size_t len = 0;
	for (;;) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, MSG_DONTWAIT);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	static struct iopf_group g[1 << 16];
	struct iopf_batch b;
	cr_assert_eq(iopf_batch_parse(buf, len, 512, g, 1 << 16, &b), 0, "the rest starts inside a group");
	cr_assert_eq(b.consumed, len, "the rest ends inside a group (%s)", iopf_batch_error_to_string(b.error));
	for (size_t i = 0; i < b.n_groups; i++) {
		cr_assert_lt(g[i].cookie, STREAM_MAX_COOKIES);
		left[g[i].cookie]++;
		if (records)
			records[g[i].cookie] = (uint8_t)g[i].n_faults;
	}
	return b.n_groups;
}
