#include "config/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <initializer_list>
#include <string>

#include "connectors/postgres/settings.h"
#include "connectors/registry.h"
#include "connectors/salesforce/settings.h"
#include "connectors/sqlite/settings.h"
#include "support/test_util.h"

namespace duplex {
namespace {

namespace fs = std::filesystem;

// A sqlite endpoint's path, as its type parsed it ("" for another type).
std::string PathOf(const EndpointConfig& ep) {
  const sqlite::SqliteSettings* s = ep.settings_as<sqlite::SqliteSettings>();
  return s ? s->path : "";
}

// The example of the config format, as documented.
constexpr const char* kExample = R"([engine]
state = "duplex-state.db"

[endpoints.crm]
type = "sqlite"
path = "crm.db"

[endpoints.billing]
type = "sqlite"
path = "billing.db"

[collections.customer]
key = ["id"]
policy = "lww"
endpoints.crm     = { table = "customers" }
endpoints.billing = { table = "clients", fields = { name = "full_name" } }
fields.balance = { policy = "max" }
fields.tier    = { policy = "prefer", endpoint = "crm" }
fields.notes   = { policy = "manual" }
)";

// Two endpoints, for error cases that only need a collection after them (lines 1-6).
constexpr const char* kEndpoints = R"([endpoints.crm]
type = "sqlite"
path = "crm.db"
[endpoints.billing]
type = "sqlite"
path = "billing.db"
)";

// A valid collection over crm and billing; starts on line 7 when appended to kEndpoints.
constexpr const char* kCustomer = R"([collections.customer]
key = ["id"]
endpoints.crm = { table = "customers" }
endpoints.billing = { table = "clients" }
)";

// The 1-based line of the first line of `text` that contains `marker`.
int LineContaining(const std::string& text, const std::string& marker) {
  size_t pos = text.find(marker);
  EXPECT_NE(pos, std::string::npos) << "marker '" << marker << "' not in the config";
  if (pos == std::string::npos) return 0;
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + pos, '\n'));
}

// Expects ParseConfig to fail with InvalidArgument "sync.toml:LINE: ..." where LINE is the line
// holding `marker` (0: no line), and the message to contain each of `parts`.
void ExpectError(const std::string& text, const std::string& marker,
                 std::initializer_list<std::string> parts) {
  Result<Config> config = ParseConfig(text, "sync.toml");
  ASSERT_FALSE(config.ok()) << "config parsed but should not:\n" << text;
  EXPECT_TRUE(config.status().IsInvalidArgument()) << config.status().ToString();
  const std::string& msg = config.status().message();
  std::string prefix = marker.empty()
                           ? std::string("sync.toml: ")
                           : "sync.toml:" + std::to_string(LineContaining(text, marker)) + ": ";
  EXPECT_EQ(msg.rfind(prefix, 0), 0u) << "expected prefix '" << prefix << "' in: " << msg;
  EXPECT_NE(msg.find("; "), std::string::npos) << "no suggested fix in: " << msg;
  for (const std::string& part : parts) {
    EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  }
}

TEST(ConfigTest, ExampleParsesToExpectedStructures) {
  Result<Config> config = ParseConfig(kExample, "/etc/duplex/sync.toml");
  ASSERT_OK(config);
  EXPECT_EQ(config->path, "/etc/duplex/sync.toml");
  EXPECT_EQ(config->engine.state_path, "/etc/duplex/duplex-state.db");
  EXPECT_EQ(config->engine.batch_rows, 10000u);
  EXPECT_EQ(config->engine.poll_interval_ms, 5);

  ASSERT_EQ(config->endpoints.size(), 2u);
  EXPECT_EQ(config->endpoints[0].name, "crm");  // file order, not sorted by name
  EXPECT_EQ(config->endpoints[0].type, "sqlite");
  EXPECT_EQ(PathOf(config->endpoints[0]), "/etc/duplex/crm.db");
  EXPECT_EQ(config->endpoints[0].line, 4);
  EXPECT_EQ(config->endpoints[1].name, "billing");
  EXPECT_EQ(PathOf(config->endpoints[1]), "/etc/duplex/billing.db");
  EXPECT_EQ(config->FindEndpoint("billing"), &config->endpoints[1]);
  EXPECT_EQ(config->FindEndpoint("erp"), nullptr);

  ASSERT_EQ(config->collections.size(), 1u);
  const CollectionConfig& c = config->collections[0];
  EXPECT_EQ(c.name, "customer");
  EXPECT_EQ(c.line, 12);
  EXPECT_EQ(c.key, std::vector<std::string>{"id"});
  EXPECT_EQ(c.default_policy.policy, Policy::kLww);
  EXPECT_TRUE(c.delete_wins);
  ASSERT_EQ(c.endpoints.size(), 2u);
  EXPECT_EQ(c.endpoints[0].endpoint, "crm");
  EXPECT_EQ(c.endpoints[0].table, "customers");
  EXPECT_TRUE(c.endpoints[0].fields.empty());
  EXPECT_EQ(c.endpoints[1].endpoint, "billing");
  EXPECT_EQ(c.endpoints[1].table, "clients");
  EXPECT_EQ(c.endpoints[1].Column("name"), "full_name");
  EXPECT_EQ(c.endpoints[1].Column("balance"), "balance");

  EXPECT_EQ(c.field_policies.size(), 3u);
  EXPECT_EQ(c.PolicyFor("balance").policy, Policy::kMax);
  EXPECT_EQ(c.PolicyFor("tier").policy, Policy::kPrefer);
  EXPECT_EQ(c.PolicyFor("tier").prefer_endpoint, "crm");
  EXPECT_EQ(c.PolicyFor("notes").policy, Policy::kManual);
  EXPECT_EQ(c.PolicyFor("name").policy, Policy::kLww);
}

TEST(ConfigTest, ExampleConfigParses) {
  Result<Config> config = ParseConfig(ExampleConfig(), "/tmp/x/duplex.toml");
  ASSERT_OK(config);
  ASSERT_EQ(config->collections.size(), 1u);
  EXPECT_EQ(config->collections[0].endpoints.size(), 2u);
  EXPECT_EQ(config->collections[0].PolicyFor("tier").prefer_endpoint, "crm");
  EXPECT_NE(ExampleConfig().find("on_delete_conflict"), std::string::npos);
}

TEST(ConfigTest, PolicyNames) {
  EXPECT_STREQ(PolicyName(Policy::kLww), "lww");
  EXPECT_STREQ(PolicyName(Policy::kPrefer), "prefer");
  EXPECT_STREQ(PolicyName(Policy::kMax), "max");
  EXPECT_STREQ(PolicyName(Policy::kMin), "min");
  EXPECT_STREQ(PolicyName(Policy::kManual), "manual");
}

TEST(ConfigTest, LoadConfigResolvesPathsAgainstConfigFolder) {
  testing::TempDir dir;
  fs::create_directories(dir.File("conf"));
  std::string text = std::string(kEndpoints) + kCustomer +
                     "[engine]\nstate = \"../state/s.db\"\n"
                     "[endpoints.abs]\ntype = \"sqlite\"\npath = \"/data/abs.db\"\n";
  testing::WriteFile(dir.File("conf/sync.toml"), text);
  Result<Config> config = LoadConfig(dir.File("conf/sync.toml"));
  ASSERT_OK(config);
  fs::path root = fs::absolute(dir.path());
  EXPECT_EQ(config->path, (root / "conf/sync.toml").string());
  EXPECT_EQ(config->engine.state_path, (root / "state/s.db").string());
  EXPECT_EQ(PathOf(config->endpoints[0]), (root / "conf/crm.db").string());
  EXPECT_EQ(PathOf(config->endpoints[2]), "/data/abs.db");
}

TEST(ConfigTest, RelativeConfigPathIsMadeAbsolute) {
  Result<Config> config = ParseConfig(std::string(kEndpoints) + kCustomer, "conf/sync.toml");
  ASSERT_OK(config);
  EXPECT_EQ(config->path, (fs::current_path() / "conf/sync.toml").string());
  EXPECT_EQ(PathOf(config->endpoints[1]), (fs::current_path() / "conf/billing.db").string());
  EXPECT_EQ(config->engine.state_path, (fs::current_path() / "conf/duplex-state.db").string());
}

TEST(ConfigTest, LoadConfigMissingFileIsInvalidArgument) {
  testing::TempDir dir;
  Result<Config> config = LoadConfig(dir.File("nope.toml"));
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(config.status().IsInvalidArgument());
  EXPECT_NE(config.status().message().find("cannot read config file '" + dir.File("nope.toml")),
            std::string::npos)
      << config.status().message();
}

TEST(ConfigTest, LoadConfigDirectoryIsInvalidArgument) {
  testing::TempDir dir;
  Result<Config> config = LoadConfig(dir.path());
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(config.status().IsInvalidArgument());
  EXPECT_NE(config.status().message().find("cannot read config file"), std::string::npos);
}

TEST(ConfigTest, EngineOptionsAndDeleteConflictAreRead) {
  std::string text = std::string("[engine]\nbatch_rows = 500\npoll_interval_ms = 20\n") +
                     kEndpoints + kCustomer + "on_delete_conflict = \"keep\"\n";
  Result<Config> config = ParseConfig(text, "/a/sync.toml");
  ASSERT_OK(config);
  EXPECT_EQ(config->engine.state_path, "/a/duplex-state.db");
  EXPECT_EQ(config->engine.batch_rows, 500u);
  EXPECT_EQ(config->engine.poll_interval_ms, 20);
  EXPECT_FALSE(config->collections[0].delete_wins);
}

TEST(ConfigTest, AdminServerAndAlertOptionsAreRead) {
  Result<Config> plain = ParseConfig(std::string(kEndpoints) + kCustomer, "/a/sync.toml");
  ASSERT_OK(plain);
  EXPECT_EQ(plain->engine.http, "");  // off by default
  EXPECT_EQ(plain->engine.latency_objective_ms, 5000);
  EXPECT_EQ(plain->engine.alert_after_ms, 30000);
  std::string text = std::string(
                         "[engine]\nhttp = \"0.0.0.0:0\"\nhttp_token_env = \"TOKEN\"\n"
                         "latency_objective = \"250ms\"\nalert_after = \"2m\"\n"
                         "alert_command = \"echo hi\"\n") +
                     kEndpoints + kCustomer;
  Result<Config> config = ParseConfig(text, "/a/sync.toml");
  ASSERT_OK(config);
  EXPECT_EQ(config->engine.http, "0.0.0.0:0");
  EXPECT_EQ(config->engine.http_token_env, "TOKEN");
  EXPECT_EQ(config->engine.latency_objective_ms, 250);
  EXPECT_EQ(config->engine.alert_after_ms, 120000);
  EXPECT_EQ(config->engine.alert_command, "echo hi");
}

TEST(ConfigTest, DurationsParse) {
  EXPECT_EQ(ParseDurationMs("5s"), 5000);
  EXPECT_EQ(ParseDurationMs("250ms"), 250);
  EXPECT_EQ(ParseDurationMs("1h"), 3600000);
  EXPECT_EQ(ParseDurationMs("5"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("s"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("1.5s"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("99999999999999s"), std::nullopt);
}

TEST(ConfigTest, EndpointsKeepFileOrderNotNameOrder) {
  std::string text = R"([endpoints.zeta]
type = "sqlite"
path = "z.db"
[endpoints.alpha]
type = "sqlite"
path = "a.db"
[endpoints.mid]
type = "sqlite"
path = "m.db"
[collections.zz]
key = ["k1", "k2"]
endpoints.mid = { table = "t" }
endpoints.zeta = { table = "t" }
endpoints.alpha = { table = "t" }
[collections.aa]
key = ["id"]
[collections.aa.endpoints.alpha]
table = "u"
[collections.aa.endpoints.zeta]
table = "u"
)";
  Result<Config> config = ParseConfig(text, "/a/sync.toml");
  ASSERT_OK(config);
  ASSERT_EQ(config->endpoints.size(), 3u);
  EXPECT_EQ(config->endpoints[0].name, "zeta");
  EXPECT_EQ(config->endpoints[1].name, "alpha");
  EXPECT_EQ(config->endpoints[2].name, "mid");
  ASSERT_EQ(config->collections.size(), 2u);
  const CollectionConfig& zz = config->collections[0];
  EXPECT_EQ(zz.name, "zz");
  EXPECT_EQ(zz.key, (std::vector<std::string>{"k1", "k2"}));
  ASSERT_EQ(zz.endpoints.size(), 3u);
  EXPECT_EQ(zz.endpoints[0].endpoint, "mid");
  EXPECT_EQ(zz.endpoints[1].endpoint, "zeta");
  EXPECT_EQ(zz.endpoints[2].endpoint, "alpha");
  const CollectionConfig& aa = config->collections[1];
  EXPECT_EQ(aa.name, "aa");
  ASSERT_EQ(aa.endpoints.size(), 2u);
  EXPECT_EQ(aa.endpoints[0].endpoint, "alpha");
  EXPECT_EQ(aa.endpoints[1].endpoint, "zeta");
}

TEST(ConfigTest, CollectionLevelPreferPolicy) {
  std::string text =
      std::string(kEndpoints) + kCustomer + "policy = \"prefer\"\nendpoint = \"billing\"\n";
  Result<Config> config = ParseConfig(text, "/a/sync.toml");
  ASSERT_OK(config);
  EXPECT_EQ(config->collections[0].default_policy.policy, Policy::kPrefer);
  EXPECT_EQ(config->collections[0].PolicyFor("anything").prefer_endpoint, "billing");
}

TEST(ConfigTest, IdentityMappingIsNotStoredAsRename) {
  std::string text = std::string(kEndpoints) +
                     "[collections.c]\nkey = [\"id\"]\nendpoints.crm = { table = \"t\", fields = "
                     "{ a = \"a\", b = \"bb\" } }\nendpoints.billing = { table = \"t\" }\n";
  Result<Config> config = ParseConfig(text, "/a/sync.toml");
  ASSERT_OK(config);
  EXPECT_EQ(config->collections[0].endpoints[0].fields,
            (std::map<std::string, std::string>{{"b", "bb"}}));
}

TEST(ConfigErrorTest, TomlSyntaxError) {
  ExpectError(std::string(kEndpoints) + "[collections.customer]\nkey = [\"id\"\n",
              "key =", {"sync.toml", "TOML syntax"});
}

TEST(ConfigErrorTest, UnknownKeyInCollectionEndpointListsKnownKeys) {
  std::string text = std::string(kEndpoints) +
                     "[collections.customer]\nkey = [\"id\"]\n"
                     "endpoints.crm = { tabel = \"customers\" }\n"
                     "endpoints.billing = { table = \"clients\" }\n";
  ExpectError(text, "tabel",
              {"unknown key 'tabel' in collection 'customer' endpoint 'crm'; known keys: table, "
               "fields"});
}

TEST(ConfigErrorTest, UnknownTopLevelKey) {
  ExpectError(std::string(kEndpoints) + kCustomer + "[collection.x]\nkey = [\"id\"]\n",
              "[collection.x]",
              {"unknown key 'collection'", "known keys: engine, endpoints, collections"});
}

TEST(ConfigErrorTest, UnknownKeyInEngineEndpointCollectionAndField) {
  ExpectError(std::string("[engine]\nstate_file = \"s.db\"\n") + kEndpoints + kCustomer,
              "state_file", {"unknown key 'state_file' in engine", "state, name, batch_rows"});
  ExpectError(std::string(kEndpoints) + "host = \"x\"\n" + kCustomer, "host",
              {"unknown key 'host' in endpoint 'billing'", "known keys: type, path"});
  ExpectError(std::string(kEndpoints) + kCustomer + "keys = [\"id\"]\n", "keys",
              {"unknown key 'keys' in collection 'customer'", "on_delete_conflict"});
  ExpectError(
      std::string(kEndpoints) + kCustomer + "fields.a = { polcy = \"max\" }\n", "polcy",
      {"unknown key 'polcy' in collection 'customer' field 'a'", "policy, endpoint, separator"});
}

TEST(ConfigErrorTest, KeyMustBeArrayOfStrings) {
  std::string text = std::string(kEndpoints) +
                     "[collections.customer]\nkey = \"id\"\nendpoints.crm = { table = \"a\" }\n"
                     "endpoints.billing = { table = \"b\" }\n";
  ExpectError(text, "key =", {"collection 'customer'", "key must be an array of strings"});
  ExpectError(std::string(kEndpoints) +
                  "[collections.customer]\nkey = []\nendpoints.crm = { table = \"a\" }\n",
              "key =", {"key must be an array of strings"});
  ExpectError(std::string(kEndpoints) + "[collections.customer]\nkey = [\"id\", 3]\n",
              "key =", {"key must be an array of strings"});
  ExpectError(std::string(kEndpoints) + "[collections.customer]\nkey = [\"id\", \"id\"]\n",
              "key =", {"distinct"});
}

TEST(ConfigErrorTest, MissingKey) {
  ExpectError(std::string(kEndpoints) +
                  "[collections.customer]\nendpoints.crm = { table = \"a\" }\n"
                  "endpoints.billing = { table = \"b\" }\n",
              "[collections.customer]", {"collection 'customer' has no key", "key = [\"id\"]"});
}

TEST(ConfigErrorTest, UnknownPolicyListsValidOnes) {
  ExpectError(std::string(kEndpoints) + kCustomer + "policy = \"newest\"\n", "newest",
              {"collection 'customer'", "unknown policy 'newest'",
               "valid policies: lww, prefer, max, min, sum, union, merge, manual"});
  ExpectError(std::string(kEndpoints) + kCustomer + "fields.total = { policy = \"average\" }\n",
              "average",
              {"field 'total'", "unknown policy 'average'",
               "lww, prefer, max, min, sum, union, merge, manual"});
  ExpectError(std::string(kEndpoints) + kCustomer + "fields.total = { policy = 1 }\n",
              "fields.total", {"field 'total'", "policy must be a string"});
}

TEST(ConfigTest, SumPolicyParses) {
  Result<Config> config = ParseConfig(
      std::string(kEndpoints) + kCustomer + "fields.total = { policy = \"sum\" }\n", "/x/d.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->collections[0].PolicyFor("total").policy, Policy::kSum);
  EXPECT_STREQ(PolicyName(Policy::kSum), "sum");
  // The example `duplex init` writes puts sum, not max, on a balance (a balance goes down).
  EXPECT_NE(ExampleConfig().find("fields.balance = { policy = \"sum\" }"), std::string::npos);
}

TEST(ConfigTest, UnionPolicyParsesWithAndWithoutSeparator) {
  Result<Config> config =
      ParseConfig(std::string(kEndpoints) + kCustomer +
                      "fields.tags = { policy = \"union\", separator = \";\" }\n"
                      "fields.labels = { policy = \"union\" }\n",
                  "/x/d.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const CollectionConfig& c = config->collections[0];
  EXPECT_EQ(c.PolicyFor("tags").policy, Policy::kUnion);
  EXPECT_EQ(c.PolicyFor("tags").separator, ";");
  EXPECT_EQ(c.PolicyFor("labels").policy, Policy::kUnion);
  EXPECT_EQ(c.PolicyFor("labels").separator, "");
  EXPECT_STREQ(PolicyName(Policy::kUnion), "union");
}

TEST(ConfigErrorTest, UnionMisuse) {
  // A separator belongs to union only, and is some text.
  ExpectError(
      std::string(kEndpoints) + kCustomer +
          "fields.tags = { policy = \"lww\", separator = \";\" }\n",
      "fields.tags",
      {"collection 'customer' field 'tags'", "separator is only used with policy \"union\""});
  ExpectError(std::string(kEndpoints) + kCustomer +
                  "fields.tags = { policy = \"union\", separator = \"\" }\n",
              "fields.tags", {"field 'tags'", "separator must be a non-empty string"});
  ExpectError(
      std::string(kEndpoints) + kCustomer + "fields.tags = { policy = \"union\", separator = 1 }\n",
      "fields.tags", {"field 'tags'", "separator must be a non-empty string"});
  // A key identifies the record; it is no set.
  ExpectError(std::string(kEndpoints) + kCustomer + "fields.id = { policy = \"union\" }\n",
              "fields.id", {"collection 'customer' field 'id' is a key field"});
  // Union is one field's: a collection's other fields are no sets.
  ExpectError(std::string(kEndpoints) + kCustomer + "policy = \"union\"\n",
              "policy =", {"collection 'customer'", "policy 'union' is set per field"});
}

TEST(ConfigTest, MergePolicyParsesWithItsNestedPolicy) {
  Result<Config> config =
      ParseConfig(std::string(kEndpoints) + kCustomer +
                      "fields.doc = { policy = \"merge\" }\n"
                      "fields.prefs = { policy = \"merge\", merge_policy = \"max\" }\n"
                      "fields.profile = { policy = \"merge\", merge_policy = \"prefer\", "
                      "endpoint = \"crm\" }\n",
                  "/x/d.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const CollectionConfig& c = config->collections[0];
  EXPECT_EQ(c.PolicyFor("doc").policy, Policy::kMerge);
  EXPECT_EQ(c.PolicyFor("doc").merge_policy, Policy::kLww);  // the default
  EXPECT_EQ(c.PolicyFor("prefs").merge_policy, Policy::kMax);
  EXPECT_EQ(c.PolicyFor("profile").merge_policy, Policy::kPrefer);
  EXPECT_EQ(c.PolicyFor("profile").prefer_endpoint, "crm");
  EXPECT_STREQ(PolicyName(Policy::kMerge), "merge");
}

TEST(ConfigErrorTest, MergeMisuse) {
  const std::string head = std::string(kEndpoints) + kCustomer;
  ExpectError(head + "fields.doc = { policy = \"merge\", merge_policy = \"newest\" }\n",
              "fields.doc",
              {"collection 'customer' field 'doc'", "unknown merge_policy 'newest'",
               "valid merge policies: lww, prefer, max, min, sum, union, manual"});
  ExpectError(head + "fields.doc = { policy = \"merge\", merge_policy = \"merge\" }\n",
              "fields.doc", {"field 'doc'", "merge_policy cannot be 'merge'"});
  ExpectError(head + "fields.doc = { policy = \"merge\", merge_policy = 3 }\n", "fields.doc",
              {"field 'doc'", "merge_policy must be a string"});
  ExpectError(head + "fields.doc = { policy = \"lww\", merge_policy = \"lww\" }\n", "fields.doc",
              {"field 'doc'", "merge_policy is only used with policy \"merge\""});
  ExpectError(head + "fields.doc = { policy = \"merge\", merge_policy = \"prefer\" }\n",
              "fields.doc",
              {"field 'doc'", "merge_policy 'prefer' needs an endpoint", "one of: crm, billing"});
  ExpectError(head + "fields.doc = { policy = \"merge\", endpoint = \"crm\" }\n", "fields.doc",
              {"field 'doc'", "endpoint is only used with policy \"prefer\""});
  ExpectError(head + "fields.doc = { policy = \"merge\", separator = \";\" }\n", "fields.doc",
              {"field 'doc'", "separator is only used with policy \"union\""});
  // A document is one field's: a collection's other fields are none.
  ExpectError(head + "policy = \"merge\"\n",
              "policy =", {"collection 'customer'", "policy 'merge' is set per field"});
  ExpectError(head + "merge_policy = \"lww\"\n", "merge_policy", {"merge_policy"});
}

TEST(ConfigErrorTest, FieldPolicyIsRequired) {
  ExpectError(std::string(kEndpoints) + kCustomer + "fields.total = { endpoint = \"crm\" }\n",
              "fields.total", {"field 'total' has no policy"});
}

TEST(ConfigErrorTest, PreferWithoutEndpoint) {
  ExpectError(std::string(kEndpoints) + kCustomer + "fields.tier = { policy = \"prefer\" }\n",
              "fields.tier",
              {"field 'tier'", "policy 'prefer' needs an endpoint", "one of: crm, billing"});
  ExpectError(std::string(kEndpoints) + kCustomer + "policy = \"prefer\"\n",
              "policy =", {"collection 'customer'", "policy 'prefer' needs an endpoint"});
}

TEST(ConfigErrorTest, EndpointWithoutPreferPolicy) {
  ExpectError(std::string(kEndpoints) + kCustomer +
                  "fields.tier = { policy = \"max\", endpoint = \"crm\" }\n",
              "fields.tier", {"field 'tier'", "endpoint is only used with policy \"prefer\""});
}

TEST(ConfigErrorTest, PreferUnknownEndpointListsDefinedOnes) {
  ExpectError(std::string(kEndpoints) + kCustomer +
                  "fields.tier = { policy = \"prefer\", endpoint = \"erp\" }\n",
              "fields.tier",
              {"field 'tier'", "unknown endpoint 'erp'", "defined endpoints: crm, billing"});
}

TEST(ConfigErrorTest, PreferEndpointNotInCollection) {
  std::string text = std::string(kEndpoints) + "[endpoints.erp]\ntype = \"sqlite\"\n" +
                     "path = \"erp.db\"\n" + kCustomer + "policy = \"prefer\"\n" +
                     "endpoint = \"erp\"\n";
  ExpectError(text, "endpoint = \"erp\"",
              {"collection 'customer'", "'erp' is not an endpoint of customer",
               "prefer one of: crm, billing"});
}

TEST(ConfigErrorTest, CollectionReferencesUnknownEndpoint) {
  std::string text = std::string(kEndpoints) +
                     "[collections.customer]\nkey = [\"id\"]\n"
                     "endpoints.crm = { table = \"a\" }\nendpoints.erp = { table = \"b\" }\n";
  ExpectError(
      text, "endpoints.erp",
      {"collection 'customer'", "unknown endpoint 'erp'", "defined endpoints: crm, billing"});
}

TEST(ConfigErrorTest, CollectionNeedsTwoEndpoints) {
  std::string text = std::string(kEndpoints) +
                     "[collections.customer]\nkey = [\"id\"]\nendpoints.crm = { table = \"a\" }\n";
  ExpectError(text, "endpoints.crm = {", {"collection 'customer' has 1 endpoint", "two or more"});
  ExpectError(std::string(kEndpoints) + "[collections.customer]\nkey = [\"id\"]\n",
              "[collections.customer]", {"collection 'customer' has 0 endpoint"});
}

TEST(ConfigErrorTest, CollectionEndpointNeedsTable) {
  std::string text = std::string(kEndpoints) +
                     "[collections.customer]\nkey = [\"id\"]\n"
                     "endpoints.crm = { fields = { a = \"b\" } }\n"
                     "endpoints.billing = { table = \"b\" }\n";
  ExpectError(text, "endpoints.crm = {", {"collection 'customer' endpoint 'crm' has no table"});
}

TEST(ConfigErrorTest, PolicyForKeyField) {
  ExpectError(std::string(kEndpoints) + kCustomer + "fields.id = { policy = \"max\" }\n",
              "fields.id", {"field 'id' is a key field", "key fields are not resolved by policy"});
}

TEST(ConfigErrorTest, DuplicateColumnMapping) {
  std::string text = std::string(kEndpoints) +
                     "[collections.customer]\nkey = [\"id\"]\n"
                     "endpoints.crm = { table = \"a\" }\n"
                     "[collections.customer.endpoints.billing]\n"
                     "table = \"b\"\n"
                     "fields.name = \"full_name\"\n"
                     "fields.fullname = \"full_name\"\n";
  ExpectError(text, "fields.name",
              {"collection 'customer' endpoint 'billing'",
               "fields 'fullname' and 'name' both map to column 'full_name'"});
}

TEST(ConfigErrorTest, RenameOntoAnotherFieldsColumn) {
  std::string text = std::string(kEndpoints) +
                     "[collections.customer]\nkey = [\"id\"]\n"
                     "endpoints.crm = { table = \"a\" }\n"
                     "endpoints.billing = { table = \"b\", fields = { ref = \"id\" } }\n";
  ExpectError(text, "fields = { ref",
              {"endpoint 'billing'", "fields 'id' and 'ref' both map to column 'id'"});
}

TEST(ConfigErrorTest, NoEndpointsOrCollections) {
  ExpectError("", "", {"no endpoints defined", "[endpoints.NAME]"});
  ExpectError("[engine]\nstate = \"s.db\"\n", "", {"no endpoints defined"});
  ExpectError(kEndpoints, "", {"no collections defined", "[collections.NAME]"});
}

TEST(ConfigErrorTest, UnknownEndpointType) {
  ExpectError("[endpoints.crm]\ntype = \"mysql\"\npath = \"x\"\n", "mysql",
              {"endpoint 'crm'", "unknown endpoint type 'mysql'; known types: sqlite"});
}

// The known types are the registry's, in its order; each parses its own keys.
TEST(ConfigErrorTest, KnownTypesComeFromTheRegistry) {
  EXPECT_EQ(KnownTypes(), "sqlite, postgres, salesforce");
  ExpectError("[endpoints.crm]\ntype = \"mysql\"\n", "mysql", {"known types: " + KnownTypes()});
  ASSERT_NE(FindConnectorType("postgres"), nullptr);
  EXPECT_EQ(FindConnectorType("postgres")->name, "postgres");
  EXPECT_EQ(FindConnectorType("mysql"), nullptr);
  ExpectError("[endpoints.crm]\ntype = \"sqlite\"\ndsn = \"x\"\n", "dsn",
              {"unknown key 'dsn' in endpoint 'crm'", "known keys: type, path"});
  ExpectError("[endpoints.crm]\ntype = \"sqlite\"\n", "[endpoints.crm]",
              {"endpoint 'crm' has no path", "add path = \"FILE.db\""});
}

TEST(ConfigErrorTest, EndpointNeedsTypeAndPath) {
  ExpectError("[endpoints.crm]\ntype = \"sqlite\"\n", "[endpoints.crm]",
              {"endpoint 'crm' has no path"});
  ExpectError("[endpoints.crm]\npath = \"crm.db\"\n", "[endpoints.crm]",
              {"endpoint 'crm' has no type"});
  ExpectError("[endpoints.crm]\ntype = \"sqlite\"\npath = 7\n",
              "path =", {"endpoint 'crm': path must be a non-empty string"});
}

TEST(ConfigErrorTest, InvalidNames) {
  ExpectError("[endpoints.\"my crm\"]\ntype = \"sqlite\"\npath = \"x\"\n", "my crm",
              {"endpoint name 'my crm' is invalid", "letters, digits"});
  ExpectError(std::string(kEndpoints) + "[collections.\"a.b\"]\nkey = [\"id\"]\n", "a.b",
              {"collection name 'a.b' is invalid"});
}

TEST(ConfigErrorTest, WrongTypesForSections) {
  ExpectError("endpoints = 3\n", "endpoints", {"endpoints must be a table"});
  ExpectError(std::string(kEndpoints) + "[[collections]]\nkey = [\"id\"]\n", "[[collections]]",
              {"collections must be a table"});
  ExpectError(std::string("engine = \"x\"\n") + kEndpoints, "engine", {"engine must be a table"});
  ExpectError(std::string(kEndpoints) + "[collections]\ncustomer = 1\n", "customer",
              {"collection 'customer' must be a table"});
}

TEST(ConfigErrorTest, EngineValuesOutOfRange) {
  ExpectError(std::string("[engine]\nbatch_rows = 0\n") + kEndpoints + kCustomer, "batch_rows",
              {"batch_rows must be an integer from 1 to 1000000"});
  ExpectError(std::string("[engine]\npoll_interval_ms = \"5\"\n") + kEndpoints + kCustomer,
              "poll_interval_ms", {"poll_interval_ms must be an integer from 1 to 1000"});
}

TEST(ConfigErrorTest, BadAdminAddressOrDuration) {
  ExpectError(std::string("[engine]\nhttp = \"8787\"\n") + kEndpoints + kCustomer, "http",
              {"http must be \"HOST:PORT\""});
  ExpectError(std::string("[engine]\nhttp = \"localhost:99999\"\n") + kEndpoints + kCustomer,
              "http", {"http must be \"HOST:PORT\""});
  ExpectError(std::string("[engine]\nlatency_objective = 5\n") + kEndpoints + kCustomer,
              "latency_objective", {"latency_objective must be a duration"});
  ExpectError(std::string("[engine]\nalert_after = \"soon\"\n") + kEndpoints + kCustomer,
              "alert_after", {"alert_after must be a duration"});
}

TEST(ConfigErrorTest, InvalidOnDeleteConflict) {
  ExpectError(std::string(kEndpoints) + kCustomer + "on_delete_conflict = \"restore\"\n",
              "on_delete_conflict", {"on_delete_conflict must be \"delete\" or \"keep\""});
}

TEST(ConfigErrorTest, TableSyncedByTwoCollections) {
  std::string text = std::string(kEndpoints) + kCustomer +
                     "[collections.client]\nkey = [\"id\"]\n"
                     "endpoints.crm = { table = \"other\" }\n"
                     "endpoints.billing = {table = \"clients\"}\n";
  ExpectError(text, "{table = \"clients\"}",
              {"collection 'client' endpoint 'billing'",
               "table 'clients' is already synced by collection 'customer'"});
}

// A Salesforce endpoint (issue 13 §2): secrets only by the names of environment variables.
constexpr const char* kSfEndpoints = R"([endpoints.crm]
type = "salesforce"
instance_url = "http://127.0.0.1:8931/"
client_id_env = "SF_CLIENT_ID"
client_secret_env = "SF_CLIENT_SECRET"
external_id = "External_Id__c"
capture = "poll"
poll_interval = "500ms"
api_budget = "50%"
[endpoints.billing]
type = "sqlite"
path = "billing.db"
)";

TEST(ConfigTest, SalesforceEndpoint) {
  Result<Config> config = ParseConfig(std::string(kSfEndpoints) + kCustomer, "/a/sync.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->endpoints[0].type, "salesforce");
  const sf::SalesforceSettings* crm = config->endpoints[0].settings_as<sf::SalesforceSettings>();
  ASSERT_NE(crm, nullptr);
  EXPECT_EQ(crm->instance_url, "http://127.0.0.1:8931");
  EXPECT_EQ(crm->client_id_env, "SF_CLIENT_ID");
  EXPECT_EQ(crm->external_id, "External_Id__c");
  EXPECT_EQ(crm->capture, sf::SalesforceSettings::Capture::kPoll);
  EXPECT_EQ(crm->poll_interval_ms, 500);
  // What `duplex check` shows: never the secrets, nor the variables' names.
  EXPECT_EQ(crm->Summary(),
            "http://127.0.0.1:8931, external id External_Id__c, capture poll, api budget 50%");
}

TEST(ConfigErrorTest, SalesforceEndpointErrors) {
  const std::string base =
      "[endpoints.crm]\ntype = \"salesforce\"\ninstance_url = \"http://h:1\"\n"
      "client_id_env = \"I\"\nclient_secret_env = \"S\"\n";
  ExpectError(base + kCustomer, "[endpoints.crm]", {"external_id", "External_Id__c"});
  ExpectError(base + "external_id = \"E__c\"\ncapture = \"pubsub\"\n" + kCustomer, "pubsub",
              {"unknown capture 'pubsub'", "capture = \"poll\""});
  ExpectError(base + "external_id = \"E__c\"\napi_budget = \"150%\"\n" + kCustomer, "150%",
              {"api_budget '150%'"});
  ExpectError(base + "external_id = \"E__c\"\nclient_secret = \"x\"\n" + kCustomer,
              "client_secret =", {"unknown key 'client_secret'"});
}

// PostgreSQL endpoints: dsn or dsn_env, schema, capture; [engine] name names server objects.
constexpr const char* kPgEndpoints = R"([endpoints.crm]
type = "postgres"
dsn = "postgresql://app@db:5432/crm"
[endpoints.billing]
type = "postgres"
dsn_env = "BILLING_DSN"
schema = "billing"
capture = "trigger"
max_retained_wal_mb = 64
)";

TEST(ConfigTest, PostgresEndpointsAndEngineName) {
  Result<Config> config = ParseConfig(std::string(kPgEndpoints) + kCustomer, "/a/sync.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->endpoints[0].type, "postgres");
  const pg::PostgresSettings* crm = config->endpoints[0].settings_as<pg::PostgresSettings>();
  ASSERT_NE(crm, nullptr);
  EXPECT_EQ(crm->dsn, "postgresql://app@db:5432/crm");
  EXPECT_EQ(crm->schema, "public");
  EXPECT_EQ(crm->capture, "logical");
  EXPECT_EQ(crm->max_retained_wal_mb, 1024);
  // What `duplex check` shows: never the dsn, which may hold a password.
  EXPECT_EQ(crm->Summary(), "schema public, capture logical");
  const pg::PostgresSettings* billing = config->endpoints[1].settings_as<pg::PostgresSettings>();
  ASSERT_NE(billing, nullptr);
  EXPECT_EQ(billing->dsn_env, "BILLING_DSN");
  EXPECT_EQ(billing->schema, "billing");
  EXPECT_EQ(billing->capture, "trigger");
  EXPECT_EQ(billing->max_retained_wal_mb, 64);
  // Derived from the state file's path: stable, and different for another state file.
  const std::string name = config->engine.name;
  EXPECT_EQ(name.rfind("duplex_state_", 0), 0u) << name;
  Result<Config> again = ParseConfig(std::string(kPgEndpoints) + kCustomer, "/a/sync.toml");
  EXPECT_EQ(again->engine.name, name);
  Result<Config> other = ParseConfig(std::string(kPgEndpoints) + kCustomer, "/b/sync.toml");
  EXPECT_NE(other->engine.name, name);
  Result<Config> named = ParseConfig(
      "[engine]\nname = \"orders_sync\"\n" + std::string(kPgEndpoints) + kCustomer, "/a/sync.toml");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ(named->engine.name, "orders_sync");
}

TEST(ConfigErrorTest, PostgresEndpointMistakes) {
  const std::string both = "[endpoints.crm]\ntype = \"postgres\"\ndsn = \"x\"\ndsn_env = \"Y\"\n";
  ExpectError(both + "[endpoints.billing]\ntype = \"sqlite\"\npath = \"b.db\"\n" + kCustomer,
              "[endpoints.crm]", {"exactly one of dsn and dsn_env"});
  const std::string capture =
      "[endpoints.crm]\ntype = \"postgres\"\ndsn = \"x\"\ncapture = \"wal2json\"\n";
  ExpectError(capture + "[endpoints.billing]\ntype = \"sqlite\"\npath = \"b.db\"\n" + kCustomer,
              "wal2json", {"unknown capture 'wal2json'", "trigger"});
  ExpectError("[endpoints.crm]\ntype = \"postgres\"\ndsn = \"x\"\npath = \"crm.db\"\n" +
                  std::string("[endpoints.billing]\ntype = \"sqlite\"\npath = \"b.db\"\n") +
                  kCustomer,
              "path = \"crm.db\"", {"unknown key 'path'"});
  ExpectError("[engine]\nname = \"Orders-Sync\"\n" + std::string(kPgEndpoints) + kCustomer,
              "Orders-Sync", {"a-z, 0-9 and _"});
  std::string zero = kPgEndpoints;
  zero.replace(zero.find("max_retained_wal_mb = 64"), 24, "max_retained_wal_mb = 0");
  ExpectError(zero + kCustomer, "max_retained_wal_mb = 0",
              {"endpoint 'billing': max_retained_wal_mb"});
}

}  // namespace
}  // namespace duplex

namespace duplex {
namespace {

constexpr const char* kOrder = R"([collections.order]
key = ["id"]
endpoints.crm = { table = "orders" }
endpoints.billing = { table = "invoices" }
)";

TEST(ConfigTest, KeyModeAndReferencesAreRead) {
  std::string text = std::string(kEndpoints) + kOrder +
                     "key_mode = \"mapped\"\nreferences = { customer_id = \"customer\" }\n" +
                     kCustomer;
  Result<Config> config = ParseConfig(text, "/a/sync.toml");
  ASSERT_OK(config);
  EXPECT_TRUE(config->collections[0].mapped_key);
  EXPECT_EQ(config->collections[0].references.at("customer_id"), "customer");
  EXPECT_FALSE(config->collections[1].mapped_key);  // "shared" by default
  EXPECT_NE(ExampleConfig().find("key_mode"), std::string::npos);
}

TEST(ConfigErrorTest, KeyModeAndReferencesAreChecked) {
  ExpectError(std::string(kEndpoints) + kCustomer + "key_mode = \"auto\"\n", "key_mode",
              {"collection 'customer'", "key_mode must be \"shared\" or \"mapped\""});
  ExpectError(std::string(kEndpoints) +
                  "[collections.line]\nkey = [\"order_id\", \"n\"]\nkey_mode = \"mapped\"\n"
                  "endpoints.crm = { table = \"a\" }\nendpoints.billing = { table = \"b\" }\n",
              "key_mode", {"collection 'line'", "needs a key of one field"});
  ExpectError(
      std::string(kEndpoints) + kOrder + "references = { customer_id = \"client\" }\n" + kCustomer,
      "references", {"collection 'order'", "unknown collection 'client'", "customer"});
  ExpectError(std::string(kEndpoints) + kOrder + "references = { id = \"customer\" }\n" + kCustomer,
              "references", {"a key field cannot reference"});
  ExpectError(std::string(kEndpoints) + kOrder + "references = { customer_id = 7 }\n" + kCustomer,
              "references", {"references.customer_id must name a collection"});
}

}  // namespace
}  // namespace duplex
