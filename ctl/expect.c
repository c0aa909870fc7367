/* SPDX-License-Identifier: Apache-2.0 */
/*
 * expect.c - who should answer, as muster-server knows it (issue 24): GET
 * /api/hosts?target=..&filter=..&certs=1.  The server evaluates the -F
 * texts with the agents' own facts_match() over the facts it verified
 * and archived, so a CLI needs neither the retained facts nor the
 * retained statuses, which a RabbitMQ 3.10 cluster does not deliver to a
 * wildcard subscription (docs/brokers.md).
 *
 * The server is trusted for the list, not for identities: each host's
 * certificate it hands over is checked against [broker] ca here, as one
 * from a status would be, before results signed with it are believed.
 * A host the server does not know cannot be expected through it; the
 * caller falls back to the retained messages when the server fails.
 *
 * Ownership: struct srv_hosts owns its array; the answer's JSON is freed
 * before return.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostsig.h"

#define EXPECT_TIMEOUT_MS	5000	/* a slow server is no server: fall back */

/* RFC 3986 unreserved characters as they are, the rest %XX. */
static int
url_escape(char *out, size_t size, size_t *off, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*off + 4 > size)
			return -1;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~')
			out[(*off)++] = (char)*p;
		else {
			out[(*off)++] = '%';
			out[(*off)++] = hex[*p >> 4];
			out[(*off)++] = hex[*p & 0xf];
		}
	}
	out[*off] = '\0';
	return 0;
}

static int
hosts_path(char *buf, size_t size, const struct job_target *t, const struct ctl_filter *f)
{
	char target[NAME_MAX_LEN + 16];
	size_t off, i;
	int n;

	if (target_format(t, target, sizeof(target)) != MU_OK)
		return -1;
	n = snprintf(buf, size, "/api/hosts?certs=1&target=");
	if (n < 0 || (size_t)n >= size)
		return -1;
	off = (size_t)n;
	if (url_escape(buf, size, &off, target) != 0)
		return -1;
	for (i = 0; f != NULL && i < f->n; i++) {
		if (off + 8 > size)
			return -1;
		memcpy(buf + off, "&filter=", 9);
		off += 8;
		if (url_escape(buf, size, &off, f->text[i]) != 0)
			return -1;
	}
	return 0;
}

static int
unhex(const char *hex, uint8_t *out, size_t max, size_t *len)
{
	size_t i, n = strlen(hex);

	if (n == 0 || n % 2 != 0 || n / 2 > max)
		return -1;
	for (i = 0; i < n / 2; i++) {
		unsigned int b;

		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			return -1;
		out[i] = (uint8_t)b;
	}
	*len = n / 2;
	return 0;
}

/* One host of the answer; a certificate that does not chain is refused
 * and counted like a forged message, and the host is left out. */
static int
take_host(struct ctl *c, json_t *h, struct srv_hosts *out, struct mu_err *err)
{
	uint8_t der[WIRE_MAX_CERT];
	const char *name, *state, *cert, *cn;
	struct srv_host *e;
	struct mu_err why;
	size_t len;

	if (!json_is_object(h) || (name = json_string_value(json_object_get(h, "host"))) == NULL ||
	    !name_valid(name) || (state = json_string_value(json_object_get(h, "state"))) == NULL)
		return mu_errf(err, MU_EINVAL, "a host entry is not as expected");
	/* A server from before filters ignores filter= and target= and
	 * lists every host: it has no facts_at either. */
	if (json_object_get(h, "facts_at") == NULL)
		return mu_errf(err, MU_EINVAL, "it does not know fact filters (an older "
		    "muster-server)");
	cert = json_string_value(json_object_get(h, "cert"));
	if (cert != NULL) {
		if (unhex(cert, der, sizeof(der), &len) != 0)
			return mu_errf(err, MU_EINVAL, "the certificate of %s is not hex", name);
		if (hostsig_cert_add(c->hv, der, len, &cn, &why) != MU_OK ||
		    strcmp(cn, name) != 0) {
			forged_note(c, name, "the server's certificate for it does not check out");
			return MU_OK;
		}
	}
	e = &out->v[out->n++];
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->online = strcmp(state, "online") == 0;
	e->has_facts = json_is_integer(json_object_get(h, "facts_at"));
	return MU_OK;
}

int
srv_hosts_get(struct ctl *c, const struct job_target *t, const struct ctl_filter *f,
    struct srv_hosts *out, struct mu_err *err)
{
	char *path = NULL, *body = NULL;
	struct url u;
	json_t *root = NULL, *hosts;
	size_t i;
	int status, rc = -1;

	memset(out, 0, sizeof(*out));
	if (ctl_url_parse(c->cfg.server_url, &u) != 0) {
		mu_errf(err, MU_EINVAL, "bad [server] url");
		return -1;
	}
	/* The verifier the results are checked with: made now if not yet. */
	if (c->hv == NULL && hostsig_verifier_new(c->cfg.broker.ca, &c->hv, err) != MU_OK)
		return -1;
	if ((path = malloc(CTL_HTTP_MAX_PATH)) == NULL ||
	    hosts_path(path, CTL_HTTP_MAX_PATH, t, f) != 0) {
		mu_errf(err, MU_EINVAL, "the filter is too long for a request");
		goto out;
	}
	if (ctl_http_get(&u, path, EXPECT_TIMEOUT_MS, &body, &status) != 0) {
		mu_errf(err, MU_EIO, "no answer");
		goto out;
	}
	if (status != 200) {
		root = json_loads(body, 0, NULL);
		mu_errf(err, MU_EIO, "it answered %d%s%s", status,
		    json_string_value(json_object_get(root, "error")) ? ": " : "",
		    json_string_value(json_object_get(root, "error")) ?
		    json_string_value(json_object_get(root, "error")) : "");
		goto out;
	}
	if ((root = json_loads(body, 0, NULL)) == NULL ||
	    !json_is_array(hosts = json_object_get(root, "hosts"))) {
		mu_errf(err, MU_EINVAL, "its answer is not what was expected");
		goto out;
	}
	if (json_array_size(hosts) > 0 &&
	    (out->v = calloc(json_array_size(hosts), sizeof(*out->v))) == NULL) {
		mu_errf(err, MU_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < json_array_size(hosts); i++)
		if (take_host(c, json_array_get(hosts, i), out, err) != MU_OK)
			goto out;
	rc = 0;
out:
	if (rc != 0)
		srv_hosts_free(out);
	json_decref(root);
	free(body);
	free(path);
	return rc;
}

void
srv_hosts_free(struct srv_hosts *h)
{
	free(h->v);
	memset(h, 0, sizeof(*h));
}
