#include "sim/simulator.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>

#include "backends/registry.h"
#include "core/errors.h"
#include "core/strategy/host_scheduler.h"
#include "core/strategy/plan_access.h"
#include "core/strategy/pool_policy.h"
#include "core/trace/format.h"
#include "sim/storage.h"

namespace specstate::sim {
namespace {

constexpr size_t kMaxElementDiffs = 4;

// The first elements where two states differ, and the map of where they do.
void set_difference(Divergence& d, const RowBytes& a, const RowBytes& b, const PoolShape& shape) {
  d.elements = diff_states(a, b, shape, kMaxElementDiffs);
  d.map = diff_map(a, b, shape);
}

std::string describe(const trace::Event& event) {
  std::ostringstream os;
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, trace::Extend>) {
          os << "extend request " << e.request << " (" << e.tokens << " tokens)";
        } else if constexpr (std::is_same_v<E, trace::Verify>) {
          os << "verify [";
          for (size_t i = 0; i < e.batch.size(); ++i) {
            os << (i ? ", " : "") << "request " << e.batch[i].request
               << " a=" << e.batch[i].accepted;
          }
          os << "]";
          if (e.padding) os << " + " << e.padding << " padding";
        } else if constexpr (std::is_same_v<E, trace::Decode>) {
          os << "decode [";
          for (size_t i = 0; i < e.batch.size(); ++i)
            os << (i ? ", " : "") << "request " << e.batch[i].request;
          os << "]";
          if (e.padding) os << " + " << e.padding << " padding";
        } else if constexpr (std::is_same_v<E, trace::Retract>) {
          os << "retract request " << e.request;
        } else if constexpr (std::is_same_v<E, trace::Resume>) {
          os << "resume request " << e.request << " into row " << e.working_row;
        } else if constexpr (std::is_same_v<E, trace::Finish>) {
          os << "finish request " << e.request;
        } else if constexpr (std::is_same_v<E, trace::Offload>) {
          os << "offload row " << e.row << " to host slot " << e.slot;
        } else if constexpr (std::is_same_v<E, trace::Restore>) {
          os << "restore host slot " << e.slot << " into row " << e.row;
        } else if constexpr (std::is_same_v<E, trace::Handoff>) {
          os << "handoff of request " << e.request << " (" << e.length
             << " tokens from the prefill instance) into row " << e.row;
        } else {
          os << "check";
        }
      },
      event);
  return os.str();
}

// (request, track row) of every snapshot the event writes; a restore's row has no request.
std::vector<std::pair<std::optional<uint64_t>, int32_t>> snapshot_rows(const trace::Event& event) {
  std::vector<std::pair<std::optional<uint64_t>, int32_t>> rows;
  if (const auto* e = std::get_if<trace::Extend>(&event)) {
    for (const auto& t : e->track)
      rows.push_back({e->request, t.row});
  } else if (const auto* v = std::get_if<trace::Verify>(&event)) {
    for (const auto& entry : v->batch) {
      if (entry.track) rows.push_back({entry.request, entry.track->row});
    }
  } else if (const auto* d = std::get_if<trace::Decode>(&event)) {
    for (const auto& entry : d->batch) {
      if (entry.track) rows.push_back({entry.request, entry.track->row});
    }
  } else if (const auto* r = std::get_if<trace::Restore>(&event)) {
    rows.push_back({std::nullopt, r->row});
  } else if (const auto* h = std::get_if<trace::Handoff>(&event)) {
    rows.push_back({h->request, h->row});
  }
  return rows;
}

std::vector<uint64_t> batch_requests(const trace::Event& event) {
  std::vector<uint64_t> out;
  if (const auto* v = std::get_if<trace::Verify>(&event)) {
    for (const auto& e : v->batch)
      out.push_back(e.request);
  } else if (const auto* d = std::get_if<trace::Decode>(&event)) {
    for (const auto& e : d->batch)
      out.push_back(e.request);
  }
  return out;
}

// The requests whose live state an event changes (or, for a retract, whose saved state it
// writes); a check names none and compares everything.
std::vector<uint64_t> event_requests(const trace::Event& event) {
  std::vector<uint64_t> out = batch_requests(event);
  if (const auto* e = std::get_if<trace::Extend>(&event)) out.push_back(e->request);
  if (const auto* r = std::get_if<trace::Retract>(&event)) out.push_back(r->request);
  if (const auto* r = std::get_if<trace::Resume>(&event)) out.push_back(r->request);
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The rows `plan` writes (unsorted, with repeats).
std::vector<int32_t> rows_written(const Plan& plan) {
  std::vector<int32_t> rows;
  for (const PlanCall& call : plan) {
    for_each_access(call, [&](const PlanAccess& a) {
      if (a.kind == PlanAccess::kWrite && a.unit == PlanAccess::kRow) rows.push_back(a.index);
    });
  }
  return rows;
}

// What one lane's run of an event produced besides its state: a refusal or a bug found.
struct LaneOutcome {
  std::optional<std::string> input_error;  // the policy refused the event
  std::optional<std::string> ownership;    // a write the protocol does not allow
  std::optional<std::string> refused;      // the backend refused a faulty lane's plan
  std::exception_ptr error;                // anything else: rethrown in lane order
};

class Replayer {
 public:
  Replayer(const trace::Trace& trace, const SimOptions& options)
      : trace_(trace), options_(options), start_(std::chrono::steady_clock::now()) {
    const PoolConfig config = pool_config(trace.header, options.layers, options.ring);
    stored_ = options.storage;
    if (stored_.empty()) {
      stored_.resize(options.lanes.size());
      tbb::parallel_for(size_t{0}, options.lanes.size(), [&](size_t i) {
        stored_[i] = lane_storage(trace, options.lanes[i], config);
      });
    }
    SPECSTATE_ASSERT(stored_.size() == options.lanes.size(), "one storage per lane");
    const auto sender = std::make_shared<HandoffSender>();  // one prefill per handoff, all lanes
    for (size_t i = 0; i < options.lanes.size(); ++i) {
      lanes_.push_back(
          std::make_unique<Lane>(options.lanes[i], config, stored_[i], trace.header.seed));
      lanes_.back()->share_sender(sender);
    }
    written_.resize(lanes_.size());
    progress_.events_total = trace.events.size();
    for (const trace::Line& line : trace.events) {
      progress_.work_total += event_tokens(line.event, config.tokens_per_verify) *
                              config.geometry.layers * int64_t(lanes_.size());
    }
  }

  ReplayReport run() {
    for (const trace::Line& line : trace_.events) {
      line_ = &line;
      step(line);
      ++report_.events;
      if (report_.divergence) break;
      report_progress(line);
    }
    if (!report_.divergence) {
      ++report_.compares;
      timed_compare([&] { compare_everything(); });
      if (!report_.divergence) final_digests();
    }
    report_.agree = !report_.divergence;
    for (const auto& lane : lanes_)
      report_.lanes.push_back(
          {lane->spec().name(), lane->seconds(), lane->backend().allocations()});
    report_.seconds = seconds_since(start_);
    return std::move(report_);
  }

 private:
  void report_progress(const trace::Line& line) {
    progress_.events_done = report_.events;
    progress_.work_done += event_tokens(line.event, lanes_[0]->layout().config.tokens_per_verify) *
                           lanes_[0]->layout().shape.geometry.layers * int64_t(lanes_.size());
    progress_.seconds = seconds_since(start_);
    if (options_.progress) options_.progress(progress_);
  }

  // One lane's share of an event: its plan, the ownership check, the run.
  LaneOutcome run_lane(size_t lane_index, std::vector<int32_t>& written, const trace::Line& line) {
    Lane& lane = *lanes_[lane_index];
    LaneOutcome out;
    try {
      LanePlan planned;
      try {
        planned = lane.plan(line.event, options_.check_ownership);
      } catch (const InputError& e) {
        out.input_error = e.what();
        return out;
      }
      if (options_.observe) options_.observe(lane_index, line, lane, planned.plan);
      if ((out.ownership = planned.ownership)) return out;
      written = rows_written(planned.plan);
      try {
        lane.run(planned.plan);
      } catch (const std::invalid_argument& e) {
        // The backend refused a malformed call (tasks racing on a row or slot, a row out of
        // range). From a lane with an injected fault that is the bug showing; from a clean lane
        // it is a bug in specstate, reported with its place in the trace.
        if (lane.spec().fault == Fault::kNone) {
          throw std::logic_error(trace_.file + ":" + std::to_string(line.line) + ": lane " +
                                 lane.spec().name() + ": " + e.what());
        }
        out.refused = e.what();
      }
    } catch (...) {
      out.error = std::current_exception();
    }
    return out;
  }

  void step(const trace::Line& line) {
    std::vector<LaneOutcome> outcomes(lanes_.size());
    tbb::parallel_for(size_t{0}, lanes_.size(),
                      [&](size_t i) { outcomes[i] = run_lane(i, written_[i], line); });
    // Outcomes in lane order, so that the report does not depend on which thread ran what.
    for (size_t i = 0; i < lanes_.size(); ++i) {
      const LaneOutcome& o = outcomes[i];
      if (o.error) std::rethrow_exception(o.error);
      if (o.input_error) throw InputError(trace_.file, line.line, *o.input_error);
      if (o.ownership) {
        diverge("ownership", lanes_[i]->spec().name(), "", *o.ownership);
        return;
      }
      if (o.refused) {
        diverge("backend refused the plan", lanes_[i]->spec().name(), "", *o.refused);
        return;
      }
    }
    if (options_.after_event) {
      for (size_t i = 0; i < lanes_.size(); ++i)
        options_.after_event(i, line, lanes_[i]->backend());
    }
    const bool at_check = std::holds_alternative<trace::Check>(line.event);
    if (options_.compare_at == CompareAt::kChecks && !at_check) return;
    ++report_.compares;
    timed_compare([&] {
      if (compare_outputs(line.event) || compare_snapshots(line.event)) return;
      if (const auto* o = std::get_if<trace::Offload>(&line.event); o && compare_slot(o->slot))
        return;
      if (at_check) {
        compare_everything();
        return;
      }
      if (compare_requests(event_requests(line.event))) return;
      compare_physical_rows(/*every_row=*/false);
    });
  }

  template <class F>
  void timed_compare(F&& f) {
    const auto start = std::chrono::steady_clock::now();
    f();
    report_.compare_seconds += seconds_since(start);
  }

  Divergence& diverge(const std::string& what, const std::string& a, const std::string& b,
                      const std::string& detail = "") {
    Divergence d;
    d.line = line_ ? line_->line : 0;
    d.event = line_ ? describe(line_->event) : "end of trace";
    d.what = what + (detail.empty() ? "" : ": " + detail);
    d.lane_a = a;
    d.lane_b = b;
    report_.divergence = d;
    return *report_.divergence;
  }

  // The outputs of each entry of the step's batch, from the task of it that ran, in batch order;
  // a discarded entry's are left out (its results are thrown away).
  static std::vector<num::bf16_bits> batch_outputs(const Lane& lane, const trace::Event& event,
                                                   const VerifyOutputs& out, int64_t per_task) {
    const std::vector<int32_t>& tasks = lane.host().batch_tasks();
    const auto* verify = std::get_if<trace::Verify>(&event);
    std::vector<num::bf16_bits> values;
    for (size_t k = 0; k < tasks.size(); ++k) {
      if (verify && verify->batch[k].accepted == 0) continue;
      const auto first = out.values.begin() + int64_t(tasks[k]) * per_task;
      values.insert(values.end(), first, first + per_task);
    }
    return values;
  }

  bool compare_outputs(const trace::Event& event) {
    if (!std::holds_alternative<trace::Verify>(event) &&
        !std::holds_alternative<trace::Decode>(event))
      return false;
    const std::vector<uint64_t> requests = batch_requests(event);
    std::vector<uint64_t> compared;  // the requests of the compared entries, in order
    const auto* verify = std::get_if<trace::Verify>(&event);
    for (size_t k = 0; k < requests.size(); ++k) {
      if (!verify || verify->batch[k].accepted != 0) compared.push_back(requests[k]);
    }
    const ModelGeometry& g = lanes_[0]->layout().shape.geometry;
    VerifyOutputs ref = lanes_[0]->backend().read_outputs();
    const int64_t per_task = int64_t{ref.tokens} * g.layers * g.num_v_heads * g.head_v_dim;
    ref.values = batch_outputs(*lanes_[0], event, ref, per_task);
    ref.tasks = int32_t(compared.size());
    for (size_t i = 1; i < lanes_.size(); ++i) {
      VerifyOutputs got = lanes_[i]->backend().read_outputs();
      if (got.tokens != ref.tokens) {
        Divergence& d =
            diverge("per-token outputs", lanes_[0]->spec().name(), lanes_[i]->spec().name());
        d.what += ": " + std::to_string(ref.tokens) + " vs " + std::to_string(got.tokens) +
                  " tokens per task";
        return true;
      }
      got.values = batch_outputs(*lanes_[i], event, got, per_task);
      got.tasks = ref.tasks;
      if (got.values == ref.values) continue;
      Divergence& d =
          diverge("per-token outputs", lanes_[0]->spec().name(), lanes_[i]->spec().name());
      d.elements = diff_outputs(ref, got, g, kMaxElementDiffs);
      const int64_t task = d.elements.empty() ? -1 : d.elements[0].element / per_task;
      if (task >= 0 && task < int64_t(compared.size())) {
        d.request = compared[size_t(task)];
        d.row_a = live_row(*lanes_[0], *d.request);
        d.row_b = live_row(*lanes_[i], *d.request);
      }
      return true;
    }
    return false;
  }

  // The SSM row of `request`'s live state in `lane` after the event (for reports).
  static int32_t live_row(const Lane& lane, uint64_t request) {
    return lane.policy().has(request) ? lane.policy().live(request).loc.ssm_row : -1;
  }

  // Digests of `lane`'s states at `locs` (rows every lane names alike: snapshot rows).
  static std::vector<uint64_t> digests(Lane& lane, const std::vector<StateLoc>& locs) {
    std::vector<uint64_t> out;
    for (const StateLoc& loc : locs)
      out.push_back(lane.backend().digest_state(loc));
    return out;
  }

  // Records a state divergence between lane 0 at `ref` and lane i at `loc`, with the elements.
  void state_divergence(const std::string& what, size_t i, const StateLoc& ref, const StateLoc& loc,
                        std::optional<uint64_t> request) {
    Divergence& d = diverge(what, lanes_[0]->spec().name(), lanes_[i]->spec().name());
    if (request) {
      d.request = *request;
    }
    d.row_a = ref.ssm_row;
    d.row_b = loc.ssm_row;
    set_difference(d, lanes_[0]->backend().read_state(ref), lanes_[i]->backend().read_state(loc),
                   lanes_[0]->layout().shape);
  }

  bool compare_snapshots(const trace::Event& event) {
    const auto rows = snapshot_rows(event);
    if (rows.empty()) return false;
    std::vector<StateLoc> locs;
    for (const auto& [request, row] : rows)
      locs.push_back(StateLoc::at(row));
    std::vector<std::vector<uint64_t>> d(lanes_.size());
    tbb::parallel_for(size_t{0}, lanes_.size(),
                      [&](size_t i) { d[i] = digests(*lanes_[i], locs); });
    for (size_t k = 0; k < rows.size(); ++k) {
      for (size_t i = 1; i < lanes_.size(); ++i) {
        if (d[i][k] == d[0][k]) continue;
        state_divergence("snapshot row", i, locs[k], locs[k], rows[k].first);
        return true;
      }
    }
    return false;
  }

  // The live state of each running request, the saved state of each retracted one, in every
  // lane against lane 0.
  bool compare_requests(std::vector<uint64_t> requests) {
    std::sort(requests.begin(), requests.end());
    requests.erase(std::unique(requests.begin(), requests.end()), requests.end());
    std::vector<uint64_t> running;
    for (uint64_t r : requests) {
      if (!lanes_[0]->policy().has(r)) continue;            // finished
      if (lanes_[0]->policy().live(r).discarded) continue;  // finishes next; nothing to keep
      if (lanes_[0]->policy().live(r).retracted) {
        if (compare_swapped_out(r)) return true;
      } else {
        running.push_back(r);
      }
    }
    if (running.empty()) return false;
    std::vector<std::vector<uint64_t>> d(lanes_.size());
    tbb::parallel_for(size_t{0}, lanes_.size(), [&](size_t i) {
      for (uint64_t r : running)
        d[i].push_back(lanes_[i]->digest_live(r));
    });
    for (size_t k = 0; k < running.size(); ++k) {
      for (size_t i = 1; i < lanes_.size(); ++i) {
        if (d[i][k] == d[0][k]) continue;
        // Materialise both states (digest_live need not have written an inspection row).
        const StateLoc ref = lanes_[0]->readable(running[k]);
        const StateLoc loc = lanes_[i]->readable(running[k]);
        state_divergence("live state", i, ref, loc, running[k]);
        return true;
      }
    }
    return false;
  }

  // A retracted request's saved state must be identical in every lane (and saved at all).
  bool compare_swapped_out(uint64_t request) {
    const Lane& ref = *lanes_[0];
    const auto saved = ref.swap().digests.find(request);
    const bool ref_saved = saved != ref.swap().digests.end();
    for (size_t i = 1; i < lanes_.size(); ++i) {
      const Lane& lane = *lanes_[i];
      const auto got = lane.swap().digests.find(request);
      const bool lane_saved = got != lane.swap().digests.end();
      if (ref_saved == lane_saved && (!ref_saved || got->second == saved->second)) continue;
      Divergence& d =
          diverge(ref_saved == lane_saved ? "swapped-out state" : "missing swapped-out state",
                  ref.spec().name(), lane.spec().name());
      d.request = request;
      d.row_a = saved_row(ref, request);
      d.row_b = saved_row(lane, request);
      if (ref_saved && lane_saved) {
        set_difference(d, ref.swap().saved.at(request), lane.swap().saved.at(request),
                       ref.layout().shape);
      }
      return true;
    }
    return false;
  }

  // A host slot must hold the same state in every lane (and be filled in all or none).
  bool compare_slot(int32_t slot) {
    const Lane& ref = *lanes_[0];
    const auto saved = ref.swap().slot_digests.find(slot);
    const bool ref_saved = saved != ref.swap().slot_digests.end();
    for (size_t i = 1; i < lanes_.size(); ++i) {
      const Lane& lane = *lanes_[i];
      const auto got = lane.swap().slot_digests.find(slot);
      const bool lane_saved = got != lane.swap().slot_digests.end();
      if (ref_saved == lane_saved && (!ref_saved || got->second == saved->second)) continue;
      Divergence& d =
          diverge("host slot " + std::to_string(slot), ref.spec().name(), lane.spec().name(),
                  ref_saved == lane_saved ? "" : "filled in one lane only");
      if (ref_saved && lane_saved) {
        set_difference(d, ref.swap().slots.at(slot), lane.swap().slots.at(slot),
                       ref.layout().shape);
      }
      return true;
    }
    return false;
  }

  bool compare_all_slots() {
    std::vector<int32_t> slots;
    for (const auto& lane : lanes_)
      for (const auto& [slot, digest] : lane->swap().slot_digests)
        slots.push_back(slot);
    std::sort(slots.begin(), slots.end());
    slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
    for (int32_t slot : slots)
      if (compare_slot(slot)) return true;
    return false;
  }

  static int32_t saved_row(const Lane& lane, uint64_t request) {
    const auto it = lane.swap().saved_from.find(request);
    return it == lane.swap().saved_from.end() ? -1 : it->second;
  }

  // Every request, running or swapped out, and every stored row: at checks and at the end.
  void compare_everything() {
    ++report_.full_compares;
    std::vector<uint64_t> requests;
    for (const auto& [request, live] : lanes_[0]->policy().table())
      requests.push_back(request);
    if (compare_requests(requests) || compare_all_slots()) return;
    compare_physical_rows(/*every_row=*/true);
  }

  // Lanes running the same strategy on different backends must agree on every row's bytes: the
  // rows the event wrote in either lane, or every row either stores. Not the inspection row: it
  // is no request's state, only where a comparison may replay one to read it, and digest_live
  // leaves it unwritten on the CPU backend and written on the others.
  void compare_physical_rows(bool every_row) {
    for (size_t i = 0; i < lanes_.size(); ++i) {
      for (size_t j = i + 1; j < lanes_.size(); ++j) {
        Lane& a = *lanes_[i];
        Lane& b = *lanes_[j];
        if (a.spec().strategy != b.spec().strategy || a.spec().backend == b.spec().backend)
          continue;
        std::vector<int32_t> rows = every_row ? stored_[i].rows : written_[i];
        rows.insert(rows.end(), every_row ? stored_[j].rows.begin() : written_[j].begin(),
                    every_row ? stored_[j].rows.end() : written_[j].end());
        if (a.layout().inspect_rows > 0) std::erase(rows, a.layout().inspect_row());
        std::sort(rows.begin(), rows.end());
        rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
        std::vector<uint64_t> da, db;
        tbb::parallel_invoke(
            [&] {
              for (int32_t row : rows)
                da.push_back(a.backend().digest_row(row));
            },
            [&] {
              for (int32_t row : rows)
                db.push_back(b.backend().digest_row(row));
            });
        for (size_t k = 0; k < rows.size(); ++k) {
          if (da[k] == db[k]) continue;
          Divergence& d = diverge("physical row", a.spec().name(), b.spec().name());
          d.row_a = d.row_b = rows[k];
          set_difference(d, a.backend().read_row(rows[k]), b.backend().read_row(rows[k]),
                         a.layout().shape);
          return;
        }
      }
    }
  }

  void final_digests() {
    Lane& ref = *lanes_[0];
    for (const auto& [request, live] : ref.policy().table()) {
      if (live.retracted || live.discarded) continue;
      report_.final_digests.push_back({request, ref.digest_live(request)});
    }
  }

  const trace::Trace& trace_;
  const SimOptions& options_;
  std::chrono::steady_clock::time_point start_;
  std::vector<StoredRows> stored_;  // per lane
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::vector<std::vector<int32_t>> written_;  // per lane: rows the current event's plans wrote
  const trace::Line* line_ = nullptr;
  Progress progress_;
  ReplayReport report_;
};

}  // namespace

std::string Divergence::message() const {
  std::ostringstream os;
  os << "line " << line << ": " << event << "\n";
  os << "  " << what;
  if (request) os << " of request " << *request;
  os << "\n";
  if (!lane_b.empty()) {
    os << "  lanes: " << lane_a;
    if (row_a >= 0) os << " (row " << row_a << ")";
    os << " vs " << lane_b;
    if (row_b >= 0) os << " (row " << row_b << ")";
    os << "\n";
  } else {
    os << "  lane: " << lane_a << "\n";
  }
  for (const ElementDiff& e : elements) {
    os << "  layer " << e.layer << " " << e.tensor << " " << e.index << ": " << e.a.text() << " vs "
       << e.b.text() << "\n";
  }
  return os.str();
}

std::string Divergence::report(const std::string& file) const {
  const std::string m = message();
  return file + ":" + m.substr(std::string("line ").size());
}

PoolConfig pool_config(const trace::Header& header, const std::vector<int32_t>& layers,
                       const RingParams& ring) {
  PoolConfig c;
  c.geometry = with_layers(trace::header_geometry(header), layers);
  c.ssm_dtype = header.ssm_dtype;
  c.tokens_per_verify = header.tokens_per_verify();
  c.pool_rows = header.pool_rows;
  c.max_requests = header.max_requests;
  c.ring = ring;
  c.tree_nodes = header.tree_nodes;
  c.page_size = header.page_size;
  c.prefill_tp = header.prefill_tp;
  return c;
}

int64_t event_tokens(const trace::Event& event, int32_t tokens_per_verify) {
  if (const auto* e = std::get_if<trace::Extend>(&event)) return e->tokens;
  if (const auto* v = std::get_if<trace::Verify>(&event)) {
    int64_t tokens = 0;
    for (const trace::VerifyEntry& e : v->batch)
      tokens += e.tree ? e.tree->nodes() : tokens_per_verify;
    return tokens;
  }
  if (const auto* d = std::get_if<trace::Decode>(&event)) return int64_t(d->batch.size());
  return 0;
}

ReplayReport replay(const trace::Trace& trace, const SimOptions& options) {
  if (options.lanes.empty()) throw InputError("replay needs at least one lane");
  return Replayer(trace, options).run();
}

}  // namespace specstate::sim
