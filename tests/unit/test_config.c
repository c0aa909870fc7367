/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/config.c: defaults, files, errors and value parsers. */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

#define FPR40	"0123456789ABCDEF0123456789ABCDEF01234567"
#define FPR64	"0123456789ABCDEF0123456789ABCDEF" \
		"0123456789ABCDEF0123456789ABCDEF"

struct tmpconf {
	char path[64];
};

/* Write text to a fresh temporary file; the caller unlinks it. */
static void
tmpconf_write(struct tmpconf *t, const char *text)
{
	size_t len = strlen(text);
	int fd;

	snprintf(t->path, sizeof(t->path), "/tmp/test_config.XXXXXX");
	fd = mkstemp(t->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static int
load_agent(const char *text, struct agent_config *c, struct mu_err *err,
    char *path, size_t pathlen)
{
	struct tmpconf t;
	int rc;

	tmpconf_write(&t, text);
	config_agent_defaults(c);
	memset(err, 0, sizeof(*err));
	rc = config_agent_load(c, t.path, err);
	if (path != NULL)
		snprintf(path, pathlen, "%s", t.path);
	unlink(t.path);
	return rc;
}

static int
load_ctl(const char *text, struct ctl_config *c, struct mu_err *err,
    char *path, size_t pathlen)
{
	struct tmpconf t;
	int rc;

	tmpconf_write(&t, text);
	config_ctl_defaults(c);
	memset(err, 0, sizeof(*err));
	rc = config_ctl_load(c, t.path, err);
	if (path != NULL)
		snprintf(path, pathlen, "%s", t.path);
	unlink(t.path);
	return rc;
}

static void
cidr_expect(const struct cidr *c, const char *text)
{
	struct cidr want;

	assert_int_equal(parse_cidr(text, &want), MU_OK);
	assert_int_equal(c->family, want.family);
	assert_int_equal(c->prefix, want.prefix);
	assert_memory_equal(c->addr, want.addr, sizeof(want.addr));
}

/*
 * Defaults.
 */

static void
test_agent_defaults(void **state)
{
	static const char *trusted[] = {
		"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
		"127.0.0.0/8", "::1/128", "fc00::/7",
	};
	struct agent_config c;
	size_t i;

	(void)state;
	config_agent_defaults(&c);
	assert_true(name_valid(c.host));
	assert_string_equal(c.state_dir, "/var/lib/muster");
	assert_string_equal(c.runner, "/usr/libexec/muster/muster-runner");
	assert_string_equal(c.modules_dir, "/usr/lib/muster/modules");
	assert_string_equal(c.facts_dir, "/etc/muster/facts.d");
	assert_string_equal(c.channel, "stable");
	assert_int_equal(c.ngroups, 0);
	assert_int_equal(c.max_jobs, 4);
	assert_int_equal(c.log_level, LOG_INFO);
	assert_int_equal(c.broker.nuris, 1);
	assert_string_equal(c.broker.uris[0], "ssl://localhost:8883");
	assert_string_equal(c.broker.ca, "");
	assert_string_equal(c.broker.cert, "");
	assert_string_equal(c.broker.key, "");
	assert_int_equal(c.broker.protocol, 5);
	assert_int_equal(c.broker.keepalive_ms, 30000);
	assert_string_equal(c.broker.topic_root, "muster");
	assert_int_equal(c.wake_port, 7117);
	assert_string_equal(c.wake_bind, "::");
	assert_int_equal(c.ntrusted, NITEMS(trusted));
	for (i = 0; i < NITEMS(trusted); i++)
		cidr_expect(&c.trusted[i], trusted[i]);
	assert_string_equal(c.operators, "/etc/muster/operators");
	assert_string_equal(c.gnupg_home, "/etc/muster/gnupg");
	assert_int_equal(c.npublishers, 0);
	assert_int_equal(c.timeout_ms, 60000);
	assert_int_equal(c.max_ttl_ms, 86400000);
	assert_int_equal(c.memory, 512ULL * 1024 * 1024);
	assert_int_equal(c.output, 64 * 1024);
	assert_int_equal(c.cpu_ms, 300000);
}

static void
test_agent_default_host(void **state)
{
	struct agent_config c;
	char h[256];
	size_t i;

	(void)state;
	config_agent_defaults(&c);
	assert_int_equal(gethostname(h, sizeof(h)), 0);
	h[sizeof(h) - 1] = '\0';
	for (i = 0; h[i] != '\0'; i++)
		if (h[i] >= 'A' && h[i] <= 'Z')
			h[i] += 'a' - 'A';
	assert_string_equal(c.host, name_valid(h) ? h : "localhost");
}

static void
test_ctl_defaults(void **state)
{
	struct ctl_config c;

	(void)state;
	config_ctl_defaults(&c);
	assert_int_equal(c.broker.nuris, 1);
	assert_string_equal(c.broker.uris[0], "ssl://localhost:8883");
	assert_string_equal(c.broker.ca, "");
	assert_string_equal(c.broker.cert, "");
	assert_string_equal(c.broker.key, "");
	assert_int_equal(c.broker.protocol, 5);
	assert_int_equal(c.broker.keepalive_ms, 30000);
	assert_string_equal(c.broker.topic_root, "muster");
	assert_string_equal(c.operator_key, "");
	assert_string_equal(c.gnupg_home, "");
	assert_string_equal(c.fingerprint, "");
}

/*
 * Valid files.
 */

static const char full_agent[] =
    "\xef\xbb\xbf; every key, none at its default\n"
    "[agent]\n"
    "host = web1.example\n"
    "state_dir = /srv/muster\n"
    "runner = /opt/muster/runner\n"
    "modules_dir = /srv/muster/mods\n"
    "facts_dir = /srv/muster/facts\n"
    "channel = canary\n"
    "groups = web , db,eu-west\n"
    "max_jobs = 256\n"
    "log_level = debug\n"
    "\n"
    "# the broker\n"
    "[broker]\n"
    "uri = ssl://b1:8883, mqtts://b2:8883\n"
    "ca = /etc/muster/ca.pem\n"
    "cert = /etc/muster/host.pem\n"
    "key = /etc/muster/host.key ; a comment\n"
    "protocol = 3.1.1\n"
    "keepalive = 1m\n"
    "topic_root = fleet\n"
    "[wake]\n"
    "port = 0\n"
    "bind = 0.0.0.0\n"
    "trusted = 10.1.0.0/16,\n"
    "    2001:db8::/32\n"
    "[trust]\n"
    "operators = /etc/ops\n"
    "gnupg_home = /etc/gpg\n"
    "publishers = 0123 4567 89ab cdef 0123  4567 89AB CDEF 0123 4567, "
    FPR64 "\n"
    "[limits]\n"
    "timeout = 90s\n"
    "max_ttl = 2h\n"
    "memory = 1G\n"
    "output = 100\n"
    "cpu = 1500ms\n"
    "writable = /srv/drop  /var/cache/x\n";

static void
test_agent_full(void **state)
{
	struct agent_config c;
	struct mu_err err;

	(void)state;
	assert_int_equal(load_agent(full_agent, &c, &err, NULL, 0), MU_OK);
	assert_string_equal(c.host, "web1.example");
	assert_string_equal(c.state_dir, "/srv/muster");
	assert_string_equal(c.runner, "/opt/muster/runner");
	assert_string_equal(c.modules_dir, "/srv/muster/mods");
	assert_string_equal(c.facts_dir, "/srv/muster/facts");
	assert_string_equal(c.channel, "canary");
	assert_int_equal(c.ngroups, 3);
	assert_string_equal(c.groups[0], "web");
	assert_string_equal(c.groups[1], "db");
	assert_string_equal(c.groups[2], "eu-west");
	assert_int_equal(c.max_jobs, 256);
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_int_equal(c.broker.nuris, 2);
	assert_string_equal(c.broker.uris[0], "ssl://b1:8883");
	assert_string_equal(c.broker.uris[1], "mqtts://b2:8883");
	assert_string_equal(c.broker.ca, "/etc/muster/ca.pem");
	assert_string_equal(c.broker.cert, "/etc/muster/host.pem");
	assert_string_equal(c.broker.key, "/etc/muster/host.key");
	assert_int_equal(c.broker.protocol, 4);
	assert_int_equal(c.broker.keepalive_ms, 60000);
	assert_string_equal(c.broker.topic_root, "fleet");
	assert_int_equal(c.wake_port, 0);
	assert_string_equal(c.wake_bind, "0.0.0.0");
	assert_int_equal(c.ntrusted, 2);
	cidr_expect(&c.trusted[0], "10.1.0.0/16");
	cidr_expect(&c.trusted[1], "2001:db8::/32");
	assert_string_equal(c.operators, "/etc/ops");
	assert_string_equal(c.gnupg_home, "/etc/gpg");
	assert_int_equal(c.npublishers, 2);
	assert_string_equal(c.publishers[0], FPR40);
	assert_string_equal(c.publishers[1], FPR64);
	assert_int_equal(c.timeout_ms, 90000);
	assert_int_equal(c.max_ttl_ms, 7200000);
	assert_int_equal(c.memory, 1ULL << 30);
	assert_int_equal(c.output, 100);
	assert_int_equal(c.cpu_ms, 1500);
	{
		const char *w[CONF_WRITABLE_MAX], *bad;
		char buf[CONF_PATH_MAX];

		snprintf(buf, sizeof(buf), "%s", c.writable);
		assert_int_equal(config_writable(buf, w, CONF_WRITABLE_MAX, &bad), 2);
		assert_string_equal(w[0], "/srv/drop");
		assert_string_equal(w[1], "/var/cache/x");
	}
}

static void
test_agent_retry(void **state)
{
	struct agent_config c;
	struct mu_err err;

	(void)state;
	config_agent_defaults(&c);
	assert_int_equal(c.broker.retry_min_ms, 500);
	assert_int_equal(c.broker.retry_max_ms, 60000);
	assert_int_equal(c.broker.reconnect_splay_ms, 5000);
	assert_int_equal(load_agent("[broker]\nretry_min = 20s\nretry_max = 2m\n"
	    "reconnect_splay = 0\n", &c, &err, NULL, 0), MU_OK);
	assert_int_equal(c.broker.retry_min_ms, 20000);
	assert_int_equal(c.broker.retry_max_ms, 120000);
	assert_int_equal(c.broker.reconnect_splay_ms, 0);
	assert_int_equal(load_agent("[broker]\nretry_max = soon\n", &c, &err, NULL, 0),
	    MU_EINVAL);
	assert_non_null(strstr(err.msg, "[broker] retry_max"));
}

static void
test_agent_modules(void **state)
{
	struct agent_config c;
	struct mu_err err;

	(void)state;
	config_agent_defaults(&c);
	assert_int_equal(c.module_cache, 256ULL << 20);
	assert_false(c.prefer_local);
	assert_int_equal(c.fetch_timeout_ms, 30000);
	assert_int_equal(c.prefetch_delay_ms, 600000);
	assert_int_equal(c.module_max, 64ULL << 20);
	assert_int_equal(load_agent("[modules]\ncache = 1G\nprefer = local\n"
	    "fetch_timeout = 500ms\nprefetch_delay = 0\nmax_size = 4K\n", &c, &err, NULL, 0),
	    MU_OK);
	assert_int_equal(c.module_cache, 1ULL << 30);
	assert_true(c.prefer_local);
	assert_int_equal(c.fetch_timeout_ms, 500);
	assert_int_equal(c.prefetch_delay_ms, 0);
	assert_int_equal(c.module_max, 4096);
}

static void
test_agent_empty_file(void **state)
{
	struct agent_config c, d;
	struct mu_err err;

	(void)state;
	assert_int_equal(load_agent("", &c, &err, NULL, 0), MU_OK);
	config_agent_defaults(&d);
	assert_memory_equal(&c, &d, sizeof(c));
}

/* A list in the file replaces the default list; it is not added to it. */
static void
test_agent_list_replaces(void **state)
{
	struct agent_config c;
	struct mu_err err;

	(void)state;
	assert_int_equal(load_agent("[wake]\ntrusted=10.1.0.0/16\n", &c, &err,
	    NULL, 0), MU_OK);
	assert_int_equal(c.ntrusted, 1);
	cidr_expect(&c.trusted[0], "10.1.0.0/16");
	/* Given twice, the last line wins, as for any key. */
	assert_int_equal(load_agent("[agent]\ngroups = a, b\nmax_jobs = 2\n"
	    "groups = c\nmax_jobs = 3\n", &c, &err, NULL, 0), MU_OK);
	assert_int_equal(c.ngroups, 1);
	assert_string_equal(c.groups[0], "c");
	assert_int_equal(c.max_jobs, 3);
}

static void
test_agent_list_full(void **state)
{
	char text[2048];
	struct agent_config c;
	struct mu_err err;
	size_t off;
	int i;

	(void)state;
	off = (size_t)snprintf(text, sizeof(text), "[agent]\ngroups = g0");
	for (i = 1; i < CONF_MAX_GROUPS; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, ",g%d", i);
	snprintf(text + off, sizeof(text) - off, "\n");
	assert_int_equal(load_agent(text, &c, &err, NULL, 0), MU_OK);
	assert_int_equal(c.ngroups, CONF_MAX_GROUPS);
	assert_string_equal(c.groups[CONF_MAX_GROUPS - 1], "g31");
}

static void
test_ctl_full(void **state)
{
	struct ctl_config c;
	struct mu_err err;

	(void)state;
	assert_int_equal(load_ctl(
	    "[broker]\n"
	    "uri = tcp://localhost:1883\n"
	    "ca = /home/op/ca.pem\n"
	    "cert = /home/op/op.pem\n"
	    "key = /home/op/op.key\n"
	    "protocol = 4\n"
	    "keepalive = 10\n"
	    "topic_root = test-root\n"
	    "[operator]\n"
	    "key = /home/op/ed25519.pem\n"
	    "[publisher]\n"
	    "gnupg_home = /home/op/.gnupg\n"
	    "fingerprint = " FPR64 "\n", &c, &err, NULL, 0), MU_OK);
	assert_int_equal(c.broker.nuris, 1);
	assert_string_equal(c.broker.uris[0], "tcp://localhost:1883");
	assert_string_equal(c.broker.ca, "/home/op/ca.pem");
	assert_string_equal(c.broker.cert, "/home/op/op.pem");
	assert_string_equal(c.broker.key, "/home/op/op.key");
	assert_int_equal(c.broker.protocol, 4);
	assert_int_equal(c.broker.keepalive_ms, 10000);
	assert_string_equal(c.broker.topic_root, "test-root");
	assert_string_equal(c.operator_key, "/home/op/ed25519.pem");
	assert_string_equal(c.gnupg_home, "/home/op/.gnupg");
	assert_string_equal(c.fingerprint, FPR64);
}

/* The broker URIs Paho takes: names, IPv4, [IPv6], no port, a WebSocket path. */
static void
test_broker_uri_forms(void **state)
{
	static const char *good[] = {
		"ssl://[::1]:8883", "ssl://10.0.0.1:8883", "mqtts://mq.example.com:8883",
		"tcp://localhost", "wss://mq.example.com:443/mqtt", "ws://mq_1:80/",
		"ssl://mq-1.example:65535",
	};
	struct ctl_config c;
	struct mu_err err;
	char text[256];
	size_t i;

	(void)state;
	for (i = 0; i < NITEMS(good); i++) {
		snprintf(text, sizeof(text), "[broker]\nuri = %s\n", good[i]);
		if (load_ctl(text, &c, &err, NULL, 0) != MU_OK)
			fail_msg("%s: %s", good[i], err.msg);
		assert_string_equal(c.broker.uris[0], good[i]);
	}
}

/*
 * Errors: each names file:line and the key, and changes nothing.
 */

struct bad_case {
	const char *text;
	int line;
	const char *want;	/* a substring of the message */
};

static const struct bad_case agent_bad[] = {
	{ "[agent]\nhost = a\n[bogus]\nhost = b\n", 3, "unknown section [bogus]" },
	{ "[agent]\n[nokeys]\n", 2, "unknown section [nokeys]" },
	{ "[agent]\nhostname = x\n", 2, "[agent] hostname: unknown key" },
	{ "[limits]\ntimeout = ten\n", 2,
	    "[limits] timeout: bad duration 'ten'" },
	{ "[limits]\n\n\ncpu = 10 s\n", 4, "[limits] cpu: bad duration '10 s'" },
	{ "[limits]\ntimeout = 0\n", 2, "[limits] timeout: '0' is below" },
	{ "[limits]\nmemory = 12X\n", 2, "[limits] memory: bad size '12X'" },
	{ "[limits]\noutput = 0\n", 2, "[limits] output: '0' is below" },
	{ "[limits]\nwritable = srv\n", 2,
	    "[limits] writable: 'srv' is not an absolute path without . or .." },
	{ "[limits]\nwritable = /srv/../etc\n", 2,
	    "[limits] writable: '/srv/../etc' is not an absolute path" },
	{ "[limits]\nwritable = /a /b /c /d /e /f /g /h /i\n", 2,
	    "[limits] writable: more than 8 folders" },
	{ "[wake]\ntrusted = 10.0.0.0/8, 10.0.0.0/33\n", 2,
	    "[wake] trusted: bad cidr '10.0.0.0/33'" },
	{ "[wake]\ntrusted = ::/129\n", 2, "[wake] trusted: bad cidr" },
	{ "[wake]\nbind = localhost\n", 2, "[wake] bind: bad address" },
	{ "[agent]\nhost = Web_1\n", 2, "[agent] host: bad name 'Web_1'" },
	{ "[agent]\nchannel = a/b\n", 2, "[agent] channel: bad name" },
	{ "[agent]\ngroups = web, DB\n", 2, "[agent] groups: bad name 'DB'" },
	{ "[broker]\ntopic_root = a/b\n", 2, "[broker] topic_root: bad topic" },
	{ "[broker]\nprotocol = 3\n", 2, "[broker] protocol: bad protocol '3'" },
	{ "[modules]\nprefer = newest\n", 2, "[modules] prefer: bad choice 'newest'" },
	{ "[modules]\nmax_size = 65M\n", 2, "[modules] max_size: '65M' is out of range" },
	{ "[modules]\nfetch_timeout = 0\n", 2, "[modules] fetch_timeout: '0' is below" },
	{ "[broker]\nkeepalive = 500ms\n", 2,
	    "[broker] keepalive: '500ms' must be whole seconds" },
	{ "[broker]\nkeepalive = 65536\n", 2, "[broker] keepalive:" },
	{ "[broker]\nuri = http://b:80\n", 2, "[broker] uri: bad uri" },
	{ "[broker]\nuri = ssl://\n", 2, "[broker] uri: bad uri" },
	/* Paho takes these and says only "TCP/TLS connect failure". */
	{ "[broker]\nuri = ssl://mq:88830\n", 2,
	    "[broker] uri: bad uri 'ssl://mq:88830' (want ssl://host:port" },
	{ "[broker]\nuri = ssl://mq:\n", 2, "[broker] uri: bad uri" },
	{ "[broker]\nuri = ssl://mq:0\n", 2, "[broker] uri: bad uri" },
	{ "[broker]\nuri = ssl://:8883\n", 2, "[broker] uri: bad uri" },
	{ "[broker]\nuri = ssl://mq:8883/x\n", 2, "[broker] uri: bad uri" },
	{ "[broker]\nuri = ssl://mq;8883\n", 2, "[broker] uri: bad uri" },
	{ "[broker]\nuri = ssl://[::1\n", 2, "[broker] uri: bad uri" },
	{ "[broker]\nuri = ssl://[mq]:8883\n", 2, "[broker] uri: bad uri" },
	{ "[broker]\nuri = ssl://b1:8883, tcp://b2:x\n", 2,
	    "[broker] uri: bad uri 'tcp://b2:x'" },
	{ "[broker]\nuri =\n", 2, "[broker] uri: empty item" },
	{ "[agent]\nmax_jobs = 0\n", 2, "[agent] max_jobs: '0' is out of range 1..256" },
	{ "[agent]\nmax_jobs = 257\n", 2, "[agent] max_jobs: '257' is out of range" },
	{ "[agent]\nmax_jobs = -1\n", 2, "[agent] max_jobs: bad number '-1'" },
	{ "[agent]\nlog_level = loud\n", 2, "[agent] log_level: bad log level" },
	{ "[wake]\nport = 65536\n", 2, "[wake] port: '65536' is out of range 0..65535" },
	{ "[wake]\nport = 99999999999999999999\n", 2, "[wake] port: bad number" },
	{ "[trust]\npublishers = ABCD\n", 2, "[trust] publishers: bad fingerprint 'ABCD'" },
	{ "[trust]\npublishers = " FPR40 ", " FPR40 "0\n", 2,
	    "[trust] publishers: bad fingerprint" },
	{ "[trust]\npublishers = 0123456789abcdef0123456789abcdef0123456G\n", 2,
	    "[trust] publishers: bad fingerprint" },
	{ "[agent]\ngroups = a,,b\n", 2, "[agent] groups: empty item" },
	{ "[agent]\ngroups = ,a\n", 2, "[agent] groups: empty item" },
	{ "[agent]\nstate_dir =\n", 2, "[agent] state_dir: empty path" },
	{ "[agent]\ngroups = g0,g1,g2,g3,g4,g5,g6,g7,g8,g9,g10,g11,g12,g13,g14,"
	    "g15,g16,g17,g18,g19,g20,g21,g22,g23,g24,g25,g26,g27,g28,g29,g30,"
	    "g31,g32\n", 2, "[agent] groups: more than 32 items" },
	{ "[agent]\nhost = a\n  b\n", 3, "[agent] host: indented line 'b'" },
	{ "[agent]\n  groups = a\n  channel = b\n", 3,
	    "[agent] groups: indented line 'channel = b' continues this key; "
	    "keys must not be indented" },
	{ "[agent]\njunk\nhostname = x\n", 2, "syntax error" },
	{ "[agent\n", 1, "syntax error" },
	{ "host = x\n", 1, "host: key outside any [section]" },
	{ "[agent]\nmax_jobs = 0\nhost = Bad\n", 2, "[agent] max_jobs:" },
};

static void
check_error(int rc, const struct mu_err *err, const char *path,
    const struct bad_case *bc)
{
	char where[128];

	snprintf(where, sizeof(where), "%s:%d: ", path, bc->line);
	if (rc != MU_EINVAL || strncmp(err->msg, where, strlen(where)) != 0 ||
	    strstr(err->msg, bc->want) == NULL)
		fail_msg("file:\n%s\nrc %d, message '%s'; want '%s...%s'",
		    bc->text, rc, err->msg, where, bc->want);
}

static void
test_agent_errors(void **state)
{
	struct agent_config c, d;
	struct mu_err err;
	char path[64];
	size_t i;
	int rc;

	(void)state;
	config_agent_defaults(&d);
	for (i = 0; i < NITEMS(agent_bad); i++) {
		rc = load_agent(agent_bad[i].text, &c, &err, path, sizeof(path));
		check_error(rc, &err, path, &agent_bad[i]);
		assert_memory_equal(&c, &d, sizeof(c));
	}
}

/* The example in config.h, to the letter. */
static void
test_agent_error_example(void **state)
{
	struct agent_config c;
	struct mu_err err;
	char path[64], want[128];

	(void)state;
	assert_int_equal(load_agent("[agent]\n\n\n\n\n\n\n\n\n\n[limits]\n"
	    "timeout = ten\n", &c, &err, path, sizeof(path)), MU_EINVAL);
	snprintf(want, sizeof(want), "%s:12: [limits] timeout: bad duration "
	    "'ten'", path);
	assert_memory_equal(err.msg, want, strlen(want));
}

/* 33 CIDRs do not fit one line, so this also covers continuation lines. */
static void
test_agent_too_many_cidrs(void **state)
{
	char text[2048];
	struct agent_config c;
	struct mu_err err;
	char path[64];
	struct bad_case bc = { NULL, 0, "[wake] trusted: more than 32 items" };
	size_t off;
	int i;

	(void)state;
	off = (size_t)snprintf(text, sizeof(text), "[wake]\ntrusted =");
	for (i = 0; i < CONF_MAX_CIDRS + 1; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off,
		    "%s10.0.%d.0/24,\n", i == 0 ? " " : "    ", i);
	bc.text = text;
	bc.line = 2 + CONF_MAX_CIDRS;
	check_error(load_agent(text, &c, &err, path, sizeof(path)), &err, path,
	    &bc);
	/* One fewer fits. */
	text[strlen(text) - strlen("    10.0.32.0/24,\n")] = '\0';
	assert_int_equal(load_agent(text, &c, &err, NULL, 0), MU_OK);
	assert_int_equal(c.ntrusted, CONF_MAX_CIDRS);
	cidr_expect(&c.trusted[31], "10.0.31.0/24");
}

/* inih would silently cut a long line; it must be an error instead. */
static void
test_agent_long_line(void **state)
{
	char text[512];
	struct agent_config c;
	struct mu_err err;
	char path[64];
	struct bad_case bc = { NULL, 2, "line longer than" };

	(void)state;
	snprintf(text, sizeof(text), "[agent]\nstate_dir = /%0300d\n", 0);
	bc.text = text;
	check_error(load_agent(text, &c, &err, path, sizeof(path)), &err, path,
	    &bc);
}

static void
test_missing_file(void **state)
{
	struct agent_config c;
	struct ctl_config cc;
	struct mu_err err;
	const char *path = "/nonexistent/muster/agent.conf";

	(void)state;
	config_agent_defaults(&c);
	assert_int_equal(config_agent_load(&c, path, &err), MU_EIO);
	assert_string_equal(err.msg, "/nonexistent/muster/agent.conf: cannot "
	    "open: No such file or directory");
	config_ctl_defaults(&cc);
	assert_int_equal(config_ctl_load(&cc, path, &err), MU_EIO);
	assert_non_null(strstr(err.msg, "cannot open"));
}

static const struct bad_case ctl_bad[] = {
	{ "[agent]\nhost = x\n", 1, "unknown section [agent]" },
	{ "[broker]\nprotocol = 6\n", 2, "[broker] protocol: bad protocol" },
	{ "[operator]\nkey =\n", 2, "[operator] key: empty path" },
	{ "[operator]\nfile = x\n", 2, "[operator] file: unknown key" },
	{ "[publisher]\nfingerprint = me@example.org\n", 2,
	    "[publisher] fingerprint: bad fingerprint" },
	{ "[publisher]\nfingerprint = " FPR40 ", " FPR40 "\n", 2,
	    "[publisher] fingerprint: bad fingerprint" },
};

static void
test_ctl_errors(void **state)
{
	struct ctl_config c, d;
	struct mu_err err;
	char path[64];
	size_t i;
	int rc;

	(void)state;
	config_ctl_defaults(&d);
	for (i = 0; i < NITEMS(ctl_bad); i++) {
		rc = load_ctl(ctl_bad[i].text, &c, &err, path, sizeof(path));
		check_error(rc, &err, path, &ctl_bad[i]);
		assert_memory_equal(&c, &d, sizeof(c));
	}
}

/*
 * muster-server: [server], the agent's [broker] keys plus session_expiry
 * (two tables under one section), [archive]; the CLI's [server] url.
 */

static int
load_server(const char *text, struct server_config *c, struct mu_err *err,
    char *path, size_t pathlen)
{
	struct tmpconf t;
	int rc;

	tmpconf_write(&t, text);
	config_server_defaults(c);
	memset(err, 0, sizeof(*err));
	rc = config_server_load(c, t.path, err);
	if (path != NULL)
		snprintf(path, pathlen, "%s", t.path);
	unlink(t.path);
	return rc;
}

static void
test_server_defaults(void **state)
{
	struct server_config c;

	(void)state;
	config_server_defaults(&c);
	assert_string_equal(c.listen, "127.0.0.1");
	assert_int_equal(c.port, 8080);
	assert_string_equal(c.auth_file, "");
	/* Its own state folder and user, apart from the agent's (issue 19). */
	assert_string_equal(c.archive_url, "/var/lib/muster-server/archive.db");
	assert_string_equal(c.user, "muster-server");
	assert_true(c.max_age_ms == 90ULL * 86400 * 1000);
	assert_true(c.max_size == 1ULL << 30);
	assert_true(c.session_expiry_ms == 86400 * 1000);
	assert_string_equal(c.broker.uris[0], "ssl://localhost:8883");
}

static void
test_server_full(void **state)
{
	struct server_config c;
	struct mu_err err;

	(void)state;
	assert_int_equal(load_server(
	    "[server]\n"
	    "name = ctl1\n"
	    "listen = ::1\n"
	    "port = 9090\n"
	    "auth_file = /etc/muster/users\n"
	    "user = ctl\n"
	    "[broker]\n"
	    "uri = ssl://b1:8883, ssl://b2:8883\n"
	    "ca = /etc/muster/ca.crt\n"
	    "session_expiry = 2h\n"
	    "topic_root = fleet\n"
	    "[archive]\n"
	    "url = postgresql://muster@db/muster\n"
	    "max_age = 7d\n"
	    "max_size = 0\n"
	    "batch = 10ms\n", &c, &err, NULL, 0), MU_OK);
	assert_string_equal(c.name, "ctl1");
	assert_string_equal(c.listen, "::1");
	assert_int_equal(c.port, 9090);
	assert_string_equal(c.auth_file, "/etc/muster/users");
	assert_string_equal(c.user, "ctl");
	assert_int_equal(c.broker.nuris, 2);
	assert_string_equal(c.broker.uris[1], "ssl://b2:8883");
	assert_string_equal(c.broker.ca, "/etc/muster/ca.crt");
	assert_string_equal(c.broker.topic_root, "fleet");
	assert_true(c.session_expiry_ms == 2 * 3600 * 1000);
	assert_string_equal(c.archive_url, "postgresql://muster@db/muster");
	assert_true(c.max_age_ms == 7ULL * 86400 * 1000);
	assert_true(c.max_size == 0);
	assert_true(c.batch_ms == 10);
}

static const struct bad_case server_bad[] = {
	{ "[server]\nport = 0\n", 2, "[server] port: '0' is out of range 1..65535" },
	{ "[server]\nlisten = localhost\n", 2, "[server] listen: bad address 'localhost'" },
	{ "[server]\nname = Bad Name\n", 2, "[server] name: bad name" },
	{ "[server]\nuser = Root\n", 2, "[server] user: bad user name 'Root'" },
	{ "[broker]\nsession_expiry = forever\n", 2, "[broker] session_expiry: bad duration" },
	{ "[broker]\nnope = 1\n", 2, "[broker] nope: unknown key" },
	{ "[archive]\nmax_size = lots\n", 2, "[archive] max_size: bad size 'lots'" },
	{ "[archive]\nbatch = 1h\n", 2, "[archive] batch: '1h' is out of range" },
	{ "[agent]\nhost = x\n", 1, "unknown section [agent]" },
};

static void
test_server_errors(void **state)
{
	struct server_config c, d;
	struct mu_err err;
	char path[64];
	size_t i;
	int rc;

	(void)state;
	config_server_defaults(&d);
	for (i = 0; i < NITEMS(server_bad); i++) {
		rc = load_server(server_bad[i].text, &c, &err, path, sizeof(path));
		check_error(rc, &err, path, &server_bad[i]);
		assert_memory_equal(&c, &d, sizeof(c));
	}
}

static void
test_ctl_server_url(void **state)
{
	struct ctl_config c;
	struct mu_err err;

	(void)state;
	assert_int_equal(load_ctl("[server]\nurl = http://ctl1:8080\n", &c, &err, NULL, 0),
	    MU_OK);
	assert_string_equal(c.server_url, "http://ctl1:8080");
	assert_int_equal(load_ctl("[server]\nurl = https://ctl1\n", &c, &err, NULL, 0),
	    MU_EINVAL);
	assert_non_null(strstr(err.msg, "[server] url: bad url"));
}

/*
 * Value parsers.
 */

struct num_case {
	const char *s;
	int rc;
	uint64_t want;
};

static const struct num_case durations[] = {
	{ "500ms", MU_OK, 500 },
	{ "30s", MU_OK, 30000 },
	{ "2", MU_OK, 2000 },
	{ "5m", MU_OK, 300000 },
	{ "1h", MU_OK, 3600000 },
	{ "1d", MU_OK, 86400000 },
	{ "0", MU_OK, 0 },
	{ "007s", MU_OK, 7000 },
	{ "18446744073709551615ms", MU_OK, UINT64_MAX },
	{ "18446744073709551s", MU_OK, 18446744073709551000ULL },
	{ "18446744073709552s", MU_EINVAL, 0 },
	{ "18446744073709551616ms", MU_EINVAL, 0 },
	{ "213503982334602d", MU_EINVAL, 0 },
	{ "", MU_EINVAL, 0 },
	{ "-1", MU_EINVAL, 0 },
	{ "+1", MU_EINVAL, 0 },
	{ "10 s", MU_EINVAL, 0 },
	{ " 10s", MU_EINVAL, 0 },
	{ "10s ", MU_EINVAL, 0 },
	{ "ten", MU_EINVAL, 0 },
	{ "s", MU_EINVAL, 0 },
	{ "1.5s", MU_EINVAL, 0 },
	{ "10S", MU_EINVAL, 0 },
	{ "10sec", MU_EINVAL, 0 },
	{ "10x", MU_EINVAL, 0 },
	{ "0x10", MU_EINVAL, 0 },
	{ NULL, MU_EINVAL, 0 },
};

static const struct num_case sizes[] = {
	{ "100", MU_OK, 100 },
	{ "64K", MU_OK, 65536 },
	{ "64k", MU_OK, 65536 },
	{ "512M", MU_OK, 536870912 },
	{ "2m", MU_OK, 2097152 },
	{ "1G", MU_OK, 1073741824 },
	{ "3g", MU_OK, 3221225472ULL },
	{ "0", MU_OK, 0 },
	{ "18446744073709551615", MU_OK, UINT64_MAX },
	{ "17179869183G", MU_OK, 17179869183ULL << 30 },
	{ "17179869184G", MU_EINVAL, 0 },
	{ "18446744073709551616", MU_EINVAL, 0 },
	{ "", MU_EINVAL, 0 },
	{ "-1", MU_EINVAL, 0 },
	{ "1 K", MU_EINVAL, 0 },
	{ "1KB", MU_EINVAL, 0 },
	{ "1KiB", MU_EINVAL, 0 },
	{ "1T", MU_EINVAL, 0 },
	{ "K", MU_EINVAL, 0 },
	{ "1.5G", MU_EINVAL, 0 },
	{ NULL, MU_EINVAL, 0 },
};

static void
check_numbers(const struct num_case *cases, size_t n,
    int (*parse)(const char *, uint64_t *))
{
	uint64_t v;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		v = 12345;
		rc = parse(cases[i].s, &v);
		if (rc != cases[i].rc)
			fail_msg("'%s': rc %d, want %d", cases[i].s ? cases[i].s :
			    "(null)", rc, cases[i].rc);
		/* On failure the output is left alone. */
		assert_int_equal(v, rc == MU_OK ? cases[i].want : 12345);
	}
}

static void
test_parse_duration(void **state)
{
	(void)state;
	check_numbers(durations, NITEMS(durations), parse_duration_ms);
}

static void
test_parse_size(void **state)
{
	(void)state;
	check_numbers(sizes, NITEMS(sizes), parse_size);
}

static void
test_parse_cidr(void **state)
{
	static const char *bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0/8",
		"10.0.0.0/8 ", " 10.0.0.0/8", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/8/8", "10.0.0.256/8", "host/8", "fe80::1%eth0/64",
		"10.0.0.0/99999999999999999999999", "1:2:3:4:5:6:7:8:9/64",
	};
	struct cidr c;
	size_t i;

	(void)state;
	assert_int_equal(parse_cidr("10.1.2.3/8", &c), MU_OK);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	/* Host bits are kept as written; cidr_match masks them. */
	assert_memory_equal(c.addr, "\x0a\x01\x02\x03", 4);
	assert_int_equal(parse_cidr("192.168.1.1", &c), MU_OK);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(parse_cidr("0.0.0.0/0", &c), MU_OK);
	assert_int_equal(c.prefix, 0);
	assert_int_equal(parse_cidr("::1", &c), MU_OK);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(c.addr[15], 1);
	assert_int_equal(parse_cidr("fc00::/7", &c), MU_OK);
	assert_int_equal(c.prefix, 7);
	assert_int_equal(c.addr[0], 0xfc);
	/* A v4-mapped v6 range is stored as the v4 range it covers. */
	assert_int_equal(parse_cidr("::ffff:10.0.0.0/104", &c), MU_OK);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_memory_equal(c.addr, "\x0a\0\0\0", 4);
	assert_int_equal(parse_cidr("::ffff:0:0/95", &c), MU_OK);
	assert_int_equal(c.family, AF_INET6);
	for (i = 0; i < NITEMS(bad); i++) {
		if (parse_cidr(bad[i], &c) != MU_EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	}
	assert_int_equal(parse_cidr(NULL, &c), MU_EINVAL);
}

struct match_case {
	const char *cidr;
	const char *addr;	/* IPv4 or IPv6 text, as a peer would be */
	bool want;
};

static const struct match_case matches[] = {
	{ "10.0.0.0/8", "10.200.3.4", true },
	{ "10.0.0.0/8", "11.0.0.1", false },
	{ "10.1.2.3/8", "10.200.0.1", true },
	{ "172.16.0.0/12", "172.31.255.255", true },
	{ "172.16.0.0/12", "172.32.0.0", false },
	{ "172.16.0.0/12", "172.15.255.255", false },
	{ "192.168.1.0/31", "192.168.1.1", true },
	{ "192.168.1.0/31", "192.168.1.2", false },
	{ "127.0.0.1", "127.0.0.1", true },
	{ "127.0.0.1", "127.0.0.2", false },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "0.0.0.0/0", "2001:db8::1", false },
	{ "fc00::/7", "fd12:3456::1", true },
	{ "fc00::/7", "fc00::1", true },
	{ "fc00::/7", "fe00::1", false },
	{ "::1/128", "::1", true },
	{ "::1/128", "::2", false },
	{ "2001:db8::/32", "2001:db8:ffff::1", true },
	{ "2001:db8::/32", "2001:db9::1", false },
	{ "::/0", "2001:db8::1", true },
	/* IPv4 peers on the dual-stack listener arrive v4-mapped. */
	{ "10.0.0.0/8", "::ffff:10.1.2.3", true },
	{ "10.0.0.0/8", "::ffff:11.1.2.3", false },
	{ "127.0.0.0/8", "::ffff:127.0.0.1", true },
	{ "0.0.0.0/0", "::ffff:1.2.3.4", true },
	{ "::ffff:10.0.0.0/104", "10.9.9.9", true },
	{ "::ffff:10.0.0.0/104", "::ffff:10.9.9.9", true },
	/* ...and are IPv4 peers: IPv6 ranges do not cover them. */
	{ "::/0", "::ffff:10.1.2.3", false },
	{ "::/0", "10.1.2.3", false },
	{ "::1/128", "127.0.0.1", false },
};

static void
test_cidr_match(void **state)
{
	uint8_t addr[16];
	struct cidr c;
	size_t i;
	int family;

	(void)state;
	for (i = 0; i < NITEMS(matches); i++) {
		assert_int_equal(parse_cidr(matches[i].cidr, &c), MU_OK);
		family = strchr(matches[i].addr, ':') ? AF_INET6 : AF_INET;
		assert_int_equal(inet_pton(family, matches[i].addr, addr), 1);
		if (cidr_match(&c, family, addr) != matches[i].want)
			fail_msg("%s in %s: want %s", matches[i].addr,
			    matches[i].cidr, matches[i].want ? "yes" : "no");
	}
	assert_int_equal(parse_cidr("10.0.0.0/8", &c), MU_OK);
	assert_false(cidr_match(&c, AF_UNIX, addr));
	assert_false(cidr_match(&c, AF_INET, NULL));
	assert_false(cidr_match(NULL, AF_INET, addr));
}

/* [agent] sign_key/sign_cert default to the [broker] pair's names with
 * ".sign" before the extension (issue 22); set ones are kept. */
static void
sign_pair_of(const char *key, const char *cert, const char *want_key, const char *want_cert)
{
	struct agent_config c;
	struct mu_err err;

	config_agent_defaults(&c);
	snprintf(c.broker.key, sizeof(c.broker.key), "%s", key);
	snprintf(c.broker.cert, sizeof(c.broker.cert), "%s", cert);
	/* The certificate is not there: its CN is not read, the defaults are
	 * made before. */
	assert_int_not_equal(config_agent_identity(&c, "t.conf", &err), MU_OK);
	assert_string_equal(c.sign_key, want_key);
	assert_string_equal(c.sign_cert, want_cert);
}

static void
test_sign_pair_defaults(void **state)
{
	struct agent_config c;
	struct mu_err err;

	(void)state;
	sign_pair_of("/etc/muster/host.key", "/nonexistent/host.crt",
	    "/etc/muster/host.sign.key", "/nonexistent/host.sign.crt");
	sign_pair_of("pki/hosts/web1.key", "/nonexistent/web1.pem",
	    "pki/hosts/web1.sign.key", "/nonexistent/web1.sign.pem");
	/* No extension in the file name (a dot in a folder's does not count),
	 * or only a leading dot: ".sign" appended. */
	sign_pair_of("/etc/muster.d/hostkey", "/nonexistent.d/.hostcrt",
	    "/etc/muster.d/hostkey.sign", "/nonexistent.d/.hostcrt.sign");
	/* Set in the file: kept. */
	config_agent_defaults(&c);
	assert_int_equal(config_agent_load(&c, "/dev/null", &err), MU_OK);
	snprintf(c.sign_key, sizeof(c.sign_key), "/root/sign.pem");
	snprintf(c.broker.key, sizeof(c.broker.key), "/etc/muster/host.key");
	assert_int_equal(config_agent_identity(&c, "t.conf", &err), MU_OK);
	assert_string_equal(c.sign_key, "/root/sign.pem");
	assert_string_equal(c.sign_cert, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_defaults),
		cmocka_unit_test(test_agent_default_host),
		cmocka_unit_test(test_ctl_defaults),
		cmocka_unit_test(test_agent_full),
		cmocka_unit_test(test_agent_empty_file),
		cmocka_unit_test(test_agent_retry),
		cmocka_unit_test(test_agent_modules),
		cmocka_unit_test(test_agent_list_replaces),
		cmocka_unit_test(test_agent_list_full),
		cmocka_unit_test(test_ctl_full),
		cmocka_unit_test(test_broker_uri_forms),
		cmocka_unit_test(test_agent_errors),
		cmocka_unit_test(test_agent_error_example),
		cmocka_unit_test(test_agent_too_many_cidrs),
		cmocka_unit_test(test_agent_long_line),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_ctl_errors),
		cmocka_unit_test(test_server_defaults),
		cmocka_unit_test(test_server_full),
		cmocka_unit_test(test_server_errors),
		cmocka_unit_test(test_ctl_server_url),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_cidr),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_sign_pair_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
