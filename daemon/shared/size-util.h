/* SPDX-License-Identifier: MIT */
/* Sizes as operators write and read them: "8M", "16GiB", "infinity". */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SIZE_INFINITY UINT64_MAX

/* Bytes, with an optional K, M, G or T (powers of 1024, "iB" or "B" may
 * follow), or "infinity". -EINVAL for anything else, -ERANGE on overflow. */
static inline int parse_size(const char *s, uint64_t *out) {
	if (!strcasecmp(s, "infinity")) {
		*out = SIZE_INFINITY;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	static const char units[] = "KMGT";
	unsigned shift = 0;
	if (*end) {
		const char *u = strchr(units, *end & ~0x20);
		if (!u)
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
		end++;
		if (!strcasecmp(end, "iB"))
			end += 2;
		else if (!strcasecmp(end, "B"))
			end += 1;
		if (*end)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

/* "8 MiB", "1.5 GiB", "4096 B", "infinity". */
static inline void format_size(uint64_t bytes, char *buf, size_t size) {
	if (bytes == SIZE_INFINITY) {
		snprintf(buf, size, "infinity");
		return;
	}
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, u == 0 || v == (double)(uint64_t)v ? "%.0f %s" : "%.1f %s", v, unit[u]);
}
