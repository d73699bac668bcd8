// Status codes map to the wire codes clients see, in one place.
#include "common/status.h"

#include <gtest/gtest.h>

namespace bff {
namespace {

TEST(StatusTest, HttpMappingForContractCodes) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kFailedPrecondition), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPayloadTooLarge), 413);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnsupportedMediaType), 415);
  EXPECT_EQ(HttpStatusFor(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(StatusCode::kDeadlineExceeded), 504);
}

TEST(StatusTest, DownstreamHttpStatusesRoundTrip) {
  for (int s : {400, 401, 403, 404, 409, 413, 415, 429, 503, 504}) {
    EXPECT_EQ(HttpStatusFor(StatusCodeFromHttp(s)), s) << s;
  }
  EXPECT_EQ(StatusCodeFromHttp(502), StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeFromHttp(500), StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeFromHttp(204), StatusCode::kOk);
}

TEST(StatusTest, CoapMapping) {
  EXPECT_EQ(CoapCodeFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(CoapCodeFor(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(CoapCodeFor(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(CoapCodeFor(StatusCode::kPayloadTooLarge), 413);
  EXPECT_EQ(CoapCodeFor(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(CoapCodeFor(StatusCode::kUnavailable), 503);
}

TEST(StatusTest, StatusOrHoldsValueOrError) {
  StatusOr<int> v = 5;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 5);
  StatusOr<int> e = NotFound("nope");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e.status().ToString(), "NOT_FOUND: nope");
}

}  // namespace
}  // namespace bff
