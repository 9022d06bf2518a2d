// A lane: one backend running one strategy under one host schedule, with the storage its plans
// name (sim/storage.h), the swap space its retracted requests live in and the row-ownership
// checker its plans are held to. `specstate replay` runs several in lockstep (sim/simulator.h),
// `specstate dump` one beside a recorder (sim/dump.h), the Python Reference one alone; all three
// build it here, so that they plan, check and run an event alike.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "backends/compact_backend.h"
#include "backends/state_backend.h"
#include "core/strategy/fault.h"
#include "core/strategy/host_scheduler.h"
#include "core/strategy/plan.h"
#include "core/strategy/strategy.h"
#include "core/trace/events.h"
#include "sim/ownership.h"
#include "sim/plan_executor.h"

namespace specstate::sim {

struct LaneSpec {
  std::string backend;  // "cpu" | "cuda"
  StrategyKind strategy = StrategyKind::kInline;
  Fault fault = Fault::kNone;  // injected into this lane's policy (core/strategy/fault.h)
  Schedule schedule =
      Schedule::synchronous();  // how its host plans (core/strategy/host_scheduler.h)
  // "cpu/inline", "cpu/inline+no-flush-on-retract", "cpu/inline@overlap"
  std::string name() const;
};

// One event's plan, and the first write in it to a row the protocol does not give the request
// the task acts for (sim/ownership.h), when the lane was asked to check.
struct LanePlan {
  Plan plan;
  std::optional<std::string> ownership;
};

class Lane {
 public:
  // Throws InputError for a fault or schedule the strategy refuses (HostScheduler) and
  // whatever make_compact_backend throws (std::bad_alloc when the pools cannot be allocated).
  Lane(const LaneSpec& spec, const PoolConfig& config, StoredRows stored, uint64_t seed);
  // The ownership checker refers to the host's layout: a lane stays where it was built.
  Lane(const Lane&) = delete;
  Lane& operator=(const Lane&) = delete;

  const LaneSpec& spec() const { return spec_; }
  const HostScheduler& host() const { return host_; }
  // The live-state table with every result applied, for reading states.
  const PoolPolicy& policy() const { return host_.policy(); }
  const StrategyLayout& layout() const { return host_.layout(); }
  StateBackend& backend() { return *backend_; }
  const StateBackend& backend() const { return *backend_; }
  const SwapSpace& swap() const { return swap_; }
  // Handoffs received from `sender` (the lanes of one replay share it: one prefill per handoff).
  void share_sender(std::shared_ptr<HandoffSender> sender) { swap_.sender = std::move(sender); }
  double seconds() const { return seconds_; }  // wall time spent running plans

  // The host's plan for `event` (throws InputError, without a location, when the policy refuses
  // it), with `check_ownership` checked before it runs. Pass the same `check_ownership` for
  // every event: the checker learns the rows the trace hands out from each event it sees.
  LanePlan plan(const trace::Event& event, bool check_ownership);

  // Runs `plan` on the backend and the swap space; std::invalid_argument when the backend
  // refuses a malformed call.
  void run(const Plan& plan);

  // Where `request`'s live state can be read, after running the plan that makes it readable
  // (deferred: its pending tokens replayed into the inspection row; the table is unchanged).
  StateLoc readable(uint64_t request);
  // digest_state(readable(request)); a pending replay is digested without being written
  // (StateBackend::digest_replayed), so the inspection row may keep what it held.
  uint64_t digest_live(uint64_t request);

 private:
  LaneSpec spec_;
  HostScheduler host_;
  std::unique_ptr<StateBackend> backend_;  // stores only the rows and slots its plans name
  SwapSpace swap_;
  OwnershipChecker ownership_;
  double seconds_ = 0;
};

// The policy's plan for one trace event: the single mapping from trace events to scheduler
// operations, shared by every lane and by lane_storage (sim/storage.h). Throws InputError
// (without a location) for an operation the policy refuses. Scheduler is PoolPolicy or
// HostScheduler.
template <class Scheduler>
Plan plan_for(Scheduler& policy, const trace::Event& event);

}  // namespace specstate::sim
