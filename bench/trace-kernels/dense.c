/* SPDX-License-Identifier: MIT */
/*
 * dense: a dense double-precision kernel whose accesses tools/record-traces
 * records, for a pattern the other traces lack: a few large arrays swept
 * in blocks again and again, then a factorisation whose working set
 * shrinks column by column.
 *
 *   dense [N [BLOCK]]     (default 400 and 40)
 *
 * C = A·B by blocks of BLOCK×BLOCK, then C = LU with partial pivoting,
 * then C x = C·1 solved from the factors. The inputs come from a fixed
 * generator, so every run makes the same accesses; the one output line
 * (checksum and residual) shows the work was done and right.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;

/* xorshift64*: the same numbers everywhere, uniform in [-1, 1). */
static double next(void) {
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (double)((rng * 0x2545f4914f6cdd1dull) >> 11) / (double)(1ull << 52) - 1.0;
}

static void matmul(size_t n, size_t bs, const double *a, const double *b, double *c) {
	memset(c, 0, n * n * sizeof(*c));
	for (size_t ii = 0; ii < n; ii += bs)
		for (size_t kk = 0; kk < n; kk += bs)
			for (size_t jj = 0; jj < n; jj += bs) {
				size_t ie = ii + bs < n ? ii + bs : n, ke = kk + bs < n ? kk + bs : n,
				       je = jj + bs < n ? jj + bs : n;
				for (size_t i = ii; i < ie; i++)
					for (size_t k = kk; k < ke; k++) {
						double aik = a[i * n + k];
						for (size_t j = jj; j < je; j++)
							c[i * n + j] += aik * b[k * n + j];
					}
			}
}

/* In place, row-major; piv[k] is the row swapped with k. -1 when singular. */
static int lu(size_t n, double *a, size_t *piv) {
	for (size_t k = 0; k < n; k++) {
		size_t p = k;
		for (size_t i = k + 1; i < n; i++)
			if (fabs(a[i * n + k]) > fabs(a[p * n + k]))
				p = i;
		if (a[p * n + k] == 0.0)
			return -1;
		piv[k] = p;
		if (p != k)
			for (size_t j = 0; j < n; j++) {
				double t = a[k * n + j];
				a[k * n + j] = a[p * n + j];
				a[p * n + j] = t;
			}
		for (size_t i = k + 1; i < n; i++) {
			double l = a[i * n + k] /= a[k * n + k];
			for (size_t j = k + 1; j < n; j++)
				a[i * n + j] -= l * a[k * n + j];
		}
	}
	return 0;
}

static void lu_solve(size_t n, const double *lu_, const size_t *piv, double *x) {
	for (size_t k = 0; k < n; k++) {
		double t = x[k];
		x[k] = x[piv[k]];
		x[piv[k]] = t;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			x[i] -= lu_[i * n + j] * x[j];
	for (size_t i = n; i-- > 0;) {
		for (size_t j = i + 1; j < n; j++)
			x[i] -= lu_[i * n + j] * x[j];
		x[i] /= lu_[i * n + i];
	}
}

int main(int argc, char **argv) {
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 400;
	size_t bs = argc > 2 ? strtoul(argv[2], NULL, 10) : 40;
	if (n < 2 || n > 8192 || bs < 1 || bs > n) {
		fprintf(stderr, "usage: dense [N (2..8192) [BLOCK (1..N)]]\n");
		return 1;
	}
	double *a = malloc(n * n * sizeof(*a)), *b = malloc(n * n * sizeof(*b)), *c = malloc(n * n * sizeof(*c));
	double *x = malloc(n * sizeof(*x));
	size_t *piv = malloc(n * sizeof(*piv));
	if (!a || !b || !c || !x || !piv) {
		fprintf(stderr, "dense: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n * n; i++) {
		a[i] = next();
		b[i] = next();
	}
	matmul(n, bs, a, b, c);
	double checksum = 0;
	for (size_t i = 0; i < n * n; i++)
		checksum += c[i];
	/* The right-hand side C·1 (row sums) before C becomes its factors. */
	for (size_t i = 0; i < n; i++) {
		x[i] = 0;
		for (size_t j = 0; j < n; j++)
			x[i] += c[i * n + j];
	}
	if (lu(n, c, piv) < 0) {
		fprintf(stderr, "dense: the product is singular\n");
		return 1;
	}
	lu_solve(n, c, piv, x);
	double err = 0;
	for (size_t i = 0; i < n; i++)
		err = fmax(err, fabs(x[i] - 1.0));
	printf("dense: n=%zu block=%zu checksum=%.6e max|x-1|=%.2e\n", n, bs, checksum, err);
	free(a);
	free(b);
	free(c);
	free(x);
	free(piv);
	return err < 1e-6 ? 0 : 1;
}
