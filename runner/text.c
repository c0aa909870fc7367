/* SPDX-License-Identifier: Apache-2.0 */
/*
 * text.c - bounded text from modules: printf-style formatting, UTF-8
 * cleaning, and the one-line summary and reason.
 *
 * Everything a module writes ends up in msgpack strings that the CLI shows
 * as JSON, and JSON cannot carry invalid UTF-8; so bad bytes are replaced
 * here rather than refused further down the line.
 */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF), or 0 if there is none. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n, i;

	if (c >= 0x01 && c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
		return 0;
	return n;
}

size_t
utf8_clean(char *s, size_t len, size_t max)
{
	size_t i = 0, n;

	while (i < len) {
		n = utf8_seq((unsigned char *)s + i, len - i);
		if (n == 0) {
			s[i] = '?';
			n = 1;
		}
		if (i + n > max)
			break;
		i += n;
	}
	return i;
}

int
fbuf_vformat(struct fbuf *fb, const char *fmt, va_list ap)
{
	va_list again;
	size_t cap;
	int n;

	fb->p = fb->small, fb->len = 0, fb->cut = false;
	fb->small[0] = '\0';
	if (fmt == NULL)
		return MU_EINVAL;
	va_copy(again, ap);
	n = vsnprintf(fb->small, sizeof(fb->small), fmt, ap);
	if (n < 0) {
		va_end(again);
		fb->small[0] = '\0';
		return MU_EINVAL;
	}
	if ((size_t)n < sizeof(fb->small)) {
		va_end(again);
		fb->len = (size_t)n;
		return MU_OK;
	}
	cap = (size_t)n > RUNNER_FORMAT_MAX ? RUNNER_FORMAT_MAX : (size_t)n;
	if ((fb->p = malloc(cap + 1)) == NULL) {
		va_end(again);
		/* Keep what fitted in small: better than nothing. */
		fb->p = fb->small, fb->len = sizeof(fb->small) - 1, fb->cut = true;
		return MU_ENOMEM;
	}
	vsnprintf(fb->p, cap + 1, fmt, again);
	va_end(again);
	fb->len = cap;
	fb->cut = cap < (size_t)n;
	return MU_OK;
}

void
fbuf_free(struct fbuf *fb)
{
	if (fb->p != fb->small)
		free(fb->p);
	fb->p = fb->small, fb->len = 0;
}

int
text_vset(struct text *t, const char *fmt, va_list ap)
{
	/* Room for a character that starts at the limit to end in the
	 * buffer, so that the cut below falls between characters. */
	char buf[RUNNER_TEXT_MAX + 4];
	size_t i, len;
	int n;

	if (fmt == NULL || (n = vsnprintf(buf, sizeof(buf), fmt, ap)) < 0)
		return MU_EINVAL;
	len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
	len = utf8_clean(buf, len, RUNNER_TEXT_MAX);
	for (i = 0; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	memcpy(t->s, buf, len);
	t->s[len] = '\0';
	t->set = true;
	return MU_OK;
}

int
text_set(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = text_vset(t, fmt, ap);
	va_end(ap);
	return rc;
}
