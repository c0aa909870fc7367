/* SPDX-License-Identifier: Apache-2.0 */
/*
 * debver.c - Debian version ordering ([epoch:]upstream[-revision]), after
 * dpkg's verrevcmp(): runs of non-digits compare by character, letters
 * before other characters and '~' before everything, even the end of the
 * string ("1.0~rc1" < "1.0"); runs of digits compare as numbers.
 */
#include "chk.h"

#include <stdlib.h>
#include <string.h>

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
order(int c)
{
	if (is_digit(c))
		return 0;
	if (is_alpha(c))
		return c;
	if (c == '~')
		return -1;
	if (c != '\0')
		return c + 256;
	return 0;
}

/* Compare a..ae with b..be (no NUL inside either part). */
static int
verrevcmp(const char *a, const char *ae, const char *b, const char *be)
{
#define AT(p, e)	((p) < (e) ? (unsigned char)*(p) : 0)
	while (a < ae || b < be) {
		int first_diff = 0;

		while ((a < ae && !is_digit(AT(a, ae))) ||
		    (b < be && !is_digit(AT(b, be)))) {
			int ac = order(AT(a, ae)), bc = order(AT(b, be));

			if (ac != bc)
				return ac - bc;
			a++;
			b++;
		}
		while (AT(a, ae) == '0')
			a++;
		while (AT(b, be) == '0')
			b++;
		while (is_digit(AT(a, ae)) && is_digit(AT(b, be))) {
			if (!first_diff)
				first_diff = AT(a, ae) - AT(b, be);
			a++;
			b++;
		}
		if (is_digit(AT(a, ae)))
			return 1;
		if (is_digit(AT(b, be)))
			return -1;
		if (first_diff)
			return first_diff;
	}
	return 0;
#undef AT
}

struct ver {
	unsigned long	epoch;
	const char	*up, *up_end;
	const char	*rev, *rev_end;
};

static void
split(const char *s, struct ver *v)
{
	const char *colon = strchr(s, ':'), *hyphen;

	v->epoch = 0;
	if (colon != NULL) {
		v->epoch = strtoul(s, NULL, 10);
		s = colon + 1;
	}
	v->up = s;
	v->rev_end = s + strlen(s);
	if ((hyphen = strrchr(s, '-')) != NULL) {
		v->up_end = hyphen;
		v->rev = hyphen + 1;
	} else {
		v->up_end = v->rev_end;
		v->rev = v->rev_end;
	}
}

int
debver_cmp(const char *a, const char *b)
{
	struct ver va, vb;
	int rc;

	split(a, &va);
	split(b, &vb);
	if (va.epoch != vb.epoch)
		return va.epoch < vb.epoch ? -1 : 1;
	rc = verrevcmp(va.up, va.up_end, vb.up, vb.up_end);
	if (rc == 0)
		rc = verrevcmp(va.rev, va.rev_end, vb.rev, vb.rev_end);
	return rc < 0 ? -1 : rc > 0;
}

/* Roughly dpkg's parseversion() rules: a numeric epoch if any, an upstream
 * part that starts with a digit, and only version characters. */
int
debver_valid(const char *s)
{
	const char *colon = strchr(s, ':'), *p;

	if (colon != NULL) {
		if (colon == s || colon - s > 9)
			return 0;
		for (p = s; p < colon; p++)
			if (!is_digit(*p))
				return 0;
		s = colon + 1;
	}
	if (!is_digit(*s))
		return 0;
	for (p = s; *p != '\0'; p++)
		if (!is_digit(*p) && !is_alpha(*p) && strchr(".+~-:", *p) == NULL)
			return 0;
	return p[-1] != '-';
}
