/* SPDX-License-Identifier: MIT */
#include "lite.h"

struct lite_test {
	const char *suite, *name;
	void (*fn)(void);
	void (*init)(void);
	void (*fini)(void);
};

static struct lite_test tests[256];
static int n_tests;
static int current;

void lite_register(const char *suite, const char *name, void (*fn)(void), const struct lite_opts *suite_opts,
                   const struct lite_opts *opts) {
	if (n_tests == (int)(sizeof(tests) / sizeof(tests[0]))) {
		fprintf(stderr, "lite: too many tests\n");
		exit(2);
	}
	tests[n_tests++] = (struct lite_test){
		.suite = suite, .name = name, .fn = fn,
		.init = opts->init ? opts->init : suite_opts->init,
		.fini = opts->fini ? opts->fini : suite_opts->fini,
	};
}

void lite_fail(const char *file, int line, const char *expr, const char *fmt, ...) {
	char msg[1024] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The macros prefix a space so that a bare assertion still has a
	 * non-empty format. */
	const char *m = msg[0] == ' ' ? msg + 1 : msg;
	printf("not ok %d - %s::%s\n# %s:%d: %s%s%s\n", current + 1, tests[current].suite, tests[current].name,
	       file, line, expr, *m ? ": " : "", m);
	fflush(stdout);
	_exit(1);
}

int main(int argc, char **argv) {
	printf("TAP version 13\n1..%d\n", n_tests);
	for (current = 0; current < n_tests; current++) {
		struct lite_test *t = &tests[current];
		if (t->init)
			t->init();
		t->fn();
		if (t->fini)
			t->fini();
		printf("ok %d - %s::%s\n", current + 1, t->suite, t->name);
		fflush(stdout);
	}
	return 0;
}
