/* SPDX-License-Identifier: Apache-2.0 */
/*
 * filter.c - fact filters from -F (their text form is lib/facts.c's
 * filter_text_pack) and hosts' verified facts from their retained,
 * host-signed facts messages (design.md §3), for the expected set of a
 * filtered job (the CLI and libmuster-client).
 *
 * A facts message is checked like a result (verify.c): the certificate it
 * names must have come with a status first.  What fails the check is
 * counted as forged and never used, so a broker or another host cannot
 * put a host into or out of a filtered job's expected set.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FACTS_QUIET_MS	200	/* no new retained facts for this long: done */

/* ---- filters ---------------------------------------------------------- */

int
ctl_filter_add(struct ctl *c, struct ctl_filter *f, const char *text)
{
	msgpack_packer pk;
	struct mu_err err;

	if (f->n == FILTER_MAX) {
		ctl_say(c, "-F '%s': more than %d filters", text, FILTER_MAX);
		return EXIT_USAGE;
	}
	if (f->n == 0)
		msgpack_sbuffer_init(&f->preds);
	msgpack_packer_init(&pk, &f->preds, msgpack_sbuffer_write);
	if (filter_text_pack(text, &pk, &err) != MU_OK) {
		ctl_say(c, "-F '%s': %s", text, err.msg);
		return EXIT_USAGE;
	}
	f->text[f->n++] = text;
	return 0;
}

int
ctl_filter_done(struct ctl *c, struct ctl_filter *f)
{
	msgpack_packer pk;
	struct mu_err err;

	if (f->n == 0 || f->done)
		return 0;
	msgpack_sbuffer_init(&f->packed);
	msgpack_packer_init(&pk, &f->packed, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (uint32_t)f->n);
	msgpack_sbuffer_write(&f->packed, f->preds.data, f->preds.size);
	msgpack_unpacked_init(&f->up);
	f->done = true;
	if (msgpack_unpack_next(&f->up, f->packed.data, f->packed.size, NULL) !=
	    MSGPACK_UNPACK_SUCCESS) {
		ctl_say(c, "-F: cannot pack the filter");
		return EXIT_USAGE;
	}
	/* The agent decodes it so too: refuse here what it would refuse. */
	if (filter_decode(&f->up.data, &f->f, &err) != MU_OK) {
		ctl_say(c, "-F: %s", err.msg);
		return EXIT_USAGE;
	}
	return 0;
}

const msgpack_object *
ctl_filter_obj(const struct ctl_filter *f)
{
	return f->done ? &f->up.data : NULL;
}

void
ctl_filter_free(struct ctl_filter *f)
{
	if (f->n)
		msgpack_sbuffer_destroy(&f->preds);
	if (f->done) {
		msgpack_unpacked_destroy(&f->up);
		msgpack_sbuffer_destroy(&f->packed);
	}
	memset(f, 0, sizeof(*f));
}

/* ---- collecting facts ------------------------------------------------- */

struct fcollect {
	struct ctl *c;
	struct facts_list *list;
};

static bool
topic_is_facts(const char *topic)
{
	size_t tl = strlen(topic);

	return tl > 6 && strcmp(topic + tl - 6, "/facts") == 0;
}

/* Keep a facts message that passed the check (facts_collect() keeps the
 * newest per host). */
static bool
facts_take(struct bus_event *ev, void *arg)
{
	struct fcollect *k = arg;
	struct facts_list *l = k->list;
	struct facts_msg m, *v;
	struct mu_err err;
	int rc;

	if (!topic_is_facts(ev->topic))
		return false;
	if ((rc = verify_facts(k->c, ev->topic, ev->payload, ev->len, &m, &err)) != MU_OK) {
		forged_note(k->c, ev->topic, rc == MU_ENOENT ?
		    "signed by an unknown certificate" : err.msg);
		return false;
	}
	if ((v = reallocarray(l->v, l->n + 1, sizeof(*v))) == NULL) {
		facts_free(&m.facts);
		return false;
	}
	l->v = v;
	l->v[l->n++] = m;
	return false;
}

/* By host, the newest first. */
static int
facts_cmp(const void *x, const void *y)
{
	const struct facts_msg *a = x, *b = y;
	int d = strcmp(a->host, b->host);

	return d ? d : (a->at < b->at) - (a->at > b->at);
}

int
facts_collect(struct ctl *c, const char *host, struct facts_list *out)
{
	struct fcollect k = { c, out };
	char topic[TOPIC_MAX];
	size_t i, n;
	int rc;

	memset(out, 0, sizeof(*out));
	if (topic_filter(topic, sizeof(topic), c->root, TOPIC_HOST_FACTS, host ? host : "+",
	    NULL))
		return EXIT_USAGE;
	if ((rc = retained_collect(c, topic, FACTS_QUIET_MS, facts_take, &k)) != 0) {
		facts_list_free(out);
		return rc;
	}
	/* Sorted for facts_find() (a fleet of thousands); one per host. */
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), facts_cmp);
	for (i = n = 0; i < out->n; i++)
		if (n > 0 && strcmp(out->v[n - 1].host, out->v[i].host) == 0)
			facts_free(&out->v[i].facts);
		else
			out->v[n++] = out->v[i];
	out->n = n;
	return 0;
}

static int
host_key_cmp(const void *key, const void *elt)
{
	return strcmp(key, ((const struct facts_msg *)elt)->host);
}

const struct facts *
facts_find(const struct facts_list *l, const char *host)
{
	const struct facts_msg *m;

	if (l->n == 0)
		return NULL;
	m = bsearch(host, l->v, l->n, sizeof(*l->v), host_key_cmp);
	return m ? &m->facts : NULL;
}

void
facts_list_free(struct facts_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		facts_free(&l->v[i].facts);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

