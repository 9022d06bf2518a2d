#include "sim/minimize.h"

#include <algorithm>
#include <chrono>
#include <sstream>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

#include "core/errors.h"
#include "core/trace/format.h"
#include "core/trace/tracker.h"

namespace specstate::sim {
namespace {

using trace::Event;
using trace::Line;
using trace::RequestInfo;
using trace::RequestStatus;
using trace::RowUse;
using trace::ScheduleTracker;
using trace::Trace;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- repair -------------------------------------------------------------------------------

// Running and free to be named by any event (not waiting for its finish after a discarded entry).
bool is_running(const RequestInfo* info) {
  return info != nullptr && info->status == RequestStatus::kRunning && info->discarded_line == 0;
}

bool holds_snapshot(const ScheduleTracker& t, int32_t row, int64_t length) {
  const RowUse use = t.row(row);
  return use.kind == RowUse::Kind::kCache && use.cached_length == length;
}

// Whether a track write still lands on a page boundary the request crosses from `old_len` to
// `new_len` tokens, outside every working row (`own` is the request's). Its other rules do not
// change when something else is removed.
bool track_fits(const ScheduleTracker& t, const trace::TrackWrite& w, int64_t old_len,
                int64_t new_len, int32_t own) {
  return w.length > old_len && w.length <= new_len && w.row != own &&
         t.row(w.row).kind != RowUse::Kind::kWorking;
}

// A prefix hit turned into a prefill of the prefix, to the same length (unless that is more
// tokens than one extend may bring).
void prefill_prefix(trace::Extend& e) {
  if (e.prefix_len + e.tokens > trace::kMaxTokens) return;
  e.tokens += int32_t(e.prefix_len);
  e.prefix_len = 0;
  e.cow_src_row = -1;
}

std::optional<Event> fix(const ScheduleTracker& t, trace::Extend e) {
  const RequestInfo* info = t.request(e.request);
  if (info != nullptr) {
    if (!is_running(info)) return std::nullopt;
    if (e.req_row != info->req_row) e.req_row = -1;
    if (e.working_row != info->working_row) e.working_row = -1;
    e.prefix_len = 0;
    e.cow_src_row = -1;
  } else if (e.req_row < 0 || e.working_row < 0) {
    return std::nullopt;  // its first extend is gone
  } else if (e.prefix_len > 0 && !holds_snapshot(t, e.cow_src_row, e.prefix_len)) {
    prefill_prefix(e);  // the snapshot went with what was removed
  }
  const int64_t old_len = info != nullptr ? info->length : e.prefix_len;
  const int32_t own = info != nullptr ? info->working_row : e.working_row;
  std::erase_if(e.track, [&](const trace::TrackWrite& w) {
    return !track_fits(t, w, old_len, old_len + e.tokens, own);
  });
  return e;
}

int32_t accepted_of(const trace::VerifyEntry& e) {
  return e.accepted;
}
int32_t accepted_of(const trace::DecodeEntry&) {
  return 1;
}

template <class Step>
std::optional<Event> fix_step(const ScheduleTracker& t, Step step) {
  decltype(step.batch) kept;
  for (auto& entry : step.batch) {
    const RequestInfo* info = t.request(entry.request);
    if (!is_running(info)) continue;
    if (entry.track && !track_fits(t, *entry.track, info->length, info->length + accepted_of(entry),
                                   info->working_row)) {
      entry.track.reset();
    }
    kept.push_back(std::move(entry));
  }
  if (kept.empty()) return std::nullopt;
  step.batch = std::move(kept);
  return step;
}

std::optional<Event> fix(const ScheduleTracker& t, trace::Verify v) {
  return fix_step(t, v);
}
std::optional<Event> fix(const ScheduleTracker& t, trace::Decode d) {
  return fix_step(t, d);
}

std::optional<Event> fix(const ScheduleTracker& t, trace::Retract r) {
  if (!is_running(t.request(r.request))) return std::nullopt;
  return r;
}

std::optional<Event> fix(const ScheduleTracker& t, trace::Resume r) {
  const RequestInfo* info = t.request(r.request);
  if (info == nullptr || info->status != RequestStatus::kRetracted) return std::nullopt;
  return r;
}

std::optional<Event> fix(const ScheduleTracker& t, trace::Finish f) {
  const RequestInfo* info = t.request(f.request);
  if (info == nullptr || info->status == RequestStatus::kFinished) return std::nullopt;
  return f;
}

std::optional<Event> fix(const ScheduleTracker&, trace::Check c) {
  return c;
}

std::optional<Event> fix(const ScheduleTracker& t, trace::Offload o) {
  if (t.row(o.row).kind != trace::RowUse::Kind::kCache) return std::nullopt;
  return o;
}

std::optional<Event> fix(const ScheduleTracker& t, trace::Restore r) {
  if (t.slot_length(r.slot) == nullptr) return std::nullopt;
  if (t.row(r.row).kind == trace::RowUse::Kind::kWorking) return std::nullopt;
  return r;
}

std::optional<Event> fix(const ScheduleTracker& t, trace::Handoff h) {
  if (t.request(h.request) != nullptr) return std::nullopt;
  if (t.row(h.row).kind == trace::RowUse::Kind::kWorking) return std::nullopt;
  return h;
}

// ---- what a trace names -------------------------------------------------------------------

// Calls `row` on every scheduler row `event` names, `req_row` on its request rows and `request`
// on its request ids (absent rows are -1: the callers skip them).
template <class E, class Row, class ReqRow, class Request>
void visit_names(E& event, Row&& row, ReqRow&& req_row, Request&& request) {
  std::visit(
      [&](auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, trace::Extend>) {
          request(e.request);
          req_row(e.req_row);
          row(e.working_row);
          row(e.cow_src_row);
          for (auto& w : e.track)
            row(w.row);
        } else if constexpr (std::is_same_v<T, trace::Verify> || std::is_same_v<T, trace::Decode>) {
          for (auto& entry : e.batch) {
            request(entry.request);
            if (entry.track) row(entry.track->row);
          }
        } else if constexpr (std::is_same_v<T, trace::Resume>) {
          request(e.request);
          req_row(e.req_row);
          row(e.working_row);
        } else if constexpr (std::is_same_v<T, trace::Offload> ||
                             std::is_same_v<T, trace::Restore>) {
          row(e.row);
        } else if constexpr (std::is_same_v<T, trace::Handoff>) {
          request(e.request);
          row(e.row);
        } else if constexpr (!std::is_same_v<T, trace::Check>) {
          request(e.request);
        }
      },
      event);
}

// Request ids in order of first appearance.
std::vector<uint64_t> request_ids(const Trace& t) {
  std::vector<uint64_t> ids;
  std::unordered_set<uint64_t> seen;
  for (const Line& line : t.events) {
    visit_names(
        line.event, [](int32_t) {}, [](int32_t) {},
        [&](uint64_t id) {
          if (seen.insert(id).second) ids.push_back(id);
        });
  }
  return ids;
}

// Calls `f` on the batch of a verify or decode event (a vector of VerifyEntry or DecodeEntry,
// whose common fields are request and track); not on other events.
template <class E, class F>
void with_batch(E& event, F&& f) {
  std::visit(
      [&](auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, trace::Verify> || std::is_same_v<T, trace::Decode>)
          f(e.batch);
      },
      event);
}

// Batch entries of every step, counted in trace order.
size_t entry_count(const Trace& t) {
  size_t n = 0;
  for (const Line& line : t.events)
    with_batch(line.event, [&](const auto& batch) { n += batch.size(); });
  return n;
}

// ---- candidates ---------------------------------------------------------------------------

Trace with_events(const Trace& t, std::vector<Line> events) {
  Trace out{t.file, t.header_line, t.header, std::move(events)};
  return out;
}

// The events up to `line` (the divergence's): nothing after it changes what a replay reports.
Trace truncated(const Trace& t, long line) {
  std::vector<Line> events;
  for (const Line& l : t.events) {
    if (l.line <= line) events.push_back(l);
  }
  return with_events(t, std::move(events));
}

Trace without_requests(const Trace& t, const std::unordered_set<uint64_t>& gone) {
  std::vector<Line> events;
  for (Line line : t.events) {
    with_batch(line.event, [&](auto& batch) {
      std::erase_if(batch, [&](const auto& e) { return gone.contains(e.request); });
    });
    bool named = false;
    visit_names(
        line.event, [](int32_t) {}, [](int32_t) {},
        [&](uint64_t id) { named = named || gone.contains(id); });
    if (!named) events.push_back(std::move(line));  // a step left empty: repair() drops it
  }
  return with_events(t, std::move(events));
}

// How removed steps leave their requests: shorter (kDrop), or as long as before, their
// accepted tokens prefilled by the request's latest extend before them (kFold), so that the
// page boundaries later steps cross stay where they were.
enum class Removal : uint8_t { kDrop, kFold };

// Adds `tokens` to the last extend of `request` in `events`, if any and within the limit.
void fold_into_prefill(std::vector<Line>& events, uint64_t request, int32_t tokens) {
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    auto* e = std::get_if<trace::Extend>(&it->event);
    if (e == nullptr || e->request != request) continue;
    if (int64_t(e->tokens) + tokens <= trace::kMaxTokens) e->tokens += tokens;
    return;
  }
}

// Without events [first, last). A removed first extend hands its rows and prefix hit to the
// request's next extend, so that a chunked prefill can lose its first chunk.
Trace without_events(const Trace& t, size_t first, size_t last, Removal how) {
  std::vector<Line> events;
  std::unordered_map<uint64_t, trace::Extend> orphaned;
  for (size_t i = 0; i < t.events.size(); ++i) {
    Line line = t.events[i];
    auto* e = std::get_if<trace::Extend>(&line.event);
    if (i >= first && i < last) {
      if (e != nullptr && e->req_row >= 0) orphaned[e->request] = *e;
      with_batch(line.event, [&](const auto& batch) {
        for (const auto& entry : batch) {
          if (how == Removal::kFold) fold_into_prefill(events, entry.request, accepted_of(entry));
        }
      });
      continue;
    }
    if (e != nullptr && orphaned.contains(e->request)) {
      const trace::Extend& from = orphaned.at(e->request);
      e->req_row = from.req_row;
      e->working_row = from.working_row;
      e->prefix_len = from.prefix_len;
      e->cow_src_row = from.cow_src_row;
      orphaned.erase(e->request);
    }
    events.push_back(std::move(line));
  }
  return with_events(t, std::move(events));
}

// Extend `event` folded into the request's previous event when that is an extend too (one
// chunk of a chunked prefill instead of two, to the same length); nullopt when it is not.
std::optional<Trace> with_chunks_merged(const Trace& t, size_t event) {
  const auto* second = std::get_if<trace::Extend>(&t.events[event].event);
  if (second == nullptr) return std::nullopt;
  for (size_t i = event; i-- > 0;) {
    bool named = false;
    visit_names(
        t.events[i].event, [](int32_t) {}, [](int32_t) {},
        [&](uint64_t id) { named = named || id == second->request; });
    if (!named) continue;
    const auto* first = std::get_if<trace::Extend>(&t.events[i].event);
    if (first == nullptr || int64_t(first->tokens) + second->tokens > trace::kMaxTokens)
      return std::nullopt;
    Trace out = t;
    auto& merged = std::get<trace::Extend>(out.events[i].event);
    merged.tokens += second->tokens;
    merged.track.insert(merged.track.end(), second->track.begin(), second->track.end());
    out.events.erase(out.events.begin() + int64_t(event));
    return out;
  }
  return std::nullopt;
}

// Without batch entries [first, last), counted over every step in trace order.
Trace without_entries(const Trace& t, size_t first, size_t last, Removal how) {
  std::vector<Line> events;
  size_t k = 0;
  auto drop = [&](auto& batch) {
    std::decay_t<decltype(batch)> kept;
    for (auto& entry : batch) {
      if (k < first || k >= last) {
        kept.push_back(std::move(entry));
      } else if (how == Removal::kFold) {
        fold_into_prefill(events, entry.request, accepted_of(entry));
      }
      ++k;
    }
    batch = std::move(kept);
  };
  for (Line line : t.events) {
    with_batch(line.event, drop);
    events.push_back(std::move(line));
  }
  return with_events(t, std::move(events));
}

// Snapshot units, in trace order: each track write, and each prefix hit after its extend's
// track writes.
size_t snapshot_count(const Trace& t) {
  size_t n = 0;
  for (const Line& line : t.events) {
    if (const auto* e = std::get_if<trace::Extend>(&line.event))
      n += e->track.size() + (e->prefix_len > 0 ? 1 : 0);
    with_batch(line.event, [&](const auto& batch) {
      for (const auto& entry : batch)
        n += entry.track ? 1 : 0;
    });
  }
  return n;
}

// Without snapshot units [first, last): track writes dropped, prefix hits prefilled instead.
Trace without_snapshots(const Trace& t, size_t first, size_t last) {
  Trace out = t;
  size_t k = 0;
  auto gone = [&] {  // whether the next unit is removed
    const size_t i = k++;
    return i >= first && i < last;
  };
  auto step_tracks = [&](auto& batch) {
    for (auto& entry : batch) {
      if (entry.track && gone()) entry.track.reset();
    }
  };
  for (Line& line : out.events) {
    if (auto* e = std::get_if<trace::Extend>(&line.event)) {
      std::vector<trace::TrackWrite> kept;
      for (const trace::TrackWrite& w : e->track) {
        if (!gone()) kept.push_back(w);
      }
      e->track = std::move(kept);
      if (e->prefix_len > 0 && gone()) prefill_prefix(*e);
    }
    with_batch(line.event, step_tracks);
  }
  return out;
}

// A number the numbers stage shrinks: a step's padding, an extend's tokens, a verify entry's
// accepted length. Events keep their places while numbers shrink (repair() drops nothing then);
// a cut after the divergence can make one disappear.
struct NumberRef {
  enum Kind : uint8_t { kPadding, kTokens, kAccepted } kind;
  size_t event = 0, entry = 0;
  int32_t least = 0;
};

int32_t* number(Trace& t, const NumberRef& ref) {
  if (ref.event >= t.events.size()) return nullptr;
  Event& e = t.events[ref.event].event;
  if (ref.kind == NumberRef::kTokens) {
    auto* x = std::get_if<trace::Extend>(&e);
    return x != nullptr ? &x->tokens : nullptr;
  }
  if (auto* d = std::get_if<trace::Decode>(&e)) {
    return ref.kind == NumberRef::kPadding ? &d->padding : nullptr;
  }
  auto* v = std::get_if<trace::Verify>(&e);
  if (v == nullptr) return nullptr;
  if (ref.kind == NumberRef::kPadding) return &v->padding;
  return ref.entry < v->batch.size() ? &v->batch[ref.entry].accepted : nullptr;
}

std::vector<NumberRef> numbers(const Trace& t) {
  std::vector<NumberRef> refs;
  for (size_t i = 0; i < t.events.size(); ++i) {
    const Event& e = t.events[i].event;
    if (std::holds_alternative<trace::Extend>(e)) refs.push_back({NumberRef::kTokens, i, 0, 1});
    if (std::holds_alternative<trace::Decode>(e)) refs.push_back({NumberRef::kPadding, i, 0, 0});
    if (const auto* v = std::get_if<trace::Verify>(&e)) {
      refs.push_back({NumberRef::kPadding, i, 0, 0});
      for (size_t k = 0; k < v->batch.size(); ++k) {
        // A discarded entry stays discarded; a tree's accepted length is its path's.
        if (v->batch[k].accepted > 0 && !v->batch[k].tree)
          refs.push_back({NumberRef::kAccepted, i, k, 1});
      }
    }
  }
  return refs;
}

// Extend `event` `delta` tokens shorter, and its request's track writes from it on `delta`
// shorter too: with whole pages cut, its steps cross the same boundaries as before.
Trace with_pages_cut(const Trace& t, size_t event, int32_t delta) {
  Trace out = t;
  auto& cut = std::get<trace::Extend>(out.events[event].event);
  cut.tokens -= delta;
  const uint64_t request = cut.request;
  auto shift = [&](auto& batch) {
    for (auto& entry : batch) {
      if (entry.request == request && entry.track) entry.track->length -= delta;
    }
  };
  for (size_t i = event; i < out.events.size(); ++i) {
    Event& e = out.events[i].event;
    if (auto* x = std::get_if<trace::Extend>(&e); x != nullptr && x->request == request) {
      for (trace::TrackWrite& w : x->track)
        w.length -= delta;
    }
    with_batch(e, shift);
  }
  return out;
}

// Dense numbers in order of first use, from `base`.
struct Renumbering {
  int64_t base = 0;
  std::unordered_map<int64_t, int64_t> to;

  template <class T>
  void operator()(T& value) {
    if constexpr (std::is_signed_v<T>) {
      if (value < 0) return;  // absent
    }
    value = T(to.try_emplace(int64_t(value), base + int64_t(to.size())).first->second);
  }
};

// Rows, request rows and host slots renumbered densely (and request ids from 1 with `ids`), the
// header's pool_rows, max_requests and host_slots cut to those used.
Trace compacted(const Trace& t, bool renumber, bool ids) {
  Trace out = t;
  Renumbering rows, req_rows, requests{1, {}}, slots;
  int32_t max_row = 0, max_req_row = 0, max_slot = -1;
  auto slot = [&](int32_t& s) {
    if (renumber) slots(s);
    max_slot = std::max(max_slot, s);
  };
  for (Line& line : out.events) {
    visit_names(
        line.event,
        [&](int32_t& row) {
          if (renumber) rows(row);
          max_row = std::max(max_row, row);
        },
        [&](int32_t& row) {
          if (renumber) req_rows(row);
          max_req_row = std::max(max_req_row, row);
        },
        [&](uint64_t& id) {
          if (ids) requests(id);
        });
    if (auto* o = std::get_if<trace::Offload>(&line.event)) slot(o->slot);
    if (auto* r = std::get_if<trace::Restore>(&line.event)) slot(r->slot);
  }
  out.header.pool_rows = max_row + 1;
  out.header.max_requests = max_req_row + 1;
  out.header.host_slots = max_slot + 1;  // 0: no host-tier event is left
  return out;
}

// T = draft_tokens + 1, accepted lengths clamped to it.
Trace with_draft_tokens(const Trace& t, int32_t draft_tokens) {
  Trace out = t;
  out.header.draft_tokens = draft_tokens;
  for (Line& line : out.events) {
    if (auto* v = std::get_if<trace::Verify>(&line.event)) {
      for (trace::VerifyEntry& e : v->batch)
        e.accepted = std::min(e.accepted, draft_tokens + 1);
    }
  }
  return out;
}

Trace on_tiny_preset(const Trace& t) {
  Trace out = t;
  out.header.preset = "tiny";
  out.header.geometry.reset();
  out.header.tp = 1;
  out.header.rank = 0;
  return out;
}

Trace without_pages(const Trace& t) {
  Trace out = t;
  out.header.page_size = 0;
  return out;
}

std::string text_of(const Trace& t) {
  std::ostringstream os;
  trace::write_trace(os, t);
  return os.str();
}

// ---- the search ---------------------------------------------------------------------------

// Removes chunks of units, coarse to fine (ddmin's complement steps): `count` says how many
// units the current trace has, `remove(first, last)` tests it without units [first, last) and
// keeps that when interesting. Ends when no single unit can go.
void ddmin(const std::function<size_t()>& count,
           const std::function<bool(size_t, size_t)>& remove) {
  size_t parts = 2;
  while (count() > 0) {
    parts = std::min(parts, count());
    const size_t chunk = (count() + parts - 1) / parts;
    bool kept = false;
    for (size_t first = 0; first < count();) {
      if (remove(first, std::min(first + chunk, count()))) {
        kept = true;  // the next chunk has moved to `first`
      } else {
        first += chunk;
      }
    }
    if (kept) continue;
    if (chunk == 1) return;
    parts *= 2;
  }
}

class Minimizer {
 public:
  Minimizer(const Trace& trace, const MinimizeOptions& options)
      : options_(options), start_(std::chrono::steady_clock::now()) {
    find_divergence(trace);
  }

  MinimizeResult run() {
    const Trace input = best_;
    choose_test(/*one_layer=*/true);
    run_rounds();
    if (one_layer_) {  // one layer was a shortcut: the result must diverge alike with all
      const std::optional<Divergence> d = replay_with(best_, result_.lanes, options_.layers);
      ++result_.replays;
      if (d && Signature::of(*d) == result_.signature) {
        best_div_ = *d;
      } else {  // start again without the shortcut; what it refused may be interesting now
        best_ = input;
        refused_.clear();
        choose_test(/*one_layer=*/false);
        run_rounds();
      }
    }
    result_.trace = best_;
    result_.result = best_div_;
    result_.seconds = seconds_since(start_);
    return std::move(result_);
  }

 private:
  using Stage = void (Minimizer::*)();

  // The input's divergence through every lane; the input cut after it.
  void find_divergence(const Trace& trace) {
    SimOptions o = sim_options(options_.lanes, options_.layers);
    const ReplayReport report = replay(trace, o);
    ++result_.replays;
    result_.input_seconds = seconds_since(start_);
    if (!report.divergence) {
      const long last = trace.events.empty() ? trace.header_line : trace.events.back().line;
      throw InputError(trace.file, last,
                       "the trace does not diverge: its " + std::to_string(o.lanes.size()) +
                           " lanes agree to its end, so there is nothing to minimize (inject a "
                           "fault with --inject, or choose the lanes that diverge)");
    }
    result_.original = *report.divergence;
    result_.signature = Signature::of(result_.original);
    std::optional<Trace> cut = repair(truncated(trace, result_.original.line));
    SPECSTATE_ASSERT(cut.has_value(), "a prefix of a valid trace is valid");
    best_ = *cut;
  }

  // The cheapest test that reproduces the divergence on the current trace: its lanes alone, on
  // one layer (when `one_layer`); else its lanes with every layer asked for; else every lane.
  void choose_test(bool one_layer) {
    const Divergence& d = result_.original;
    std::vector<LaneSpec> pair;
    for (const std::string& name : {d.lane_a, d.lane_b}) {
      for (const LaneSpec& lane : options_.lanes) {
        if (!name.empty() && lane.name() == name) pair.push_back(lane);
      }
    }
    layer_ = !d.elements.empty()       ? d.elements.front().layer
             : options_.layers.empty() ? 0
                                       : options_.layers.front();
    const std::vector<int32_t> one = {layer_};
    for (auto [lanes, layers] : {std::pair{pair, one}, std::pair{pair, options_.layers},
                                 std::pair{options_.lanes, options_.layers}}) {
      if (!one_layer && layers == one && layers != options_.layers) continue;
      const std::optional<Divergence> got = replay_with(best_, lanes, layers);
      ++result_.replays;
      if (got && Signature::of(*got) == result_.signature) {
        result_.lanes = lanes;
        result_.layers = layers;
        one_layer_ = layers == one && layers != options_.layers;
        best_div_ = *got;
        return;
      }
    }
    SPECSTATE_ASSERT(false, "a replay of the input cut after its divergence diverges alike");
  }

  void run_rounds() {
    static const std::pair<const char*, Stage> kStages[] = {
        {"requests", &Minimizer::reduce_requests}, {"events", &Minimizer::reduce_events},
        {"entries", &Minimizer::reduce_entries},   {"snapshots", &Minimizer::reduce_snapshots},
        {"numbers", &Minimizer::reduce_numbers},   {"rows", &Minimizer::reduce_rows},
        {"model", &Minimizer::reduce_model}};
    if (result_.stages.empty()) {
      for (const auto& [name, stage] : kStages)
        result_.stages.push_back({name});
    }
    for (bool kept = true; kept;) {
      ++result_.rounds;
      kept = false;
      // The member pointer is copied out before the call: GCC 12's UBSan bounds check of
      // `(this->*kStages[i].second)()` reads a wrong index and aborts the asan build.
      for (size_t i = 0; i < std::size(kStages); ++i) {
        const Stage stage = kStages[i].second;
        stage_ = &result_.stages[i];
        const size_t before = stage_->kept;
        const auto start = std::chrono::steady_clock::now();
        (this->*stage)();
        stage_->seconds += seconds_since(start);
        kept = kept || stage_->kept > before;
      }
    }
  }

  void reduce_requests() {
    ddmin([&] { return request_ids(best_).size(); },
          [&](size_t first, size_t last) {
            const std::vector<uint64_t> ids = request_ids(best_);
            return test(without_requests(best_, {ids.begin() + first, ids.begin() + last}));
          });
  }

  void reduce_events() {
    for (Removal how : {Removal::kDrop, Removal::kFold}) {
      ddmin(
          [&] { return best_.events.size(); },
          [&](size_t first, size_t last) { return test(without_events(best_, first, last, how)); });
    }
    for (size_t i = 0; i < best_.events.size();) {  // a merge brings the next event to i
      const std::optional<Trace> merged = with_chunks_merged(best_, i);
      if (!merged || !test(*merged)) ++i;
    }
  }

  void reduce_entries() {
    for (Removal how : {Removal::kDrop, Removal::kFold}) {
      ddmin([&] { return entry_count(best_); },
            [&](size_t first, size_t last) {
              return test(without_entries(best_, first, last, how));
            });
    }
  }

  void reduce_snapshots() {
    ddmin([&] { return snapshot_count(best_); },
          [&](size_t first, size_t last) { return test(without_snapshots(best_, first, last)); });
  }

  void reduce_numbers() {
    for (const NumberRef& ref : numbers(best_)) {
      if (ref.kind == NumberRef::kTokens) cut_pages(ref);
      shrink(ref);
    }
  }

  // Whole pages off an extend, the most first (halving), its request's snapshots moved along.
  void cut_pages(const NumberRef& ref) {
    const int32_t page = best_.header.page_size;
    auto pages = [&] {
      const int32_t* tokens = number(best_, ref);
      return tokens != nullptr && page > 0 ? (*tokens - 1) / page : 0;
    };
    for (int32_t k = pages(); k > 0;)
      k = test(with_pages_cut(best_, ref.event, k * page)) ? pages() : k / 2;
  }

  // The least value first, then bisection between the largest value refused and the current.
  void shrink(const NumberRef& ref) {
    int32_t least = ref.least;
    bool first = true;
    for (const int32_t* now; (now = number(best_, ref)) != nullptr && least < *now; first = false) {
      const int32_t value = first ? least : least + (*now - least) / 2;
      Trace candidate = best_;
      *number(candidate, ref) = value;
      if (!test(candidate)) least = value + 1;
    }
  }

  void reduce_rows() {
    if (test(compacted(best_, true, true))) return;
    if (test(compacted(best_, true, false))) return;
    test(compacted(best_, false, false));
  }

  void reduce_model() {
    if (best_.header.tree_nodes == 0) {  // a tree's depth is bound to T: left as it is
      for (int32_t d = 0; d < best_.header.draft_tokens; ++d) {
        if (test(with_draft_tokens(best_, d))) break;
      }
    }
    const trace::Header& h = best_.header;
    // Layers asked for by number may not exist in the tiny model.
    if (options_.layers.empty() && (h.geometry || h.preset != "tiny" || h.tp != 1))
      test(on_tiny_preset(best_));
    if (best_.header.page_size > 0 && snapshot_count(best_) == 0) test(without_pages(best_));
  }

  // Repairs the candidate and replays it unless it is invalid, the current trace, or refused
  // before; keeps it, cut after its divergence, when it diverges the same way.
  bool test(const Trace& raw) {
    std::optional<Trace> candidate = repair(raw);
    if (!candidate) {
      ++result_.invalid;
      return false;
    }
    if (*candidate == best_) return false;
    const size_t key = std::hash<std::string>{}(text_of(*candidate));
    if (refused_.contains(key)) {
      ++result_.repeated;
      return false;
    }
    const std::optional<Divergence> d =
        replay_with(*candidate, result_.lanes, test_layers(candidate->header));
    ++result_.replays;
    ++stage_->replays;
    const bool same = d && Signature::of(*d) == result_.signature;
    if (same) {
      best_ = truncated(*candidate, d->line);
      best_div_ = *d;
      ++stage_->kept;
    } else {
      refused_.insert(key);
    }
    if (options_.progress)
      options_.progress(stage_->name, best_.events.size(), result_.replays, seconds_since(start_));
    return same;
  }

  // The chosen layers, or with one layer, that layer clamped to the header's model (tiny).
  std::vector<int32_t> test_layers(const trace::Header& h) const {
    if (!one_layer_) return result_.layers;
    return {std::min(layer_, trace::header_geometry(h).layers - 1)};
  }

  SimOptions sim_options(const std::vector<LaneSpec>& lanes,
                         const std::vector<int32_t>& layers) const {
    SimOptions o;
    o.lanes = lanes;
    o.layers = layers;
    o.ring = options_.ring;
    o.check_ownership = options_.check_ownership;
    return o;
  }

  // The divergence a replay reports; none when the lanes agree or a policy refuses the trace.
  std::optional<Divergence> replay_with(const Trace& t, const std::vector<LaneSpec>& lanes,
                                        const std::vector<int32_t>& layers) const {
    try {
      return replay(t, sim_options(lanes, layers)).divergence;
    } catch (const InputError&) {
      return std::nullopt;
    }
  }

  const MinimizeOptions& options_;
  std::chrono::steady_clock::time_point start_;
  MinimizeResult result_;
  Trace best_;              // the smallest interesting trace so far
  Divergence best_div_;     // its divergence
  bool one_layer_ = false;  // tests replay layer_ alone
  int32_t layer_ = 0;
  StageCost* stage_ = nullptr;          // the stage running
  std::unordered_set<size_t> refused_;  // hashes of the texts of candidates replayed in vain
};

}  // namespace

Signature Signature::of(const Divergence& d) {
  return {d.what.substr(0, d.what.find(':')), d.lane_a, d.lane_b};
}

std::optional<Trace> repair(const Trace& trace) {
  Trace out{trace.file, 1, trace.header, {}};
  try {
    ScheduleTracker tracker(trace.header, trace.file);
    for (const Line& line : trace.events) {
      std::optional<Event> e =
          std::visit([&](const auto& event) -> std::optional<Event> { return fix(tracker, event); },
                     line.event);
      if (!e) continue;
      out.events.push_back({long(out.events.size()) + 2, std::move(*e)});
      tracker.apply(out.events.back());
    }
  } catch (const InputError&) {
    return std::nullopt;
  }
  return out;
}

MinimizeResult minimize(const trace::Trace& trace, const MinimizeOptions& options) {
  if (options.lanes.empty()) throw InputError("minimize needs at least one lane");
  return Minimizer(trace, options).run();
}

}  // namespace specstate::sim
