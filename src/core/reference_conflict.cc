#include "core/reference_conflict.h"

#include <algorithm>
#include <utility>

namespace duplex {

Version ReferenceVersion(const RecordState& state, const std::vector<std::string>& fields) {
  Version v;
  for (const std::string& f : fields) {
    auto it = state.versions.find(f);
    if (it != state.versions.end() && it->second.ts >= v.ts) v = it->second;
  }
  return v;
}

Result<std::vector<std::string>> Reach(RecordLookup& lookup, const std::string& start, bool down) {
  std::vector<std::string> reached{start};
  for (size_t i = 0; i < reached.size(); ++i) {
    std::vector<std::string> next;
    if (down) {
      DUPLEX_ASSIGN_OR_RETURN(next, lookup.ReferringTo(reached[i]));
    } else {
      DUPLEX_ASSIGN_OR_RETURN(const RecordState* s, lookup.Find(reached[i]));
      if (s) next = lookup.ReferredBy(RecordKey::Parse(reached[i]).collection, s->values);
    }
    for (const std::string& r : next) {
      if (std::find(reached.begin(), reached.end(), r) != reached.end()) continue;
      DUPLEX_ASSIGN_OR_RETURN(const RecordState* s, lookup.Find(r));
      if (s && (down ? s->exists : !s->exists && !s->deleted.origin.empty())) {
        reached.push_back(r);
      }
    }
  }
  return reached;
}

Result<ReferenceDecision> DecideReference(const ReferenceConflict& c, RecordLookup& lookup) {
  DUPLEX_ASSIGN_OR_RETURN(const RecordState* ps, lookup.Find(c.parent));
  DUPLEX_ASSIGN_OR_RETURN(const RecordState* cs, lookup.Find(c.child));
  const auto [pc, pk] = RecordKey::Parse(c.parent);
  const auto [cc, ck] = RecordKey::Parse(c.child);
  ReferenceDecision d;
  d.deleted = ps->deleted;
  const Version referred = ReferenceVersion(*cs, c.fields);
  // Delete wins: the conflict is the child's (it goes with the parent). Keep: the parent's (it
  // comes back).
  d.cascade = c.parent_model->config->delete_wins;
  ConflictRecord& conflict = d.conflict;
  conflict.policy = d.cascade ? "delete" : "keep";
  conflict.collection = d.cascade ? cc : pc;
  conflict.key = d.cascade ? KeyOf(*c.child_model, cs->values) : KeyOf(*c.parent_model, ps->values);
  conflict.key_text = d.cascade ? ck : pk;
  conflict.winner = d.cascade ? c.deleter : c.writer;
  conflict.values[c.deleter] = {{"deleted", true}, {"ts", d.deleted.ts}, {"record", pc + " " + pk}};
  conflict.values[c.writer] = {
      {"value", cs->values}, {"ts", referred.ts}, {"record", cc + " " + ck}};
  DUPLEX_ASSIGN_OR_RETURN(d.settled, Reach(lookup, d.cascade ? c.child : c.parent, d.cascade));
  return d;
}

}  // namespace duplex
