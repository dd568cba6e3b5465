/* SPDX-License-Identifier: MIT */
/* The compiled-in io.iopfd interface is exactly proto/io.iopfd.varlink, and
 * every field and symbol carries a comment. */
#include <stdlib.h>

#include "../common.h"
#include "control/varlink-idl.h"

static char *slurp(const char *path) {
	FILE *f = fopen(path, "r");
	cr_assert(f, "cannot open %s", path);
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

Test(idl, formatted_interface_matches_proto_file) {
	const char *root = getenv("IOPFD_SOURCE_ROOT");
	cr_assert(root, "IOPFD_SOURCE_ROOT is not set");
	char path[4096];
	snprintf(path, sizeof(path), "%s/proto/io.iopfd.varlink", root);
	char *text = NULL;
	cr_assert_eq(sd_varlink_idl_format(&vl_interface_io_iopfd, &text), 0);
	if (getenv("IOPFD_UPDATE_IDL")) {
		/* The daemon's tables are the source; the file is what clients read. */
		FILE *f = fopen(path, "w");
		cr_assert(f, "cannot write %s", path);
		fputs(text, f);
		cr_assert_eq(fclose(f), 0);
	}
	const char *want = slurp(path);
	cr_assert_str_eq(text, want,
	                 "proto/io.iopfd.varlink is out of date: IOPFD_UPDATE_IDL=1 meson test -C build idl rewrites it");
	free(text);
}

Test(idl, every_field_and_symbol_has_a_comment) {
	for (size_t i = 0; vl_interface_io_iopfd.symbols[i]; i++) {
		const sd_varlink_symbol *s = vl_interface_io_iopfd.symbols[i];
		if (s->symbol_type == _SD_VARLINK_SYMBOL_COMMENT || s->symbol_type == _SD_VARLINK_INTERFACE_COMMENT)
			continue;
		cr_assert(i > 0 && vl_interface_io_iopfd.symbols[i - 1]->symbol_type == _SD_VARLINK_SYMBOL_COMMENT,
		          "symbol %s has no comment", s->name);
		for (size_t j = 0; s->fields[j].field_type != _SD_VARLINK_FIELD_TYPE_END_MARKER; j++) {
			if (s->fields[j].field_type == _SD_VARLINK_FIELD_COMMENT)
				continue;
			cr_assert(j > 0 && s->fields[j - 1].field_type == _SD_VARLINK_FIELD_COMMENT,
			          "field %s.%s has no comment", s->name, s->fields[j].name);
		}
	}
}
