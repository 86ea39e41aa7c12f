#pragma once

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <vector>

namespace duplex::sf {

// The Ids and external ids of records the connector has met (rows captured, look-ups, its own
// writes), per object. A reference and a delete name a record by one and the API wants the
// other; asking the org costs a call per batch (shared/SALESFORCE.md §7). A record's Id never
// changes, nor (for duplex's records) its external id; the external id of a deleted record
// no longer finds it (Forget). Bounded: emptied when it holds kMaxEntries (they are asked
// again).
class IdCache {
 public:
  static constexpr size_t kMaxEntries = 200000;

  // `ext` "" for a record without an external id (one the org's users created).
  void Note(const std::string& object, const std::string& id, const std::string& ext) {
    if (id.empty()) return;
    if (size_ >= kMaxEntries) Clear();
    Maps& m = by_object_[object];
    auto [it, added] = m.ext_of_id.try_emplace(id, ext);
    if (added) {
      ++size_;
    } else if (it->second != ext) {
      // A user changed the record's external id: the old one names no record now.
      auto r = m.id_of_ext.find(Lower(it->second));
      if (r != m.id_of_ext.end() && r->second == id) m.id_of_ext.erase(r);
      it->second = ext;
    }
    if (!ext.empty()) m.id_of_ext[Lower(ext)] = id;
  }
  // A deleted record: its external id no longer finds a live record.
  void Forget(const std::string& object, const std::string& id) {
    auto o = by_object_.find(object);
    if (o == by_object_.end()) return;
    auto e = o->second.ext_of_id.find(id);
    if (e != o->second.ext_of_id.end() && !e->second.empty()) {
      auto r = o->second.id_of_ext.find(Lower(e->second));
      if (r != o->second.id_of_ext.end() && r->second == id) o->second.id_of_ext.erase(r);
    }
  }
  // The external id of the record `id` ("" for none), or nullptr when not known.
  const std::string* ExtOf(const std::string& object, const std::string& id) const {
    auto o = by_object_.find(object);
    if (o == by_object_.end()) return nullptr;
    auto e = o->second.ext_of_id.find(id);
    return e == o->second.ext_of_id.end() ? nullptr : &e->second;
  }
  // The Id of the live record whose external id is `ext` (matched case-insensitively, as the
  // org does), or nullptr when not known.
  const std::string* IdOf(const std::string& object, const std::string& ext) const {
    auto o = by_object_.find(object);
    if (o == by_object_.end()) return nullptr;
    auto r = o->second.id_of_ext.find(Lower(ext));
    return r == o->second.id_of_ext.end() ? nullptr : &r->second;
  }
  void Clear() {
    by_object_.clear();
    size_ = 0;
  }

 private:
  struct Maps {
    std::map<std::string, std::string> ext_of_id;
    std::map<std::string, std::string> id_of_ext;  // lower-cased external id -> Id
  };
  static std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  }
  std::map<std::string, Maps> by_object_;
  size_t size_ = 0;
};

}  // namespace duplex::sf
