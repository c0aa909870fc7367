/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replay.c - run a fuzz target over saved inputs without libFuzzer, so the
 * normal build replays the committed corpus as a regression test.
 *   fuzz_<x> [--expect FILE] FILE|DIR...
 * Every file (and every regular file directly in each DIR) is passed to the
 * target's fuzz_outcome (fuzz.h) in its own exactly-sized buffer, and what
 * happened is checked against the input's name:
 *   ok-*       must be taken (MU_OK: decoded and, where the target has an
 *              encoder, round-tripped to the same fields and bytes);
 *   bad-*      must be refused, with a reason; with --expect, FILE must give
 *              that reason, exactly, on a line "<name> <reason>";
 *   regress-*  inputs fuzzing found: replayed for crashes only (no outcome:
 *              what such an input should decode to was never decided).
 * Any other name in a DIR is an error (name it ok-, bad- or regress-); a
 * FILE given by itself under another name (a libFuzzer crash-<sha1>) is
 * replayed for crashes only.  Every line of the --expect file must name a
 * bad-* input that was replayed ('#' lines and blank lines aside), so the
 * file cannot go stale.  A missing or empty directory is an error: a test
 * that replays nothing must fail.  tests/fuzz/make-corpus.py writes the
 * seeds and the .expect files.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

int fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err);

/* The --expect file: one bad seed's reason a line. */
struct expect {
	char *name;
	char *reason;
	bool used;
};

static struct expect *expects;
static size_t nexpects;
static const char *expect_path;
static long nok, nbad, nfree, nall;

static int
load_expect(const char *path)
{
	char line[1024], *sp, *nl;
	size_t cap = 0, i, lineno = 0;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	expect_path = path;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if ((nl = strchr(line, '\n')) == NULL && !feof(f)) {
			fprintf(stderr, "replay: %s:%zu: line too long\n", path, lineno);
			fclose(f);
			return -1;
		}
		if (nl)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if ((sp = strchr(line, ' ')) == NULL || sp[1] == '\0' ||
		    strncmp(line, "bad-", 4) != 0) {
			fprintf(stderr, "replay: %s:%zu: not \"bad-<name> <reason>\"\n",
			    path, lineno);
			fclose(f);
			return -1;
		}
		*sp = '\0';
		for (i = 0; i < nexpects; i++)
			if (strcmp(expects[i].name, line) == 0) {
				fprintf(stderr, "replay: %s:%zu: %s again\n", path, lineno,
				    line);
				fclose(f);
				return -1;
			}
		if (nexpects == cap) {
			cap = cap ? cap * 2 : 64;
			if ((expects = realloc(expects, cap * sizeof(*expects))) == NULL)
				abort();
		}
		expects[nexpects].name = strdup(line);
		expects[nexpects].reason = strdup(sp + 1);
		expects[nexpects].used = false;
		if (!expects[nexpects].name || !expects[nexpects].reason)
			abort();
		nexpects++;
	}
	fclose(f);
	return 0;
}

static struct expect *
find_expect(const char *name)
{
	size_t i;

	for (i = 0; i < nexpects; i++)
		if (strcmp(expects[i].name, name) == 0)
			return &expects[i];
	return NULL;
}

/* Check the outcome of one input against its name; 0 if as it says. */
static int
check_outcome(const char *path, const char *name, int rc, const struct mu_err *err)
{
	struct expect *x;

	if (strncmp(name, "ok-", 3) == 0) {
		nok++;
		if (rc == MU_OK)
			return 0;
		fprintf(stderr, "replay: %s: refused (%s): %s\n", path, mu_strrc(rc),
		    err->msg);
		return -1;
	}
	if (strncmp(name, "bad-", 4) != 0) {
		nfree++;
		return 0;
	}
	nbad++;
	if ((x = find_expect(name)) != NULL)
		x->used = true;
	if (rc == MU_OK) {
		fprintf(stderr, "replay: %s: taken, but its name says it is refused\n",
		    path);
		return -1;
	}
	if (err->msg[0] == '\0') {
		fprintf(stderr, "replay: %s: refused (%s) without a reason\n", path,
		    mu_strrc(rc));
		return -1;
	}
	if (expect_path == NULL)
		return 0;
	if (x == NULL) {
		fprintf(stderr, "replay: %s: refused (%s): %s\n"
		    "replay: %s has no line for %s\n", path, mu_strrc(rc), err->msg,
		    expect_path, name);
		return -1;
	}
	if (strcmp(x->reason, err->msg) != 0) {
		fprintf(stderr, "replay: %s: refused for another reason\n"
		    "  expected: %s\n  got:      %s\n", path, x->reason, err->msg);
		return -1;
	}
	return 0;
}

static int
replay_file(const char *path, const char *name)
{
	struct mu_err err;
	uint8_t *buf;
	FILE *f;
	long n;
	int rc;

	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 ||
	    (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	/* malloc(0) may return NULL; keep a valid pointer for empty inputs. */
	if ((buf = malloc(n ? (size_t)n : 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "replay: %s: cannot read\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	memset(&err, 0, sizeof(err));
	nall++;
	rc = fuzz_outcome(buf, (size_t)n, &err);
	free(buf);
	return check_outcome(path, name, rc, &err);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
named(const char *name)
{
	return strncmp(name, "ok-", 3) == 0 || strncmp(name, "bad-", 4) == 0 ||
	    strncmp(name, "regress-", 8) == 0;
}

/* Replay the regular files in dir in name order; returns how many, or -1. */
static long
replay_dir(const char *dir)
{
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	struct stat st;
	long done = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((names = realloc(names, cap * sizeof(*names))) == NULL)
				abort();
		}
		if ((names[n++] = strdup(de->d_name)) == NULL)
			abort();
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (!named(names[i])) {
				fprintf(stderr, "replay: %s: name it ok-, bad- or "
				    "regress- (see replay.c)\n", path);
				done = -1;
			} else if (replay_file(path, names[i]) != 0)
				done = -1;
			else if (done >= 0)
				done++;
		}
		free(names[i]);
	}
	free(names);
	if (done == 0)
		fprintf(stderr, "replay: %s: no inputs\n", dir);
	return done;
}

int
main(int argc, char **argv)
{
	long n;
	const char *base;
	struct stat st;
	int i = 1, bad = 0;
	size_t k;

	if (argc > 2 && strcmp(argv[1], "--expect") == 0) {
		if (load_expect(argv[2]) != 0)
			return 1;
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s [--expect FILE] FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (; i < argc; i++) {
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			n = replay_dir(argv[i]);
		else {
			base = strrchr(argv[i], '/');
			base = base ? base + 1 : argv[i];
			n = replay_file(argv[i], base) == 0 ? 1 : -1;
		}
		if (n <= 0)
			bad = 1;
	}
	for (k = 0; k < nexpects; k++) {
		if (!expects[k].used) {
			fprintf(stderr, "replay: %s: no input %s was replayed\n",
			    expect_path, expects[k].name);
			bad = 1;
		}
		free(expects[k].name);
		free(expects[k].reason);
	}
	free(expects);
	printf("replayed %ld inputs: %ld ok-, %ld bad-, %ld outcome-free\n", nall,
	    nok, nbad, nfree);
	return bad;
}
