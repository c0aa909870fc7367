/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl.h - muster, the operator CLI: shared state of one invocation.
 *
 * One struct ctl lives in main() for the whole run.  It owns the bus (the
 * MQTT session), the operator key and the signalfd; commands borrow them.
 * Commands block: they pump bus events with ctl_pump() until their
 * condition holds or a deadline passes.
 */
#ifndef MUSTER_CTL_H
#define MUSTER_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <getopt.h>

#include <jansson.h>

#include "bus.h"
#include "config.h"
#include "facts.h"
#include "hostsig.h"
#include "sign.h"
#include "wire.h"

/* Exit codes (documented in `muster --help`). */
#define EXIT_OK		0	/* every expected host answered pass */
#define EXIT_FAILED	1	/* some result was not pass */
#define EXIT_USAGE	2	/* usage, config or connection error */
#define EXIT_MISSING	3	/* some expected hosts did not answer */
#define CTL_HELP	(-1)	/* option parsers: --help was shown, exit 0 */

/* The rule of lib/names.c name_valid(), for error messages that refuse a
 * host, group or module name. */
#define NAME_RULE	"names are 1-63 characters of a-z, 0-9, '.', '_' and '-', " \
	"starting with a letter or digit (no upper case)"

struct ctl;
struct result;
struct event;

/*
 * How the shared core (session.c, sendcore.c, verify.c, filter.c, ...)
 * speaks, so that the CLI and libmuster-client run the same code: the CLI
 * sets these to print (main.c), the library to keep the text and hand
 * results to its caller (client/).  Each may be NULL: nothing is said.
 */
typedef void ctl_say_fn(struct ctl *c, const char *msg);	/* a note or an error */
typedef void ctl_result_fn(struct ctl *c, const struct result *r);	/* a new answer */
typedef void ctl_event_hook(struct ctl *c, const struct event *e);	/* a live event */
typedef void ctl_forged_fn(struct ctl *c, const char *topic, const char *reason);
/* ctl_pump(): a result or event of job id `job`; true if a job other than
 * the one being pumped for took it (the library's other open jobs). */
typedef bool ctl_route_fn(struct ctl *c, struct bus_event *ev, const char *job);

struct ctl {
	struct ctl_config cfg;
	char root[NAME_MAX_LEN + 1];
	struct bus *bus;		/* owned; NULL until ctl_connect() */
	struct sign_key *key;		/* owned; loaded on first use */
	struct hostsig_verifier *hv;	/* owned; made on first use (verify.c) */
	size_t nforged;			/* agent messages that failed the check */
	int sigfd;			/* owned: SIGINT/SIGTERM */
	bool interrupted;
	bool json;
	/* A persistent session (muster watch --session NAME): this client id,
	 * clean start off, kept by the broker this long after a disconnect.
	 * Empty: a fresh id and a clean session per run. */
	char session_id[NAME_MAX_LEN + 16];
	uint32_t session_expiry_s;
	/* [cli] persist: the program a relay is started as (persist_call.c);
	 * NULL: this process's own image (the muster binary).  Borrowed. */
	const char *relay_exe;
	ctl_say_fn *say;
	ctl_result_fn *on_result;
	ctl_event_hook *on_event;
	ctl_forged_fn *on_forged;
	ctl_route_fn *route;
	void *hook_arg;			/* the hooks' owner (the library's session) */
};

/* Handle one bus event; return true when the command is done. */
typedef bool ctl_event_fn(struct ctl *c, struct bus_event *ev, void *arg);
/* Runs about every 200 ms while pumping; return true when done. */
typedef bool ctl_tick_fn(struct ctl *c, void *arg);

/* Say msg (printf format) through c->say. */
void ctl_say(struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The configuration: path, else $MUSTER_CONFIG, else
 * ~/.config/muster/muster.conf if it exists; *used: the file read, or NULL
 * (no file: the defaults).  0 or EXIT_USAGE (said). */
int ctl_load_config(struct ctl *c, const char *path, const char **used);
/* [broker] uri as --broker: comma-separated, each with a scheme Paho
 * knows; 0 or -1. */
int ctl_set_uris(struct broker_config *b, const char *v);
int ctl_connect(struct ctl *c);
/* Pump events until fn or tick (optional) says done, the deadline
 * (monotonic ms; 0 = none) passes, or SIGINT/SIGTERM. */
void ctl_pump(struct ctl *c, uint64_t deadline, ctl_event_fn *fn, void *arg,
    ctl_tick_fn *tick);
int ctl_subscribe(struct ctl *c, const char *topic);
int ctl_load_key(struct ctl *c);
/* --check-config (check.c): the configuration read from path (NULL: no
 * file) and the files it names; an exit code, the result printed. */
int ctl_check_config(struct ctl *c, const char *path);

/* Hosts known from retained status messages. */
struct host_status {
	struct status st;
	uint8_t *raw;			/* owned: st borrows from it */
};
struct host_list {
	struct host_status *v;
	size_t n;
};
int hosts_collect(struct ctl *c, struct host_list *out);
void hosts_free(struct host_list *h);

/*
 * A fact filter from -F options (facts.c): each text is parsed when its
 * option is read (a bad one is named there), then ctl_filter_done() makes
 * the "filter" array the job body carries and its decoded form, the one
 * facts_match() takes.  A zeroed struct is an empty filter.
 */
struct ctl_filter {
	size_t n;			/* predicates */
	msgpack_sbuffer preds;		/* owned: the packed predicates */
	msgpack_sbuffer packed;		/* owned: the array, once done */
	msgpack_unpacked up;		/* owned: packed, unpacked */
	struct fact_filter f;		/* borrows from up */
	bool done;
	const char *text[FILTER_MAX];	/* borrowed: the -F texts (argv) */
};
/* 0 or EXIT_USAGE (said). */
int ctl_filter_add(struct ctl *c, struct ctl_filter *f, const char *text);
int ctl_filter_done(struct ctl *c, struct ctl_filter *f);
/* The "filter" array for a job body; NULL without -F. */
const msgpack_object *ctl_filter_obj(const struct ctl_filter *f);
void ctl_filter_free(struct ctl_filter *f);

/* Hosts' verified facts, from their retained facts messages (facts.c).
 * Take the statuses first (hosts_collect): they bring the certificates;
 * a facts message no status vouches for is counted as forged. */
struct facts_list {
	struct facts_msg *v;		/* owned */
	size_t n;
};
/* host: one host's, or NULL for every host's. */
int facts_collect(struct ctl *c, const char *host, struct facts_list *out);
const struct facts *facts_find(const struct facts_list *l, const char *host);
void facts_list_free(struct facts_list *l);

/* muster-server's HTTP API (history.c): a strict, bounded HTTP/1.1 GET. */
struct url {
	char host[256];
	char port[8];
	char prefix[256];	/* path before /api, without a trailing '/' */
	char auth[256];		/* "user:password" or "" */
};
#define CTL_HTTP_MAX_PATH	16384
int ctl_url_parse(const char *s, struct url *u);		/* 0 or -1 */
/* 0 with *body (NUL-terminated, caller frees) and *status; -1 when the
 * server cannot be reached or the answer is not HTTP. */
int ctl_http_get(const struct url *u, const char *path, uint64_t timeout_ms, char **body,
    int *status);

/* The hosts muster-server names for a target and filter (expect.c). */
struct srv_host {
	char name[NAME_MAX_LEN + 1];
	bool online;
	bool has_facts;
};
struct srv_hosts {
	struct srv_host *v;	/* owned */
	size_t n;
};
/*
 * GET /api/hosts?target=T[&filter=F...]&certs=1 from [server] url: the
 * hosts, and each host's signing certificate added to the verifier (it
 * must chain to [broker] ca, as from a status).  0, or -1 with the
 * reason in err (no answer, an error status, an answer not as expected).
 */
int srv_hosts_get(struct ctl *c, const struct job_target *t, const struct ctl_filter *f,
    struct srv_hosts *out, struct mu_err *err);
void srv_hosts_free(struct srv_hosts *h);

/* Commands: argc/argv start at the command name. */
int cmd_run(struct ctl *c, int argc, char **argv);	/* run, ping, version */
int cmd_cancel(struct ctl *c, int argc, char **argv);
int cmd_hosts(struct ctl *c, int argc, char **argv);
int cmd_facts(struct ctl *c, int argc, char **argv);	/* facts.c */
int cmd_watch(struct ctl *c, int argc, char **argv);
int cmd_module(struct ctl *c, int argc, char **argv);	/* module.c */
int cmd_release(struct ctl *c, int argc, char **argv);	/* release.c */
int cmd_history(struct ctl *c, int argc, char **argv);	/* history.c: muster-server's API */
int cmd_retry(struct ctl *c, int argc, char **argv);	/* retry.c */

/* Shared by the publishing commands (module.c, release.c). */
int sub_opts(int argc, char **argv, const struct option *opts, const char *text,
    int (*take)(int o, const char *v, void *arg), void *arg);
typedef bool retained_fn(struct bus_event *ev, void *arg);
/* Retained messages on filter until a quiet spell or take() says done. */
int retained_collect(struct ctl *c, const char *filter, uint64_t quiet_ms,
    retained_fn *take, void *arg);
/* Publish retained at QoS 1 and wait for the PUBACK. */
int publish_acked(struct ctl *c, const char *topic, const void *buf, size_t len,
    const char *what);
const char *when(uint64_t ms, char *buf, size_t len);	/* UTC text */

/* The CLI's printing hooks (main.c). */
void cli_hooks(struct ctl *c);

/* Checking agent messages (verify.c): MU_OK with the body decoded into
 * *out (free its doc); MU_ENOENT when the signing certificate is not known
 * yet; anything else means forged, with the reason in err. */
int verify_result(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct result *out, struct mu_err *err);
int verify_event(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct event *out, struct mu_err *err);
int verify_status(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct status *out, struct mu_err *err);
int verify_facts(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct facts_msg *out, struct mu_err *err);
void forged_note(struct ctl *c, const char *topic, const char *reason);
void forged_report(const struct ctl *c, FILE *f);

/* Output helpers (report.c). */
/* Host text for a terminal: control bytes, C1 controls, backslash and
 * bytes that are not UTF-8 as \xNN (backslash as \\); at most max input
 * bytes. */
void term_put(FILE *f, const char *p, size_t n, size_t max);
/* Host text for JSON: a string; if p is not valid UTF-8, each bad byte
 * becomes the text \xNN, a backslash \\, and *escaped is set. */
json_t *json_text(const char *p, size_t n, bool *escaped);
json_t *result_json(const struct result *r);
json_t *event_json(const struct event *e);
void json_print_line(json_t *j);	/* one compact line on stdout, then decref */
const char *human_ms(uint64_t ms, char *buf, size_t len);

#endif
