// SPDX-License-Identifier: GPL-2.0
/*
 * Tests: validation of kernel messages (FETCH, CANCEL, REGISTER reply), built with
 * libnl exactly as the kernel would lay them out. No socket involved.
 */
#include "t.h"
#include "../netlink.h"

#include <errno.h>
#include <string.h>
#include <netlink/netlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/genl/genl.h>

#define FAM 0x1234

struct fetch_spec {
	int cmd;
	bool req, digest, size;
	uint32_t req_id;
	int digest_len;
	uint64_t size_v;
	int size_len;		/* 8, or 4 for a wrong-width attribute */
	bool extra;		/* an unknown attribute too */
	int family;
	bool uid;		/* a UID attribute (protocol 3 FETCH) */
	uint32_t uid_v;
	int uid_len;		/* 4, or 8 for a wrong-width attribute */
	bool dfn;		/* a DIGEST_FN attribute */
	uint32_t dfn_v;
};

static struct nl_msg *build(const struct fetch_spec *s)
{
	struct nl_msg *m = nlmsg_alloc();
	uint8_t d[40];

	for (int i = 0; i < 40; i++)
		d[i] = (uint8_t)(i + 1);
	genlmsg_put(m, 0, 0, s->family ? s->family : FAM, 0, 0, (uint8_t)s->cmd, 1);
	if (s->req)
		nla_put_u32(m, CASFS_A_REQ_ID, s->req_id);
	if (s->digest)
		nla_put(m, CASFS_A_DIGEST, s->digest_len, d);
	if (s->size) {
		if (s->size_len == 4)
			nla_put_u32(m, CASFS_A_SIZE, (uint32_t)s->size_v);
		else
			nla_put_u64(m, CASFS_A_SIZE, s->size_v);
	}
	if (s->uid) {
		if (s->uid_len == 8)
			nla_put_u64(m, CASFS_A_UID, s->uid_v);
		else
			nla_put_u32(m, CASFS_A_UID, s->uid_v);
	}
	if (s->dfn)
		nla_put_u32(m, CASFS_A_DIGEST_FN, s->dfn_v);
	if (s->extra) {
		nla_put_u64(m, CASFS_A_PAD, 0);
		nla_put_u32(m, CASFS_A_MAX + 5, 7);
	}
	return m;
}

static int parse(const struct fetch_spec *s, struct nlh_req *q, const char **why)
{
	struct nl_msg *m = build(s);
	int r = s->cmd == CASFS_CMD_CANCEL ? nlh_parse_cancel(nlmsg_hdr(m), FAM, q, why) :
		s->cmd == CASFS_CMD_USED ? nlh_parse_used(nlmsg_hdr(m), FAM, q, why) :
		nlh_parse_fetch(nlmsg_hdr(m), FAM, q, why);

	nlmsg_free(m);
	return r;
}

static const struct fetch_spec good = {
	.cmd = CASFS_CMD_FETCH, .req = true, .digest = true, .size = true,
	.req_id = 77, .digest_len = 32, .size_v = 4096, .size_len = 8,
};

static void t_fetch_good(void)
{
	struct fetch_spec s = good;
	struct nlh_req q = { 0 };
	const char *why = NULL;

	CHECK_INT(parse(&s, &q, &why), 0);
	CHECK_INT(q.req_id, 77);
	CHECK_INT(q.size, 4096);
	CHECK_INT(q.digest[0], 1);
	CHECK_INT(q.digest[31], 32);
	CHECK(q.uid == NLH_UID_NONE);	/* protocol 2: no UID */
	s.extra = true;		/* unknown and padding attributes are ignored */
	s.size_v = CASFS_MAX_BLOB_SIZE;
	CHECK_INT(parse(&s, &q, &why), 0);
	CHECK(q.size == CASFS_MAX_BLOB_SIZE);
	s.size_v = 0;
	CHECK_INT(parse(&s, &q, &why), 0);
	s.uid = true;
	s.uid_v = 1000;
	CHECK_INT(parse(&s, &q, &why), 0);
	CHECK_INT(q.uid, 1000);
	CHECK_INT(q.digest_fn, CASFS_DIGEST_SHA256);	/* absent: SHA-256 */
	s.dfn = true;
	s.dfn_v = 6;	/* parsed; main.c refuses what is not SHA-256 */
	CHECK_INT(parse(&s, &q, &why), 0);
	CHECK_INT(q.digest_fn, 6);
}

static void t_used(void)
{
	struct fetch_spec s = good;
	struct nlh_req q = { 0 };
	const char *why = NULL;

	s.cmd = CASFS_CMD_USED;
	s.req = false;
	CHECK_INT(parse(&s, &q, &why), 0);
	CHECK_INT(q.req_id, 0);
	CHECK_INT(q.size, 4096);
	CHECK_INT(q.digest[7], 8);
	s.req = true;		/* no REQ_ID in a USED */
	CHECK_INT(parse(&s, &q, &why), -EINVAL);
	s.req = false;
	s.digest_len = 31;
	CHECK_INT(parse(&s, &q, &why), -EINVAL);
	s.digest_len = 32;
	s.size = false;
	CHECK_INT(parse(&s, &q, &why), -EINVAL);
}

static void t_cancel(void)
{
	struct fetch_spec s = good;
	struct nlh_req q = { 0 };
	const char *why = NULL;

	s.cmd = CASFS_CMD_CANCEL;
	CHECK_INT(parse(&s, &q, &why), 0);
	CHECK_INT(q.req_id, 77);
	CHECK_INT(q.size, 4096);
	CHECK_INT(q.digest[5], 6);
	s.uid = true;		/* a CANCEL has no UID */
	CHECK_INT(parse(&s, &q, &why), -EINVAL);
	s.uid = false;
	s.req_id = 0;
	CHECK_INT(parse(&s, &q, &why), -EINVAL);
	s = good;		/* a FETCH is not a CANCEL */
	{
		struct nl_msg *m = build(&s);

		CHECK_INT(nlh_parse_cancel(nlmsg_hdr(m), FAM, &q, &why), -EINVAL);
		nlmsg_free(m);
	}
}

static void expect_bad(struct fetch_spec s, const char *what)
{
	struct nlh_req q;
	const char *why = NULL;

	if (parse(&s, &q, &why) != -EINVAL) {
		char m[200];

		snprintf(m, sizeof(m), "FETCH with %s accepted", what);
		t_fail(__FILE__, __LINE__, m);
	}
	CHECK(why != NULL);
}

static void t_fetch_bad(void)
{
	struct fetch_spec s;

	s = good; s.req = false; expect_bad(s, "no REQ_ID");
	s = good; s.digest = false; expect_bad(s, "no DIGEST");
	s = good; s.size = false; expect_bad(s, "no SIZE");
	s = good; s.req_id = 0; expect_bad(s, "REQ_ID 0");
	s = good; s.digest_len = 31; expect_bad(s, "31-byte DIGEST");
	s = good; s.digest_len = 33; expect_bad(s, "33-byte DIGEST");
	s = good; s.digest_len = 0; expect_bad(s, "empty DIGEST");
	s = good; s.size_v = CASFS_MAX_BLOB_SIZE + 1; expect_bad(s, "SIZE over the max");
	s = good; s.size_v = UINT64_MAX; expect_bad(s, "SIZE 2^64-1");
	s = good; s.size_len = 4; expect_bad(s, "4-byte SIZE");
	s = good; s.cmd = CASFS_CMD_DONE; expect_bad(s, "wrong command");
	s = good; s.family = FAM + 1; expect_bad(s, "wrong family");
	s = good; s.uid = true; s.uid_len = 8; expect_bad(s, "8-byte UID");
}

static void t_fetch_truncated(void)
{
	/* a header that claims attributes beyond the message */
	struct nl_msg *m = build(&good);
	struct nlmsghdr *h = nlmsg_hdr(m);
	struct nlh_req q;
	const char *why = NULL;

	h->nlmsg_len = NLMSG_HDRLEN + 2;	/* shorter than a genl header */
	CHECK_INT(nlh_parse_fetch(h, FAM, &q, &why), -EINVAL);
	h->nlmsg_len = NLMSG_HDRLEN + GENL_HDRLEN + 6;	/* cuts the first attribute */
	CHECK_INT(nlh_parse_fetch(h, FAM, &q, &why), -EINVAL);
	nlmsg_free(m);
}

static void t_register_reply(void)
{
	struct nl_msg *m = nlmsg_alloc();
	uint32_t v = 0;
	const char *why;

	genlmsg_put(m, 0, 0, FAM, 0, 0, CASFS_CMD_REGISTER, 1);
	nla_put_u32(m, CASFS_A_VERSION, 7);
	CHECK_INT(nlh_parse_register(nlmsg_hdr(m), FAM, &v, &why), 0);
	CHECK_INT(v, 7);
	nlmsg_free(m);

	m = nlmsg_alloc();
	genlmsg_put(m, 0, 0, FAM, 0, 0, CASFS_CMD_REGISTER, 1);
	CHECK_INT(nlh_parse_register(nlmsg_hdr(m), FAM, &v, &why), -EINVAL);
	nlmsg_free(m);

	m = nlmsg_alloc();
	genlmsg_put(m, 0, 0, FAM, 0, 0, CASFS_CMD_REGISTER, 1);
	nla_put_u64(m, CASFS_A_VERSION, 1);
	CHECK_INT(nlh_parse_register(nlmsg_hdr(m), FAM, &v, &why), -EINVAL);
	nlmsg_free(m);
}

const struct test netlink_tests[] = {
	{ "fetch_good", t_fetch_good },
	{ "fetch_malformed", t_fetch_bad },
	{ "fetch_truncated", t_fetch_truncated },
	{ "cancel", t_cancel },
	{ "used", t_used },
	{ "register_reply", t_register_reply },
	{ NULL, NULL },
};
