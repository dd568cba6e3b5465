/* SPDX-License-Identifier: MIT */
/*
 * Runs a fuzz target over files without libFuzzer: the seed corpus and the
 * inputs that once crashed it are regression tests in every build.
 * Usage: fuzz-X DIR|FILE...   (prints TAP, one line per input)
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n;

static void run_file(const char *path) {
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("not ok %d - %s (cannot open)\n", ++n, path);
		return;
	}
	static uint8_t buf[1 << 20];
	size_t len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* A copy of exactly the input's size, so overruns are caught. */
	uint8_t *copy = malloc(len ? len : 1);
	memcpy(copy, buf, len);
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
	printf("ok %d - %s\n", ++n, path);
	fflush(stdout);
}

int main(int argc, char **argv) {
	printf("TAP version 13\n");
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0)
			continue;
		if (!S_ISDIR(st.st_mode)) {
			run_file(argv[i]);
			continue;
		}
		struct dirent **names;
		int k = scandir(argv[i], &names, NULL, alphasort);
		for (int j = 0; j < k; j++) {
			if (names[j]->d_name[0] != '.') {
				char path[4096];
				snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]->d_name);
				run_file(path);
			}
			free(names[j]);
		}
		free(names);
	}
	printf("1..%d\n", n);
	return 0;
}
