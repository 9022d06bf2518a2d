// The decisions of the host side of overlap scheduling (core/strategy/host_scheduler.h) that a
// fault of overlap scheduling (fault.h, FaultInfo::overlap) makes wrongly. HostDecisions makes
// each one correctly and host_scheduler.cpp asks it at every such point; a fault is a subclass
// that overrides its one decision (host_decisions.cpp, each marked "FAULT name").
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <utility>

#include "core/strategy/fault.h"
#include "core/strategy/plan.h"
#include "core/strategy/pool_policy.h"

namespace specstate {

// What the host's decisions read of its scheduler.
struct HostView {
  const PoolPolicy& truth;  // the live-state table with every result applied
  // The device's table of counts as the last set_accepted left it: req_row -> (request, count).
  const std::map<int32_t, std::pair<uint64_t, int32_t>>& published;
  std::span<const VerifyOp> in_flight;  // the steps still running, with the device's counts
  // The working rows, by batch position, of the step `depth` steps before the one being planned
  // (the last one of its pipeline slot); empty before there was one.
  std::span<const int32_t> lagged_rows;
};

class HostDecisions {
 public:
  virtual ~HostDecisions() = default;

  // Once the next step (`next`) is prepared, the host applies to entry k of the in-flight step
  // that entry's own count ...
  virtual int32_t applied_count(std::span<const VerifyOp> in_flight, size_t k,
                                std::span<const VerifyOp> next) const {
    return in_flight[k].accepted;
  }
  // ... to the length the entry had before it (`scheduled`: the tokens the next step scheduled
  // for it, 0 if none, which the next step's own results add).
  virtual int64_t length_error(int32_t count, int32_t scheduled) const { return 0; }

  // The tasks prepared for a step's entries (`batch`) run as they are (`verify`, before its
  // padding task): each reads the live state its variant's count left.
  virtual void entry_tasks(VerifyCall& verify, std::span<const VerifyOp> batch,
                           const HostView& host) const {}
  // The one task standing for a step's padding rows (`pad`, as the policy planned it) is run as
  // planned.
  virtual void padding_task(VerifyTask& pad, std::span<const VerifyOp> batch, bool decode,
                            VerifyMode mode, const HostView& host) const {}

  // A step's verify runs its tasks' writes in that step: none are held back (`verify` as it runs)
  // and none of an earlier step land before this one.
  virtual void hold_writes(std::span<const VerifyOp> batch, VerifyCall& verify) {}
  virtual Plan writes_landing_now() { return {}; }
  // A step's snapshots are enqueued after the verify that writes what they copy.
  virtual bool snapshots_before_verify() const { return false; }
  // A step's commits (`after_accept`, the calls after its own acceptance) write each entry's
  // state into that entry's own working row, as planned.
  virtual void commit_rows(Plan& after_accept, std::span<const VerifyOp> batch,
                           const HostView& host) const {}
};

// The correct decisions, or those with `fault`'s wrong one (a fault of overlap scheduling; any
// other is the policy's, core/strategy/policy_decisions.h).
std::unique_ptr<HostDecisions> make_host_decisions(Fault fault);

}  // namespace specstate
