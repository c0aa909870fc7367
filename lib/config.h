/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - INI configuration (inih) for the agent, the CLI and muster-server,
 * design.md §7.
 *
 * config_agent_defaults() fills every key with its default; config_agent_load()
 * then overlays a file.  Errors name file, line and key:
 *   "/etc/muster/agent.conf:12: [limits] timeout: bad duration 'ten'".
 * Lists are comma-separated (spaces around items ignored).  Durations are a
 * number with an optional unit (ms, s, m, h, d; bare = seconds), stored in
 * milliseconds.  Sizes take K, M, G (powers of 1024; bare = bytes).
 *
 * Ownership: the structs are plain values with fixed-size arrays; nothing is
 * heap-allocated, nothing needs freeing.
 */
#ifndef MUSTER_CONFIG_H
#define MUSTER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "names.h"

#define CONF_PATH_MAX	1024
#define CONF_WRITABLE_MAX	8	/* [limits] writable: folders */
#define CONF_MAX_URIS	8
#define CONF_MAX_GROUPS	32
#define CONF_MAX_CIDRS	32
#define CONF_MAX_FPRS	16
#define CONF_URI_MAX	256
#define CONF_MODULE_MAX	(64ULL << 20)	/* = WIRE_MAX_BIN, design.md §3 */

#define AGENT_CONF_DEFAULT	"/etc/muster/agent.conf"
/* Missing at this path means "no policy" (allow all); missing anywhere
 * else was asked for and is an error (design.md §7, §8). */
#define POLICY_DEFAULT		"/etc/muster/policy"
#define CONF_USER_MAX		32

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network byte order, v4 in the first 4 */
	uint8_t prefix;		/* 0..32 or 0..128 */
};

struct broker_config {
	char uris[CONF_MAX_URIS][CONF_URI_MAX];	/* default ssl://localhost:8883 */
	int nuris;
	char ca[CONF_PATH_MAX];
	char cert[CONF_PATH_MAX];
	char key[CONF_PATH_MAX];
	int protocol;		/* 5 (default) or 4 for "3.1.1" */
	uint64_t keepalive_ms;	/* default 30s */
	uint64_t retry_min_ms;	/* reconnect back-off: first wait, default 500ms */
	uint64_t retry_max_ms;	/* ... and its cap, default 60s */
	uint64_t reconnect_splay_ms;	/* musterd: first retry after a lost
					 * session in 0..this, default 5s */
	char topic_root[NAME_MAX_LEN + 1];	/* default "muster" */
};

struct agent_config {
	/* [agent] */
	char host[NAME_MAX_LEN + 1];	/* default: the certificate's CN
					 * (config_agent_identity()) */
	bool host_set;			/* host came from the file */
	char state_dir[CONF_PATH_MAX];	/* default /var/lib/muster */
	char runner[CONF_PATH_MAX];	/* default /usr/libexec/muster/muster-runner */
	char modules_dir[CONF_PATH_MAX];/* default /usr/lib/muster/modules */
	char facts_dir[CONF_PATH_MAX];	/* default /etc/muster/facts.d: custom
					 * facts, *.json (agent/parent/facts.c) */
	char channel[NAME_MAX_LEN + 1];	/* default "stable" */
	char groups[CONF_MAX_GROUPS][NAME_MAX_LEN + 1];
	int ngroups;
	int max_jobs;			/* default 4 */
	char user[CONF_USER_MAX + 1];	/* the network process's user, default muster */
	int log_level;			/* default LOG_INFO; key "log_level" */
	/* The host signing key and certificate (design.md §3): default the
	 * [broker] cert and key with ".sign" before the extension
	 * (config_agent_identity()). */
	char sign_cert[CONF_PATH_MAX];
	char sign_key[CONF_PATH_MAX];
	/* [broker] */
	struct broker_config broker;
	/* [wake] */
	int wake_port;			/* default 7117; 0 = off */
	char wake_bind[64];		/* default "::" (dual stack) */
	struct cidr trusted[CONF_MAX_CIDRS];
	int ntrusted;			/* default RFC 1918, loopback, fc00::/7 */
	/* [trust] */
	char operators[CONF_PATH_MAX];	/* default /etc/muster/operators */
	char gnupg_home[CONF_PATH_MAX];	/* default /etc/muster/gnupg */
	char publishers[CONF_MAX_FPRS][65];
	int npublishers;
	char policy[CONF_PATH_MAX];	/* default POLICY_DEFAULT */
	/* [limits] */
	uint64_t timeout_ms;		/* default 60s */
	uint64_t max_ttl_ms;		/* default 1d */
	uint64_t memory;		/* bytes, default 512M (RLIMIT_AS) */
	uint64_t output;		/* bytes, default 64K */
	uint64_t cpu_ms;		/* default 5m (RLIMIT_CPU) */
	/* [modules]: signed modules fetched over the broker (agent/net/modsrc.c) */
	uint64_t module_cache;		/* bytes of cache, LRU-evicted; default 256M */
	bool prefer_local;		/* key "prefer": signed (default) | local */
	uint64_t fetch_timeout_ms;	/* wait for a pointer/artifact; default 30s */
	uint64_t prefetch_delay_ms;	/* max random delay of a prefetch; default 10m */
	uint64_t module_max;		/* largest module accepted; default 64M */
	uint64_t max_job;		/* bytes, default 1M: bigger envelopes are dropped */
	char run_as[CONF_USER_MAX + 1];	/* default "muster-job"; with job_uids,
					 * only for job_uids = none */
	/* A uid of its own per job (lib/jobuid.h): FIRST-LAST, default
	 * 60928-61183; count 0 = "none" (every job runs as run_as). */
	uint32_t job_uid_first;
	uint32_t job_uid_count;
	int processes;			/* RLIMIT_NPROC of a job; default 128 */
	/* Folders a job with a uid of its own may write besides its private
	 * /tmp, /var/tmp and /dev/shm (everything else is read-only for it):
	 * absolute paths separated by spaces, at most CONF_WRITABLE_MAX;
	 * default none.  config_writable() splits it. */
	char writable[CONF_PATH_MAX];
	/* [update]: self-update on the channel (agent/net/release.c, parent/update.c) */
	uint64_t update_jitter_ms;	/* max random wait before staging; default 10m */
	uint64_t selftest_timeout_ms;	/* staged self-test, end to end; default 2m */
	uint64_t healthy_ms;		/* new version healthy after; default 60s */
	char agent_path[CONF_PATH_MAX];	/* key "agent": the installed musterd;
					 * default "" = /proc/self/exe at start */
};

#define SERVER_CONF_DEFAULT	"/etc/muster/server.conf"
/* The server's own state folder (the unit's StateDirectory=muster-server),
 * apart from the agent's /var/lib/muster: purging one package must not
 * take the other's data, and the two users must not share a folder. */
#define SERVER_ARCHIVE_DEFAULT	"/var/lib/muster-server/archive.db"
#define SERVER_USER_DEFAULT	"muster-server"

struct server_config {
	/* [server] */
	char name[NAME_MAX_LEN + 1];	/* default: hostname; client id muster-server-<name> */
	char listen[64];		/* default 127.0.0.1 (numeric only) */
	int port;			/* default 8080 */
	char auth_file[CONF_PATH_MAX];	/* "" = no basic auth */
	char www[CONF_PATH_MAX];	/* "" = the page built into the binary */
	int log_level;			/* default LOG_INFO */
	/* The account the unit runs the server as (its User=), default
	 * muster-server: --check-config run as root checks access as it. */
	char user[CONF_USER_MAX + 1];
	/* The signing pair muster-server signs release halts with (server/
	 * halt.c); default: the [broker] pair with ".sign" before the
	 * extension, as gen-pki writes srv/NAME.sign.{key,crt}. */
	char sign_cert[CONF_PATH_MAX];
	char sign_key[CONF_PATH_MAX];
	bool sign_set;			/* either was set in the file */
	/* [broker] */
	struct broker_config broker;
	uint64_t session_expiry_ms;	/* [broker] session_expiry, default 1d */
	/* [archive] */
	char archive_url[CONF_PATH_MAX];	/* sqlite path or postgresql:// URL,
						 * default SERVER_ARCHIVE_DEFAULT */
	uint64_t max_age_ms;		/* default 90d; 0 = keep for ever */
	uint64_t max_size;		/* bytes, default 1G; 0 = no limit */
	uint64_t prune_interval_ms;	/* default 1m */
	uint64_t batch_ms;		/* longest wait before a batch is written, default 50ms */
	/* [selftest]: the self-update handshake (server/selftest.c) */
	char selftest_key[CONF_PATH_MAX];	/* operator Ed25519 private key; "" = off */
	uint64_t selftest_timeout_ms;	/* per request, default 60s */
	int selftest_max;		/* requests answered at once, default 1024 */
	/* [trust]: the operators whose job announces the server believes
	 * (server/jobs.c); a folder of NAME.pub as the agent's [trust]
	 * operators.  "" = off: announces are not read. */
	char operators[CONF_PATH_MAX];
};

struct ctl_config {
	struct broker_config broker;
	char server_url[CONF_URI_MAX];		/* [server] url= */
	char operator_key[CONF_PATH_MAX];	/* [operator] key= */
	char gnupg_home[CONF_PATH_MAX];		/* [publisher] gnupg_home= */
	char fingerprint[65];			/* [publisher] fingerprint= */
	/* [watch] session= (default none): `muster watch` keeps a persistent
	 * broker session under this name; session_expiry= how long the broker
	 * keeps it while watch is away (default 1 h). */
	char watch_session[NAME_MAX_LEN + 1];
	uint64_t watch_expiry_ms;
	/* [cli] persist= (default 0, off): later calls reuse one broker
	 * session through a per-user relay that lives this long without
	 * clients (ctl/persist.h). */
	uint64_t persist_ms;
};

void config_agent_defaults(struct agent_config *c);
/* Split [limits] writable (list, modified in place) into out[], at most
 * max; the count, or -1 with *bad the folder that is not an absolute path
 * without . or .. (NULL: more than max). */
int config_writable(char *list, const char **out, int max, const char **bad);
int config_agent_load(struct agent_config *c, const char *path, struct mu_err *err);
/*
 * The host's name is its certificate's CN (design.md §7): the broker knows it
 * by that name and nothing else.  Without host in the file, host becomes
 * the CN of [broker] cert; a host that differs from it is an error naming
 * both.  Without a certificate, host stays what it is (the machine's host
 * name by default).  Reads the certificate: call it as a user who can.
 */
int config_agent_identity(struct agent_config *c, const char *path, struct mu_err *err);

void config_ctl_defaults(struct ctl_config *c);
int config_ctl_load(struct ctl_config *c, const char *path, struct mu_err *err);

void config_server_defaults(struct server_config *c);
int config_server_load(struct server_config *c, const char *path, struct mu_err *err);

/* Value parsers, also used for command-line flags. */
int parse_duration_ms(const char *s, uint64_t *out);	/* "30s", "500ms", "2" */
int parse_size(const char *s, uint64_t *out);		/* "512M", "64K", "100" */
int parse_cidr(const char *s, struct cidr *out);	/* "10.0.0.0/8", "::1/128" */
bool cidr_match(const struct cidr *c, int family, const void *addr);
/* A user name as useradd(8) takes it: [a-z_][a-z0-9_-]{0,31}. */
bool user_name_valid(const char *s);

#endif
