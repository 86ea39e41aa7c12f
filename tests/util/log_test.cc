// Structured logs: the key=value pairs of a message become JSON fields.
#include "util/log.h"

#include <gtest/gtest.h>

namespace duplex {
namespace {

TEST(LogTest, MessageFieldsAreItsKeyValuePairs) {
  nlohmann::json f = MessageFields(
      R"(endpoint=billing collection=customer key={"id":7} parked as dead letter: CHECK failed)");
  EXPECT_EQ(f, nlohmann::json(
                   {{"endpoint", "billing"}, {"collection", "customer"}, {"key", R"({"id":7})"}}));
  f = MessageFields(R"(endpoint=crm stage=apply error="database is locked" (retrying))");
  EXPECT_EQ(f["error"], "database is locked");
  EXPECT_EQ(f["stage"], "apply");
  // A clause ends at ':' or ','; reserved and repeated keys are left out; '=' inside a word or
  // a value does not start a key.
  f = MessageFields("alert endpoint=crm reason=lag: a=b=c msg=x time=y level=z a=again x==y");
  EXPECT_EQ(f, nlohmann::json({{"endpoint", "crm"}, {"reason", "lag"}, {"a", "b=c"}, {"x", "=y"}}));
  EXPECT_EQ(MessageFields("no pairs here"), nlohmann::json::object());
  EXPECT_EQ(MessageFields(R"(error="unterminated)")["error"], "unterminated");
}

}  // namespace
}  // namespace duplex
