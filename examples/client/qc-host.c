/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qc-host - run a check on one host through libmuster-client and print a
 * verdict, as a provisioning pipeline or a helpdesk tool would:
 *
 *   qc-host [-c CONFIG] [-w SECONDS] HOST [MODULE [ARGS_JSON]]
 *
 * MODULE defaults to qc.install.  The configuration is the muster CLI's
 * (muster.conf(5): -c, else $MUSTER_CONFIG, else
 * ~/.config/muster/muster.conf).  Exit: 0 the host passed, 1 it answered
 * anything else, 3 it did not answer, 2 an error.
 *
 * Build: make (pkg-config --cflags --libs muster-client).
 */
#include <muster/client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(void)
{
	fprintf(stderr, "usage: qc-host [-c CONFIG] [-w SECONDS] HOST [MODULE [ARGS_JSON]]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct muster_settings st = { .size = sizeof(st), .persist = -1 };
	struct muster_job_spec spec = { .size = sizeof(spec), .kind = MUSTER_JOB_RUN };
	const char *host;
	const muster_result *r = NULL;
	muster_session *s;
	muster_job *j;
	char err[512];
	int o, rc, verdict;

	while ((o = getopt(argc, argv, "c:w:h")) != -1) {
		if (o == 'c')
			st.config = optarg;
		else if (o == 'w')
			spec.wait_ms = strtoull(optarg, NULL, 10) * 1000;
		else
			usage();
	}
	if (optind >= argc || argc - optind > 3)
		usage();
	host = argv[optind];
	spec.hosts = &host;
	spec.nhosts = 1;
	spec.module = optind + 1 < argc ? argv[optind + 1] : "qc.install";
	spec.args_json = optind + 2 < argc ? argv[optind + 2] : NULL;

	if ((rc = muster_session_open(&st, &s, err, sizeof(err))) != MUSTER_OK) {
		fprintf(stderr, "qc-host: %s (%s)\n", err, muster_strerror(rc));
		return 2;
	}
	if ((rc = muster_job_send(s, &spec, &j)) != MUSTER_OK) {
		fprintf(stderr, "qc-host: %s (%s)\n", muster_session_error(s), muster_strerror(rc));
		muster_session_close(s);
		return 2;
	}
	/* One host, one answer: the first result is the verdict. */
	rc = muster_job_next(j, &r);
	if (rc == MUSTER_OK) {
		const char *status = muster_result_status(r);
		const char *why = strcmp(status, "pass") == 0 || muster_result_reason(r)[0] == '\0' ?
		    muster_result_summary(r) : muster_result_reason(r);

		printf("%s: %s %s: %s\n", muster_result_host(r), spec.module,
		    strcmp(status, "pass") == 0 ? "PASSED" : "FAILED", status);
		if (why[0] != '\0')
			printf("  %s\n", why);	/* host text: fine for a plain log */
		verdict = strcmp(status, "pass") == 0 ? 0 : 1;
	} else if (rc == MUSTER_ETIMEOUT || rc == MUSTER_DONE) {
		printf("%s: %s NO ANSWER\n", host, spec.module);
		verdict = 3;
	} else {
		fprintf(stderr, "qc-host: %s (%s)\n", muster_session_error(s), muster_strerror(rc));
		verdict = 2;
	}
	muster_session_close(s);
	return verdict;
}
