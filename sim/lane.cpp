#include "sim/lane.h"

#include <chrono>
#include <type_traits>
#include <utility>
#include <variant>

#include "core/strategy/pool_policy.h"

namespace specstate::sim {
namespace {

std::optional<Snapshot> to_snapshot(const std::optional<trace::TrackWrite>& t) {
  if (!t) return std::nullopt;
  return Snapshot{t->length, t->row};
}

}  // namespace

// Appends piece by piece: GCC 12 warns (-Wrestrict, a false positive) on `"+" + std::string`
// inlined here.
std::string LaneSpec::name() const {
  std::string name = backend;
  name += '/';
  name += to_string(strategy);
  if (schedule.is_overlap()) {
    name += '@';
    name += to_string(schedule);
  }
  if (fault != Fault::kNone) {
    name += '+';
    name += fault_info(fault).name;
  }
  return name;
}

Lane::Lane(const LaneSpec& spec, const PoolConfig& config, StoredRows stored, uint64_t seed)
    : spec_(spec),
      host_(spec.strategy, config, spec.schedule, spec.fault),
      backend_(make_compact_backend(spec.backend, host_.layout().shape, std::move(stored), seed)),
      ownership_(host_.layout()) {}

LanePlan Lane::plan(const trace::Event& event, bool check_ownership) {
  LanePlan out{plan_for(host_, event), std::nullopt};
  if (check_ownership) {
    ownership_.begin_event(event);
    out.ownership = ownership_.check(out.plan);
    ownership_.end_event(event);
  }
  return out;
}

void Lane::run(const Plan& plan) {
  const auto start = std::chrono::steady_clock::now();
  execute(plan, *backend_, swap_);
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

StateLoc Lane::readable(uint64_t request) {
  auto r = policy().readable(request);
  run(r.plan);
  return r.loc;
}

uint64_t Lane::digest_live(uint64_t request) {
  const PoolPolicy::Readable r = policy().readable(request);
  const auto* replay = r.plan.size() == 1 ? std::get_if<ReplayCall>(&r.plan[0]) : nullptr;
  if (replay == nullptr || replay->tasks.size() != 1 ||
      r.loc != StateLoc::at(replay->tasks[0].dst_row)) {
    run(r.plan);
    return backend_->digest_state(r.loc);
  }
  const auto start = std::chrono::steady_clock::now();
  const uint64_t digest = backend_->digest_replayed(replay->tasks[0]);
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return digest;
}

template <class Scheduler>
Plan plan_for(Scheduler& policy, const trace::Event& event) {
  return std::visit(
      [&](const auto& e) -> Plan {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, trace::Extend>) {
          ExtendOp op{e.request,     e.req_row, e.working_row, e.tokens, e.prefix_len,
                      e.cow_src_row, {}};
          for (const trace::TrackWrite& t : e.track)
            op.snapshots.push_back({t.length, t.row});
          return policy.extend(op);
        } else if constexpr (std::is_same_v<E, trace::Verify>) {
          std::vector<VerifyOp> batch;
          for (const auto& v : e.batch)
            batch.push_back({v.request, v.accepted, to_snapshot(v.track), v.tree});
          return policy.verify(batch, e.padding);
        } else if constexpr (std::is_same_v<E, trace::Decode>) {
          std::vector<VerifyOp> batch;
          for (const auto& d : e.batch)
            batch.push_back({d.request, 1, to_snapshot(d.track), std::nullopt});
          return policy.decode(batch, e.padding);
        } else if constexpr (std::is_same_v<E, trace::Retract>) {
          return policy.retract(e.request);
        } else if constexpr (std::is_same_v<E, trace::Resume>) {
          return policy.resume(e.request, e.req_row, e.working_row);
        } else if constexpr (std::is_same_v<E, trace::Finish>) {
          return policy.finish(e.request);
        } else if constexpr (std::is_same_v<E, trace::Offload>) {
          return policy.offload(e.row, e.slot);
        } else if constexpr (std::is_same_v<E, trace::Restore>) {
          return policy.restore(e.slot, e.row);
        } else if constexpr (std::is_same_v<E, trace::Handoff>) {
          return policy.handoff(e.request, e.length, e.row);
        } else {
          static_assert(std::is_same_v<E, trace::Check>, "every event kind is planned");
          return policy.check();
        }
      },
      event);
}

template Plan plan_for(PoolPolicy&, const trace::Event&);
template Plan plan_for(HostScheduler&, const trace::Event&);

}  // namespace specstate::sim
