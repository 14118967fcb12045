/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs userspace: short names for the protobuf-c types of the REv2,
 * ByteStream and google.rpc messages (generated from proto/ into the build
 * directory), and the conversions between their Digest and ours.
 */
#ifndef CASFS_REV2_PB_H
#define CASFS_REV2_PB_H

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "build/bazel/remote/execution/v2/remote_execution_services.pb-c.h"
#include "google/bytestream/bytestream.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "google/rpc/error_details.pb-c.h"
#include "rev2.h"

typedef Build__Bazel__Remote__Execution__V2__Digest PbDigest;
typedef Build__Bazel__Remote__Execution__V2__Directory PbDirectory;
typedef Build__Bazel__Remote__Execution__V2__Tree PbTree;
typedef Build__Bazel__Remote__Execution__V2__ActionResult PbActionResult;
typedef Build__Bazel__Remote__Execution__V2__ServerCapabilities PbCaps;
typedef Build__Bazel__Remote__Execution__V2__GetCapabilitiesRequest PbCapsReq;
typedef Build__Bazel__Remote__Execution__V2__BatchReadBlobsRequest PbBatchReadReq;
typedef Build__Bazel__Remote__Execution__V2__BatchReadBlobsResponse PbBatchReadResp;
typedef Build__Bazel__Remote__Execution__V2__BatchReadBlobsResponse__Response PbBatchReadEntry;
typedef Build__Bazel__Remote__Execution__V2__FindMissingBlobsRequest PbFindMissingReq;
typedef Build__Bazel__Remote__Execution__V2__FindMissingBlobsResponse PbFindMissingResp;
typedef Build__Bazel__Remote__Execution__V2__GetTreeRequest PbGetTreeReq;
typedef Build__Bazel__Remote__Execution__V2__GetTreeResponse PbGetTreeResp;
typedef Build__Bazel__Remote__Execution__V2__GetActionResultRequest PbGetAcReq;
typedef Google__Bytestream__ReadRequest PbBsReadReq;
typedef Google__Rpc__Status PbStatus;
typedef Google__Rpc__RetryInfo PbRetryInfo;

#define PB_DIGEST_INIT BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT
#define PB_DIGEST_FN_SHA256 BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST_FUNCTION__VALUE__SHA256

/*
 * A digest from the wire: exactly 64 lowercase hex digits and
 * 0 <= size <= CASFS_MAX_BLOB_SIZE. 0 or -EINVAL.
 */
int rev2_digest_from_pb(const PbDigest *pb, struct rev2_digest *out);
/* Fill pb (hex is its storage, 65 bytes) from d. */
void rev2_digest_to_pb(const struct rev2_digest *d, PbDigest *pb, char hex[HEX_LEN + 1]);

#endif
