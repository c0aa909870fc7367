/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_sys_info.c - the sys.info check: kernel, uptime, load, memory and
 * CPUs, with optional floors for memory and CPUs.  /proc can be moved ("proc")
 * so tests can feed it a fake tree; uname() and sysconf() cannot.
 */
#include "chk.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define PROC_MAX	(64 * 1024)

struct sysinfo_facts {
	double		uptime;
	double		load[3];
	int64_t		mem_total;	/* bytes; -1 unknown */
	int64_t		mem_avail;
	long		cpus, cpus_conf;
};

/* A count of seconds or a load: not negative, not NaN, not absurd. */
static int
sane(double d)
{
	return d >= 0 && d < 1e12;
}

/* Read <proc>/<name> whole; NULL with the reason set. */
static char *
proc_file(struct chk *c, const char *proc, const char *name)
{
	char path[4096], *buf;
	size_t len;

	if (chk_join(path, sizeof(path), proc, name) == NULL) {
		chk_reason(c, "argument \"proc\" is too long");
		return NULL;
	}
	if (chk_read(c, path, PROC_MAX, &buf, &len) == -1)
		return NULL;
	return buf;
}

static int
read_uptime(struct chk *c, const char *proc, struct sysinfo_facts *f)
{
	char *buf, *end;
	int ok;

	if ((buf = proc_file(c, proc, "uptime")) == NULL)
		return -1;
	f->uptime = strtod(buf, &end);
	/* Checked before any cast to an integer: NaN and 1e308 read fine. */
	ok = end != buf && sane(f->uptime);
	c->api->free(buf);
	if (!ok)
		chk_reason(c, "%s/uptime: unreadable", proc);
	return ok ? 0 : -1;
}

static int
read_load(struct chk *c, const char *proc, struct sysinfo_facts *f)
{
	char *buf;
	int n;

	if ((buf = proc_file(c, proc, "loadavg")) == NULL)
		return -1;
	n = sscanf(buf, "%lf %lf %lf", &f->load[0], &f->load[1], &f->load[2]);
	c->api->free(buf);
	if (n != 3 || !sane(f->load[0]) || !sane(f->load[1]) ||
	    !sane(f->load[2])) {
		chk_reason(c, "%s/loadavg: unreadable", proc);
		return -1;
	}
	return 0;
}

/* "MemTotal:  24684096 kB" -> bytes, or -1. */
static int64_t
meminfo_field(const char *text, const char *name)
{
	const char *p = text;
	size_t n = strlen(name);
	long long kb;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, name, n) == 0 && p[n] == ':' &&
		    sscanf(p + n + 1, "%lld", &kb) == 1 && kb >= 0 &&
		    kb <= INT64_MAX / 1024)
			return kb * 1024;
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return -1;
}

static int
read_mem(struct chk *c, const char *proc, struct sysinfo_facts *f)
{
	char *buf;

	if ((buf = proc_file(c, proc, "meminfo")) == NULL)
		return -1;
	f->mem_total = meminfo_field(buf, "MemTotal");
	/* MemAvailable is missing before Linux 3.14. */
	f->mem_avail = meminfo_field(buf, "MemAvailable");
	c->api->free(buf);
	if (f->mem_total < 0)
		chk_reason(c, "%s/meminfo: no MemTotal", proc);
	return f->mem_total < 0 ? -1 : 0;
}

static void
report_uname(struct chk *c, const struct utsname *u)
{
	chk_data_str(c, "kernel/name", u->sysname);
	chk_data_str(c, "kernel/release", u->release);
	chk_data_str(c, "kernel/version", u->version);
	chk_data_str(c, "machine", u->machine);
	chk_data_str(c, "hostname", u->nodename);
}

static void
report_facts(struct chk *c, const struct sysinfo_facts *f)
{
	chk_data_int(c, "uptime_s", (int64_t)f->uptime);
	chk_data_float(c, "load/1", f->load[0]);
	chk_data_float(c, "load/5", f->load[1]);
	chk_data_float(c, "load/15", f->load[2]);
	chk_data_int(c, "memory/total_bytes", f->mem_total);
	if (f->mem_avail >= 0)
		chk_data_int(c, "memory/available_bytes", f->mem_avail);
	chk_data_int(c, "cpus", f->cpus);
	chk_data_int(c, "cpus_configured", f->cpus_conf);
}

static void
summarize(struct chk *c, const struct utsname *u,
    const struct sysinfo_facts *f)
{
	int64_t up = (int64_t)f->uptime;

	chk_summary(c, "%s %s %s, %ld CPUs, %.1f GiB RAM, up %" PRId64
	    "d %" PRId64 "h %" PRId64 "m, load %.2f %.2f %.2f",
	    u->sysname, u->release, u->machine, f->cpus,
	    (double)f->mem_total / (1024.0 * 1024 * 1024), up / 86400,
	    up / 3600 % 24, up / 60 % 60, f->load[0], f->load[1], f->load[2]);
	chk_out(c, "%s", c->summary);
}

int
check_sys_info(struct chk *c)
{
	const char *proc = chk_str(c, "proc", "/proc");
	int64_t min_cpus = chk_int(c, "min_cpus", 0);
	int64_t min_mem_mb = chk_int(c, "min_mem_mb", 0);
	struct sysinfo_facts f;
	struct utsname u;

	if (chk_args_bad(c))
		return chk_args_error(c);
	memset(&f, 0, sizeof(f));
	if (uname(&u) == -1)
		return chk_error(c, "uname failed");
	if (read_uptime(c, proc, &f) == -1 || read_load(c, proc, &f) == -1 ||
	    read_mem(c, proc, &f) == -1)
		return chk_error_reason(c);
	f.cpus = sysconf(_SC_NPROCESSORS_ONLN);
	f.cpus_conf = sysconf(_SC_NPROCESSORS_CONF);
	report_uname(c, &u);
	report_facts(c, &f);
	summarize(c, &u, &f);
	if (min_cpus > 0 && f.cpus < min_cpus)
		chk_reason_add(c, "%ld CPUs, expected at least %" PRId64,
		    f.cpus, min_cpus);
	if (min_mem_mb > 0 && f.mem_total / (1024 * 1024) < min_mem_mb)
		chk_reason_add(c, "%" PRId64 " MiB of memory, expected at least %"
		    PRId64, f.mem_total / (1024 * 1024), min_mem_mb);
	return c->reason[0] == '\0' ? MUSTER_PASS : MUSTER_FAIL;
}
