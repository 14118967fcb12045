// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer: casfs-outputd's request decoders and handlers, as Bazel (or
 * anyone on loopback with the user's uid) can reach them. The first byte
 * picks the RPC (or the state file decoder), the rest is its request
 * message. The output path is a temp dir through the fake filesystem
 * (outputd/tests/fake_fs.c); no CAS (every blob counts as present). The
 * tree is emptied after each input so that runs stay independent.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "records.h"
#include "service.h"
#include "statefile.h"
#include "tests/fake_fs.h"

static char root[64];
static struct service *svc;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	if (f->level > 0)
		remove(p);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(root, sizeof(root), "/tmp/casfs-fuzz-outputd.XXXXXX");
	if (!mkdtemp(root))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct service_opts so = { .root = root, .fs = &outpath_fs_fake, .uid = getuid() };
	char err[256];
	uint8_t *resp;
	size_t len;
	char *msg;

	if (!size)
		return 0;
	if (data[0] % (SERVICE_METHODS + 1) == SERVICE_METHODS) {
		struct records r;

		records_init(&r);
		statefile_decode(&r, data + 1, size - 1);
		records_free(&r);
		return 0;
	}
	if (!svc && service_new(&svc, &so, err, sizeof(err)))
		abort();
	/*
	 * Every RPC but StartBuild needs a known build: start one first, so
	 * the fuzzer reaches the handlers' bodies (build "b", base "0").
	 */
	{
		static const uint8_t start[] = {
			0x08, 0x01,			/* version 1 */
			0x12, 0x01, '0',		/* output_base_id */
			0x1a, 0x01, 'b',		/* build_id */
		};
		uint8_t buf[sizeof(start) + 2 + 64];
		size_t n = sizeof(start), rl = strlen(root);

		memcpy(buf, start, n);
		buf[n++] = 0x2a;			/* output_path_prefix */
		buf[n++] = (uint8_t)rl;
		memcpy(buf + n, root, rl);
		n += rl;
		service_call(svc, 1, buf, n, &resp, &len, &msg);
		free(resp);
		free(msg);
	}
	service_call(svc, data[0] % (SERVICE_METHODS + 1), data + 1, size - 1,
		     &resp, &len, &msg);
	free(resp);
	free(msg);
	/* A fresh service and an empty tree for the next input. */
	service_free(svc);
	svc = NULL;
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
