// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-helper: generic netlink to casfs.ko.
 *
 * One socket: REGISTER goes out, the kernel's REGISTER reply and its
 * FETCH and CANCEL messages (unicast to this socket's port) come in,
 * PROGRESS and DONE go out.
 * Only messages from the kernel (port 0) of our family are looked at;
 * every attribute is checked for presence and exact length before use.
 */
#include "netlink.h"
#include "stats.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netlink/netlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/genl/genl.h>
#include <netlink/genl/ctrl.h>

#define RCVBUF_BYTES (32 << 20)	/* room for many thousand FETCHes */

struct nlh {
	struct nl_sock *sk;
	struct nl_cb *cb;
	int family;
	nlh_fetch_fn fn, cancel_fn, used_fn;
	void *arg;
	uint32_t proto;		/* the version registered with */
	int blobs_fd;		/* sent with REGISTER: proof we may publish */
	uint32_t reg_seq;	/* seq of the REGISTER being waited for */
	bool reg_reply, reg_bad;
	uint32_t reg_version;
	int reg_err;
	int fatal;		/* e.g. -EPROTO from a re-register reply */
	bool overrun;		/* FETCHes were lost since nlh_take_overrun() */
};

static struct nla_policy casfs_policy[CASFS_A_MAX + 1] = {
	[CASFS_A_VERSION] = { .type = NLA_U32, .minlen = 4, .maxlen = 4 },
	[CASFS_A_REQ_ID] = { .type = NLA_U32, .minlen = 4, .maxlen = 4 },
	[CASFS_A_DIGEST] = { .type = NLA_UNSPEC, .minlen = CASFS_SHA256_LEN,
			     .maxlen = CASFS_SHA256_LEN },
	[CASFS_A_SIZE] = { .type = NLA_U64, .minlen = 8, .maxlen = 8 },
	[CASFS_A_STATUS] = { .type = NLA_U32, .minlen = 4, .maxlen = 4 },
	[CASFS_A_UID] = { .type = NLA_U32, .minlen = 4, .maxlen = 4 },
	[CASFS_A_DIGEST_FN] = { .type = NLA_U32, .minlen = 4, .maxlen = 4 },
};

static int nlerr(int e)
{
	switch (-e) {
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_PERM:
	case NLE_NOACCESS:
		return -EPERM;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_EXIST:
		return -EEXIST;
	case NLE_INVAL:
	case NLE_RANGE:
		return -EINVAL;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_PROTO_MISMATCH:
		return -EPROTO;
	default:
		return -EIO;
	}
}

static int parse_common(struct nlmsghdr *nlh, int family, uint8_t cmd,
			struct nlattr **tb, const char **why)
{
	struct genlmsghdr *g;

	if (nlh->nlmsg_type != family) {
		*why = "not from the casfs family";
		return -EINVAL;
	}
	if (!genlmsg_valid_hdr(nlh, 0)) {
		*why = "truncated generic netlink header";
		return -EINVAL;
	}
	g = genlmsg_hdr(nlh);
	if (g->cmd != cmd) {
		*why = "unexpected command";
		return -EINVAL;
	}
	if (genlmsg_parse(nlh, 0, tb, CASFS_A_MAX, casfs_policy) < 0) {
		*why = "attribute of the wrong length or malformed";
		return -EINVAL;
	}
	return 0;
}

static int parse_req(struct nlmsghdr *nlh, int family, uint8_t cmd,
		     struct nlh_req *r, const char **why)
{
	struct nlattr *tb[CASFS_A_MAX + 1];
	uint64_t sz;
	uint32_t id;

	if (parse_common(nlh, family, cmd, tb, why))
		return -EINVAL;
	if ((cmd != CASFS_CMD_USED && !tb[CASFS_A_REQ_ID]) || !tb[CASFS_A_DIGEST] ||
	    !tb[CASFS_A_SIZE]) {
		*why = "missing REQ_ID, DIGEST or SIZE";
		return -EINVAL;
	}
	if (cmd == CASFS_CMD_USED && tb[CASFS_A_REQ_ID]) {
		*why = "REQ_ID in USED";
		return -EINVAL;
	}
	/* The policy already checked these; they are cheap to check again. */
	if ((tb[CASFS_A_REQ_ID] && nla_len(tb[CASFS_A_REQ_ID]) != 4) ||
	    nla_len(tb[CASFS_A_SIZE]) != 8 ||
	    nla_len(tb[CASFS_A_DIGEST]) != CASFS_SHA256_LEN) {
		*why = "attribute of the wrong length";
		return -EINVAL;
	}
	id = tb[CASFS_A_REQ_ID] ? nla_get_u32(tb[CASFS_A_REQ_ID]) : 0;
	sz = nla_get_u64(tb[CASFS_A_SIZE]);
	if (!id && cmd != CASFS_CMD_USED) {
		*why = "request id 0";
		return -EINVAL;
	}
	if (sz > CASFS_MAX_BLOB_SIZE) {
		*why = "size above CASFS_MAX_BLOB_SIZE";
		return -EINVAL;
	}
	r->uid = NLH_UID_NONE;
	if (tb[CASFS_A_UID]) {
		if (cmd != CASFS_CMD_FETCH || nla_len(tb[CASFS_A_UID]) != 4) {
			*why = "UID where none belongs, or of the wrong length";
			return -EINVAL;
		}
		r->uid = nla_get_u32(tb[CASFS_A_UID]);
	}
	r->digest_fn = CASFS_DIGEST_SHA256;
	if (tb[CASFS_A_DIGEST_FN]) {
		if (nla_len(tb[CASFS_A_DIGEST_FN]) != 4) {
			*why = "DIGEST_FN of the wrong length";
			return -EINVAL;
		}
		r->digest_fn = nla_get_u32(tb[CASFS_A_DIGEST_FN]);
	}
	memcpy(r->digest, nla_data(tb[CASFS_A_DIGEST]), CASFS_SHA256_LEN);
	r->req_id = id;
	r->size = sz;
	return 0;
}

int nlh_parse_fetch(struct nlmsghdr *nlh, int family, struct nlh_req *r,
		    const char **why)
{
	return parse_req(nlh, family, CASFS_CMD_FETCH, r, why);
}

int nlh_parse_cancel(struct nlmsghdr *nlh, int family, struct nlh_req *r,
		     const char **why)
{
	return parse_req(nlh, family, CASFS_CMD_CANCEL, r, why);
}

int nlh_parse_used(struct nlmsghdr *nlh, int family, struct nlh_req *r,
		   const char **why)
{
	return parse_req(nlh, family, CASFS_CMD_USED, r, why);
}

int nlh_parse_register(struct nlmsghdr *nlh, int family, uint32_t *version,
		       const char **why)
{
	struct nlattr *tb[CASFS_A_MAX + 1];

	if (parse_common(nlh, family, CASFS_CMD_REGISTER, tb, why))
		return -EINVAL;
	if (!tb[CASFS_A_VERSION] || nla_len(tb[CASFS_A_VERSION]) != 4) {
		*why = "missing VERSION";
		return -EINVAL;
	}
	*version = nla_get_u32(tb[CASFS_A_VERSION]);
	return 0;
}

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct nlh *h = arg;
	struct nlmsghdr *nh = nlmsg_hdr(msg);
	struct sockaddr_nl *src = nlmsg_get_src(msg);
	const char *why = "?";
	struct nlh_req req;
	uint32_t ver;

	if (!src || src->nl_pid != 0) {
		stats.malformed++;
		log_warn("netlink: ignoring a message from port %u, not the kernel",
			 src ? src->nl_pid : 0);
		return NL_SKIP;
	}
	if (nh->nlmsg_type != h->family || !genlmsg_valid_hdr(nh, 0)) {
		stats.malformed++;
		log_warn("netlink: ignoring a message of type %u", nh->nlmsg_type);
		return NL_SKIP;
	}
	switch (genlmsg_hdr(nh)->cmd) {
	case CASFS_CMD_FETCH:
		if (nlh_parse_fetch(nh, h->family, &req, &why)) {
			stats.malformed++;
			log_err("netlink: malformed FETCH ignored: %s", why);
			break;
		}
		h->fn(h->arg, &req);
		break;
	case CASFS_CMD_CANCEL:
		if (nlh_parse_cancel(nh, h->family, &req, &why)) {
			stats.malformed++;
			log_err("netlink: malformed CANCEL ignored: %s", why);
			break;
		}
		if (h->cancel_fn)
			h->cancel_fn(h->arg, &req);
		break;
	case CASFS_CMD_USED:
		if (nlh_parse_used(nh, h->family, &req, &why)) {
			stats.malformed++;
			log_err("netlink: malformed USED ignored: %s", why);
			break;
		}
		if (h->used_fn)
			h->used_fn(h->arg, &req);
		break;
	case CASFS_CMD_REGISTER:
		if (nlh_parse_register(nh, h->family, &ver, &why)) {
			stats.malformed++;
			log_err("netlink: malformed REGISTER reply: %s", why);
			h->reg_bad = true;
			break;
		}
		h->reg_reply = true;
		h->reg_version = ver;
		if (ver != h->proto) {
			h->fatal = -EPROTO;
			log_err("netlink: casfs.ko answered REGISTER version %u with %u",
				h->proto, ver);
		}
		break;
	default:
		log_dbg("netlink: ignoring command %u", genlmsg_hdr(nh)->cmd);
	}
	return NL_OK;
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct nlh *h = arg;

	if (who->nl_pid != 0)
		return NL_SKIP;
	if (h->reg_seq && e->msg.nlmsg_seq == h->reg_seq) {
		h->reg_err = e->error < 0 ? e->error : -EIO;
		return NL_SKIP;
	}
	if (e->error == -ENOENT)	/* a DONE for a request withdrawn meanwhile */
		log_dbg("netlink: kernel no longer waits for that request (seq %u)",
			e->msg.nlmsg_seq);
	else
		log_warn("netlink: kernel refused a message (seq %u): %s",
			 e->msg.nlmsg_seq, strerror(e->error < 0 ? -e->error : EIO));
	return NL_SKIP;
}

static int on_ack(struct nl_msg *msg, void *arg)
{
	(void)msg;
	(void)arg;
	return NL_OK;
}

int nlh_resolve_family(void)
{
	struct nl_sock *sk = nl_socket_alloc();
	int r;

	if (!sk)
		return -ENOMEM;
	r = genl_connect(sk);
	if (!r)
		r = genl_ctrl_resolve(sk, CASFS_GENL_NAME);
	nl_socket_free(sk);
	return r < 0 ? nlerr(r) : r;
}

int nlh_open(struct nlh **out, nlh_fetch_fn fn, void *arg, int blobs_fd)
{
	struct nlh *h = calloc(1, sizeof(*h));
	int r, sz = RCVBUF_BYTES;

	if (!h)
		return -ENOMEM;
	h->fn = fn;
	h->arg = arg;
	h->blobs_fd = blobs_fd;
	h->proto = CASFS_PROTO_VERSION;
	h->sk = nl_socket_alloc();
	if (!h->sk) {
		free(h);
		return -ENOMEM;
	}
	r = genl_connect(h->sk);
	if (r < 0)
		goto fail;
	r = genl_ctrl_resolve(h->sk, CASFS_GENL_NAME);
	if (r < 0)
		goto fail;
	h->family = r;
	/* Kernel-originated messages carry no sequence we chose. */
	nl_socket_disable_seq_check(h->sk);
	nl_socket_disable_auto_ack(h->sk);
	/*
	 * A big receive buffer: the kernel resends every pending FETCH right
	 * after REGISTER. SO_RCVBUFFORCE needs CAP_NET_ADMIN, which REGISTER
	 * needs anyway (GENL_ADMIN_PERM); without it the size would be capped
	 * by net.core.rmem_max. CASFS_HELPER_NETLINK_RCVBUF (bytes) overrides
	 * the size, for tests of the overrun path.
	 */
	{
		const char *env = getenv("CASFS_HELPER_NETLINK_RCVBUF");
		uint64_t v;

		if (env && !parse_u64(env, RCVBUF_BYTES, &v) && v >= 4096)
			sz = (int)v;
	}
	if (setsockopt(nl_socket_get_fd(h->sk), SOL_SOCKET, SO_RCVBUFFORCE, &sz,
		       sizeof(sz)) < 0) {
		log_warn("netlink: SO_RCVBUFFORCE: %s; receive buffer capped by "
			 "net.core.rmem_max", strerror(errno));
		nl_socket_set_buffer_size(h->sk, sz, 0);
	}
	r = nl_socket_set_nonblocking(h->sk);
	if (r < 0)
		goto fail;
	h->cb = nl_socket_get_cb(h->sk);
	if (!h->cb) {
		r = -NLE_NOMEM;
		goto fail;
	}
	nl_cb_set(h->cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, h);
	nl_cb_set(h->cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, h);
	nl_cb_err(h->cb, NL_CB_CUSTOM, on_error, h);
	*out = h;
	return 0;
fail:
	nlh_close(h);
	return nlerr(r);
}

void nlh_on_cancel(struct nlh *h, nlh_fetch_fn fn)
{
	h->cancel_fn = fn;
}

void nlh_on_used(struct nlh *h, nlh_fetch_fn fn)
{
	h->used_fn = fn;
}

bool nlh_take_overrun(struct nlh *h)
{
	bool o = h->overrun;

	h->overrun = false;
	return o;
}

int nlh_fd(const struct nlh *h)
{
	return nl_socket_get_fd(h->sk);
}

int nlh_family(const struct nlh *h)
{
	return h->family;
}

static int send_register(struct nlh *h)
{
	struct nl_msg *m = nlmsg_alloc();
	int r;

	if (!m)
		return -ENOMEM;
	if (!genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, h->family, 0, 0,
			 CASFS_CMD_REGISTER, CASFS_GENL_VERSION) ||
	    nla_put_u32(m, CASFS_A_VERSION, h->proto) < 0 ||
	    nla_put_u32(m, CASFS_A_BLOBS_FD, (uint32_t)h->blobs_fd) < 0) {
		nlmsg_free(m);
		return -ENOMEM;
	}
	r = nl_send_auto(h->sk, m);
	if (r >= 0)
		h->reg_seq = nlmsg_hdr(m)->nlmsg_seq;
	nlmsg_free(m);
	return r < 0 ? nlerr(r) : 0;
}

int nlh_reregister(struct nlh *h)
{
	return send_register(h);
}

#define RECV_BATCH 4096	/* datagrams per call: then let transfers run */

int nlh_receive(struct nlh *h)
{
	for (int i = 0; i < RECV_BATCH; i++) {
		int r = nl_recvmsgs_report(h->sk, h->cb);

		if (h->fatal)
			return h->fatal;
		if (r > 0)
			continue;
		if (r == 0 || r == -NLE_AGAIN)
			return 0;
		if (r == -NLE_NOMEM) {	/* ENOBUFS: the kernel dropped messages */
			h->overrun = true;
			return -ENOBUFS;
		}
		log_err("netlink: receive: %s", nl_geterror(r));
		return nlerr(r);
	}
	return 0;	/* more may be queued: poll() says so next turn */
}

static int register_as(struct nlh *h, uint64_t deadline, uint32_t *kernel_version);

int nlh_register(struct nlh *h, int timeout_ms, uint32_t *kernel_version)
{
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
	int r;

	h->proto = CASFS_PROTO_VERSION;
	r = register_as(h, deadline, kernel_version);
	if (r == -EPROTO && !*kernel_version) {
		/* An older casfs.ko: no UID, PROGRESS or CANCEL. */
		h->proto = CASFS_PROTO_VERSION_MIN;
		r = register_as(h, deadline, kernel_version);
		if (!r)
			log_info("casfs.ko is older (protocol %u): no per-user queues, "
				 "progress reports or cancels", h->proto);
	}
	return r;
}

static int register_as(struct nlh *h, uint64_t deadline, uint32_t *kernel_version)
{
	int r;

	h->reg_reply = h->reg_bad = false;
	h->reg_err = 0;
	h->fatal = 0;
	*kernel_version = 0;
	r = send_register(h);
	if (r)
		return r;
	while (!h->reg_reply && !h->reg_bad && !h->reg_err) {
		struct pollfd p = { .fd = nlh_fd(h), .events = POLLIN };
		uint64_t now = mono_ms();

		if (now >= deadline) {
			h->reg_seq = 0;
			return -ETIMEDOUT;
		}
		r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		r = nlh_receive(h);
		if (r == -EPROTO)
			break;
		if (r && r != -ENOBUFS)
			return r;
	}
	h->reg_seq = 0;
	if (h->reg_err == -EPROTONOSUPPORT)	/* the kernel refuses our version */
		return -EPROTO;
	if (h->reg_err)
		return h->reg_err;
	if (h->reg_bad)
		return -EPROTO;
	*kernel_version = h->reg_version;
	h->fatal = 0;
	return h->reg_version == h->proto ? 0 : -EPROTO;
}

/* DONE {REQ_ID, STATUS} or PROGRESS {REQ_ID}. */
static int send_req(struct nlh *h, uint8_t cmd, uint32_t req_id, const int32_t *status)
{
	struct nl_msg *m = nlmsg_alloc();
	int r;

	if (!m)
		return -ENOMEM;
	if (!genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, h->family, 0, 0, cmd,
			 CASFS_GENL_VERSION) ||
	    nla_put_u32(m, CASFS_A_REQ_ID, req_id) < 0 ||
	    (status && nla_put_s32(m, CASFS_A_STATUS, *status) < 0)) {
		nlmsg_free(m);
		return -ENOMEM;
	}
	r = nl_send_auto(h->sk, m);
	nlmsg_free(m);
	return r < 0 ? nlerr(r) : 0;
}

int nlh_send_done(struct nlh *h, uint32_t req_id, int32_t status)
{
	return send_req(h, CASFS_CMD_DONE, req_id, &status);
}

int nlh_send_progress(struct nlh *h, uint32_t req_id)
{
	if (h->proto < 3)
		return 0;
	return send_req(h, CASFS_CMD_PROGRESS, req_id, NULL);
}

void nlh_close(struct nlh *h)
{
	if (!h)
		return;
	if (h->cb)
		nl_cb_put(h->cb);
	if (h->sk)
		nl_socket_free(h->sk);
	free(h);
}
