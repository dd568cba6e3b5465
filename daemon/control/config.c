/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "shared/cleanup.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose)
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

/* The kernel's default RLIMIT_MEMLOCK: what a user could lock by itself. */
#define PIN_DEFAULT (8ull << 20)

int config_defaults(struct iopfd_config *c) {
	*c = (struct iopfd_config){
		.limits = {
			.connections_per_uid = 64,
			.max = {[ACCT_QUEUES] = 4096, [ACCT_SPACES] = 1024, [ACCT_REGIONS] = 4096},
		},
		.workers = {.slice_groups = IOPFD_ANSWER_SLICE_GROUPS, .slice_us = IOPFD_ANSWER_SLICE_USEC},
		.pin_default = PIN_DEFAULT,
	};
	c->grants = calloc(1, sizeof(*c->grants));
	if (!c->grants || !(c->grants[0].who = strdup("root"))) {
		config_done(c);
		return -ENOMEM;
	}
	c->grants[0].bytes = IOPFD_PIN_UNLIMITED;
	c->n_grants = 1;
	return 0;
}

void config_override(struct iopfd_config *c, const struct config_overrides *o) {
	for (int i = 0; i < _ACCT_RESOURCE_MAX; i++)
		if (o->given[i])
			c->limits.max[i] = o->value[i];
	if (o->given[_ACCT_RESOURCE_MAX])
		c->limits.connections_per_uid = (unsigned)o->value[_ACCT_RESOURCE_MAX];
}

void config_done(struct iopfd_config *c) {
	for (size_t i = 0; i < c->n_grants; i++)
		free(c->grants[i].who);
	free(c->grants);
	c->grants = NULL;
	c->n_grants = 0;
}

/* --- one file ------------------------------------------------------------------------------- */

static char *strip(char *s) {
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int grant_set(struct iopfd_config *c, bool group, const char *who, uint64_t bytes) {
	for (size_t i = 0; i < c->n_grants; i++)
		if (c->grants[i].group == group && !strcmp(c->grants[i].who, who)) {
			c->grants[i].bytes = bytes;
			return 0;
		}
	struct pin_grant *n = realloc(c->grants, (c->n_grants + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	c->grants = n;
	char *w = strdup(who);
	if (!w)
		return -ENOMEM;
	c->grants[c->n_grants++] = (struct pin_grant){.group = group, .who = w, .bytes = bytes};
	return 0;
}

static bool valid_name(const char *s) {
	if (!*s || strlen(s) > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_-.$", *p))
			return false;
	return true;
}

/* "NAME SIZE" of User= and Group=. */
static int parse_grant(struct iopfd_config *c, bool group, char *v, const char **why) {
	char *sp = strpbrk(v, " \t");
	if (!sp)
		return *why = "expected a name (or id) and a size", -EINVAL;
	*sp = '\0';
	char *size = strip(sp + 1);
	uint64_t bytes;
	if (!valid_name(v))
		return *why = "not a user or group name", -EINVAL;
	if (parse_size(size, &bytes) < 0)
		return *why = "not a size (bytes, K, M, G, T or infinity)", -EINVAL;
	return grant_set(c, group, v, bytes);
}

static int parse_count(const char *v, uint64_t *out, const char **why) {
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *end || *v == '-' || n > UINT32_MAX)
		return *why = "not a number up to 4294967295", -EINVAL;
	*out = n;
	return 0;
}

enum section { SECTION_NONE, SECTION_LIMITS, SECTION_WORKERS, SECTION_PIN_BUDGET, SECTION_UNKNOWN };

static int assign(struct iopfd_config *c, enum section sec, const char *key, char *v, const char **why) {
	uint64_t n;
	int r;
	if (sec == SECTION_LIMITS) {
		static const struct {
			const char *key;
			int resource; /* -1: connections */
		} keys[] = {{"ConnectionsPerUser", -1},
		            {"QueuesPerUser", ACCT_QUEUES},
		            {"SpacesPerUser", ACCT_SPACES},
		            {"RegionsPerUser", ACCT_REGIONS}};
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (strcmp(key, keys[i].key))
				continue;
			if ((r = parse_count(v, &n, why)) < 0)
				return r;
			if (keys[i].resource < 0)
				c->limits.connections_per_uid = (unsigned)n;
			else
				c->limits.max[keys[i].resource] = n;
			return 0;
		}
	} else if (sec == SECTION_WORKERS) {
		static const struct {
			const char *key;
			size_t offset;
		} keys[] = {{"Workers", offsetof(struct iopfd_workers, workers)},
		            {"BusyPollUsec", offsetof(struct iopfd_workers, busy_poll_us)},
		            {"AnswerSliceGroups", offsetof(struct iopfd_workers, slice_groups)},
		            {"AnswerSliceUsec", offsetof(struct iopfd_workers, slice_us)}};
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (strcmp(key, keys[i].key))
				continue;
			if ((r = parse_count(v, &n, why)) < 0)
				return r;
			if (keys[i].offset == offsetof(struct iopfd_workers, workers))
				c->workers.workers = (unsigned)(n > 1024 ? 1024 : n);
			else
				*(uint64_t *)((uint8_t *)&c->workers + keys[i].offset) = n;
			return 0;
		}
	} else if (sec == SECTION_PIN_BUDGET) {
		if (!strcmp(key, "Default")) {
			if (parse_size(v, &n) < 0)
				return *why = "not a size (bytes, K, M, G, T or infinity)", -EINVAL;
			c->pin_default = n;
			return 0;
		}
		if (!strcmp(key, "User") || !strcmp(key, "Group"))
			return parse_grant(c, key[0] == 'G', v, why);
		if (!strcmp(key, "RequireAllocated")) {
			if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
				c->require_allocated = true;
			else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
				c->require_allocated = false;
			else
				return *why = "not yes or no", -EINVAL;
			return 0;
		}
	} else if (sec == SECTION_UNKNOWN) {
		return 0; /* said once, at the section */
	} else {
		return *why = "assignment outside of a section", -EINVAL;
	}
	return *why = "unknown setting", -EINVAL;
}

int config_parse(struct iopfd_config *c, FILE *f, const char *name) {
	enum section sec = SECTION_NONE;
	char line[1024];
	unsigned nr = 0;
	while (fgets(line, sizeof(line), f)) {
		nr++;
		char *s = strip(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		const char *why = NULL;
		if (*s == '[') {
			if (!strcmp(s, "[Limits]"))
				sec = SECTION_LIMITS;
			else if (!strcmp(s, "[Workers]"))
				sec = SECTION_WORKERS;
			else if (!strcmp(s, "[PinBudget]"))
				sec = SECTION_PIN_BUDGET;
			else {
				sec = SECTION_UNKNOWN;
				why = "unknown section, its settings are ignored";
			}
		} else {
			char *eq = strchr(s, '=');
			if (!eq) {
				why = "not a section or an assignment";
			} else {
				*eq = '\0';
				int r = assign(c, sec, strip(s), strip(eq + 1), &why);
				if (r == -ENOMEM)
					return r;
			}
		}
		if (why) {
			log_warning("%s:%u: %s", name, nr, why);
			c->warnings++;
		}
	}
	return ferror(f) ? -EIO : 0;
}

/* --- the files -------------------------------------------------------------------------- */

static int parse_path(struct iopfd_config *c, const char *path, bool must_exist) {
	_cleanup_(fclosep) FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT && !must_exist ? 0 : log_error_errno(errno, "Failed to open %s: %m", path);
	int r = config_parse(c, f, path);
	return r < 0 ? log_error_errno(r, "Failed to read %s: %m", path) : 0;
}

struct dropin {
	char name[NAME_MAX + 1];
	char path[PATH_MAX + NAME_MAX + 2];
};

static int dropin_cmp(const void *a, const void *b) {
	return strcmp(((const struct dropin *)a)->name, ((const struct dropin *)b)->name);
}

/* The *.conf of dir, unless one of that name was found in an earlier
 * (stronger) directory. */
static int dropins_add(const char *dir, struct dropin **list, size_t *n) {
	_cleanup_(closedirp) DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf"))
			continue;
		bool shadowed = false;
		for (size_t i = 0; i < *n && !shadowed; i++)
			shadowed = !strcmp((*list)[i].name, de->d_name);
		if (shadowed)
			continue;
		struct dropin *nl = realloc(*list, (*n + 1) * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		*list = nl;
		snprintf(nl[*n].name, sizeof(nl[*n].name), "%s", de->d_name);
		if (snprintf(nl[*n].path, sizeof(nl[*n].path), "%s/%s", dir, de->d_name) >= (int)sizeof(nl[*n].path))
			continue; /* cannot be opened anyway */
		(*n)++;
	}
	return 0;
}

int config_load(struct iopfd_config *c, const char *path) {
	int r = config_defaults(c);
	if (r < 0)
		return r;
	bool given = path != NULL;
	if (!path)
		path = IOPFD_CONFIG_FILE;
	if ((r = parse_path(c, path, given)) < 0)
		return r;
	/* Drop-ins beside the file, and for the standard file in /run and
	 * /usr/lib too, in the order of strength. */
	char dirs[3][PATH_MAX];
	size_t n_dirs = 0;
	snprintf(dirs[n_dirs++], PATH_MAX, "%s.d", path);
	if (!given) {
		snprintf(dirs[n_dirs++], PATH_MAX, "/run/iopfd/iopfd.conf.d");
		snprintf(dirs[n_dirs++], PATH_MAX, "/usr/lib/iopfd/iopfd.conf.d");
	}
	_cleanup_free_ struct dropin *list = NULL;
	size_t n = 0;
	for (size_t i = 0; i < n_dirs; i++)
		if ((r = dropins_add(dirs[i], &list, &n)) < 0)
			return r;
	if (n)
		qsort(list, n, sizeof(*list), dropin_cmp);
	for (size_t i = 0; i < n; i++)
		if ((r = parse_path(c, list[i].path, true)) < 0)
			return r;
	return 0;
}

/* --- budgets ------------------------------------------------------------------------------ */

static bool names_id(const char *who, bool group, uint32_t id) {
	char *end;
	unsigned long v = strtoul(who, &end, 10);
	if (*who >= '0' && *who <= '9' && !*end)
		return v == id;
	if (group) {
		struct group *g = getgrnam(who);
		return g && g->gr_gid == id;
	}
	struct passwd *p = getpwnam(who);
	return p && p->pw_uid == id;
}

void config_pin_budget(const struct iopfd_config *c, uid_t uid, struct pin_budget *out) {
	for (size_t i = 0; i < c->n_grants; i++)
		if (!c->grants[i].group && names_id(c->grants[i].who, false, uid)) {
			out->bytes = c->grants[i].bytes;
			snprintf(out->source, sizeof(out->source), "user %s", c->grants[i].who);
			return;
		}
	/* The largest grant among the user's groups, from the user database. */
	gid_t groups[256];
	int n = 0;
	struct passwd *pw = getpwuid(uid);
	if (pw) {
		n = (int)(sizeof(groups) / sizeof(groups[0]));
		if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
			n = (int)(sizeof(groups) / sizeof(groups[0])); /* the first ones */
	}
	const struct pin_grant *best = NULL;
	for (size_t i = 0; i < c->n_grants; i++) {
		if (!c->grants[i].group || (best && best->bytes >= c->grants[i].bytes))
			continue;
		for (int k = 0; k < n; k++)
			if (names_id(c->grants[i].who, true, groups[k])) {
				best = &c->grants[i];
				break;
			}
	}
	if (best) {
		out->bytes = best->bytes;
		snprintf(out->source, sizeof(out->source), "group %s", best->who);
		return;
	}
	out->bytes = c->pin_default;
	snprintf(out->source, sizeof(out->source), "default");
}
