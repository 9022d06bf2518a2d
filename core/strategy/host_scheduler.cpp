#include "core/strategy/host_scheduler.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "core/errors.h"

namespace specstate {
namespace {

// For a task acting for `request`: nullopt drops it, a Guard (possibly none) keeps it so guarded.
template <class F>
concept Selector = std::is_invocable_r_v<std::optional<Guard>, F, uint64_t>;

template <class Task, Selector F>
void keep_tasks(TaskCall<Task>& call, F&& select) {
  TaskCall<Task> kept;
  for (size_t i = 0; i < call.tasks.size(); ++i) {
    const std::optional<Guard> g = select(call.requests[i]);
    if (!g) continue;
    kept.add(std::move(call.tasks[i]), call.requests[i]);
    if constexpr (requires { kept.tasks.back().guard; }) {
      kept.tasks.back().guard = *g;
    } else {
      SPECSTATE_ASSERT(g->is_none(), "payload gathers are never guarded (no trees with overlap)");
    }
  }
  call = std::move(kept);
}

// `call` with only the selected tasks, each with its guard; false when nothing is left.
template <Selector F>
bool select_call(PlanCall& call, F&& select) {
  return std::visit(Overloaded{
                        [&](TasksCall auto& c) {
                          keep_tasks(c, select);
                          return !c.tasks.empty();
                        },
                        [&](RequestCall auto& c) {
                          const std::optional<Guard> g = select(c.request);
                          if (g) c.guard = *g;
                          return g.has_value();
                        },
                        [](AcceptCall&) { return true; },
                        // A host-tier transfer: no request's count changes it.
                        [](OffloadCall&) { return true; },
                        [](RestoreCall&) { return true; },
                        [](HandoffCall&) { return true; },
                    },
                    call);
}

template <Selector F>
void append_selected(Plan& out, Plan part, F&& select) {
  for (PlanCall& call : part) {
    if (select_call(call, select)) out.push_back(std::move(call));
  }
}

}  // namespace

std::string to_string(Schedule schedule) {
  if (!schedule.is_overlap()) return "sync";
  if (schedule.depth == 1) return "overlap";
  return "overlap=" + std::to_string(schedule.depth);
}

HostScheduler::HostScheduler(StrategyKind kind, const PoolConfig& config, Schedule schedule,
                             Fault fault)
    : schedule_(schedule),
      fault_(fault != Fault::kNone && fault_info(fault).overlap ? fault : Fault::kNone),
      truth_(kind, config, fault_ == Fault::kNone ? fault : Fault::kNone),
      decisions_(make_host_decisions(fault_)) {
  if (schedule.depth < 0 || schedule.depth > Schedule::kMaxDepth) {
    throw InputError("overlap depth " + std::to_string(schedule.depth) + " outside 0.." +
                     std::to_string(Schedule::kMaxDepth));
  }
  if (fault_ != Fault::kNone) {
    if (!fault_concerns(fault_, kind)) {
      throw InputError("fault '" + std::string(fault_info(fault_).name) +
                       "' does not concern the " + std::string(to_string(kind)) + " strategy");
    }
    if (!overlap()) {
      throw InputError("fault '" + std::string(fault_info(fault_).name) +
                       "' is a fault of overlap scheduling: replay an overlap trace (header "
                       "overlap 1) or pass --schedule overlap");
    }
  }
  if (overlap() && config.tree_nodes > 0) {
    throw InputError("overlap scheduling of draft trees is not modelled (tree_nodes " +
                     std::to_string(config.tree_nodes) + ")");
  }
  variants_.push_back(truth_);
}

std::optional<Guard> HostScheduler::variant_guard(uint64_t request, size_t i) const {
  if (counts_.size() > 1) {
    for (const InFlight& step : in_flight_) {
      if (step.decode) continue;  // its one count is every variant's
      if (auto it = step.req_rows.find(request); it != step.req_rows.end())
        return Guard{it->second, counts_[i]};
    }
  }
  if (i == 0) return Guard{};
  return std::nullopt;
}

// A request of the in-flight step keeps its tasks of every variant, each guarded on the variant's
// count; any other request's tasks are the same in every variant and are kept once.
template <class Op>
Plan HostScheduler::everywhere(uint64_t request, bool finishes, Op&& op) {
  Plan truth_plan = op(truth_, /*variant=*/false);
  if (!overlap()) return truth_plan;
  Plan plan;
  for (size_t i = 0; i < variants_.size(); ++i) {
    PoolPolicy& v = variants_[i];
    // A request discarded in this variant can only finish: anything else naming it means this
    // variant is not the device's.
    if (v.has(request) && v.live(request).discarded && !finishes) continue;
    Plan part;
    try {
      part = op(v, /*variant=*/true);
    } catch (const InputError& e) {
      SPECSTATE_ASSERT(false, (std::string("an overlap variant refuses what the synchronous "
                                           "table accepts: ") +
                               e.what())
                                  .c_str());
    }
    append_selected(plan, std::move(part), [&](uint64_t r) { return variant_guard(r, i); });
  }
  return plan;
}

Plan HostScheduler::landed(Plan plan) {
  for (PlanCall& call : landing_)
    plan.push_back(std::move(call));
  landing_.clear();
  return plan;
}

// Every table (the truth and the in-flight step's variants) learns what the host tier holds.
Plan HostScheduler::offload(int32_t row, int32_t slot) {
  for (PoolPolicy& v : variants_)
    v.offload(row, slot);
  return landed(truth_.offload(row, slot));
}

Plan HostScheduler::handoff(uint64_t request, int64_t length, int32_t row) {
  for (PoolPolicy& v : variants_)
    v.handoff(request, length, row);
  return landed(truth_.handoff(request, length, row));
}

Plan HostScheduler::restore(int32_t slot, int32_t row) {
  for (PoolPolicy& v : variants_)
    v.restore_parts(slot, row);
  PoolPolicy::RestorePlans parts = truth_.restore_parts(slot, row);
  Plan plan = landed(std::move(parts.before_next));
  landing_ = std::move(parts.after_next);
  return plan;
}

Plan HostScheduler::extend(const ExtendOp& op) {
  return landed(everywhere(op.request, false, [&](PoolPolicy& p, bool variant) {
    if (!variant || !p.has(op.request)) return p.extend(op);
    // A running request's snapshots lie inside this extend only for the length its variant
    // gives it.
    ExtendOp here = op;
    const int64_t start = p.live(op.request).length;
    std::erase_if(here.snapshots, [&](const Snapshot& s) {
      return s.length - start < 1 || s.length - start > op.tokens;
    });
    return p.extend(here);
  }));
}

Plan HostScheduler::retract(uint64_t request) {
  return landed(
      everywhere(request, false, [&](PoolPolicy& p, bool) { return p.retract(request); }));
}

Plan HostScheduler::resume(uint64_t request, int32_t req_row, int32_t working_row) {
  return landed(everywhere(request, false, [&](PoolPolicy& p, bool) {
    return p.resume(request, req_row, working_row);
  }));
}

Plan HostScheduler::finish(uint64_t request) {
  return landed(everywhere(request, true, [&](PoolPolicy& p, bool) { return p.finish(request); }));
}

Plan HostScheduler::verify(std::span<const VerifyOp> batch, int32_t padding) {
  return landed(step(batch, padding, /*decode=*/false));
}

Plan HostScheduler::decode(std::span<const VerifyOp> batch, int32_t padding) {
  return landed(step(batch, padding, /*decode=*/true));
}

void HostScheduler::resolve_oldest(std::span<const VerifyOp> next_batch, bool next_decode) {
  const InFlight oldest = std::move(in_flight_.front());
  in_flight_.pop_front();
  const bool verify_left = std::any_of(in_flight_.begin(), in_flight_.end(),
                                       [](const InFlight& step) { return !step.decode; });
  // With no verify left in flight one count remains, so one table.
  std::vector<PoolPolicy> tables =
      verify_left ? variants_ : std::vector<PoolPolicy>{variants_.front()};
  if (!oldest.decode && counts_.size() > 1) {
    const int32_t T = layout().config.tokens_per_verify;
    const std::vector<VerifyOp>& ops = oldest.ops;
    for (size_t k = 0; k < ops.size(); ++k) {
      const int32_t count = decisions_->applied_count(ops, k, next_batch);
      const bool next = std::any_of(next_batch.begin(), next_batch.end(),
                                    [&](const VerifyOp& o) { return o.request == ops[k].request; });
      const int32_t scheduled = !next ? 0 : next_decode ? 1 : T;
      const auto it = std::find(counts_.begin(), counts_.end(), count);
      SPECSTATE_ASSERT(it != counts_.end(), "an in-flight count is one of its variants");
      const PoolPolicy& source = variants_[size_t(it - counts_.begin())];
      for (PoolPolicy& table : tables)
        table.adopt(ops[k].request, source, decisions_->length_error(count, scheduled));
    }
  }
  variants_ = std::move(tables);
  if (variants_.size() == 1) counts_ = {1};
  refresh_in_flight_ops();
}

void HostScheduler::refresh_in_flight_ops() {
  in_flight_ops_.clear();
  for (const InFlight& step : in_flight_)
    in_flight_ops_.insert(in_flight_ops_.end(), step.ops.begin(), step.ops.end());
}

bool HostScheduler::must_wait(std::span<const VerifyOp> batch) const {
  // The oldest step is resolved once this one is prepared if the pipeline is full.
  const size_t first = in_flight_.size() == size_t(schedule_.depth) ? 1 : 0;
  for (size_t s = first; s < in_flight_.size(); ++s) {
    for (const VerifyOp& op : batch) {
      if (in_flight_[s].req_rows.count(op.request) > 0) return true;
      // A request row that an in-flight request's guards still read (its request was retracted
      // or finished, and the row given to this one): this step's count would overwrite it.
      const int32_t req_row = truth_.live(op.request).req_row;
      for (const auto& [other, row] : in_flight_[s].req_rows) {
        if (row == req_row && other != op.request) return true;
      }
    }
  }
  return false;
}

// The parts of a step before its own acceptance, planned on every variant of the in-flight
// counts: the task of each request reads what its variant's count left.
HostScheduler::Prepared HostScheduler::prepare(std::span<const VerifyOp> batch, int32_t padding,
                                               bool decode) {
  const int32_t most = decode ? 1 : layout().config.tokens_per_verify;
  Prepared out;
  out.verify.padding_rows = padding;
  VerifyCall padding_tasks;
  for (size_t i = 0; i < variants_.size(); ++i) {
    PoolPolicy copy = variants_[i];
    std::vector<VerifyOp> ops;
    for (const VerifyOp& op : batch) {
      if (copy.live(op.request).discarded) continue;  // not the device's variant for it
      VerifyOp prepared = op;
      prepared.accepted = most;  // what the task reads and writes does not depend on its count
      if (op.snapshot) {         // inside the step only for the length this variant gives
        const int64_t index = op.snapshot->length - copy.live(op.request).length - 1;
        if (index < 0 || index >= most) prepared.snapshot.reset();
      }
      ops.push_back(prepared);
    }
    PoolPolicy::StepPlans parts;
    try {
      parts = decode ? copy.decode_parts(ops, padding) : copy.verify_parts(ops, padding);
    } catch (const InputError& e) {
      SPECSTATE_ASSERT(false, (std::string("an overlap variant refuses what the synchronous "
                                           "table accepts: ") +
                               e.what())
                                  .c_str());
    }
    auto guard = [&](uint64_t r) -> std::optional<Guard> {
      if (r == kPaddingRequest) return std::nullopt;  // kept once, after the entries
      return variant_guard(r, i);
    };
    append_selected(out.before_verify, std::move(parts.before_verify), guard);
    append_selected(out.after_verify, std::move(parts.after_verify), guard);
    out.verify.mode = parts.verify.mode;
    for (size_t t = 0; t < parts.verify.tasks.size(); ++t) {
      const uint64_t r = parts.verify.requests[t];
      if (r == kPaddingRequest && i == 0) padding_tasks.add(parts.verify.tasks[t], r);
      const std::optional<Guard> g = guard(r);
      if (!g) continue;
      VerifyTask task = parts.verify.tasks[t];
      task.guard = *g;
      out.verify.add(task, r);
    }
  }
  decisions_->entry_tasks(out.verify, batch, view());
  for (VerifyTask& pad : padding_tasks.tasks) {
    decisions_->padding_task(pad, batch, decode, out.verify.mode, view());
    out.verify.add(pad, kPaddingRequest);
  }
  return out;
}

HostView HostScheduler::view() const {
  const bool lagged = overlap() && batch_rows_.size() == size_t(schedule_.depth);
  return {truth_, published_, in_flight_ops_,
          lagged ? std::span<const int32_t>(batch_rows_.front()) : std::span<const int32_t>()};
}

// For each entry, the task of it the device runs: its guard passes the count the device holds.
std::vector<int32_t> HostScheduler::running_tasks(std::span<const VerifyOp> batch,
                                                  const VerifyCall& verify) const {
  auto device_count = [&](int32_t req_row) {
    const auto it = published_.find(req_row);
    return it == published_.end() ? 0 : it->second.second;
  };
  std::vector<int32_t> tasks;
  for (const VerifyOp& op : batch) {
    int32_t index = -1;
    for (size_t t = 0; t < verify.tasks.size() && index < 0; ++t) {
      const Guard& g = verify.tasks[t].guard;
      if (verify.requests[t] == op.request && (g.is_none() || g.count == device_count(g.req_row)))
        index = int32_t(t);
    }
    SPECSTATE_ASSERT(index >= 0, "the device runs one task of every entry");
    tasks.push_back(index);
  }
  return tasks;
}

Plan HostScheduler::step(std::span<const VerifyOp> batch, int32_t padding, bool decode) {
  Plan truth_plan = decode ? truth_.decode(batch, padding) : truth_.verify(batch, padding);
  batch_tasks_.clear();
  if (!overlap()) {
    for (size_t k = 0; k < batch.size(); ++k)
      batch_tasks_.push_back(int32_t(k));
    return truth_plan;
  }
  // 0. A request of an in-flight step that stays in flight after this step is prepared: the host
  //    waits for the steps up to that one, so that each request has at most one unknown count.
  while (must_wait(batch))
    resolve_oldest({}, decode);  // learnt while waiting, before this step is prepared
  // 1. Everything before the step's own acceptance, on every variant.
  Prepared prepared = prepare(batch, padding, decode);
  batch_tasks_ = running_tasks(batch, prepared.verify);

  // 2. The host applies the oldest in-flight step's counts now that this step is prepared, once
  //    `depth` steps are in flight.
  if (in_flight_.size() == size_t(schedule_.depth)) resolve_oldest(batch, decode);
  std::vector<PoolPolicy> bases = std::move(variants_);
  for (PoolPolicy& base : bases)
    base.compact_table();  // before its copies, which then share one base
  std::map<uint64_t, int32_t> req_rows;
  AcceptCall accept;
  for (const VerifyOp& op : batch) {
    const int32_t req_row = bases.front().live(op.request).req_row;
    req_rows[op.request] = req_row;
    accept.counts.push_back({req_row, op.accepted});
  }

  // 3. What depends on this step's own counts, once per count, guarded on the count the step
  //    publishes; the same runs give the host's table for each count. These calls read only the
  //    rows and slots this step wrote (commits), never an in-flight step's results, so they are
  //    planned on the resolved tables: variant w of the steps left in flight takes count w here.
  const int32_t T = layout().config.tokens_per_verify;
  std::vector<int32_t> counts = {1};  // a decode accepts its one token
  if (!decode || bases.size() > 1) {
    counts.clear();
    for (int32_t w = 0; w <= T; ++w)
      counts.push_back(w);
  }
  Plan after_accept;
  std::vector<PoolPolicy> next;
  for (size_t i = 0; i < counts.size(); ++i) {
    const int32_t w = decode ? 1 : counts[i];
    PoolPolicy copy = bases[bases.size() > 1 ? i : 0];
    std::vector<VerifyOp> ops(batch.begin(), batch.end());
    for (VerifyOp& op : ops) {
      op.accepted = w;
      op.snapshot.reset();  // snapshots were planned before the acceptance
    }
    PoolPolicy::StepPlans parts =
        decode ? copy.decode_parts(ops, padding) : copy.verify_parts(ops, padding);
    copy.note_snapshots(batch);  // planned before the acceptance, written all the same
    if (!decode || i == 0) {     // a decode's calls are the same in every variant
      append_selected(after_accept, std::move(parts.after_accept), [&](uint64_t r) {
        return decode ? Guard{} : Guard{req_rows.at(r), w};
      });
    }
    next.push_back(std::move(copy));
  }
  decisions_->commit_rows(after_accept, batch, view());

  Plan plan = decisions_->writes_landing_now();
  decisions_->hold_writes(batch, prepared.verify);
  auto append = [&](Plan& part) { std::move(part.begin(), part.end(), std::back_inserter(plan)); };
  append(prepared.before_verify);
  const bool early_snapshots = decisions_->snapshots_before_verify();
  if (early_snapshots) append(prepared.after_verify);
  plan.push_back(std::move(prepared.verify));
  if (!early_snapshots) append(prepared.after_verify);
  plan.push_back(std::move(accept));
  append(after_accept);

  for (const VerifyOp& op : batch)
    published_[req_rows.at(op.request)] = {op.request, op.accepted};
  std::vector<int32_t>& rows = batch_rows_.emplace_back();
  for (const VerifyOp& op : batch)
    rows.push_back(truth_.live(op.request).working_row);
  if (batch_rows_.size() > size_t(schedule_.depth)) batch_rows_.pop_front();
  in_flight_.push_back(InFlight{{batch.begin(), batch.end()}, decode, std::move(req_rows)});
  refresh_in_flight_ops();
  counts_ = std::move(counts);
  variants_ = std::move(next);
  return plan;
}

}  // namespace specstate
