// SPDX-License-Identifier: GPL-2.0
/* Tests: casfsctl manifest lines. */
#include "t.h"
#include "../manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define H "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static int parse(const char *line, struct manifest_entry *e, char *err)
{
	memset(e, 0, sizeof(*e));
	err[0] = 0;
	return manifest_parse_line(line, strlen(line), e, err, 256);
}

static void t_good(void)
{
	struct manifest_entry e;
	char err[256];

	CHECK_INT(parse(H " 123 0644 a/b/c.txt", &e, err), 1);
	CHECK_INT(e.size, 123);
	CHECK_INT(e.mode, 0644);
	CHECK_STR(e.path, "a/b/c.txt");
	CHECK_INT(e.sha256[0], 0xe3);
	CHECK_INT(e.sha256[31], 0x55);
	free(e.path);

	CHECK_INT(parse(H "\t0\t755\tbin/tool with spaces ", &e, err), 1);
	CHECK_INT(e.size, 0);
	CHECK_INT(e.mode, 0755);
	CHECK_STR(e.path, "bin/tool with spaces ");
	free(e.path);

	CHECK_INT(parse("  " H "  1099511627776  07777   x", &e, err), 1);
	CHECK_INT(e.size, 1ULL << 40);
	CHECK_INT(e.mode, 07777);
	CHECK_STR(e.path, "x");
	free(e.path);

	/* upper-case hex is accepted */
	CHECK_INT(parse("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855 1 0 f",
			&e, err), 1);
	CHECK_INT(e.sha256[0], 0xe3);
	free(e.path);

	CHECK_INT(parse("..hidden/.x/a..b " , &e, err), -EINVAL);	/* not a digest */
	CHECK_INT(parse(H " 1 0 ..hidden/.x/a..b", &e, err), 1);	/* fine names */
	free(e.path);
}

static void t_blank_comment(void)
{
	struct manifest_entry e;
	char err[256];

	CHECK_INT(parse("", &e, err), 0);
	CHECK_INT(parse("   \t ", &e, err), 0);
	CHECK_INT(parse("# comment " H, &e, err), 0);
	CHECK_INT(parse("   # indented comment", &e, err), 0);
}

static void bad(const char *line, const char *want)
{
	struct manifest_entry e;
	char err[256];
	int r = parse(line, &e, err);

	CHECK_INT(r, -EINVAL);
	if (r == 1)
		free(e.path);
	if (!strstr(err, want)) {
		char m[600];

		snprintf(m, sizeof(m), "error '%s' should mention '%s' for line '%.80s'",
			 err, want, line);
		t_fail(__FILE__, __LINE__, m);
	}
}

static void t_bad_lines(void)
{
	static char longpath[5000], longname[400], longline[9000];

	/* digest */
	bad("abc 1 0644 f", "64 hex");
	bad(H "0 1 0644 f", "64 hex");
	bad("z3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 1 0644 f",
	    "not hexadecimal");
	/* size */
	bad(H, "missing size");
	bad(H " ", "missing size");
	bad(H " -1 0644 f", "not a decimal");
	bad(H " +1 0644 f", "not a decimal");
	bad(H " 1e3 0644 f", "not a decimal");
	bad(H " 0x10 0644 f", "not a decimal");
	bad(H " 012 0644 f", "not a decimal");
	bad(H " 1099511627777 0644 f", "above the limit");
	bad(H " 99999999999999999999999 0644 f", "above the limit");
	bad(H " 123456789012345678901234567890123 0644 f", "size too long");
	/* mode */
	bad(H " 1", "missing mode");
	bad(H " 1 0648 f", "not octal");
	bad(H " 1 rw-r f", "not octal");
	bad(H " 1 -644 f", "not octal");
	bad(H " 1 10000 f", "above 07777");
	bad(H " 1 0000644 f", "mode too long");
	/* path */
	bad(H " 1 0644", "missing path");
	bad(H " 1 0644 ", "missing path");
	bad(H " 1 0644 /etc/passwd", "absolute");
	bad(H " 1 0644 ../x", "'..'");
	bad(H " 1 0644 a/../../x", "'..'");
	bad(H " 1 0644 a/..", "'..'");
	bad(H " 1 0644 ./x", "'.'");
	bad(H " 1 0644 a/./x", "'.'");
	bad(H " 1 0644 a//x", "empty path component");
	bad(H " 1 0644 a/", "trailing");
	bad(H " 1 0644 a\x01" "b", "control character");
	bad(H " 1 0644 a\x7f", "control character");
	bad(H " 1 0644 a\r", "carriage return");
	memset(longname, 'n', 256);
	longname[256] = 0;
	{
		char l[600];

		snprintf(l, sizeof(l), H " 1 0644 d/%s", longname);
		bad(l, "component longer");
	}
	memset(longpath, 'p', sizeof(longpath) - 1);
	for (size_t i = 100; i < sizeof(longpath) - 1; i += 100)
		longpath[i] = '/';
	{
		char *l = malloc(6000);

		snprintf(l, 6000, H " 1 0644 %s", longpath);
		bad(l, "path longer");
		free(l);
	}
	memset(longline, 'x', sizeof(longline) - 1);
	bad(longline, "line longer");
	/* an embedded NUL */
	{
		struct manifest_entry e;
		char err[256];
		const char l[] = H " 1 0644 a\0b";

		CHECK_INT(manifest_parse_line(l, sizeof(l) - 1, &e, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "NUL") != NULL);
	}
}

static void t_check_path(void)
{
	char err[256];

	CHECK_INT(manifest_check_path("a", err, sizeof(err)), 0);
	CHECK_INT(manifest_check_path("a/b/c", err, sizeof(err)), 0);
	CHECK_INT(manifest_check_path("...", err, sizeof(err)), 0);
	CHECK_INT(manifest_check_path("", err, sizeof(err)), -EINVAL);
	CHECK_INT(manifest_check_path("/", err, sizeof(err)), -EINVAL);
	CHECK_INT(manifest_check_path("..", err, sizeof(err)), -EINVAL);
	CHECK_INT(manifest_check_path(".", err, sizeof(err)), -EINVAL);
}

const struct test manifest_tests[] = {
	{ "good_lines", t_good },
	{ "blank_and_comment", t_blank_comment },
	{ "every_bad_line", t_bad_lines },
	{ "check_path", t_check_path },
	{ NULL, NULL },
};
