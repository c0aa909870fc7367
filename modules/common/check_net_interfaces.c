/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_net_interfaces.c - the net.interfaces check: every interface with
 * its flags, MTU, MAC and addresses (getifaddrs, SIOCGIFMTU); optionally
 * one interface that must exist and be up.
 */
#include "chk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define IF_MAX		512	/* interfaces reported */

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP	0x10000	/* <linux/if.h>, which fights <net/if.h> */
#endif

static const struct {
	unsigned int	 bit;
	const char	*name;
} if_flags[] = {
	{ IFF_UP, "up" },
	{ IFF_BROADCAST, "broadcast" },
	{ IFF_LOOPBACK, "loopback" },
	{ IFF_POINTOPOINT, "pointopoint" },
	{ IFF_RUNNING, "running" },
	{ IFF_NOARP, "noarp" },
	{ IFF_PROMISC, "promisc" },
	{ IFF_MULTICAST, "multicast" },
	{ IFF_LOWER_UP, "lower_up" },
};

static int
prefix_len(const struct sockaddr *mask)
{
	const unsigned char *p;
	size_t n, i;
	int bits = 0;

	if (mask == NULL)
		return -1;
	if (mask->sa_family == AF_INET) {
		p = (const unsigned char *)
		    &((const struct sockaddr_in *)(const void *)mask)->sin_addr;
		n = 4;
	} else if (mask->sa_family == AF_INET6) {
		p = ((const struct sockaddr_in6 *)(const void *)mask)->
		    sin6_addr.s6_addr;
		n = 16;
	} else
		return -1;
	for (i = 0; i < n; i++)
		bits += __builtin_popcount(p[i]);
	return bits;
}

/* "192.0.2.2/24" or "fe80::1/64"; 0, or -1 for another family. */
static int
addr_text(const struct ifaddrs *ifa, char *buf, size_t size)
{
	const struct sockaddr *sa = ifa->ifa_addr;
	const void *a;
	char ip[INET6_ADDRSTRLEN];
	int plen;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	else
		return -1;
	if (inet_ntop(sa->sa_family, a, ip, sizeof(ip)) == NULL)
		return -1;
	plen = prefix_len(ifa->ifa_netmask);
	if (plen < 0)
		snprintf(buf, size, "%s", ip);
	else
		snprintf(buf, size, "%s/%d", ip, plen);
	return 0;
}

static void
mac_text(const struct sockaddr *sa, char *buf, size_t size)
{
	const struct sockaddr_ll *ll = (const struct sockaddr_ll *)
	    (const void *)sa;
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < ll->sll_halen && i < sizeof(ll->sll_addr) &&
	    n + 4 <= size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%02x", i ? ":" : "",
		    ll->sll_addr[i]);
}

static int
if_mtu(int sock, const char *name)
{
	struct ifreq ifr;

	if (sock == -1 || strlen(name) >= sizeof(ifr.ifr_name))
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(sock, SIOCGIFMTU, &ifr) == -1)
		return -1;
	return ifr.ifr_mtu;
}

/* Flags, MTU and index of one interface, from its first entry. */
static void
report_link(struct chk *c, const char *key, const struct ifaddrs *ifa,
    int sock)
{
	char k[CHK_KEY];
	size_t i;
	int mtu;

	for (i = 0; i < sizeof(if_flags) / sizeof(if_flags[0]); i++)
		if (ifa->ifa_flags & if_flags[i].bit)
			chk_data_str(c, chk_key(k, sizeof(k), "interfaces/%s/flags[]",
			    key), if_flags[i].name);
	chk_data_bool(c, chk_key(k, sizeof(k), "interfaces/%s/up", key),
	    ifa->ifa_flags & IFF_UP);
	chk_data_bool(c, chk_key(k, sizeof(k), "interfaces/%s/running", key),
	    ifa->ifa_flags & IFF_RUNNING);
	if ((mtu = if_mtu(sock, ifa->ifa_name)) >= 0)
		chk_data_int(c, chk_key(k, sizeof(k), "interfaces/%s/mtu", key),
		    mtu);
	chk_data_int(c, chk_key(k, sizeof(k), "interfaces/%s/index", key),
	    if_nametoindex(ifa->ifa_name));
}

/* All entries of one interface: its MAC and its addresses.  The addresses
 * go into line too, for the output. */
static void
report_addrs(struct chk *c, const char *key, const char *name,
    const struct ifaddrs *all, char *line, size_t size)
{
	const struct ifaddrs *ifa;
	char k[CHK_KEY], text[INET6_ADDRSTRLEN + 16];
	size_t n;

	for (ifa = all; ifa != NULL; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || strcmp(ifa->ifa_name, name) != 0)
			continue;
		if (ifa->ifa_addr->sa_family == AF_PACKET) {
			mac_text(ifa->ifa_addr, text, sizeof(text));
			if (text[0] != '\0')
				chk_data_str(c, chk_key(k, sizeof(k),
				    "interfaces/%s/mac", key), text);
		} else if (addr_text(ifa, text, sizeof(text)) == 0) {
			chk_data_str(c, chk_key(k, sizeof(k),
			    "interfaces/%s/addrs[]", key), text);
			n = strlen(line);
			snprintf(line + n, size - n, " %s", text);
		}
	}
}

/* The first entry of each distinct name, in the kernel's order. */
static size_t
distinct(struct ifaddrs *all, const struct ifaddrs **first, size_t max)
{
	const struct ifaddrs *ifa;
	size_t n = 0, i;

	for (ifa = all; ifa != NULL && n < max; ifa = ifa->ifa_next) {
		for (i = 0; i < n; i++)
			if (strcmp(first[i]->ifa_name, ifa->ifa_name) == 0)
				break;
		if (i == n)
			first[n++] = ifa;
	}
	return n;
}

static int
judge(struct chk *c, const char *require, const struct ifaddrs **first,
    size_t n)
{
	size_t i;

	if (require == NULL)
		return MUSTER_PASS;
	for (i = 0; i < n; i++)
		if (strcmp(first[i]->ifa_name, require) == 0)
			break;
	if (i == n) {
		chk_reason(c, "interface %s does not exist", require);
		return MUSTER_FAIL;
	}
	if (!(first[i]->ifa_flags & IFF_UP)) {
		chk_reason(c, "interface %s is down", require);
		return MUSTER_FAIL;
	}
	return MUSTER_PASS;
}

int
check_net_interfaces(struct chk *c)
{
	const struct ifaddrs *first[IF_MAX];
	const char *require = chk_str(c, "require", NULL);
	struct ifaddrs *all;
	char key[IF_NAMESIZE + 8], line[CHK_LINE], names[CHK_LINE / 2];
	size_t n, i, up = 0, len;
	int sock, verdict;

	if (chk_args_bad(c))
		return chk_args_error(c);
	if (getifaddrs(&all) == -1)
		return chk_error(c, "getifaddrs: %s", strerror(errno));
	/* Interface ioctls work on any socket: a Unix one needs no network
	 * (modules run without IPv4/IPv6 sockets, module.h). */
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	n = distinct(all, first, IF_MAX);
	names[0] = '\0';
	for (i = 0; i < n; i++) {
		chk_key_part(key, sizeof(key), first[i]->ifa_name);
		report_link(c, key, first[i], sock);
		snprintf(line, sizeof(line), "%s %s", first[i]->ifa_name,
		    first[i]->ifa_flags & IFF_UP ? "up" : "down");
		report_addrs(c, key, first[i]->ifa_name, all, line,
		    sizeof(line));
		chk_out(c, "%s", line);
		if (first[i]->ifa_flags & IFF_UP) {
			len = strlen(names);
			snprintf(names + len, sizeof(names) - len, "%s%s",
			    up++ ? ", " : "", first[i]->ifa_name);
		}
	}
	chk_data_int(c, "count", (int64_t)n);
	chk_summary(c, "%zu interfaces, %zu up%s%s%s", n, up,
	    up ? " (" : "", names, up ? ")" : "");
	verdict = judge(c, require, first, n);
	if (sock != -1)
		close(sock);
	freeifaddrs(all);
	return verdict;
}
