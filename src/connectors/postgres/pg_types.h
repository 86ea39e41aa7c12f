#pragma once

#include <libpq-fe.h>

#include <optional>
#include <string>
#include <string_view>

#include "duplex/change.h"
#include "duplex/connector.h"

namespace duplex::pg {

// How PostgreSQL values travel as duplex Values (README "PostgreSQL types"). PostgreSQL's text
// output format is the input: duplex's sessions run with DateStyle ISO, TimeZone UTC and
// extra_float_digits 3, so that every value's text is exact and stable.
//   bool -> true/false; int2/int4/int8/oid -> integer; float4/float8 -> float (Infinity as
//   infinity, NaN as the text "NaN"); numeric -> text, every digit kept; bytea -> {"$blob": hex};
//   timestamptz -> "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (UTC); timestamp -> "YYYY-MM-DDTHH:MM:SS[.f]";
//   date, time, uuid, json, jsonb, interval, text, arrays (PostgreSQL's array literal) and every
//   other type -> their text.
Value FromText(Oid type, std::string_view text);

// The text a parameter of a column of `type` gets for `v` (nullopt: NULL). Integers and floats
// print exactly, blobs as bytea hex, booleans as true/false, strings as they are.
std::optional<std::string> ToText(const Value& v);

// The kind of a column of a type with pg_type.typcategory `category` and oid `type` (for a
// domain, its base type's): enums and strings (and uuid, xml, inet) are text, numeric and
// money decimal, bool boolean, bytea binary, json/jsonb json, date/time/timestamp/timestamptz/
// interval time; arrays, ranges, composites and types it does not know are any.
ColumnKind ColumnKindOf(char category, Oid type);

// Type OIDs duplex treats specially.
inline constexpr Oid kBoolOid = 16;
inline constexpr Oid kByteaOid = 17;
inline constexpr Oid kInt8Oid = 20;
inline constexpr Oid kInt2Oid = 21;
inline constexpr Oid kInt4Oid = 23;
inline constexpr Oid kOidOid = 26;
inline constexpr Oid kFloat4Oid = 700;
inline constexpr Oid kFloat8Oid = 701;
inline constexpr Oid kJsonOid = 114;
inline constexpr Oid kXmlOid = 142;
inline constexpr Oid kMoneyOid = 790;
inline constexpr Oid kNumericOid = 1700;
inline constexpr Oid kUuidOid = 2950;
inline constexpr Oid kJsonbOid = 3802;
inline constexpr Oid kTimestampOid = 1114;
inline constexpr Oid kTimestamptzOid = 1184;

// The session settings FromText relies on, as libpq `options`.
inline constexpr const char* kSessionOptions =
    "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c IntervalStyle=postgres "
    "-c bytea_output=hex";

// Parses "X/Y" (pg_lsn text) into a number; 0 if malformed.
uint64_t ParseLsn(std::string_view text);
// Formats a number as pg_lsn text "X/Y".
std::string FormatLsn(uint64_t lsn);

}  // namespace duplex::pg
