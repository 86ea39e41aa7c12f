// The generic key-range digests of reconcile (include/duplex/connector.h, KeyRanges): rows
// read with Source::Scan and hashed in this process.

#include <algorithm>
#include <map>
#include <set>

#include "duplex/connector.h"
#include "util/json_value.h"
#include "util/md5.h"

namespace duplex {

uint64_t KeyHash(const std::string& key_text) { return Md5Prefix64(key_text); }

uint64_t RowHash(const Row& row, const std::vector<std::string>& fields) {
  Value values = Value::array();
  for (const std::string& f : fields) {
    auto it = row.is_object() ? row.find(f) : row.end();
    values.push_back(row.is_object() && it != row.end() ? *it : Value(nullptr));
  }
  return Md5Prefix64(values.dump());
}

namespace {

// Whether the row `c` lies in `within`; sets *key_hash.
bool InRanges(const Change& c, const KeyRanges& within, const std::set<uint64_t>& prefixes,
              uint64_t* key_hash) {
  *key_hash = KeyHash(KeyText(c.key, within.key));
  return within.bits <= 0 || prefixes.count(HashPrefix(*key_hash, within.bits)) > 0;
}

}  // namespace

Result<std::vector<RangeDigest>> DigestRangesByScan(Source& source, const KeyRanges& within,
                                                    int split_bits) {
  const std::set<uint64_t> prefixes(within.prefixes.begin(), within.prefixes.end());
  const int bits = within.bits + split_bits;
  std::map<uint64_t, RangeDigest> out;
  DUPLEX_RETURN_IF_ERROR(
      source.Scan(within.collection, 5000, [&](std::vector<Change>&& rows) -> Status {
        for (const Change& c : rows) {
          uint64_t h = 0;
          if (!InRanges(c, within, prefixes, &h)) continue;
          RangeDigest& d = out[HashPrefix(h, bits)];
          d.prefix = HashPrefix(h, bits);
          ++d.rows;
          d.sum += RowHash(c.after, within.fields);
        }
        return Status::Ok();
      }));
  std::vector<RangeDigest> digests;
  digests.reserve(out.size());
  for (auto& [prefix, d] : out) digests.push_back(d);
  return digests;
}

Status ScanRangesByScan(Source& source, const KeyRanges& within, size_t max_rows,
                        const std::function<Status(std::vector<Change>&&)>& visit) {
  const std::set<uint64_t> prefixes(within.prefixes.begin(), within.prefixes.end());
  return source.Scan(within.collection, std::max<size_t>(max_rows, 1),
                     [&](std::vector<Change>&& rows) -> Status {
                       std::vector<Change> kept;
                       for (Change& c : rows) {
                         uint64_t h = 0;
                         if (InRanges(c, within, prefixes, &h)) kept.push_back(std::move(c));
                       }
                       if (kept.empty()) return Status::Ok();
                       return visit(std::move(kept));
                     });
}

}  // namespace duplex
