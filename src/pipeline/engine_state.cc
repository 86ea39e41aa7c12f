#include "pipeline/engine_state.h"

namespace duplex {

EngineState::EngineState(const Config& c, std::unique_ptr<StateStore> s, Env* e)
    : config(c),
      store(std::move(s)),
      env(e ? e : Env::Default()),
      alerts(static_cast<double>(c.engine.latency_objective_ms) / 1000,
             static_cast<double>(c.engine.alert_after_ms) / 1000) {
  telemetry.latency_objective_seconds = static_cast<double>(c.engine.latency_objective_ms) / 1000;
}

EndpointState* EngineState::Find(const std::string& name) {
  for (EndpointState& ep : endpoints) {
    if (ep.name == name) return &ep;
  }
  return nullptr;
}

const CollectionModel* EngineState::FindModel(const std::string& collection) const {
  for (const CollectionModel& m : models) {
    if (m.config->name == collection) return &m;
  }
  return nullptr;
}

Result<PlanContext> NewPlanContext(EngineState& es) {
  DUPLEX_ASSIGN_OR_RETURN(int64_t first,
                          es.store->AllocateApplyIds(static_cast<int>(es.endpoints.size())));
  PlanContext ctx;
  for (const EndpointState& ep : es.endpoints) {
    ctx.apply_ids[ep.name] = first++;
    ctx.seen[ep.name] = ep.resolved;
    ctx.watermarks[ep.name] = ep.watermark;
  }
  return ctx;
}

Result<RecordState*> LoadRecord(EngineState& es, RecordStates& states, const std::string& record) {
  auto [collection, key] = RecordKey::Parse(record);
  if (!es.FindModel(collection)) return nullptr;
  std::map<std::string, RecordState>& loaded = states[collection];
  auto it = loaded.find(key);
  if (it == loaded.end()) {
    DUPLEX_RETURN_IF_ERROR(es.store->LoadRecords(collection, {key}, loaded));
    it = loaded.find(key);
    if (it == loaded.end()) return nullptr;
  }
  return &it->second;
}

}  // namespace duplex
