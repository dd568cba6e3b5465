/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "sim-trace.h"

#define CHUNK_SHIFT 21 /* 2 MiB: the density prefetcher's block, and no window crosses one */

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static size_t chunk_find(const struct sim_trace *t, uint64_t c) {
	size_t lo = 0, hi = t->n_chunks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->chunk[mid] < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static unsigned chunk_bits(const struct sim_trace *t) {
	return (unsigned)__builtin_ctz(t->chunk_pages);
}

uint64_t sim_trace_page(const struct sim_trace *t, uint32_t u) {
	return (t->chunk[u / t->chunk_pages] << chunk_bits(t)) | (u & (t->chunk_pages - 1));
}

int64_t sim_trace_index(const struct sim_trace *t, uint64_t page) {
	uint64_t c = page >> chunk_bits(t);
	size_t i = chunk_find(t, c);
	if (i == t->n_chunks || t->chunk[i] != c)
		return -1;
	return (int64_t)(i * t->chunk_pages + (page & (t->chunk_pages - 1)));
}

bool sim_trace_next_region(const struct sim_trace *t, size_t *at, uint32_t *first, uint32_t *pages) {
	size_t i = *at, j;
	if (i >= t->n_chunks)
		return false;
	for (j = i + 1; j < t->n_chunks && t->chunk[j] == t->chunk[j - 1] + 1; j++)
		;
	*first = (uint32_t)(i * t->chunk_pages);
	*pages = (uint32_t)((j - i) * t->chunk_pages);
	*at = j;
	return true;
}

/* The chunks the trace touches, sorted, each once. */
static int find_chunks(const struct trace *tr, struct sim_trace *t) {
	unsigned cb = chunk_bits(t);
	_cleanup_free_ uint64_t *c = malloc(tr->n * sizeof(*c));
	if (!c)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < tr->n; i++) {
		uint64_t x = trace_unpack(tr->w[i]).page >> cb;
		if (n == 0 || c[n - 1] != x) /* runs in one chunk are the common case */
			c[n++] = x;
	}
	qsort(c, n, sizeof(*c), cmp_u64);
	size_t d = 0;
	for (size_t i = 0; i < n; i++)
		if (d == 0 || c[d - 1] != c[i])
			c[d++] = c[i];
	/* Every page's address, and the end of the last chunk, must fit in
	 * 64 bits: the simulated space maps them as IOVAs. */
	if (d && c[d - 1] + 1 >= (1ull << (64 - t->page_shift - cb)))
		return -ERANGE;
	if (d && (uint64_t)d * t->chunk_pages >= SIM_NEVER)
		return -EFBIG;
	t->n_chunks = d;
	t->n_pages = d * t->chunk_pages;
	t->chunk = TAKE_PTR(c);
	return 0;
}

static int index_accesses(const struct trace *tr, struct sim_trace *t) {
	t->u = malloc(tr->n * sizeof(*t->u));
	t->meta = malloc(tr->n * sizeof(*t->meta));
	t->next = malloc(tr->n * sizeof(*t->next));
	_cleanup_free_ uint64_t *seen = calloc((t->n_pages + 63) / 64, sizeof(*seen));
	_cleanup_free_ uint64_t *streams = calloc(TRACE_STREAMS / 64, sizeof(*streams));
	_cleanup_free_ uint32_t *last = malloc(t->n_pages * sizeof(*last));
	if (!t->u || !t->meta || !t->next || !seen || !streams || !last)
		return -ENOMEM;
	unsigned cb = chunk_bits(t);
	uint64_t cur = UINT64_MAX;
	size_t ci = 0;
	for (size_t i = 0; i < tr->n; i++) {
		struct trace_access a = trace_unpack(tr->w[i]);
		if (a.page >> cb != cur) {
			cur = a.page >> cb;
			ci = chunk_find(t, cur);
		}
		uint32_t u = (uint32_t)(ci * t->chunk_pages + (a.page & (t->chunk_pages - 1)));
		t->u[i] = u;
		t->meta[i] = (uint16_t)(a.stream << 1 | a.write);
		if (!(seen[u / 64] & (1ull << (u % 64)))) {
			seen[u / 64] |= 1ull << (u % 64);
			t->footprint++;
		}
		if (!(streams[a.stream / 64] & (1ull << (a.stream % 64)))) {
			streams[a.stream / 64] |= 1ull << (a.stream % 64);
			t->streams++;
		}
	}
	for (size_t p = 0; p < t->n_pages; p++)
		last[p] = SIM_NEVER;
	for (size_t i = tr->n; i-- > 0;) {
		t->next[i] = last[t->u[i]];
		last[t->u[i]] = (uint32_t)i;
	}
	return 0;
}

int sim_trace_prepare(const struct trace *tr, const char *name, struct sim_trace *out) {
	*out = (struct sim_trace){.page_shift = tr->page_shift, .n = tr->n};
	if (tr->n >= SIM_NEVER)
		return -EFBIG; /* positions are 32-bit, SIM_NEVER excluded */
	out->chunk_pages = tr->page_shift >= CHUNK_SHIFT ? 1 : 1u << (CHUNK_SHIFT - tr->page_shift);
	out->name = strdup(name);
	int r = out->name ? find_chunks(tr, out) : -ENOMEM;
	if (r == 0)
		r = index_accesses(tr, out);
	if (r < 0)
		sim_trace_free(out);
	return r;
}

void sim_trace_free(struct sim_trace *t) {
	free(t->name);
	free(t->u);
	free(t->meta);
	free(t->next);
	free(t->chunk);
	*t = (struct sim_trace){0};
}

static bool ends_with(const char *s, const char *suffix) {
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "dir/app.trace.zst" -> "app". */
static char *trace_name(const char *path) {
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	if (ends_with(base, ".zst"))
		n -= 4;
	if (n >= 6 && strncmp(base + n - 6, ".trace", 6) == 0)
		n -= 6;
	return strndup(base, n ? n : strlen(base));
}

/* zstd with one end of a pipe as its stdin or stdout and `fd` as the other
 * stream, run directly (no shell, so any file name is safe). *end is the
 * caller's end of the pipe. */
static pid_t spawn_zstd(const char *const argv[], bool compress, int fd, int *end) {
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		if (compress) {
			dup2(p[0], STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
		} else {
			dup2(p[1], STDOUT_FILENO);
		}
		execvp("zstd", (char *const *)argv);
		_exit(127);
	}
	close(compress ? p[0] : p[1]);
	*end = compress ? p[1] : p[0];
	return pid;
}

/* How zstd ended: 0, or -ENOENT when it is not there to run. */
static int reap_zstd(pid_t pid, const char **why) {
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		*why = "zstd is not installed: it is needed for .zst traces (or decompress the file first)";
		return -ENOENT;
	}
	*why = "zstd failed (not zstd data?)";
	return -EBADMSG;
}

/* Read a raw trace from `path`, or one through `zstd -dc` from a .zst file. */
static int read_file(const char *path, struct trace *tr, const char **why) {
	if (access(path, R_OK) < 0) {
		*why = "cannot read the file";
		return -errno;
	}
	if (!ends_with(path, ".zst")) {
		FILE *f = fopen(path, "re");
		if (!f)
			return -errno;
		int r = trace_read(f, tr);
		fclose(f);
		if (r == -EBADMSG)
			*why = "not a trace file";
		return r;
	}
	const char *const argv[] = {"zstd", "-dcq", "--", path, NULL};
	int fd;
	pid_t pid = spawn_zstd(argv, false, -1, &fd);
	if (pid < 0)
		return (int)pid;
	FILE *f = fdopen(fd, "r");
	int r = f ? trace_read(f, tr) : -errno;
	if (f)
		fclose(f); /* a decompressor still writing gets EPIPE and stops */
	else
		close(fd);
	int z = reap_zstd(pid, why);
	if (z < 0) {
		/* What zstd says (not there, not zstd data) comes first:
		 * whatever was read is not the file's. */
		if (r == 0)
			trace_free(tr);
		return z;
	}
	if (r == -EBADMSG)
		*why = "not a trace file";
	return r;
}

static int write_trace(FILE *f, const struct trace *tr) {
	struct trace_writer w;
	int r = trace_writer_open(&w, f, tr->page_shift);
	for (size_t i = 0; r == 0 && i < tr->n; i++) {
		struct trace_access a = trace_unpack(tr->w[i]);
		r = trace_writer_add(&w, &a);
	}
	return r == 0 ? trace_writer_close(&w) : r;
}

int sim_trace_save(const struct trace *tr, const char *path, const char **why) {
	*why = NULL;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		*why = "cannot create the file";
		return -errno;
	}
	if (!ends_with(path, ".zst")) {
		FILE *f = fdopen(TAKE_FD(fd), "w");
		if (!f)
			return -errno;
		int r = write_trace(f, tr);
		if (fclose(f) != 0 && r == 0)
			r = -EIO;
		return r;
	}
	const char *const argv[] = {"zstd", "-cq", NULL};
	int end;
	pid_t pid = spawn_zstd(argv, true, fd, &end);
	if (pid < 0)
		return (int)pid;
	/* A zstd that is not there closes the pipe: a write must then fail
	 * with EPIPE, not end the process. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	sigaction(SIGPIPE, &ign, &old);
	FILE *f = fdopen(end, "w");
	int r = f ? write_trace(f, tr) : -errno;
	if (f) {
		if (fclose(f) != 0 && r == 0)
			r = -EIO;
	} else {
		close(end);
	}
	sigaction(SIGPIPE, &old, NULL);
	int z = reap_zstd(pid, why);
	if (z < 0) {
		unlink(path);
		return z;
	}
	return r;
}

int sim_trace_load(const char *path, struct sim_trace *out, const char **why) {
	struct trace tr;
	*why = NULL;
	*out = (struct sim_trace){0};
	int r = read_file(path, &tr, why);
	if (r < 0)
		return r;
	_cleanup_free_ char *name = trace_name(path);
	r = name ? sim_trace_prepare(&tr, name, out) : -ENOMEM;
	trace_free(&tr);
	return r;
}
