// SPDX-License-Identifier: GPL-2.0
/* Metadata files, header encodings, grpc-timeout. */
#include "t.h"
#include "grpc.h"

#include <errno.h>
#include <stdlib.h>

static void t_parse_good(void)
{
	static const char f[] =
		"# credentials\n"
		"Authorization: Bearer abc.DEF-123\n"
		"\n"
		"  X-Casfs_Test.1:   some value\t \r\n"
		"x-trace-bin: AAEC\n"
		"x-empty-ok: ~\n";
	struct grpc_metadata md = { 0 };
	char err[256] = "";

	CHECK_INT(grpc_md_parse(&md, f, sizeof(f) - 1, err, sizeof(err)), 0);
	REQUIRE(md.n == 4);
	CHECK_STR(md.v[0].name, "authorization");
	CHECK_STR(md.v[0].value, "Bearer abc.DEF-123");
	CHECK_STR(md.v[1].name, "x-casfs_test.1");
	CHECK_STR(md.v[1].value, "some value");
	CHECK_STR(md.v[2].name, "x-trace-bin");
	CHECK_STR(md.v[3].value, "~");
	grpc_md_free(&md);
	CHECK(md.n == 0 && md.v == NULL);
}

static void t_parse_bad(void)
{
	static const struct { const char *text, *why; } bad[] = {
		{ "bad name: x\n", "invalid character 0x20" },
		{ "x-space : x\n", "invalid character 0x20" },
		{ "x-a: val\x01ue\n", "invalid character 0x01" },
		{ "x-a: caf\xc3\xa9\n", "invalid character 0xc3" },
		{ "x-a: del\x7f\n", "invalid character 0x7f" },
		{ ":path: /evil\n", "not a 'name: value'" },
		{ "no colon here\n", "not a 'name: value'" },
		{ "grpc-timeout: 1S\n", "reserved for gRPC" },
		{ "Content-Type: text/plain\n", "cannot be set" },
		{ "te: trailers\n", "cannot be set" },
		{ "host: x\n", "cannot be set" },
		{ "x-bin: not base64!\n", "invalid character 0x20" },
		{ "x-a:\n", "empty value" },
		{ "x-a:    \n", "empty value" },
		{ "ok: 1\nx\xe2\x80\x8b: 2\n", "line 2" },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct grpc_metadata md = { 0 };
		int r;

		err[0] = 0;
		r = grpc_md_parse(&md, bad[i].text, strlen(bad[i].text), err,
				  sizeof(err));
		if (r != -EINVAL)
			printf("    case %zu: r=%d\n", i, r);
		CHECK_INT(r, -EINVAL);
		CHECK_CONTAINS(err, bad[i].why);
		grpc_md_free(&md);
	}
	{
		struct grpc_metadata md = { 0 };

		CHECK_INT(grpc_md_parse(&md, "a: b\0c: d\n", 10, err, sizeof(err)),
			  -EINVAL);
		CHECK_CONTAINS(err, "NUL");
		grpc_md_free(&md);
	}
}

static void t_limits(void)
{
	struct grpc_metadata md = { 0 };
	char err[256], *line = malloc(GRPC_MD_MAX_LINE + 16);
	int r = 0;

	memcpy(line, "x-long: ", 8);
	memset(line + 8, 'a', GRPC_MD_MAX_LINE);
	line[8 + GRPC_MD_MAX_LINE] = '\n';
	CHECK_INT(grpc_md_parse(&md, line, GRPC_MD_MAX_LINE + 9, err, sizeof(err)),
		  -E2BIG);
	free(line);
	for (int i = 0; i < GRPC_MD_MAX && !r; i++)
		r = grpc_md_add(&md, "x-n", "v", err, sizeof(err));
	CHECK_INT(r, 0);
	CHECK_INT(grpc_md_add(&md, "x-n", "v", err, sizeof(err)), -E2BIG);
	grpc_md_free(&md);
}

static void t_load_file(void)
{
	char path[256], err[512];
	struct grpc_metadata md = { 0 };
	char *big;

	snprintf(path, sizeof(path), "%s/md", t_tmpdir());
	REQUIRE(t_write_file(path, "authorization: Bearer s3cret\n", 29) == 0);
	CHECK_INT(grpc_md_load_file(&md, path, err, sizeof(err)), 0);
	REQUIRE(md.n == 1);
	CHECK_STR(md.v[0].value, "Bearer s3cret");
	grpc_md_free(&md);

	snprintf(path, sizeof(path), "%s/missing", t_tmpdir());
	CHECK_INT(grpc_md_load_file(&md, path, err, sizeof(err)), -ENOENT);
	CHECK_CONTAINS(err, "missing");

	big = malloc(70000);
	memset(big, '#', 70000);
	snprintf(path, sizeof(path), "%s/big", t_tmpdir());
	REQUIRE(t_write_file(path, big, 70000) == 0);
	free(big);
	CHECK_INT(grpc_md_load_file(&md, path, err, sizeof(err)), -EFBIG);

	snprintf(path, sizeof(path), "%s/badline", t_tmpdir());
	REQUIRE(t_write_file(path, "x-a: 1\nbad line\n", 16) == 0);
	CHECK_INT(grpc_md_load_file(&md, path, err, sizeof(err)), -EINVAL);
	CHECK_CONTAINS(err, "line 2");
	grpc_md_free(&md);
}

static void t_percent(void)
{
	static const struct { const char *in, *out; } c[] = {
		{ "a%20b%3Ac", "a b:c" },
		{ "100%", "100%" },
		{ "%4", "%4" },
		{ "%zz%4g", "%zz%4g" },
		{ "line%0Abreak%00", "line?break?" },
		{ "caf%C3%A9", "caf\xc3\xa9" },
		{ "", "" },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char *o = grpc_percent_decode(c[i].in, strlen(c[i].in));

		CHECK_STR(o, c[i].out);
		free(o);
	}
}

static void t_base64(void)
{
	uint8_t *o;
	size_t n;

	CHECK_INT(grpc_base64_decode("aGVsbG8", 7, &o, &n), 0);
	CHECK(n == 5 && !memcmp(o, "hello", 5));
	free(o);
	CHECK_INT(grpc_base64_decode("aGVsbG8=", 8, &o, &n), 0);
	CHECK(n == 5 && !memcmp(o, "hello", 5));
	free(o);
	CHECK_INT(grpc_base64_decode("", 0, &o, &n), 0);
	CHECK_INT(n, 0);
	free(o);
	CHECK_INT(grpc_base64_decode("aGV*", 4, &o, &n), -EINVAL);
	CHECK_INT(grpc_base64_decode("aGVsb", 5, &o, &n), -EINVAL);
}

static void t_timeout(void)
{
	char b[16];

	grpc_timeout_format(5000, b);
	CHECK_STR(b, "5000m");
	grpc_timeout_format(0, b);
	CHECK_STR(b, "1m");
	grpc_timeout_format(99999999, b);
	CHECK_STR(b, "99999999m");
	grpc_timeout_format(100000001, b);
	CHECK_STR(b, "100001S");
	grpc_timeout_format(INT64_MAX, b);
	CHECK_STR(b, "99999999H");
	CHECK_INT(grpc_timeout_parse("5000m", 5), 5000);
	CHECK_INT(grpc_timeout_parse("2S", 2), 2000);
	CHECK_INT(grpc_timeout_parse("1H", 2), 3600000);
	CHECK_INT(grpc_timeout_parse("10u", 3), 1);
	CHECK_INT(grpc_timeout_parse("1500000n", 8), 2);
	CHECK_INT(grpc_timeout_parse("123456789m", 10), -1);
	CHECK_INT(grpc_timeout_parse("m", 1), -1);
	CHECK_INT(grpc_timeout_parse("1x", 2), -1);
	CHECK_INT(grpc_timeout_parse("-1m", 3), -1);
}

static void t_code_names(void)
{
	CHECK_STR(grpc_code_name(GRPC_OK), "OK");
	CHECK_STR(grpc_code_name(GRPC_UNAVAILABLE), "UNAVAILABLE");
	CHECK_STR(grpc_code_name(GRPC_UNAUTHENTICATED), "UNAUTHENTICATED");
	CHECK_STR(grpc_code_name(99), "CODE_99");
}

static const struct test tests[] = {
	{ "parse_good", t_parse_good },
	{ "parse_bad", t_parse_bad },
	{ "limits", t_limits },
	{ "load_file", t_load_file },
	{ "percent", t_percent },
	{ "base64", t_base64 },
	{ "timeout", t_timeout },
	{ "code_names", t_code_names },
	{ NULL, NULL },
};

const struct suite md_suite = { "metadata", tests, NULL, NULL };
