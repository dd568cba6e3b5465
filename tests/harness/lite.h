/* SPDX-License-Identifier: MIT */
/*
 * A minimal stand-in for the part of Criterion's API the threaded suites use,
 * for ThreadSanitizer builds only: Criterion's runner cannot start under
 * TSan (its inheritable arena mapping fails). Tests run one after another in
 * this process and report TAP on stdout; the first failed assertion reports
 * "not ok" and ends the process with status 1.
 */
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lite_opts {
	void (*init)(void);
	void (*fini)(void);
	int timeout;
};

void lite_register(const char *suite, const char *name, void (*fn)(void), const struct lite_opts *suite_opts,
                   const struct lite_opts *opts);
void lite_fail(const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

#define TestSuite(s, ...) static const struct lite_opts lite_suite_opts_##s = {__VA_ARGS__}

#define Test(s, n, ...)                                                                           \
	static void lite_fn_##s##_##n(void);                                                          \
	static const struct lite_opts lite_opts_##s##_##n = {__VA_ARGS__};                            \
	__attribute__((constructor)) static void lite_reg_##s##_##n(void) {                           \
		lite_register(#s, #n, lite_fn_##s##_##n, &lite_suite_opts_##s, &lite_opts_##s##_##n); \
	}                                                                                             \
	static void lite_fn_##s##_##n(void)

#define LITE_CHECK(cond, expr, ...)                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			lite_fail(__FILE__, __LINE__, expr, " " __VA_ARGS__);   \
	} while (0)

#define cr_assert(c, ...) LITE_CHECK((c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...) LITE_CHECK(!(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_null(c, ...) LITE_CHECK((c) == NULL, #c " == NULL", __VA_ARGS__)
#define cr_assert_not_null(c, ...) LITE_CHECK((c) != NULL, #c " != NULL", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) LITE_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) LITE_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) LITE_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) LITE_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) LITE_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) LITE_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) LITE_CHECK(strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
