/* SPDX-License-Identifier: MIT */
/*
 * Scope-based cleanup: a variable declared with _cleanup_free_ or
 * _cleanup_close_ (or _cleanup_(fn) for any type) is released when it goes
 * out of scope, so an error path is a plain return. Ownership leaves such a
 * variable only explicitly, with TAKE_PTR() or TAKE_FD().
 *
 *	_cleanup_close_ int fd = open(...);
 *	_cleanup_free_ struct thing *t = calloc(1, sizeof(*t));
 *	if (!t)
 *		return -ENOMEM;
 *	...
 *	t->fd = TAKE_FD(fd);
 *	*ret = TAKE_PTR(t);
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) {
	free(*(void **)p);
}

/* Keeps errno: a cleanup runs after the code that set it. */
static inline void closep(const int *fd) {
	if (*fd >= 0) {
		int e = errno;
		close(*fd);
		errno = e;
	}
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Cleanup function `namep` for a pointer type with a free function `name`
 * that must not be called with NULL (or need not be). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, name) \
	static inline void name##p(type *p) {    \
		if (*p)                          \
			name(*p);                \
	}

#define TAKE_PTR(p)                         \
	({                                  \
		__typeof__(p) _taken = (p); \
		(p) = NULL;                 \
		_taken;                     \
	})

#define TAKE_FD(fd)                \
	({                         \
		int _taken = (fd); \
		(fd) = -EBADF;     \
		_taken;            \
	})
