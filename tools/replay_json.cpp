#include "tools/replay_json.h"

#include <cstdio>

#include "backends/state_diff.h"
#include "core/errors.h"
#include "core/strategy/fault.h"

namespace specstate::cli {
namespace {

// A value as a JSON number (null for NaN and infinities, which JSON lacks; the bits tell them
// apart), with its bits and dtype beside it; no values for a difference of sizes.
nlohmann::json element_json(const ElementDiff& e) {
  nlohmann::json j = {
      {"tensor", e.tensor}, {"layer", e.layer}, {"index", e.index}, {"element", e.element}};
  if (e.a.bytes == 0) return j;
  j["dtype"] = e.a.bytes == 2 ? "bf16" : "f32";
  j["a"] = e.a.value();
  j["b"] = e.b.value();
  j["a_bits"] = e.a.hex();
  j["b_bits"] = e.b.hex();
  return j;
}

}  // namespace

nlohmann::json replay_json(const trace::Trace& trace, const sim::ReplayReport& r,
                           const std::vector<sim::LaneSpec>& specs,
                           const std::vector<int32_t>& layers, int threads) {
  nlohmann::json j;
  j["file"] = trace.file;
  j["threads"] = threads;
  j["layers"] = layers.empty() ? nlohmann::json("all") : nlohmann::json(layers);
  j["agree"] = r.agree;
  j["events"] = r.events;
  j["events_total"] = trace.events.size();
  j["comparisons"] = r.compares;
  j["full_comparisons"] = r.full_compares;
  j["seconds"] = r.seconds;
  j["compare_seconds"] = r.compare_seconds;
  SPECSTATE_ASSERT(specs.size() == r.lanes.size(), "one result per lane");
  auto fault_name = [](Fault f) {
    return f == Fault::kNone ? nlohmann::json(nullptr) : nlohmann::json(fault_info(f).name);
  };
  for (size_t i = 0; i < r.lanes.size(); ++i) {
    const sim::LaneSpec& spec = specs[i];
    j["lanes"].push_back({{"lane", r.lanes[i].name},
                          {"backend", spec.backend},
                          {"strategy", std::string(to_string(spec.strategy))},
                          {"fault", fault_name(spec.fault)},
                          {"seconds", r.lanes[i].seconds},
                          {"allocated_bytes", r.lanes[i].allocated.total()}});
  }
  for (const auto& [request, digest] : r.final_digests) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)digest);
    j["final_digests"].push_back({{"request", request}, {"digest", hex}});
  }
  if (r.divergence) {
    const sim::Divergence& d = *r.divergence;
    nlohmann::json dj = {{"line", d.line},     {"event", d.event},   {"what", d.what},
                         {"lane_a", d.lane_a}, {"lane_b", d.lane_b}, {"row_a", d.row_a},
                         {"row_b", d.row_b}};
    if (d.request) dj["request"] = *d.request;
    // The injected fault of the lanes compared, if one of them runs one.
    for (const sim::LaneSpec& spec : specs) {
      if (spec.fault != Fault::kNone && (spec.name() == d.lane_a || spec.name() == d.lane_b))
        dj["fault"] = fault_info(spec.fault).name;
    }
    dj["lanes"] = {d.lane_a, d.lane_b};
    for (const ElementDiff& e : d.elements)
      dj["elements"].push_back(element_json(e));
    j["divergence"] = dj;
  }
  return j;
}

}  // namespace specstate::cli
