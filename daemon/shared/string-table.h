/* SPDX-License-Identifier: MIT */
/*
 * Enum <-> name lookups from one table of names indexed by the enum:
 *
 *	static const char *const color_table[_COLOR_MAX] = {[COLOR_RED] = "red", ...};
 *	DEFINE_STRING_TABLE_LOOKUP(color, enum color);
 *
 * defines color_to_string(c) (NULL when out of range) and
 * color_from_string(s) (the value, or -EINVAL); the _TO_STRING and
 * _FROM_STRING variants define one of them.
 */
#pragma once

#include <errno.h>
#include <string.h>

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

#define DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type)                            \
	const char *name##_to_string(type v) {                                      \
		return (size_t)v < ELEMENTSOF(name##_table) ? name##_table[v] : NULL; \
	}

#define DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type)                          \
	int name##_from_string(const char *s) {                                     \
		for (size_t i = 0; s && i < ELEMENTSOF(name##_table); i++)           \
			if (name##_table[i] && strcmp(name##_table[i], s) == 0)      \
				return (int)i;                                      \
		return -EINVAL;                                                     \
	}

#define DEFINE_STRING_TABLE_LOOKUP(name, type)           \
	DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type) \
	DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type)
