/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session.c - libmuster-client sessions: settings from muster.conf(5) and
 * the caller, the operator key, the broker connection (ctl/session.c, the
 * CLI's own), and the session's error text.
 *
 * The core's say hook keeps the last thing it said as the error text
 * instead of printing it; no signal is watched (sigfd stays -1).
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MUSTER_CLIENT_VERSION
#define MUSTER_CLIENT_VERSION	"0.1.0"
#endif

MUSTER_API const char *
muster_strerror(int rc)
{
	switch (rc) {
	case MUSTER_OK: return "success";
	case MUSTER_DONE: return "every expected host answered";
	case MUSTER_ETIMEOUT: return "the wait ended with expected hosts missing";
	case MUSTER_ECONFIG: return "no configuration, or one that does not hold";
	case MUSTER_EKEY: return "the operator key cannot be read or used";
	case MUSTER_ECONNECT: return "the broker cannot be reached or refused us";
	case MUSTER_ELOST: return "the broker connection went away";
	case MUSTER_EINVAL: return "bad argument";
	case MUSTER_EREFUSED: return "the broker refused the job";
	case MUSTER_ENOMEM: return "out of memory";
	case MUSTER_EINTERNAL: return "internal error";
	default: return "unknown error";
	}
}

MUSTER_API const char *
muster_client_version(void)
{
	return MUSTER_CLIENT_VERSION;
}

int
client_fail(muster_session *s, int rc, const char *fmt, ...)
{
	char msg[CLIENT_ERR_MAX];
	va_list ap;

	/* Through a copy: the arguments may be the old text ("host: %s"). */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(s->err, msg, sizeof(s->err));
	return rc;
}

#define DEFAULT_PERSIST_MS	(10u * 60 * 1000)

/* The core's notes and errors: the last one is the session's error. */
static void
session_say(struct ctl *c, const char *msg)
{
	muster_session *s = c->hook_arg;

	snprintf(s->err, sizeof(s->err), "%s", msg);
}

static int
set_path(char *dst, size_t size, const char *v)
{
	if (v == NULL)
		return 0;
	if (v[0] == '\0' || strlen(v) >= size)
		return -1;
	snprintf(dst, size, "%s", v);
	return 0;
}

/* The configuration as the CLI reads it (ctl/main.c load_config()), then
 * the caller's settings over it. */
static int
settings_load(muster_session *s, const struct muster_settings *in)
{
	struct ctl_config *cfg = &s->c.cfg;
	struct muster_settings st = { 0 };
	const char *path;

	if (in != NULL)
		memcpy(&st, in, in->size < sizeof(st) ? in->size : sizeof(st));
	if (ctl_load_config(&s->c, st.config, &path) != 0)
		return MUSTER_ECONFIG;
	if (path == NULL && st.broker_uri == NULL)
		return client_fail(s, MUSTER_ECONFIG, "no configuration: no file ($MUSTER_CONFIG, "
		    "~/.config/muster/muster.conf) and no broker_uri");
	if (st.broker_uri && ctl_set_uris(&cfg->broker, st.broker_uri) != 0)
		return client_fail(s, MUSTER_ECONFIG, "bad broker_uri '%s' (ssl://HOST:PORT, "
		    "comma-separated)", st.broker_uri);
	if (set_path(cfg->broker.ca, sizeof(cfg->broker.ca), st.ca) != 0 ||
	    set_path(cfg->broker.cert, sizeof(cfg->broker.cert), st.cert) != 0 ||
	    set_path(cfg->broker.key, sizeof(cfg->broker.key), st.key) != 0 ||
	    set_path(cfg->operator_key, sizeof(cfg->operator_key), st.operator_key) != 0 ||
	    set_path(cfg->server_url, sizeof(cfg->server_url), st.server_url) != 0)
		return client_fail(s, MUSTER_ECONFIG, "a setting is empty or too long");
	if (st.topic_root != NULL) {
		if (!topic_root_valid(st.topic_root) ||
		    set_path(cfg->broker.topic_root, sizeof(cfg->broker.topic_root),
		    st.topic_root) != 0)
			return client_fail(s, MUSTER_ECONFIG, "bad topic_root '%s'", st.topic_root);
	}
	snprintf(s->c.root, sizeof(s->c.root), "%s", cfg->broker.topic_root);
	/* persist: 0 direct, 1 through the relay (the configured idle time,
	 * else ten minutes), anything else as configured.  A size without
	 * the field (an older caller) reads as 0 here: use the config. */
	if (in != NULL && in->size >= offsetof(struct muster_settings, persist) +
	    sizeof(in->persist)) {
		if (st.persist == 0)
			cfg->persist_ms = 0;
		else if (st.persist == 1 && cfg->persist_ms == 0)
			cfg->persist_ms = DEFAULT_PERSIST_MS;
	}
	/* A relay is the muster binary (this process is the caller's). */
	s->c.relay_exe = MUSTER_CLI_PATH;
	return MUSTER_OK;
}

static void
session_free(muster_session *s)
{
	while (s->jobs != NULL)
		muster_job_free(s->jobs);	/* unlinks itself */
	bus_free(s->c.bus);
	sign_key_free(s->c.key);
	hostsig_verifier_free(s->c.hv);
	free(s);
}

MUSTER_API int
muster_session_open(const struct muster_settings *settings, muster_session **out,
    char *errbuf, size_t errlen)
{
	muster_session *s;
	int rc;

	if (out == NULL)
		return MUSTER_EINVAL;
	*out = NULL;
	if (errlen > 0)
		errbuf[0] = '\0';
	if (settings != NULL && settings->size < offsetof(struct muster_settings, config) +
	    sizeof(settings->config)) {
		if (errlen > 0)
			snprintf(errbuf, errlen, "settings.size is not set");
		return MUSTER_EINVAL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		if (errlen > 0)
			snprintf(errbuf, errlen, "out of memory");
		return MUSTER_ENOMEM;
	}
	s->c.sigfd = -1;	/* the caller's signals are the caller's */
	s->c.say = session_say;
	s->c.hook_arg = s;
	s->c.route = client_route;
	rc = settings_load(s, settings);
	if (rc == MUSTER_OK && ctl_load_key(&s->c) != 0)
		rc = MUSTER_EKEY;
	if (rc == MUSTER_OK && ctl_connect(&s->c) != 0)
		rc = MUSTER_ECONNECT;
	if (rc != MUSTER_OK) {
		if (errlen > 0)
			snprintf(errbuf, errlen, "%s", s->err[0] ? s->err : muster_strerror(rc));
		session_free(s);
		return rc;
	}
	s->err[0] = '\0';
	*out = s;
	return MUSTER_OK;
}

MUSTER_API void
muster_session_close(muster_session *s)
{
	if (s != NULL)
		session_free(s);
}

MUSTER_API const char *
muster_session_error(const muster_session *s)
{
	return s != NULL ? s->err : "no session";
}
