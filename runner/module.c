/* SPDX-License-Identifier: Apache-2.0 */
/*
 * module.c - open a module and check its descriptor before the runner
 * calls anything through it.
 *
 * dlopen() itself runs the module's ELF constructors (and those of the
 * libraries it pulls in) before any check here: a constructor that
 * crashes, hangs or exits takes the runner with it, which is why there is
 * one runner process per job and musterd judges it by its exit.  What
 * these checks guard is the descriptor and run().
 *
 * The checks run in an order where each one only reads what the previous
 * ones made safe to read: the symbol's size (from the ELF symbol table)
 * before the magic, the magic before the ABI, the ABI before the layout of
 * the rest.  Each failure has its own exit code (runner.h) and a reason a
 * module author can act on.
 */
#include "runner.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

#include "subproc.h"

int
module_open(const char *path, struct module *m, struct mu_err *err)
{
	const ElfW(Sym) *sym = NULL;
	const char *why;
	Dl_info info;

	memset(m, 0, sizeof(*m));
	if ((m->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		why = dlerror();
		return mu_errf(err, RUNNER_EXIT_LOAD, "cannot load module: %s",
		    why ? why : "unknown dlopen() error");
	}
	dlerror();
	if ((m->desc = dlsym(m->handle, "muster_module")) == NULL)
		return mu_errf(err, RUNNER_EXIT_NOSYM,
		    "module has no muster_module symbol (made by MUSTER_MODULE())");
	if (dladdr1(m->desc, &info, (void **)&sym, RTLD_DL_SYMENT) != 0 && sym != NULL)
		m->symsize = sym->st_size;
	return MU_OK;
}

static int
module_check_names(const struct muster_module *d, const char *want, struct mu_err *err)
{
	if (strnlen(d->name, NAME_MAX_LEN + 1) > NAME_MAX_LEN || !name_valid(d->name))
		return mu_errf(err, RUNNER_EXIT_DESC, "module name '%.*s' is not a valid "
		    "name ([a-z0-9][a-z0-9._-]{0,62})", NAME_MAX_LEN, d->name);
	if (strnlen(d->version, WIRE_MAX_VERSION + 1) > WIRE_MAX_VERSION ||
	    !version_valid(d->version))
		return mu_errf(err, RUNNER_EXIT_DESC, "module version '%.*s' is not "
		    "valid ([A-Za-z0-9.+~_-]{1,64})", WIRE_MAX_VERSION, d->version);
	if (want != NULL && strcmp(d->name, want) != 0)
		return mu_errf(err, RUNNER_EXIT_NAME, "module is named '%s', the job "
		    "asked for '%s'", d->name, want);
	return MU_OK;
}

int
module_check(const struct module *m, const char *want, struct mu_err *err)
{
	const struct muster_module *d = m->desc;

	if (m->symsize != 0 && m->symsize < sizeof(d->magic))
		return mu_errf(err, RUNNER_EXIT_MAGIC, "muster_module is %zu bytes, "
		    "too small to be a module descriptor", m->symsize);
	if (d->magic != MUSTER_MODULE_MAGIC)
		return mu_errf(err, RUNNER_EXIT_MAGIC, "muster_module has bad magic "
		    "0x%016llx, not a module descriptor", (unsigned long long)d->magic);
	if (m->symsize != 0 && m->symsize < offsetof(struct muster_module, name))
		return mu_errf(err, RUNNER_EXIT_DESC, "module descriptor is %zu bytes, "
		    "too small to hold its ABI and size", m->symsize);
	if (d->abi != MUSTER_ABI)
		return mu_errf(err, RUNNER_EXIT_ABI, "module ABI %u, runner speaks %d",
		    d->abi, MUSTER_ABI);
	if (d->size < MODULE_V1_SIZE)
		return mu_errf(err, RUNNER_EXIT_DESC, "module descriptor says it is "
		    "%u bytes, want at least %zu", d->size, MODULE_V1_SIZE);
	if (m->symsize != 0 && m->symsize < MODULE_V1_SIZE)
		return mu_errf(err, RUNNER_EXIT_DESC, "module descriptor is %zu bytes, "
		    "want at least %zu", m->symsize, MODULE_V1_SIZE);
	if (d->name == NULL || d->version == NULL || d->run == NULL)
		return mu_errf(err, RUNNER_EXIT_DESC, "module descriptor has no %s",
		    d->name == NULL ? "name" : d->version == NULL ? "version" : "run()");
	return module_check_names(d, want, err);
}

uint32_t
module_needs(const struct module *m)
{
	const struct muster_module *d = m->desc;
	size_t end = offsetof(struct muster_module, needs) + sizeof(d->needs);

	/* Both sizes: the one the module claims, and the symbol's own. */
	if (d->size < end || (m->symsize != 0 && m->symsize < end))
		return 0;
	return d->needs;
}

static const char *
no_net_why(const char *no_net)
{
	if (strcmp(no_net, "policy") == 0)
		return "this host's policy says net=no for the rule that allowed the job";
	if (strcmp(no_net, "manifest") == 0)
		return "its signed manifest does not declare it (publish it again with "
		    "this build)";
	return "musterd did not grant it";
}

/*
 * For a module from the broker musterd already decided (the signed
 * manifest and the policy) and filtered the runner before exec; this is
 * the runner's half: the descriptor is binding too, so a module that does
 * not declare the network has none whatever its manifest said, and one
 * that declares it but may not have it is refused with the reason instead
 * of failing later at connect() with a bare EPERM.  Its ELF constructors
 * have run by now (module.c): what this guards is run().
 */
int
module_confine(const struct module *m, const char *no_net, struct mu_err *err)
{
	uint32_t needs = module_needs(m);

	if (needs & ~(uint32_t)MUSTER_NEEDS_NET)
		return mu_errf(err, RUNNER_EXIT_NEEDS, "module needs 0x%x, which this "
		    "runner does not know (built for a newer SDK?)",
		    needs & ~(uint32_t)MUSTER_NEEDS_NET);
	if ((needs & MUSTER_NEEDS_NET) && no_net != NULL)
		return mu_errf(err, RUNNER_EXIT_NEEDS, "module needs the network "
		    "(MUSTER_NEEDS_NET) and this job may not use it: %s", no_net_why(no_net));
	/* Declared and granted; or not granted, and musterd's filter already
	 * denies the sockets: nothing to add at each runner start. */
	if ((needs & MUSTER_NEEDS_NET) || no_net != NULL)
		return MU_OK;
	if (spawn_filter_no_inet(err) != MU_OK)
		return RUNNER_EXIT_INTERNAL;
	return MU_OK;
}
