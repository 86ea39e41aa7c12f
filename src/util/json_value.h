#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "duplex/change.h"
#include "duplex/ids.h"

namespace duplex {

// {"$blob": "<HEX>"} is how binary data travels (JSON cannot hold bytes).
bool IsBlob(const Value& v);
Value MakeBlob(std::string_view bytes);
std::string BlobBytes(const Value& v);  // the bytes of a blob value ("" if not a blob)

// Equality of field values as a database sees them: 2 == 2.0, blobs by bytes.
bool ValuesEqual(const Value& a, const Value& b);

// Total order used by the max/min policies: null < numbers < text < blobs; numbers by value,
// text and blobs bytewise. Returns <0, 0, >0.
int CompareValues(const Value& a, const Value& b);

// A short human-readable rendering for logs and the CLI ("NULL", 42, 'text', x'00ff').
std::string ValueToDisplay(const Value& v);

// Canonical text of a record key (its values in key-field order, as a JSON array): the
// state store's key for the record.
std::string KeyText(const Row& key_row, const std::vector<std::string>& key_fields);

// The name of the record of `collection` whose key is `key_row`: {collection, KeyText}. The
// one way the engine names a record (RecordKey::ToString, "customer\n[1]"); `key_fields` are
// the collection's key fields in the config's order.
RecordKey RecordKeyOf(const std::string& collection, const Row& key_row,
                      const std::vector<std::string>& key_fields);

}  // namespace duplex
