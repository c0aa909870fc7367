/* SPDX-License-Identifier: Apache-2.0 */
/*
 * facts.c - fact filters from -F (their text form is lib/facts.c's
 * filter_text_pack), hosts' verified facts from their retained, host-signed
 * facts messages (design.md §3), and muster facts HOST.
 *
 * A facts message is checked like a result (verify.c): the certificate it
 * names must have come with a status first.  What fails the check is
 * counted as forged and never used, so a broker or another host cannot
 * put a host into or out of a filtered job's expected set.
 */
#include "ctl.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FACTS_QUIET_MS	200	/* no new retained facts for this long: done */

/* ---- muster facts HOST ------------------------------------------------ */

/* The host's retained status, for the certificate its facts name. */
static bool
status_take(struct bus_event *ev, void *arg)
{
	struct ctl *c = arg;
	struct mu_err err;
	struct status st;
	size_t tl = strlen(ev->topic);

	if (tl < 7 || strcmp(ev->topic + tl - 7, "/status") != 0)
		return false;
	if (verify_status(c, ev->topic, ev->payload, ev->len, &st, &err) != MU_OK) {
		forged_note(c, ev->topic, err.msg);
		return false;
	}
	wire_doc_free(&st.doc);
	return true;
}

static json_t *
fact_json(const struct fact *x)
{
	json_t *a;
	size_t i;

	switch (x->type) {
	case FACT_STR:
		return json_text(x->s, strlen(x->s), NULL);
	case FACT_INT:
		return json_integer((json_int_t)x->i);
	case FACT_BOOL:
		return json_boolean(x->b);
	case FACT_LIST:
		a = json_array();
		for (i = 0; i < x->nlist; i++)
			json_array_append_new(a, json_text(x->list[i], strlen(x->list[i]), NULL));
		return a;
	}
	return json_null();
}

static json_t *
facts_json(const struct facts_msg *m)
{
	json_t *o = json_object(), *f = json_object();
	size_t i;

	for (i = 0; i < m->facts.n; i++)
		json_object_set_new(f, m->facts.v[i].name, fact_json(&m->facts.v[i]));
	json_object_set_new(o, "host", json_string(m->host));
	json_object_set_new(o, "at", json_integer((json_int_t)m->at));
	json_object_set_new(o, "facts", f);
	return o;
}

static void
print_facts(const struct facts_msg *m)
{
	char at[32];
	size_t i, j, w = 4;

	for (i = 0; i < m->facts.n; i++)
		if (strlen(m->facts.v[i].name) > w)
			w = strlen(m->facts.v[i].name);
	printf("%s, facts of %s\n", m->host, when(m->at, at, sizeof(at)));
	printf("%-*s  %s\n", (int)w, "FACT", "VALUE");
	for (i = 0; i < m->facts.n; i++) {
		const struct fact *x = &m->facts.v[i];

		printf("%-*s  ", (int)w, x->name);
		if (x->type == FACT_STR)
			term_put(stdout, x->s, strlen(x->s), FACT_STR_MAX);
		else if (x->type == FACT_INT)
			printf("%lld", (long long)x->i);
		else if (x->type == FACT_BOOL)
			fputs(x->b ? "true" : "false", stdout);
		else
			for (j = 0; j < x->nlist; j++) {
				fputs(j ? ", " : "", stdout);
				term_put(stdout, x->list[j], strlen(x->list[j]), FACT_STR_MAX);
			}
		putchar('\n');
	}
}

static int
facts_usage(FILE *f, int rc)
{
	fprintf(f, "usage: muster facts [--json] HOST\n"
	    "  the host's facts from its retained, host-signed facts message\n"
	    "  (built-in and custom.*); --json: one JSON object.\n"
	    "exit: 0 shown; 1 no facts from HOST that pass the check; 2 usage,\n"
	    "config or connection error\n");
	return rc;
}

int
cmd_facts(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct facts_list l;
	char topic[TOPIC_MAX];
	const char *host;
	int o, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'J')
			c->json = true;
		else
			return facts_usage(o == 'h' ? stdout : stderr, o == 'h' ? EXIT_OK :
			    EXIT_USAGE);
	}
	if (optind + 1 != argc)
		return facts_usage(stderr, EXIT_USAGE);
	host = argv[optind];
	if (!name_valid(host)) {
		fprintf(stderr, "muster: '%s' is not a valid host name: %s\n", host, NAME_RULE);
		return EXIT_USAGE;
	}
	if ((rc = ctl_connect(c)) != 0)
		return rc;
	if (topic_filter(topic, sizeof(topic), c->root, TOPIC_HOST_STATUS, host, NULL) ||
	    (rc = retained_collect(c, topic, FACTS_QUIET_MS, status_take, c)) != 0 ||
	    (rc = facts_collect(c, host, &l)) != 0)
		return rc ? rc : EXIT_USAGE;
	if (l.n == 0) {
		fprintf(stderr, "muster: no facts from %s\n", host);
		rc = EXIT_FAILED;
	} else if (c->json)
		json_print_line(facts_json(&l.v[0]));
	else
		print_facts(&l.v[0]);
	forged_report(c, stdout);
	facts_list_free(&l);
	return rc;
}
