// SPDX-License-Identifier: GPL-2.0
/*
 * casfs - the generic netlink channel to casfs-helper.
 *
 * See include/uapi/linux/casfs.h for the protocol. Only control messages
 * travel here; blob bytes go through the cache directory.
 *
 * One helper at a time: REGISTER records the sender's port id; a netlink
 * notifier clears it when that socket is released (the helper died or
 * exited). REGISTER and DONE need CAP_NET_ADMIN (GENL_ADMIN_PERM), and
 * DONE is accepted only from the registered helper. CAP_NET_ADMIN alone
 * is held by network daemons (systemd-networkd, VPNs) that must not be
 * able to stand in for the helper while it restarts, so REGISTER also
 * carries an fd of a blobs/ directory: root-owned, mode 0700, and
 * writable by the sender -- the power to publish blobs, which is what
 * the helper is trusted with anyway. Every attribute has a policy and the
 * family validates strictly.
 */
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/spinlock.h>
#include <net/genetlink.h>
#include <net/netlink.h>
#include <net/net_namespace.h>
#include <linux/module.h>
#include <linux/file.h>

#include "casfs.h"

static DEFINE_SPINLOCK(casfs_helper_lock);
static u32 casfs_helper_portid;		/* 0: no helper registered */
static u32 casfs_helper_version;	/* the protocol it registered with */

static const struct nla_policy casfs_genl_policy[CASFS_A_MAX + 1] = {
	[CASFS_A_VERSION]	= { .type = NLA_U32 },
	[CASFS_A_REQ_ID]	= NLA_POLICY_MIN(NLA_U32, 1),
	[CASFS_A_DIGEST]	= NLA_POLICY_EXACT_LEN(CASFS_SHA256_LEN),
	[CASFS_A_SIZE]		= { .type = NLA_U64 },
	[CASFS_A_STATUS]	= NLA_POLICY_RANGE(NLA_S32, -MAX_ERRNO, 0),
	[CASFS_A_BLOBS_FD]	= { .type = NLA_U32 },
	[CASFS_A_UID]		= { .type = NLA_REJECT },	/* kernel -> helper only */
};

static struct genl_family casfs_genl_family;

static u32 casfs_helper_v(u32 *version)
{
	u32 portid;

	spin_lock(&casfs_helper_lock);
	portid = casfs_helper_portid;
	*version = casfs_helper_version;
	spin_unlock(&casfs_helper_lock);
	return portid;
}

static u32 casfs_helper(void)
{
	u32 version;

	return casfs_helper_v(&version);
}

/*
 * Send FETCH to the helper, if one is registered. Failure is not an
 * error for the waiter: the request stays pending and is sent again when
 * a helper registers, or times out.
 */
void casfs_nl_send_fetch(u32 id, const u8 *sha256, u64 size, kuid_t uid)
{
	struct sk_buff *skb;
	u32 version, portid = casfs_helper_v(&version);
	void *hdr;

	if (!portid)
		return;
	skb = genlmsg_new(nla_total_size(sizeof(u32)) * 3 +
			  nla_total_size(CASFS_SHA256_LEN) +
			  nla_total_size_64bit(sizeof(u64)), GFP_NOFS);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &casfs_genl_family, 0, CASFS_CMD_FETCH);
	if (!hdr ||
	    nla_put_u32(skb, CASFS_A_REQ_ID, id) ||
	    nla_put(skb, CASFS_A_DIGEST, CASFS_SHA256_LEN, sha256) ||
	    nla_put_u64_64bit(skb, CASFS_A_SIZE, size, CASFS_A_PAD) ||
	    (version >= 3 &&
	     (nla_put_u32(skb, CASFS_A_UID, from_kuid(&init_user_ns, uid)) ||
	      nla_put_u32(skb, CASFS_A_DIGEST_FN, CASFS_DIGEST_SHA256)))) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_end(skb, hdr);
	if (!genlmsg_unicast(&init_net, skb, portid))
		atomic64_inc(&casfs_stats.fetches);
}

/*
 * Tell the helper that request @id was withdrawn (its last reader left),
 * so that it drops the work. Best effort, like FETCH: a helper that does
 * not hear it fetches a blob nobody waits for, and its DONE is ignored.
 */
void casfs_nl_send_cancel(u32 id, const u8 *sha256, u64 size)
{
	struct sk_buff *skb;
	u32 version, portid = casfs_helper_v(&version);
	void *hdr;

	if (!portid || version < 3)
		return;
	skb = genlmsg_new(nla_total_size(sizeof(u32)) * 2 +
			  nla_total_size(CASFS_SHA256_LEN) +
			  nla_total_size_64bit(sizeof(u64)), GFP_NOFS);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &casfs_genl_family, 0, CASFS_CMD_CANCEL);
	if (!hdr || nla_put_u32(skb, CASFS_A_REQ_ID, id) ||
	    nla_put(skb, CASFS_A_DIGEST, CASFS_SHA256_LEN, sha256) ||
	    nla_put_u64_64bit(skb, CASFS_A_SIZE, size, CASFS_A_PAD) ||
	    nla_put_u32(skb, CASFS_A_DIGEST_FN, CASFS_DIGEST_SHA256)) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_end(skb, hdr);
	genlmsg_unicast(&init_net, skb, portid);
}

/*
 * Is @fd, in the sender's file table, a blobs/ directory it may publish
 * into? doit runs in the sender's context, so current is the sender.
 */
/*
 * Tell the helper that a cached blob was used (opened by a reader), so
 * that it evicts by use. Best effort: a lost USED only makes the blob
 * look older than it is.
 */
void casfs_nl_send_used(const u8 *sha256, u64 size)
{
	struct sk_buff *skb;
	u32 version, portid = casfs_helper_v(&version);
	void *hdr;

	if (!portid || version < 3)
		return;
	skb = genlmsg_new(nla_total_size(sizeof(u32)) +
			  nla_total_size(CASFS_SHA256_LEN) +
			  nla_total_size_64bit(sizeof(u64)), GFP_NOFS);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &casfs_genl_family, 0, CASFS_CMD_USED);
	if (!hdr || nla_put(skb, CASFS_A_DIGEST, CASFS_SHA256_LEN, sha256) ||
	    nla_put_u64_64bit(skb, CASFS_A_SIZE, size, CASFS_A_PAD) ||
	    nla_put_u32(skb, CASFS_A_DIGEST_FN, CASFS_DIGEST_SHA256)) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_end(skb, hdr);
	genlmsg_unicast(&init_net, skb, portid);
}

static int casfs_nl_check_blobs_fd(struct genl_info *info, u32 fd)
{
	struct inode *inode;
	struct file *file;
	int err = -EPERM;

	file = fget(fd);
	if (!file) {
		NL_SET_ERR_MSG(info->extack, "casfs: BLOBS_FD is not an open fd");
		return -EBADF;
	}
	inode = file_inode(file);
	if (!S_ISDIR(inode->i_mode) || casfs_mnt_idmapped(file->f_path.mnt) ||
	    !uid_eq(inode->i_uid, GLOBAL_ROOT_UID) || (inode->i_mode & 0077))
		NL_SET_ERR_MSG(info->extack,
			       "casfs: BLOBS_FD must be a root-owned directory of mode 0700");
	else if (inode_permission(CASFS_NOP_IDMAP, inode, MAY_WRITE | MAY_EXEC))
		NL_SET_ERR_MSG(info->extack,
			       "casfs: the sender may not write BLOBS_FD's directory");
	else
		err = 0;
	fput(file);
	return err;
}

static int casfs_nl_register(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *reply;
	u32 version;
	void *hdr;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, CASFS_A_VERSION))
		return -EINVAL;
	version = nla_get_u32(info->attrs[CASFS_A_VERSION]);
	if (version < CASFS_PROTO_VERSION_MIN || version > CASFS_PROTO_VERSION) {
		NL_SET_ERR_MSG(info->extack,
			       "casfs: unsupported protocol version");
		return -EPROTONOSUPPORT;
	}
	if (GENL_REQ_ATTR_CHECK(info, CASFS_A_BLOBS_FD))
		return -EINVAL;
	err = casfs_nl_check_blobs_fd(info,
				      nla_get_u32(info->attrs[CASFS_A_BLOBS_FD]));
	if (err)
		return err;

	spin_lock(&casfs_helper_lock);
	if (casfs_helper_portid && casfs_helper_portid != info->snd_portid) {
		spin_unlock(&casfs_helper_lock);
		NL_SET_ERR_MSG(info->extack, "casfs: another helper is registered");
		return -EBUSY;
	}
	casfs_helper_portid = info->snd_portid;
	casfs_helper_version = version;
	spin_unlock(&casfs_helper_lock);

	reply = genlmsg_new(nla_total_size(sizeof(u32)), GFP_KERNEL);
	if (!reply)
		return -ENOMEM;
	hdr = genlmsg_put_reply(reply, info, &casfs_genl_family, 0,
				CASFS_CMD_REGISTER);
	if (!hdr || nla_put_u32(reply, CASFS_A_VERSION, version)) {
		nlmsg_free(reply);
		return -EMSGSIZE;
	}
	genlmsg_end(reply, hdr);
	err = genlmsg_reply(reply, info);
	if (err)
		return err;

	pr_info("casfs: helper registered (port %u, protocol %u), %u requests pending\n",
		info->snd_portid, version, casfs_fetch_pending_count());
	casfs_fetch_resend_all();
	return 0;
}

static int casfs_nl_done(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, CASFS_A_REQ_ID) ||
	    GENL_REQ_ATTR_CHECK(info, CASFS_A_STATUS))
		return -EINVAL;
	if (info->snd_portid != casfs_helper()) {
		NL_SET_ERR_MSG(info->extack, "casfs: DONE from a non-registered socket");
		return -EPERM;
	}
	return casfs_fetch_done(nla_get_u32(info->attrs[CASFS_A_REQ_ID]),
				nla_get_s32(info->attrs[CASFS_A_STATUS]));
}

static int casfs_nl_progress(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, CASFS_A_REQ_ID))
		return -EINVAL;
	if (info->snd_portid != casfs_helper()) {
		NL_SET_ERR_MSG(info->extack,
			       "casfs: PROGRESS from a non-registered socket");
		return -EPERM;
	}
	return casfs_fetch_progress(nla_get_u32(info->attrs[CASFS_A_REQ_ID]));
}

static int casfs_nl_get_stats(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *reply;
	void *hdr;

	reply = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!reply)
		return -ENOMEM;
	hdr = genlmsg_put_reply(reply, info, &casfs_genl_family, 0,
				CASFS_CMD_GET_STATS);
	if (!hdr ||
	    nla_put_u64_64bit(reply, CASFS_A_STAT_MISSES,
			      atomic64_read(&casfs_stats.misses), CASFS_A_PAD) ||
	    nla_put_u64_64bit(reply, CASFS_A_STAT_FETCHES,
			      atomic64_read(&casfs_stats.fetches), CASFS_A_PAD) ||
	    nla_put_u64_64bit(reply, CASFS_A_STAT_FETCH_BYTES,
			      atomic64_read(&casfs_stats.fetch_bytes),
			      CASFS_A_PAD) ||
	    nla_put_u64_64bit(reply, CASFS_A_STAT_ERRORS,
			      atomic64_read(&casfs_stats.errors), CASFS_A_PAD) ||
	    nla_put_u64_64bit(reply, CASFS_A_STAT_TIMEOUTS,
			      atomic64_read(&casfs_stats.timeouts),
			      CASFS_A_PAD) ||
	    nla_put_u64_64bit(reply, CASFS_A_STAT_PENDING,
			      casfs_fetch_pending_count(), CASFS_A_PAD) ||
	    nla_put_u64_64bit(reply, CASFS_A_STAT_REFETCHES,
			      atomic64_read(&casfs_stats.refetches),
			      CASFS_A_PAD) ||
	    nla_put_u64_64bit(reply, CASFS_A_STAT_CANCELS,
			      atomic64_read(&casfs_stats.cancels),
			      CASFS_A_PAD) ||
	    nla_put_u32(reply, CASFS_A_STAT_HELPER, casfs_helper() != 0)) {
		nlmsg_free(reply);
		return -EMSGSIZE;
	}
	genlmsg_end(reply, hdr);
	return genlmsg_reply(reply, info);
}

static const struct genl_small_ops casfs_genl_ops[] = {
	{
		.cmd	= CASFS_CMD_REGISTER,
		.flags	= GENL_ADMIN_PERM,
		.doit	= casfs_nl_register,
	},
	{
		.cmd	= CASFS_CMD_DONE,
		.flags	= GENL_ADMIN_PERM,
		.doit	= casfs_nl_done,
	},
	{
		.cmd	= CASFS_CMD_GET_STATS,
		.doit	= casfs_nl_get_stats,
	},
	{
		.cmd	= CASFS_CMD_PROGRESS,
		.flags	= GENL_ADMIN_PERM,
		.doit	= casfs_nl_progress,
	},
};

static struct genl_family casfs_genl_family __ro_after_init = {
	.name		= CASFS_GENL_NAME,
	.version	= CASFS_GENL_VERSION,
	.maxattr	= CASFS_A_MAX,
	.policy		= casfs_genl_policy,
	.module		= THIS_MODULE,
	.small_ops	= casfs_genl_ops,
	.n_small_ops	= ARRAY_SIZE(casfs_genl_ops),
	.resv_start_op	= CASFS_CMD_MAX + 1,	/* strict for every command */
};

/* The helper's socket went away: nobody to send FETCHes to any more. */
static int casfs_nl_release(struct notifier_block *nb, unsigned long event,
			    void *ptr)
{
	struct netlink_notify *n = ptr;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC ||
	    !net_eq(n->net, &init_net))
		return NOTIFY_DONE;
	spin_lock(&casfs_helper_lock);
	if (casfs_helper_portid == n->portid) {
		casfs_helper_portid = 0;
		pr_info("casfs: helper (port %u) went away\n", n->portid);
	}
	spin_unlock(&casfs_helper_lock);
	return NOTIFY_DONE;
}

static struct notifier_block casfs_nl_notifier = {
	.notifier_call = casfs_nl_release,
};

int casfs_nl_init(void)
{
	int err;

	err = netlink_register_notifier(&casfs_nl_notifier);
	if (err)
		return err;
	err = genl_register_family(&casfs_genl_family);
	if (err)
		netlink_unregister_notifier(&casfs_nl_notifier);
	return err;
}

void casfs_nl_exit(void)
{
	genl_unregister_family(&casfs_genl_family);
	netlink_unregister_notifier(&casfs_nl_notifier);
}
MODULE_ALIAS_GENL_FAMILY(CASFS_GENL_NAME);
