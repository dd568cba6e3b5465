/* SPDX-License-Identifier: MIT */
/*
 * The iommufd transport's response path against the kernel's write rules:
 * responses are taken in order and the write stops at the first bad one,
 * returning the bytes accepted before it, or EINVAL when the very first was
 * bad. The kernel side is played by a wrapped write() on one fd (this test
 * binary links with -Wl,--wrap=write); the real kernel is exercised by the
 * VM suite.
 */
#include <stdbool.h>
#include <sys/eventfd.h>

#include "../common.h"
#include "engine/queue-internal.h"

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

static int kernel_fd = -1;
static bool pending[128];   /* cookies the "kernel" has in flight */
static uint32_t answered[128];
static int n_answered, n_calls;

ssize_t __wrap_write(int fd, const void *buf, size_t n) {
	if (fd != kernel_fd)
		return __real_write(fd, buf, n);
	n_calls++;
	if (n % sizeof(iopf_response)) {
		errno = EINVAL;
		return -1;
	}
	size_t done = 0;
	for (; done < n; done += sizeof(iopf_response)) {
		iopf_response r;
		memcpy(&r, (const char *)buf + done, sizeof(r));
		if (r.code > IOMMUFD_PAGE_RESP_INVALID || r.cookie >= 128 || !pending[r.cookie])
			break;
		pending[r.cookie] = false;
		answered[n_answered++] = r.cookie;
	}
	if (done == 0) {
		errno = EINVAL;
		return -1;
	}
	return (ssize_t)done;
}

static struct iopf_queue q;
static struct iopf_counters c;

static void setup(void) {
	kernel_fd = eventfd(0, EFD_CLOEXEC);
	q = (struct iopf_queue){.fd = kernel_fd, .ops = &iopf_transport_iommufd};
	memset(&c, 0, sizeof(c));
	memset(pending, 0, sizeof(pending));
	n_answered = n_calls = 0;
}

static void teardown(void) {
	close(kernel_fd);
}

TestSuite(kernel_write, .init = setup, .fini = teardown);

static void respond(const iopf_response *r, size_t n) {
	cr_assert_eq(q.ops->respond(&q, r, n, &c), 0);
}

Test(kernel_write, whole_batch_in_one_write) {
	iopf_response r[8];
	for (uint32_t i = 0; i < 8; i++) {
		pending[i] = true;
		r[i] = (iopf_response){.cookie = i, .code = i % 2};
	}
	respond(r, 8);
	cr_assert_eq(n_calls, 1);
	cr_assert_eq(n_answered, 8);
	cr_assert_eq(c.writes, 1);
	cr_assert_eq(c.write_rejects, 0);
}

Test(kernel_write, short_write_skips_the_rejected_and_sends_the_rest) {
	for (uint32_t i = 0; i < 5; i++)
		pending[i] = true;
	iopf_response r[] = {{0, 0}, {1, 0}, {99, 0}, {2, 1}, {3, 0}, {77, 0}, {4, 0}};
	respond(r, 7);
	cr_assert_eq(n_answered, 5, "every known cookie answered");
	uint32_t order[] = {0, 1, 2, 3, 4};
	for (int i = 0; i < 5; i++)
		cr_assert_eq(answered[i], order[i], "in order");
	cr_assert_eq(c.write_rejects, 2, "two rejected responses counted");
	cr_assert_eq(n_calls, 3);
	cr_assert_eq(c.write_errors, 0);
}

Test(kernel_write, first_response_rejected_gives_einval) {
	pending[5] = pending[6] = true;
	iopf_response r[] = {{40, 0}, {5, 0}, {6, 7}, {6, 1}};
	respond(r, 4);
	cr_assert_eq(n_answered, 2);
	cr_assert_eq(answered[0], 5);
	cr_assert_eq(answered[1], 6);
	cr_assert_eq(c.write_rejects, 2, "unknown cookie and bad code");
}

Test(kernel_write, every_response_rejected) {
	iopf_response r[] = {{1, 0}, {2, 0}, {3, 0}};
	respond(r, 3);
	cr_assert_eq(n_answered, 0);
	cr_assert_eq(c.write_rejects, 3);
	cr_assert_eq(n_calls, 3, "one attempt per response, never a loop");
}

Test(kernel_write, broken_fd_is_an_error_not_a_loop) {
	close(kernel_fd);
	q.fd = 1000;
	iopf_response r[] = {{1, 0}};
	cr_assert_eq(q.ops->respond(&q, r, 1, &c), -EBADF);
	cr_assert_eq(c.write_errors, 1);
	kernel_fd = eventfd(0, EFD_CLOEXEC);
}
