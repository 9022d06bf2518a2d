// HostScheduler: the host side of an engine, driving one PoolPolicy synchronously or with overlap
// scheduling (vLLM async scheduling, SGLang's overlap scheduler, TRT-LLM's overlap mode), of one
// step or of d steps in flight (pipeline parallelism with d stages).
//
// Synchronously, every operation is planned from the live-state table with every earlier result
// applied: the PoolPolicy as it is.
//
// With overlap, a forward step (verify or decode) is prepared while the previous one still runs:
// the host applies a step's accepted counts only after it prepared the next step. Until then a
// request of the in-flight step has one possible table entry per count the step may have
// accepted (0 .. T, 0 for a discarded entry), and whatever the host plans for it - the next step,
// a retract, a finish - is planned once per count and guarded on the device's count
// (core/primitives.h, Guard): the device runs the variant of the count it holds, with no host
// synchronisation inside a step. A step publishes its own counts (AcceptCall) between its verify
// and the calls that depend on them (commits), which are guarded on those counts. So every
// strategy's device work is the synchronous plan's, task for task, and the state is bit-identical
// to the synchronous replay of the same schedule; docs/strategies.md says what each strategy
// resolves on the device.
//
// With depth d the host applies a step's counts only after it prepared the d steps after it, or
// earlier when it must wait: a step that names a request of an in-flight step that would stay in
// flight after it, or that request's request row (given to it after a retract or finish), first
// waits for the steps up to that one (vLLM's batch queue blocks on its oldest batch when it
// cannot schedule). So a request has at most one unknown count, and the
// variants stay one per count: variant i is the table if every request of the steps in flight
// accepted i.
//
// The faults of overlap scheduling (core/strategy/fault.h, FaultInfo::overlap) are wrong
// decisions of this host side:
// every decision they change is asked of HostDecisions (core/strategy/host_decisions.h), whose
// faulty subclasses are marked "FAULT name".
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/strategy/fault.h"
#include "core/strategy/host_decisions.h"
#include "core/strategy/pool_policy.h"

namespace specstate {

// How a host plans: synchronously (depth 0), or with overlap scheduling of `depth` steps in flight.
struct Schedule {
  static constexpr int32_t kMaxDepth = 4;  // the trace format's bound on header `overlap`
  int32_t depth = 0;
  static constexpr Schedule synchronous() { return {0}; }
  static constexpr Schedule overlap(int32_t steps_in_flight = 1) { return {steps_in_flight}; }
  constexpr bool is_overlap() const { return depth > 0; }
  bool operator==(const Schedule&) const = default;
};
// "sync", "overlap" (depth 1) or "overlap=d": the name of lanes and of `--schedule`.
std::string to_string(Schedule schedule);

class HostScheduler {
 public:
  // InputError for a fault that does not concern `kind`, an overlap fault without overlap, or a
  // depth outside 0..Schedule::kMaxDepth.
  HostScheduler(StrategyKind kind, const PoolConfig& config, Schedule schedule,
                Fault fault = Fault::kNone);

  Schedule schedule() const { return schedule_; }
  Fault fault() const { return fault_; }
  const StrategyLayout& layout() const { return truth_.layout(); }

  // The operations of PoolPolicy. The ops carry the trace's accepted counts: the device's, which
  // the host learns up to d steps late with overlap (the plan never depends on them before then).
  Plan extend(const ExtendOp& op);
  Plan verify(std::span<const VerifyOp> batch, int32_t padding);
  Plan decode(std::span<const VerifyOp> batch, int32_t padding);
  Plan retract(uint64_t request);
  Plan resume(uint64_t request, int32_t req_row, int32_t working_row);
  Plan finish(uint64_t request);
  // Host-tier transfers of cache rows: the same for every count of an in-flight step (they wait
  // for the device, and no table entry names a cache row), so planned once. What of a restore
  // lands only after the next event (a fault's split transfer) ends that event's plan.
  Plan offload(int32_t row, int32_t slot);
  Plan restore(int32_t slot, int32_t row);
  Plan handoff(uint64_t request, int64_t length, int32_t row);
  // A check event: nothing of its own, but what a restore left lands after it.
  Plan check() { return landed({}); }

  // The live-state table with every result applied (the device's truth), for reading states.
  const PoolPolicy& policy() const { return truth_; }
  // For each entry of the last step's batch, the index of the task of its VerifyCall that ran
  // (the one whose guard the device's count passed).
  const std::vector<int32_t>& batch_tasks() const { return batch_tasks_; }

 private:
  struct InFlight {
    std::vector<VerifyOp> ops;  // with the device's counts
    bool decode = false;
    std::map<uint64_t, int32_t> req_rows;  // request -> the request row its count was written to
  };

  // A step's calls before its own acceptance, merged over the variants.
  struct Prepared {
    Plan before_verify;
    VerifyCall verify;  // the entries' tasks of every variant, then the padding task
    Plan after_verify;
  };

  bool overlap() const { return schedule_.is_overlap(); }
  // `plan`, then what a restore left to land after this event.
  Plan landed(Plan plan);
  Plan step(std::span<const VerifyOp> batch, int32_t padding, bool decode);
  Prepared prepare(std::span<const VerifyOp> batch, int32_t padding, bool decode);
  std::vector<int32_t> running_tasks(std::span<const VerifyOp> batch,
                                     const VerifyCall& verify) const;
  HostView view() const;
  // A non-step operation that names `request`, planned on the synchronous table (which refuses a
  // bad trace as a synchronous replay does) and on every variant; `op(policy, variant)`.
  template <class Op>
  Plan everywhere(uint64_t request, bool finishes, Op&& op);
  // The host applies the oldest in-flight step's counts to every variant, as it learns them
  // while `next_batch` is prepared; one variant is left when no verify is in flight.
  void resolve_oldest(std::span<const VerifyOp> next_batch, bool next_decode);
  // Whether `batch` names a request of an in-flight step that stays in flight once it is prepared
  // (any but the oldest when `depth` steps are in flight), or the request row of one.
  bool must_wait(std::span<const VerifyOp> batch) const;
  void refresh_in_flight_ops();  // in_flight_ops_ from in_flight_
  // How `request`'s tasks planned on variant i are kept: guarded on the variant's count (a
  // request of an in-flight verify), unguarded (any other request, from variant 0), or dropped.
  std::optional<Guard> variant_guard(uint64_t request, size_t i) const;

  Schedule schedule_;
  Fault fault_;  // an overlap fault; the policies hold the others
  PoolPolicy truth_;
  // Overlap only: the steps in flight (oldest first, at most the depth), the counts each of their
  // requests may have, and the table for each: variants_[i] is the host's table if every request
  // of the in-flight steps accepted counts_[i] (0 .. T while a verify is in flight, else 1).
  std::deque<InFlight> in_flight_;
  std::vector<VerifyOp> in_flight_ops_;  // every in-flight step's, for HostView
  // The working rows by batch position of the last `depth` steps, oldest first (HostView).
  std::deque<std::vector<int32_t>> batch_rows_;
  std::vector<int32_t> counts_;
  std::vector<PoolPolicy> variants_;
  std::vector<int32_t> batch_tasks_;
  // The device's table of counts as the last set_accepted left it: req_row -> (request, count).
  std::map<int32_t, std::pair<uint64_t, int32_t>> published_;
  std::unique_ptr<HostDecisions> decisions_;  // the correct ones, or those with fault_'s
  Plan landing_;  // the part of the last restore that lands after the event that follows it
};

}  // namespace specstate
