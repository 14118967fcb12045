// SPDX-License-Identifier: GPL-2.0
/*
 * casfs gRPC server: who is on the other end of a connection. The server
 * is local-only, and the daemon refuses other users, so it needs the
 * peer's uid for TCP as well as for unix sockets:
 *
 * - unix: SO_PEERCRED (the credentials at connect() time).
 * - TCP from a loopback address: the client's socket is on this host, so
 *   the kernel knows its owner. Ask socket diagnostics for exactly that
 *   socket (NETLINK_SOCK_DIAG, an inet_diag_req_v2 for its 4-tuple seen
 *   from its side: source = our peer, destination = us) and take
 *   idiag_uid, the uid that created it.
 *
 * Anything else (a non-loopback peer, no answer, a mismatch) is "unknown",
 * uid (uid_t)-1, which a policy must treat as a stranger.
 */
#include "grpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define DIAG_TIMEOUT_US 250000	/* the whole exchange runs on the event loop */

static bool loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)a;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)a)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(in6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(in6) && in6->s6_addr[12] == 127;
	}
	return false;
}

/* Address and port of a sockaddr, in the form inet_diag_sockid wants. */
static void to_sockid(const struct sockaddr_storage *a, __be32 addr[4],
		      __be16 *port)
{
	memset(addr, 0, 16);
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)a;

		addr[0] = in->sin_addr.s_addr;
		*port = in->sin_port;
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;

		memcpy(addr, &in6->sin6_addr, 16);
		*port = in6->sin6_port;
	}
}

/*
 * inet_diag answers in the socket's own family: a dual-stack AF_INET6
 * client (Java's default) connected to 127.0.0.1 is found by an AF_INET
 * lookup but reported with v4-mapped addresses (::ffff:127.0.0.1).
 * The same address either way.
 */
static bool same_addr(const __be32 a[4], const __be32 b[4])
{
	static const __be32 zero[3];
	const __be32 mapped[3] = { 0, 0, htonl(0xffff) };

	if (!memcmp(a, b, 16))
		return true;
	if (!memcmp(a + 1, zero, 12) && !memcmp(b, mapped, 12))
		return a[0] == b[3];
	if (!memcmp(b + 1, zero, 12) && !memcmp(a, mapped, 12))
		return b[0] == a[3];
	return false;
}

static uid_t tcp_peer_uid(const struct sockaddr_storage *local,
			  const struct sockaddr_storage *remote)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 0, .tv_usec = DIAG_TIMEOUT_US };
	union {
		struct nlmsghdr nh;
		uint8_t b[8192];
	} buf;
	uid_t uid = (uid_t)-1;
	int fd;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	/* No NLM_F_DUMP: the kernel looks up exactly this one socket. */
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = 1;
	req.r.sdiag_family = (uint8_t)local->ss_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0u;
	/* The client's socket: its source is our peer, its destination us. */
	to_sockid(remote, req.r.id.idiag_src, &req.r.id.idiag_sport);
	to_sockid(local, req.r.id.idiag_dst, &req.r.id.idiag_dport);
	req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return uid;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&nl,
		   sizeof(nl)) != (ssize_t)sizeof(req))
		goto out;
	/* One datagram: the socket's inet_diag_msg, or an error. */
	for (int tries = 0; tries < 4; tries++) {
		ssize_t n = recv(fd, &buf, sizeof(buf), 0);
		size_t len = n > 0 ? (size_t)n : 0, off = 0;

		if (n < 0)
			break;
		/* NLMSG_OK/NEXT by hand: the macros mix signed and unsigned. */
		while (len - off >= sizeof(struct nlmsghdr)) {
			struct nlmsghdr *h = (struct nlmsghdr *)(buf.b + off);
			struct inet_diag_msg *m = NLMSG_DATA(h);

			if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > len - off)
				goto out;
			off += NLMSG_ALIGN(h->nlmsg_len);
			if (off > len)
				off = len;
			if (h->nlmsg_seq != 1)
				continue;
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
				goto out;	/* NLMSG_ERROR: no such socket */
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
				goto out;
			/* Trust only the socket we asked for. */
			if (m->id.idiag_sport != req.r.id.idiag_sport ||
			    m->id.idiag_dport != req.r.id.idiag_dport ||
			    !same_addr(m->id.idiag_src, req.r.id.idiag_src) ||
			    !same_addr(m->id.idiag_dst, req.r.id.idiag_dst))
				goto out;
			uid = m->idiag_uid;
			goto out;
		}
	}
out:
	close(fd);
	return uid;
}

void grpc_peer_of_fd(int fd, struct grpc_peer *peer)
{
	struct sockaddr_storage local, remote;
	socklen_t ll = sizeof(local), rl = sizeof(remote);

	peer->family = AF_UNSPEC;
	peer->uid = (uid_t)-1;
	peer->pid = 0;
	if (getsockname(fd, (struct sockaddr *)&local, &ll))
		return;
	peer->family = local.ss_family;
	if (local.ss_family == AF_UNIX) {
		struct ucred cr;
		socklen_t cl = sizeof(cr);

		if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) &&
		    cl == sizeof(cr)) {
			peer->uid = cr.uid;
			peer->pid = cr.pid;
		}
		return;
	}
	if (local.ss_family != AF_INET && local.ss_family != AF_INET6)
		return;
	if (getpeername(fd, (struct sockaddr *)&remote, &rl) ||
	    remote.ss_family != local.ss_family || !loopback(&remote))
		return;
	peer->uid = tcp_peer_uid(&local, &remote);
}
