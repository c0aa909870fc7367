/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - the INI files of the agent (/etc/muster/agent.conf), the CLI
 * (~/.config/muster/muster.conf) and muster-server
 * (/etc/muster/server.conf), design.md §7.
 *
 * Each section is a table of keys; each key names a setter that parses one
 * value (or one list item) into a field found by offset.  inih does not tell
 * its handler the line number, so the file is fed to inih through our own
 * line reader, which counts lines, checks section names (inih never calls
 * the handler for a section without keys) and stops the parse at the first
 * error by reporting end of file.
 */
#include "config.h"

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "hostsig.h"
#include "jobuid.h"
#include "log.h"

#define NOT_LIST	SIZE_MAX
#define FSIZE(t, m)	sizeof(((t *)0)->m)

/* A scalar key, with or without a numeric range. */
#define KEY(n, fn, t, m) \
	{ n, fn, offsetof(t, m), FSIZE(t, m), 0, UINT64_MAX, NOT_LIST, 0 }
#define KEY_RANGE(n, fn, t, m, lo, hi) \
	{ n, fn, offsetof(t, m), FSIZE(t, m), lo, hi, NOT_LIST, 0 }
/* A list: fn parses one item into m[i]; cnt counts the items. */
#define KEY_LIST(n, fn, t, m, cnt) \
	{ n, fn, offsetof(t, m), FSIZE(t, m[0]), 0, UINT64_MAX, \
	    offsetof(t, cnt), (int)(FSIZE(t, m) / FSIZE(t, m[0])) }
#define KEY_END	{ NULL, NULL, 0, 0, 0, 0, 0, 0 }

struct conf_ctx;
struct conf_key;

typedef int (*conf_set_fn)(struct conf_ctx *, const struct conf_key *,
    void *, const char *);

struct conf_key {
	const char *name;
	conf_set_fn set;	/* parses one value, or one list item */
	size_t off;		/* field, from the section's base */
	size_t size;		/* field size; for a list, one item's */
	uint64_t min, max;	/* range of a numeric field */
	size_t count_off;	/* a list's int item count, or NOT_LIST */
	int max_items;
};

struct conf_section {
	const char *name;
	const struct conf_key *keys;
	size_t base;		/* offset of the struct the keys' fields are in */
};

struct conf_ctx {
	const char *path;
	const struct conf_section *sections;	/* ends with a NULL name */
	char *base;		/* the struct being filled */
	FILE *fp;
	int line;		/* the line inih is parsing */
	bool indented;		/* it starts with white space */
	bool have_prev;		/* a key was seen since the last [section] */
	const char *section;	/* for messages, valid inside the handler */
	const char *key;
	int rc;
	int errline;
	struct mu_err *err;
};

/* Record the first error with the file and line in front. */
static int __attribute__((format(printf, 2, 3)))
conf_fail(struct conf_ctx *x, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	x->rc = MU_EINVAL;
	x->errline = x->line;
	return mu_errf(x->err, MU_EINVAL, "%s:%d: %s", x->path, x->line, why);
}

/* Record the first error with file, line, section and key in front. */
static int __attribute__((format(printf, 2, 3)))
conf_bad(struct conf_ctx *x, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return conf_fail(x, "[%s] %s: %s", x->section, x->key, why);
}

/*
 * Value parsers.
 */

/* Strict unsigned decimal: digits only (no sign, no space), no overflow.
 * Returns the first byte after the digits, or NULL. */
static const char *
scan_u64(const char *s, uint64_t *out)
{
	const char *p;
	uint64_t n = 0;
	unsigned int d;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		d = *p - '0';
		if (n > (UINT64_MAX - d) / 10)
			return NULL;
		n = n * 10 + d;
	}
	if (p == s)
		return NULL;
	*out = n;
	return p;
}

struct unit {
	const char *suffix;
	uint64_t scale;
};

/* A number followed by exactly one of the suffixes ("" included). */
static int
parse_scaled(const char *s, const struct unit *units, size_t nunits,
    uint64_t *out)
{
	const char *end;
	uint64_t n;
	size_t i;

	if (s == NULL || (end = scan_u64(s, &n)) == NULL)
		return MU_EINVAL;
	for (i = 0; i < nunits; i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (n > UINT64_MAX / units[i].scale)
			return MU_EINVAL;
		*out = n * units[i].scale;
		return MU_OK;
	}
	return MU_EINVAL;
}

int
parse_duration_ms(const char *s, uint64_t *out)
{
	static const struct unit units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
		{ "h", 3600 * 1000 }, { "d", 86400 * 1000 },
	};

	return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), out);
}

int
parse_size(const char *s, uint64_t *out)
{
	static const struct unit units[] = {
		{ "", 1 }, { "K", 1ULL << 10 }, { "k", 1ULL << 10 },
		{ "M", 1ULL << 20 }, { "m", 1ULL << 20 },
		{ "G", 1ULL << 30 }, { "g", 1ULL << 30 },
	};

	return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), out);
}

static const uint8_t v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/*
 * A v6 range inside ::ffff:0:0/96 is stored as the v4 range it covers:
 * cidr_match() treats mapped peers as IPv4, so only then can it match.
 */
static void
cidr_unmap(struct cidr *c)
{
	if (c->family != AF_INET6 || c->prefix < 96 ||
	    memcmp(c->addr, v4mapped, sizeof(v4mapped)) != 0)
		return;
	c->family = AF_INET;
	memmove(c->addr, c->addr + 12, 4);
	memset(c->addr + 4, 0, 12);
	c->prefix -= 96;
}

int
parse_cidr(const char *s, struct cidr *out)
{
	char addr[INET6_ADDRSTRLEN];
	struct cidr c;
	const char *slash, *end;
	uint64_t prefix, max;
	size_t len;

	if (s == NULL)
		return MU_EINVAL;
	memset(&c, 0, sizeof(c));
	slash = strchr(s, '/');
	len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (len == 0 || len >= sizeof(addr))
		return MU_EINVAL;
	memcpy(addr, s, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, c.addr) == 1) {
		c.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
		c.family = AF_INET6;
		max = 128;
	} else
		return MU_EINVAL;
	prefix = max;
	if (slash != NULL) {
		end = scan_u64(slash + 1, &prefix);
		if (end == NULL || *end != '\0' || prefix > max)
			return MU_EINVAL;
	}
	c.prefix = (uint8_t)prefix;
	cidr_unmap(&c);
	*out = c;
	return MU_OK;
}

/* Compare the first 'bits' bits; host bits of the range are ignored. */
static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned int bits)
{
	size_t full = bits / 8;
	uint8_t mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (bits % 8 == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - bits % 8));
	return ((a[full] ^ b[full]) & mask) == 0;
}

/*
 * The wake port listens dual-stack, so IPv4 peers arrive as ::ffff:a.b.c.d;
 * they are matched as the IPv4 address they are, against IPv4 ranges only.
 */
bool
cidr_match(const struct cidr *c, int family, const void *addr)
{
	uint8_t a[16];

	if (c == NULL || addr == NULL)
		return false;
	if (family == AF_INET)
		memcpy(a, addr, 4);
	else if (family == AF_INET6) {
		memcpy(a, addr, 16);
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
			family = AF_INET;
			memmove(a, a + 12, 4);
		}
	} else
		return false;
	if (family != c->family || c->prefix > (family == AF_INET ? 32 : 128))
		return false;
	return prefix_equal(c->addr, a, c->prefix);
}

/* GnuPG prints fingerprints in groups; keep only the hex digits. */
static int
fpr_normalise(const char *s, char *out, size_t size)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (*s == ' ' || *s == '\t')
			continue;
		if (!isxdigit((unsigned char)*s) || n + 1 >= size)
			return MU_EINVAL;
		out[n++] = (char)toupper((unsigned char)*s);
	}
	out[n] = '\0';
	return n == 40 || n == 64 ? MU_OK : MU_EINVAL;
}

/*
 * Setters: each parses one value into one field.
 */

static int
conf_copy(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v, const char *what)
{
	size_t len = strlen(v);

	if (len == 0)
		return conf_bad(x, "empty %s", what);
	if (len >= k->size)
		return conf_bad(x, "%s longer than %zu bytes", what, k->size - 1);
	memcpy(field, v, len + 1);
	return MU_OK;
}

static int
conf_range(struct conf_ctx *x, const struct conf_key *k, const char *v,
    uint64_t n)
{
	if (n >= k->min && n <= k->max)
		return MU_OK;
	if (k->max == UINT64_MAX)
		return conf_bad(x, "'%s' is below the minimum of %llu", v,
		    (unsigned long long)k->min);
	return conf_bad(x, "'%s' is out of range %llu..%llu", v,
	    (unsigned long long)k->min, (unsigned long long)k->max);
}

static int
set_path(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	return conf_copy(x, k, field, v, "path");
}

/* One folder of [limits] writable: absolute, no "." or ".." part (the
 * child binds each on itself: a path that moves under it is no path). */
static bool
writable_ok(const char *p)
{
	size_t len = strlen(p);

	return p[0] == '/' && strstr(p, "/./") == NULL && strstr(p, "/../") == NULL &&
	    !(len >= 2 && strcmp(p + len - 2, "/.") == 0) &&
	    !(len >= 3 && strcmp(p + len - 3, "/..") == 0);
}

int
config_writable(char *list, const char **out, int max, const char **bad)
{
	char *p, *save = NULL;
	int n = 0;

	*bad = NULL;
	for (p = strtok_r(list, " \t", &save); p; p = strtok_r(NULL, " \t", &save)) {
		if (!writable_ok(p)) {
			*bad = p;
			return -1;
		}
		if (n == max)
			return -1;
		out[n++] = p;
	}
	return n;
}

static int
set_writable(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	char buf[CONF_PATH_MAX];
	const char *out[CONF_WRITABLE_MAX], *bad;
	int rc;

	if ((rc = conf_copy(x, k, field, v, "list of folders")) != MU_OK)
		return rc;
	snprintf(buf, sizeof(buf), "%s", v);
	if (config_writable(buf, out, CONF_WRITABLE_MAX, &bad) >= 0)
		return MU_OK;
	if (bad)
		return conf_bad(x, "'%s' is not an absolute path without . or ..", bad);
	return conf_bad(x, "more than %d folders", CONF_WRITABLE_MAX);
}

static int
set_name(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	if (!name_valid(v))
		return conf_bad(x, "bad name '%s' (want [a-z0-9][a-z0-9._-], "
		    "at most %d)", v, NAME_MAX_LEN);
	return conf_copy(x, k, field, v, "name");
}

/* host, remembering that the file named it (config_agent_identity()). */
static int
set_host(struct conf_ctx *x, const struct conf_key *k, void *field, const char *v)
{
	struct agent_config *c = (struct agent_config *)(void *)((char *)field -
	    offsetof(struct agent_config, host));
	int rc = set_name(x, k, field, v);

	if (rc == 0)
		c->host_set = true;
	return rc;
}

static int
set_topic_root(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	if (!topic_root_valid(v))
		return conf_bad(x, "bad topic root '%s' (want a name, no '/')",
		    v);
	return conf_copy(x, k, field, v, "topic root");
}

bool
user_name_valid(const char *s)
{
	size_t i;

	if (s[0] == '\0' || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (i = 1; s[i] != '\0'; i++)
		if (i >= CONF_USER_MAX || !((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static int
set_user(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	if (!user_name_valid(v))
		return conf_bad(x, "bad user name '%s' (want [a-z_][a-z0-9_-], at most %d)",
		    v, CONF_USER_MAX);
	return conf_copy(x, k, field, v, "user name");
}

/* [limits] job_uids: "FIRST-LAST" or "none" (lib/jobuid.h).  The field is
 * job_uid_first; job_uid_count follows it in struct agent_config. */
static int
set_uid_range(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	struct agent_config *c = (struct agent_config *)((char *)field -
	    offsetof(struct agent_config, job_uid_first));
	struct mu_err e;
	unsigned count;
	uid_t first;

	(void)k;
	if (jobuid_parse(v, &first, &count, &e) != MU_OK)
		return conf_bad(x, "%s", e.msg);
	c->job_uid_first = (uint32_t)first;
	c->job_uid_count = count;
	return MU_OK;
}

/*
 * What follows the scheme: host[:port], then a path for WebSockets only.
 * The host is a name or an IPv4 address, or an IPv6 address in brackets.
 * Paho would take a malformed one and then say no more than "TCP/TLS
 * connect failure", so --check-config catches it here.
 */
static bool
uri_host_port_valid(const char *s, bool web)
{
	char addr[INET6_ADDRSTRLEN];
	uint8_t buf[16];
	const char *p = s, *end;
	uint64_t port;

	if (*p == '[') {
		if ((end = strchr(p, ']')) == NULL || end == p + 1 ||
		    (size_t)(end - p - 1) >= sizeof(addr))
			return false;
		memcpy(addr, p + 1, (size_t)(end - p - 1));
		addr[end - p - 1] = '\0';
		if (inet_pton(AF_INET6, addr, buf) != 1)
			return false;
		p = end + 1;
	} else {
		for (end = p; isalnum((unsigned char)*end) || *end == '.' ||
		    *end == '-' || *end == '_'; end++)
			;
		if (end == p)
			return false;
		p = end;
	}
	if (*p == ':') {
		if ((end = scan_u64(p + 1, &port)) == NULL || port == 0 || port > 65535)
			return false;
		p = end;
	}
	return *p == '\0' || (web && *p == '/');
}

/* The schemes Paho accepts, each with a well-formed host and port. */
static int
set_uri(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	static const char *schemes[] = {
		"ssl://", "mqtts://", "wss://", "tcp://", "mqtt://", "ws://",
	};
	const char *p;
	size_t i, len;

	for (p = v; *p != '\0'; p++)
		if (isspace((unsigned char)*p))
			return conf_bad(x, "bad uri '%s'", v);
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		len = strlen(schemes[i]);
		if (strncmp(v, schemes[i], len) != 0 || v[len] == '\0')
			continue;
		if (!uri_host_port_valid(v + len, schemes[i][0] == 'w'))
			return conf_bad(x, "bad uri '%s' (want %shost:port: a "
			    "host name or address, [IPv6] in brackets, a port "
			    "1-65535)", v, schemes[i]);
		return conf_copy(x, k, field, v, "uri");
	}
	return conf_bad(x, "bad uri '%s' (want ssl://host:port or another "
	    "scheme Paho knows)", v);
}

/* A numeric address only: the listener binds it without a DNS lookup. */
static int
set_bind(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	uint8_t buf[16];

	if (inet_pton(AF_INET6, v, buf) != 1 && inet_pton(AF_INET, v, buf) != 1)
		return conf_bad(x, "bad address '%s' (want an IPv4 or IPv6 "
		    "literal)", v);
	return conf_copy(x, k, field, v, "address");
}

static int
set_int(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	const char *end;
	uint64_t n;

	end = scan_u64(v, &n);
	if (end == NULL || *end != '\0')
		return conf_bad(x, "bad number '%s'", v);
	if (conf_range(x, k, v, n) != MU_OK)
		return x->rc;
	*(int *)field = (int)n;
	return MU_OK;
}

static int
set_protocol(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	(void)k;
	if (strcmp(v, "5") == 0)
		*(int *)field = 5;
	else if (strcmp(v, "3.1.1") == 0 || strcmp(v, "4") == 0)
		*(int *)field = 4;
	else
		return conf_bad(x, "bad protocol '%s' (want 5 or 3.1.1)", v);
	return MU_OK;
}

static int
set_prefer(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	(void)k;
	if (strcmp(v, "signed") == 0)
		*(bool *)field = false;
	else if (strcmp(v, "local") == 0)
		*(bool *)field = true;
	else
		return conf_bad(x, "bad choice '%s' (want signed or local)", v);
	return MU_OK;
}

static int
set_log_level(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	int level;

	(void)k;
	if ((level = log_level_parse(v)) < 0)
		return conf_bad(x, "bad log level '%s' (want error, warning, "
		    "notice, info or debug)", v);
	*(int *)field = level;
	return MU_OK;
}

static int
set_duration(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	uint64_t n;

	if (parse_duration_ms(v, &n) != MU_OK)
		return conf_bad(x, "bad duration '%s' (want a number and ms, s, "
		    "m, h or d)", v);
	if (conf_range(x, k, v, n) != MU_OK)
		return x->rc;
	*(uint64_t *)field = n;
	return MU_OK;
}

/* MQTT's keepalive is a 16-bit count of seconds; do not round silently. */
static int
set_keepalive(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	uint64_t n;

	if (set_duration(x, k, &n, v) != MU_OK)
		return x->rc;
	if (n % 1000 != 0 || n > 65535 * 1000)
		return conf_bad(x, "'%s' must be whole seconds, at most 65535s",
		    v);
	*(uint64_t *)field = n;
	return MU_OK;
}

static int
set_size(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	uint64_t n;

	if (parse_size(v, &n) != MU_OK)
		return conf_bad(x, "bad size '%s' (want a number and K, M or G)",
		    v);
	if (conf_range(x, k, v, n) != MU_OK)
		return x->rc;
	*(uint64_t *)field = n;
	return MU_OK;
}

static int
set_cidr(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	struct cidr c;

	(void)k;
	if (parse_cidr(v, &c) != MU_OK)
		return conf_bad(x, "bad cidr '%s' (want address/prefix)", v);
	memcpy(field, &c, sizeof(c));
	return MU_OK;
}

static int
set_fpr(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	char fpr[65];

	if (k->size < sizeof(fpr) || fpr_normalise(v, fpr, sizeof(fpr)) != MU_OK)
		return conf_bad(x, "bad fingerprint '%s' (want 40 or 64 hex "
		    "digits)", v);
	memcpy(field, fpr, strlen(fpr) + 1);
	return MU_OK;
}

/* The CLI's server URL: http:// only (the server binds loopback by
 * default; put TLS in front with a proxy). */
static int
set_http_url(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *v)
{
	const char *p;

	for (p = v; *p != '\0'; p++)
		if (isspace((unsigned char)*p) || !isprint((unsigned char)*p))
			return conf_bad(x, "bad url '%s'", v);
	if (strncmp(v, "http://", 7) != 0 || v[7] == '\0')
		return conf_bad(x, "bad url '%s' (want http://host:port)", v);
	return conf_copy(x, k, field, v, "url");
}

/*
 * The tables.
 */

static const struct conf_key agent_keys[] = {
	KEY("host", set_host, struct agent_config, host),
	KEY("state_dir", set_path, struct agent_config, state_dir),
	KEY("runner", set_path, struct agent_config, runner),
	KEY("modules_dir", set_path, struct agent_config, modules_dir),
	KEY("facts_dir", set_path, struct agent_config, facts_dir),
	KEY("channel", set_name, struct agent_config, channel),
	KEY_LIST("groups", set_name, struct agent_config, groups, ngroups),
	KEY_RANGE("max_jobs", set_int, struct agent_config, max_jobs, 1, 256),
	KEY("user", set_user, struct agent_config, user),
	KEY("log_level", set_log_level, struct agent_config, log_level),
	KEY("sign_cert", set_path, struct agent_config, sign_cert),
	KEY("sign_key", set_path, struct agent_config, sign_key),
	KEY_END
};

static const struct conf_key broker_keys[] = {
	KEY_LIST("uri", set_uri, struct broker_config, uris, nuris),
	KEY("ca", set_path, struct broker_config, ca),
	KEY("cert", set_path, struct broker_config, cert),
	KEY("key", set_path, struct broker_config, key),
	KEY("protocol", set_protocol, struct broker_config, protocol),
	KEY("keepalive", set_keepalive, struct broker_config, keepalive_ms),
	KEY("retry_min", set_duration, struct broker_config, retry_min_ms),
	KEY("retry_max", set_duration, struct broker_config, retry_max_ms),
	KEY("reconnect_splay", set_duration, struct broker_config, reconnect_splay_ms),
	KEY("topic_root", set_topic_root, struct broker_config, topic_root),
	KEY_END
};

static const struct conf_key wake_keys[] = {
	KEY_RANGE("port", set_int, struct agent_config, wake_port, 0, 65535),
	KEY("bind", set_bind, struct agent_config, wake_bind),
	KEY_LIST("trusted", set_cidr, struct agent_config, trusted, ntrusted),
	KEY_END
};

static const struct conf_key trust_keys[] = {
	KEY("operators", set_path, struct agent_config, operators),
	KEY("gnupg_home", set_path, struct agent_config, gnupg_home),
	KEY_LIST("publishers", set_fpr, struct agent_config, publishers,
	    npublishers),
	KEY("policy", set_path, struct agent_config, policy),
	KEY_END
};

/* Zero limits would stop every job, so each must be at least 1. */
static const struct conf_key limits_keys[] = {
	KEY_RANGE("timeout", set_duration, struct agent_config, timeout_ms,
	    1, UINT64_MAX),
	KEY_RANGE("max_ttl", set_duration, struct agent_config, max_ttl_ms,
	    1, UINT64_MAX),
	KEY_RANGE("memory", set_size, struct agent_config, memory,
	    1, UINT64_MAX),
	KEY_RANGE("output", set_size, struct agent_config, output,
	    1, UINT64_MAX),
	KEY_RANGE("cpu", set_duration, struct agent_config, cpu_ms,
	    1, UINT64_MAX),
	/* A job body is at most 256K (WIRE_MAX_BODY); more than 64M would
	 * only let unverified input cost memory. */
	KEY_RANGE("max_job", set_size, struct agent_config, max_job,
	    1024, 64ULL << 20),
	KEY("run_as", set_user, struct agent_config, run_as),
	KEY("job_uids", set_uid_range, struct agent_config, job_uid_first),
	/* RLIMIT_NPROC counts a uid's tasks (threads too): a runner and the
	 * module's own need a few. */
	KEY_RANGE("processes", set_int, struct agent_config, processes, 4, 65536),
	KEY("writable", set_writable, struct agent_config, writable),
	KEY_END
};

static const struct conf_key modules_keys[] = {
	KEY("cache", set_size, struct agent_config, module_cache),
	KEY("prefer", set_prefer, struct agent_config, prefer_local),
	KEY_RANGE("fetch_timeout", set_duration, struct agent_config,
	    fetch_timeout_ms, 1, UINT64_MAX),
	KEY("prefetch_delay", set_duration, struct agent_config,
	    prefetch_delay_ms),
	KEY_RANGE("max_size", set_size, struct agent_config, module_max,
	    1, CONF_MODULE_MAX),
	KEY_END
};

static const struct conf_key update_keys[] = {
	KEY("jitter", set_duration, struct agent_config, update_jitter_ms),
	KEY_RANGE("selftest_timeout", set_duration, struct agent_config,
	    selftest_timeout_ms, 1000, UINT64_MAX),
	KEY_RANGE("healthy", set_duration, struct agent_config, healthy_ms,
	    1, UINT64_MAX),
	KEY("agent", set_path, struct agent_config, agent_path),
	KEY_END
};

static const struct conf_section agent_sections[] = {
	{ "agent", agent_keys, 0 },
	{ "broker", broker_keys, offsetof(struct agent_config, broker) },
	{ "wake", wake_keys, 0 },
	{ "trust", trust_keys, 0 },
	{ "limits", limits_keys, 0 },
	{ "modules", modules_keys, 0 },
	{ "update", update_keys, 0 },
	{ NULL, NULL, 0 }
};

static const struct conf_key operator_keys[] = {
	KEY("key", set_path, struct ctl_config, operator_key),
	KEY_END
};

static const struct conf_key publisher_keys[] = {
	KEY("gnupg_home", set_path, struct ctl_config, gnupg_home),
	KEY("fingerprint", set_fpr, struct ctl_config, fingerprint),
	KEY_END
};

/* The CLI's [server]: where `muster history` reads the archive. */
static const struct conf_key ctl_server_keys[] = {
	KEY("url", set_http_url, struct ctl_config, server_url),
	KEY_END
};

/* The CLI's [watch]: a persistent session for `muster watch`. */
static const struct conf_key watch_keys[] = {
	KEY("session", set_name, struct ctl_config, watch_session),
	KEY_RANGE("session_expiry", set_duration, struct ctl_config, watch_expiry_ms,
	    1000, 0xffffffffULL * 1000),
	KEY_END
};

/* The CLI's [cli]: persist = DUR keeps a per-user relay holding the broker
 * session that long after its last client (ctl/persist.c); 0: off. */
static const struct conf_key cli_keys[] = {
	KEY_RANGE("persist", set_duration, struct ctl_config, persist_ms, 0,
	    7ULL * 24 * 3600 * 1000),
	KEY_END
};

static const struct conf_section ctl_sections[] = {
	{ "broker", broker_keys, offsetof(struct ctl_config, broker) },
	{ "operator", operator_keys, 0 },
	{ "publisher", publisher_keys, 0 },
	{ "server", ctl_server_keys, 0 },
	{ "watch", watch_keys, 0 },
	{ "cli", cli_keys, 0 },
	{ NULL, NULL, 0 }
};

static const struct conf_key server_keys[] = {
	KEY("name", set_name, struct server_config, name),
	KEY("listen", set_bind, struct server_config, listen),
	KEY_RANGE("port", set_int, struct server_config, port, 1, 65535),
	KEY("auth_file", set_path, struct server_config, auth_file),
	KEY("www", set_path, struct server_config, www),
	KEY("log_level", set_log_level, struct server_config, log_level),
	KEY("user", set_user, struct server_config, user),
	KEY("sign_cert", set_path, struct server_config, sign_cert),
	KEY("sign_key", set_path, struct server_config, sign_key),
	KEY_END
};

/* The agent's [broker] keys, and the persistent session's lifetime. */
static const struct conf_key server_broker_keys[] = {
	KEY_RANGE("session_expiry", set_duration, struct server_config,
	    session_expiry_ms, 1000, 0xffffffffULL * 1000),
	KEY_END
};

static const struct conf_key archive_keys[] = {
	KEY("url", set_path, struct server_config, archive_url),
	KEY("max_age", set_duration, struct server_config, max_age_ms),
	KEY("max_size", set_size, struct server_config, max_size),
	KEY_RANGE("prune_interval", set_duration, struct server_config,
	    prune_interval_ms, 100, UINT64_MAX),
	KEY_RANGE("batch", set_duration, struct server_config, batch_ms,
	    1, 10 * 1000),
	KEY_END
};

/* Two tables share [broker]: find_section() takes the first whose keys
 * know the name (see conf_handler). */
static const struct conf_key selftest_keys[] = {
	KEY("key", set_path, struct server_config, selftest_key),
	KEY_RANGE("timeout", set_duration, struct server_config, selftest_timeout_ms,
	    1000, 24ULL * 3600 * 1000),
	KEY_RANGE("max", set_int, struct server_config, selftest_max, 1, 1 << 20),
	KEY_END
};

/* The operators whose announces count (server/jobs.c). */
static const struct conf_key server_trust_keys[] = {
	KEY("operators", set_path, struct server_config, operators),
	KEY_END
};

static const struct conf_section server_sections[] = {
	{ "server", server_keys, 0 },
	{ "broker", broker_keys, offsetof(struct server_config, broker) },
	{ "broker", server_broker_keys, 0 },
	{ "archive", archive_keys, 0 },
	{ "selftest", selftest_keys, 0 },
	{ "trust", server_trust_keys, 0 },
	{ NULL, NULL, 0 }
};

/*
 * The parse.
 */

static const struct conf_section *
find_section(const struct conf_section *s, const char *name, size_t len)
{
	for (; s->name != NULL; s++)
		if (strlen(s->name) == len && strncmp(s->name, name, len) == 0)
			return s;
	return NULL;
}

static const struct conf_key *
find_key(const struct conf_key *k, const char *name, size_t len)
{
	for (; k->name != NULL; k++)
		if (strlen(k->name) == len && strncmp(k->name, name, len) == 0)
			return k;
	return NULL;
}

/* A section may have several tables (the server's [broker]): the key is
 * looked up in each table of that name, in order. */
static const struct conf_key *
find_section_key(const struct conf_section *s, const char *section,
    const char *name, const struct conf_section **found)
{
	const struct conf_key *k;

	*found = NULL;
	for (; (s = find_section(s, section, strlen(section))) != NULL; s++) {
		if (*found == NULL)
			*found = s;
		if ((k = find_key(s->keys, name, strlen(name))) != NULL) {
			*found = s;
			return k;
		}
	}
	return NULL;
}

/* inih reads an indented "key = value" after a key as that key's next
 * line; spot the likely mistake to say so plainly. */
static bool
looks_like_key(const struct conf_section *sec, const char *v)
{
	size_t len = strcspn(v, " \t=");
	const char *p = v + len;

	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '=' && find_key(sec->keys, v, len) != NULL;
}

/* Hand one trimmed list item, as its own string, to the key's setter. */
static int
conf_item(struct conf_ctx *x, const struct conf_key *k, void *field,
    const char *s, size_t len)
{
	char item[CONF_PATH_MAX];

	if (len >= sizeof(item))
		return conf_bad(x, "list item longer than %zu bytes",
		    sizeof(item) - 1);
	memcpy(item, s, len);
	item[len] = '\0';
	return k->set(x, k, field, item);
}

/*
 * One line of a list: items are comma-separated and trimmed; a comma may
 * end the line so that a long list can go on over indented lines.  The
 * key's first line replaces the default list; continuation lines append.
 */
static int
conf_list(struct conf_ctx *x, const struct conf_key *k, char *base,
    const char *v, bool cont)
{
	int *n = (int *)(base + k->count_off);
	const char *p, *end, *last;

	if (!cont)
		*n = 0;
	for (p = v;; p = end + 1) {
		if ((end = strchr(p, ',')) == NULL)
			end = p + strlen(p);
		while (p < end && isspace((unsigned char)*p))
			p++;
		for (last = end; last > p && isspace((unsigned char)last[-1]);)
			last--;
		if (p == last && *end == '\0' && end != v)
			return MU_OK;
		if (p == last)
			return conf_bad(x, "empty item in list '%s'", v);
		if (*n >= k->max_items)
			return conf_bad(x, "more than %d items", k->max_items);
		if (conf_item(x, k, base + k->off + *n * k->size, p,
		    (size_t)(last - p)) != MU_OK)
			return x->rc;
		(*n)++;
		if (*end == '\0')
			return MU_OK;
	}
}

static int
conf_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct conf_ctx *x = user;
	const struct conf_section *sec;
	const struct conf_key *k;
	bool cont;
	int rc;

	/* inih hands an indented line after a key to that key again. */
	cont = x->indented && x->have_prev;
	x->have_prev = true;
	x->section = section;
	x->key = name;
	k = find_section_key(x->sections, section, name, &sec);
	if (sec == NULL)
		rc = conf_fail(x, "%s: key outside any [section]", name);
	else if (k == NULL)
		rc = conf_bad(x, "unknown key");
	else if (cont && looks_like_key(sec, value))
		rc = conf_bad(x, "indented line '%s' continues this key; "
		    "keys must not be indented", value);
	else if (k->count_off != NOT_LIST)
		rc = conf_list(x, k, x->base + sec->base, value, cont);
	else if (cont)
		rc = conf_bad(x, "indented line '%s' continues a key that "
		    "takes one value", value);
	else
		rc = k->set(x, k, x->base + sec->base + k->off, value);
	x->section = x->key = NULL;
	return rc == MU_OK;
}

/* Mirrors inih's reading of "[name]"; only known sections may appear. */
static int
conf_section_line(struct conf_ctx *x, const char *line)
{
	const char *p = line, *end;

	if (x->line == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '[' || (p > line && x->have_prev))
		return MU_OK;	/* not a section line */
	if ((end = strchr(p + 1, ']')) == NULL)
		return MU_OK;	/* inih reports the syntax error */
	x->have_prev = false;
	if (find_section(x->sections, p + 1, (size_t)(end - p - 1)) == NULL)
		return conf_fail(x, "unknown section [%.*s]",
		    (int)(end - p - 1), p + 1);
	return MU_OK;
}

/*
 * inih's reader: one line per call, so our count is inih's line number.
 * Returning NULL ends the parse, which is how the first error stops it.
 */
static char *
conf_reader(char *buf, int size, void *stream)
{
	struct conf_ctx *x = stream;

	if (x->rc != MU_OK || fgets(buf, size, x->fp) == NULL)
		return NULL;
	x->line++;
	/* inih would cut a long line and drop the rest without a word. */
	if (strchr(buf, '\n') == NULL && getc(x->fp) != EOF) {
		conf_fail(x, "line longer than %d characters", size - 2);
		return NULL;
	}
	x->indented = isspace((unsigned char)buf[0]);
	if (conf_section_line(x, buf) != MU_OK)
		return NULL;
	return buf;
}

static int
conf_load(const struct conf_section *sections, void *base, const char *path,
    struct mu_err *err)
{
	struct conf_ctx x;
	int ret;

	if (path == NULL)
		return mu_errf(err, MU_EINVAL, "no configuration file given");
	memset(&x, 0, sizeof(x));
	x.path = path;
	x.sections = sections;
	x.base = base;
	x.err = err;
	if ((x.fp = fopen(path, "re")) == NULL)
		return mu_errf(err, MU_EIO, "%s: cannot open: %s", path,
		    strerror(errno));
	ret = ini_parse_stream(conf_reader, &x, conf_handler, &x);
	if (ret > 0 && (x.rc == MU_OK || ret < x.errline))
		x.rc = mu_errf(err, MU_EINVAL, "%s:%d: syntax error (want "
		    "[section] or key = value)", path, ret);
	else if (x.rc == MU_OK && ferror(x.fp))
		x.rc = mu_errf(err, MU_EIO, "%s: cannot read: %s", path,
		    strerror(errno));
	else if (x.rc == MU_OK && ret < 0)
		x.rc = mu_errf(err, MU_ENOMEM, "%s: cannot parse", path);
	fclose(x.fp);
	return x.rc;
}

/*
 * Defaults and the entry points.
 */

static void
copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}

/* The host name, lowercased; "localhost" if that is not a valid name. */
static void
default_host(char *buf, size_t size)
{
	char h[256];
	size_t i;

	if (gethostname(h, sizeof(h)) != 0)
		h[0] = '\0';
	h[sizeof(h) - 1] = '\0';
	for (i = 0; h[i] != '\0'; i++)
		h[i] = (char)tolower((unsigned char)h[i]);
	copy_str(buf, size, name_valid(h) ? h : "localhost");
}

static void
broker_defaults(struct broker_config *b)
{
	memset(b, 0, sizeof(*b));
	copy_str(b->uris[0], sizeof(b->uris[0]), "ssl://localhost:8883");
	b->nuris = 1;
	b->protocol = 5;
	b->keepalive_ms = 30 * 1000;
	b->retry_min_ms = 500;
	b->retry_max_ms = 60 * 1000;
	b->reconnect_splay_ms = 5 * 1000;
	copy_str(b->topic_root, sizeof(b->topic_root), TOPIC_ROOT_DEFAULT);
}

void
config_agent_defaults(struct agent_config *c)
{
	static const char *trusted[] = {
		"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
		"127.0.0.0/8", "::1/128", "fc00::/7",
	};
	size_t i;

	memset(c, 0, sizeof(*c));
	default_host(c->host, sizeof(c->host));
	copy_str(c->state_dir, sizeof(c->state_dir), "/var/lib/muster");
	copy_str(c->runner, sizeof(c->runner),
	    "/usr/libexec/muster/muster-runner");
	copy_str(c->modules_dir, sizeof(c->modules_dir),
	    "/usr/lib/muster/modules");
	copy_str(c->facts_dir, sizeof(c->facts_dir), "/etc/muster/facts.d");
	copy_str(c->channel, sizeof(c->channel), "stable");
	c->max_jobs = 4;
	copy_str(c->user, sizeof(c->user), "muster");
	c->log_level = LOG_INFO;
	broker_defaults(&c->broker);
	c->wake_port = 7117;
	copy_str(c->wake_bind, sizeof(c->wake_bind), "::");
	for (i = 0; i < sizeof(trusted) / sizeof(trusted[0]); i++)
		if (parse_cidr(trusted[i], &c->trusted[c->ntrusted]) == MU_OK)
			c->ntrusted++;
	copy_str(c->operators, sizeof(c->operators), "/etc/muster/operators");
	copy_str(c->gnupg_home, sizeof(c->gnupg_home), "/etc/muster/gnupg");
	c->timeout_ms = 60 * 1000;
	c->max_ttl_ms = 86400 * 1000;
	c->memory = 512ULL << 20;
	c->output = 64ULL << 10;
	c->cpu_ms = 5 * 60 * 1000;
	c->module_cache = 256ULL << 20;
	c->fetch_timeout_ms = 30 * 1000;
	c->prefetch_delay_ms = 10 * 60 * 1000;
	c->update_jitter_ms = 10 * 60 * 1000;
	c->selftest_timeout_ms = 2 * 60 * 1000;
	c->healthy_ms = 60 * 1000;
	c->module_max = CONF_MODULE_MAX;
	c->max_job = 1ULL << 20;
	copy_str(c->policy, sizeof(c->policy), POLICY_DEFAULT);
	copy_str(c->run_as, sizeof(c->run_as), "muster-job");
	/* The 256 uids just below systemd's DynamicUser= range (61184-65519),
	 * unused by systemd and Debian alike (docs/operations.md). */
	c->job_uid_first = 60928;
	c->job_uid_count = 256;
	c->processes = 128;
}

/* Parsed into a copy, so that a bad file (say on reload) changes nothing. */
int
config_agent_load(struct agent_config *c, const char *path, struct mu_err *err)
{
	struct agent_config tmp = *c;
	int rc;

	if ((rc = conf_load(agent_sections, &tmp, path, err)) == MU_OK)
		*c = tmp;
	return rc;
}

/*
 * The signing pair's default: next to the TLS pair, ".sign" before the
 * last extension of the file name (host.crt -> host.sign.crt; no
 * extension: ".sign" appended), as scripts/gen-pki writes them.
 */
static int
sign_path(char *out, size_t outsz, const char *tls, const char *what, struct mu_err *err)
{
	const char *base = strrchr(tls, '/'), *dot;
	int n;

	base = base ? base + 1 : tls;
	dot = strrchr(base, '.');
	if (dot == NULL || dot == base)
		n = snprintf(out, outsz, "%s.sign", tls);
	else
		n = snprintf(out, outsz, "%.*s.sign%s", (int)(dot - tls), tls, dot);
	if (n < 0 || (size_t)n >= outsz)
		return mu_errf(err, MU_EINVAL, "[broker] %s %s: too long to derive the "
		    "signing pair's sign_%s from; set it", what, tls, what);
	return MU_OK;
}

int
config_agent_identity(struct agent_config *c, const char *path, struct mu_err *err)
{
	char cn[256];
	int rc;

	if (c->sign_cert[0] == '\0' && c->broker.cert[0] != '\0' &&
	    (rc = sign_path(c->sign_cert, sizeof(c->sign_cert), c->broker.cert, "cert",
	    err)) != MU_OK)
		return rc;
	if (c->sign_key[0] == '\0' && c->broker.key[0] != '\0' &&
	    (rc = sign_path(c->sign_key, sizeof(c->sign_key), c->broker.key, "key",
	    err)) != MU_OK)
		return rc;
	if (c->broker.cert[0] == '\0')
		return MU_OK;
	if ((rc = hostsig_cert_file_cn(c->broker.cert, cn, sizeof(cn), err)) != MU_OK)
		return rc;
	if (!name_valid(cn))
		return mu_errf(err, MU_EINVAL, "%s: the certificate's CN '%s' is not a host "
		    "name ([a-z0-9][a-z0-9._-], at most %d): it cannot be this host's "
		    "certificate", c->broker.cert, cn, NAME_MAX_LEN);
	if (!c->host_set) {
		memcpy(c->host, cn, strlen(cn) + 1);	/* name_valid: it fits */
		return MU_OK;
	}
	if (strcmp(c->host, cn) != 0)
		return mu_errf(err, MU_EINVAL, "%s: [agent] host is '%s' but the certificate "
		    "%s is for '%s' (its CN), the only name the broker lets it use: set "
		    "host = %s, or remove the line", path, c->host, c->broker.cert, cn, cn);
	return MU_OK;
}

void
config_ctl_defaults(struct ctl_config *c)
{
	memset(c, 0, sizeof(*c));
	broker_defaults(&c->broker);
	c->watch_expiry_ms = 3600 * 1000;
}

int
config_ctl_load(struct ctl_config *c, const char *path, struct mu_err *err)
{
	struct ctl_config tmp = *c;
	int rc;

	if ((rc = conf_load(ctl_sections, &tmp, path, err)) == MU_OK)
		*c = tmp;
	return rc;
}

void
config_server_defaults(struct server_config *c)
{
	memset(c, 0, sizeof(*c));
	default_host(c->name, sizeof(c->name));
	copy_str(c->listen, sizeof(c->listen), "127.0.0.1");
	c->port = 8080;
	c->log_level = LOG_INFO;
	broker_defaults(&c->broker);
	c->session_expiry_ms = 86400 * 1000;
	copy_str(c->user, sizeof(c->user), SERVER_USER_DEFAULT);
	copy_str(c->archive_url, sizeof(c->archive_url), SERVER_ARCHIVE_DEFAULT);
	c->max_age_ms = 90ULL * 86400 * 1000;
	c->max_size = 1ULL << 30;
	c->prune_interval_ms = 60 * 1000;
	c->batch_ms = 50;
	c->selftest_timeout_ms = 60 * 1000;
	c->selftest_max = 1024;
}

int
config_server_load(struct server_config *c, const char *path, struct mu_err *err)
{
	struct server_config tmp = *c;
	int rc;

	if ((rc = conf_load(server_sections, &tmp, path, err)) != MU_OK)
		return rc;
	tmp.sign_set = tmp.sign_cert[0] != '\0' || tmp.sign_key[0] != '\0';
	if (tmp.sign_cert[0] == '\0' && tmp.broker.cert[0] != '\0' &&
	    (rc = sign_path(tmp.sign_cert, sizeof(tmp.sign_cert), tmp.broker.cert, "cert",
	    err)) != MU_OK)
		return rc;
	if (tmp.sign_key[0] == '\0' && tmp.broker.key[0] != '\0' &&
	    (rc = sign_path(tmp.sign_key, sizeof(tmp.sign_key), tmp.broker.key, "key",
	    err)) != MU_OK)
		return rc;
	*c = tmp;
	return MU_OK;
}
