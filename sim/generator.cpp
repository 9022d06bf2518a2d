#include "sim/generator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>

#include "core/errors.h"
#include "core/geometry.h"
#include "core/primitives.h"
#include "core/strategy/strategy.h"
#include "core/trace/format.h"
#include "core/trace/tracker.h"

namespace specstate::sim {
namespace {

using trace::TrackWrite;

// SplitMix64: the same stream on every platform and standard library (the std::
// distributions are not specified bit for bit).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed ^ 0x5bd1e9955bd1e995ull) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  bool chance(double p) { return uniform() < p; }
  int64_t range(int64_t lo, int64_t hi) {  // inclusive
    return lo + int64_t(next() % uint64_t(hi - lo + 1));
  }

 private:
  uint64_t state_;
};

struct Request {
  uint64_t id = 0;
  int64_t arrival = 0;        // iteration it joins the waiting queue
  int64_t prompt_left = 0;    // prompt tokens not prefilled yet
  int64_t output_target = 0;  // finishes once this many tokens are generated
  int64_t output_done = 0;
  int64_t waiting_since = 0;
  int64_t admitted_at = 0;
  int32_t req_row = -1;
  int32_t working_row = -1;
  bool started = false;                     // its first extend is written
  bool handed_over = false;                 // arrives from the prefill instance (prefill_tp)
  bool extended_now = false;                // extended in the current iteration
  bool finishing = false;                   // overlap: done, but already in the next prepared step
  int64_t last_step = -(int64_t{1} << 40);  // the index of its last forward step
};

// The options are the flags of `specstate generate`; a value out of range names its flag
// ("--requests 0 outside 1..1048576"), integers as integers.
std::string flag_name(const char* option) {
  std::string flag = std::string("--") + option;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

void check_range(const char* option, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    throw InputError(flag_name(option) + " " + std::to_string(value) + " outside " +
                     std::to_string(min) + ".." + std::to_string(max));
  }
}

void check_fraction(const char* option, double value) {
  if (!(value >= 0 && value <= 1)) {  // also refuses NaN
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    throw InputError(flag_name(option) + " " + text + " outside 0..1");
  }
}

using EventSink = std::function<void(const trace::Line&)>;

class Generator {
 public:
  Generator(const GeneratorOptions& options, const EventSink& sink)
      : o_(options),
        sink_(sink),
        rng_(options.seed),
        validator_(generated_header(options), "<generator>") {
    T_ = validator_.tracker().tokens_per_verify();
    if (!o_.tree.empty()) tree_ = tree_of_shape(o_.tree, o_.tree_nodes);
    build_accept_cdf();
    make_requests();
    for (int32_t row = o_.pool_rows - 1; row >= 0; --row)
      free_rows_.push_back(row);
    for (int32_t row = o_.max_requests - 1; row >= 0; --row)
      free_req_rows_.push_back(row);
  }

  trace::TraceSummary run() {
    int64_t it = 0;
    while (steps_done_ < o_.steps) {
      arrive(it);
      if (running_.empty() && waiting_.empty()) {
        if (next_arrival_ == requests_.size()) break;  // everyone is done
        it = requests_[next_arrival_].arrival;         // skip idle time
        continue;
      }
      for (size_t r : running_)
        requests_[r].extended_now = false;
      preempt_if_starved(it);
      admit(it);
      prefill_chunks();
      forward_step();
      ++it;
    }
    finish_all();
    return validator_.summary();
  }

 private:
  void build_accept_cdf() {
    const std::vector<double> weights = o_.accept_weights.empty()
                                            ? geometric_accept_weights(o_.accept_prob, T_)
                                            : o_.accept_weights;
    double total = 0, mean = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      total += weights[i];
      mean += weights[i] * double(i + 1);
      accept_cdf_.push_back(total);
    }
    mean_accepted_ = mean / total;
  }

  void make_requests() {
    int64_t out_min = o_.output_min, out_max = o_.output_max;
    if (out_min == 0 && out_max == 0) {
      // Enough work to keep the rows busy for most of the run.
      const double per_step = (1 - o_.decode_prob) * mean_accepted_ + o_.decode_prob;
      const double rows = std::min(o_.pool_rows, o_.max_requests);
      const double mean = 0.8 * o_.steps * rows * per_step / o_.requests;
      const int64_t m = std::clamp(int64_t(mean), int64_t{4}, int64_t{1} << 20);
      out_min = std::max<int64_t>(1, m / 2);
      out_max = std::max(out_min, 3 * m / 2);
    }
    std::vector<int64_t> arrivals;
    for (int32_t i = 0; i < o_.requests; ++i)
      arrivals.push_back(rng_.range(0, o_.steps / 2));
    std::sort(arrivals.begin(), arrivals.end());
    for (int32_t i = 0; i < o_.requests; ++i) {
      Request r;
      r.id = 1000 + uint64_t(i);  // ids apart from row numbers, so a mix-up shows
      r.arrival = i == 0 ? 0 : arrivals[size_t(i)];
      r.prompt_left = rng_.range(o_.prompt_min, o_.prompt_max);
      r.output_target = rng_.range(std::max<int64_t>(out_min, 1), std::max<int64_t>(out_max, 1));
      r.handed_over = o_.prefill_tp > 0 && r.prompt_left >= 2 && rng_.chance(0.5);
      requests_.push_back(r);
    }
  }

  // ---- one scheduler iteration --------------------------------------------------------

  void arrive(int64_t it) {
    while (next_arrival_ < requests_.size() && requests_[next_arrival_].arrival <= it) {
      requests_[next_arrival_].waiting_since = it;
      waiting_.push_back(next_arrival_++);
    }
  }

  // Row pressure: when the first waiting request has waited `preempt_after` iterations and
  // no row can be had, retract the request that has run longest since it was admitted. At
  // most one retract per `preempt_after` iterations, so the pool does not thrash.
  void preempt_if_starved(int64_t it) {
    if (waiting_.empty() || it - last_preempt_ < o_.preempt_after) return;
    if (it - requests_[waiting_.front()].waiting_since < o_.preempt_after) return;
    const bool row_available = !free_rows_.empty() || !snapshot_rows_.empty();
    if (row_available && !free_req_rows_.empty()) return;
    auto victim = running_.end();
    for (auto r = running_.begin(); r != running_.end(); ++r) {
      const Request& q = requests_[*r];
      if (it - q.admitted_at < o_.preempt_after || q.finishing) continue;
      if (victim == running_.end() || q.admitted_at < requests_[*victim].admitted_at) victim = r;
    }
    if (victim == running_.end()) return;
    last_preempt_ = it;
    Request& q = requests_[*victim];
    emit(trace::Retract{q.id});
    release_rows(q);
    q.waiting_since = it;
    waiting_.push_back(*victim);
    running_.erase(victim);
  }

  void admit(int64_t it) {
    while (!waiting_.empty() && !free_req_rows_.empty()) {
      Request& r = requests_[waiting_.front()];
      if (r.started ? !resume(r) : !start(r)) break;
      r.admitted_at = it;
      running_.push_back(waiting_.front());
      waiting_.pop_front();
    }
  }

  bool resume(Request& r) {
    const int32_t row = take_row(-1);
    if (row < 0) return false;
    r.working_row = row;
    r.req_row = take_req_row();
    emit(trace::Resume{r.id, r.req_row, r.working_row});
    return true;
  }

  // The first extend: a request handed over by the prefill instance hits the row its state
  // arrives in; else a prefix hit copies a snapshot row (one restored from a host slot first,
  // half the time a slot is filled), else the state starts from zeros.
  bool start(Request& r) {
    if (r.handed_over) return start_handed_over(r);
    int32_t cow = -1;
    if (!host_lru_.empty() && rng_.chance(o_.prefix_hit_prob) && rng_.chance(0.5)) {
      cow = restore(host_lru_[size_t(rng_.range(0, int64_t(host_lru_.size()) - 1))]);
    } else if (!snapshot_rows_.empty() && rng_.chance(o_.prefix_hit_prob)) {
      cow = snapshot_rows_[size_t(rng_.range(0, int64_t(snapshot_rows_.size()) - 1))];
    }
    int32_t row = take_row(cow);
    if (row < 0 && cow >= 0) {
      cow = -1;
      row = take_row(-1);
    }
    if (row < 0) return false;
    trace::Extend e;
    e.request = r.id;
    e.req_row = r.req_row = take_req_row();
    e.working_row = r.working_row = row;
    if (cow >= 0) {
      e.prefix_len = tracker().row(cow).cached_length;
      e.cow_src_row = cow;
      touch_snapshot(cow);
    }
    e.tokens = chunk_tokens(e.prefix_len, r.prompt_left);
    e.track = extend_tracks(e.prefix_len, e.prefix_len + e.tokens, cow);
    emit(e);
    r.prompt_left -= e.tokens;
    r.started = true;
    r.extended_now = true;
    return true;
  }

  // A request the prefill instance hands over with all but its last prompt token prefilled: the
  // state arrives into a row of its own, the first extend hits it and runs the last token, and
  // the row is free again (no later request hits the handed-over prefix).
  bool start_handed_over(Request& r) {
    const int32_t row = take_row(-1);
    if (row < 0) return false;
    const int32_t working = take_row(-1);
    if (working < 0) {
      free_rows_.push_back(row);
      return false;
    }
    const int64_t handed = r.prompt_left - 1;
    emit(trace::Handoff{r.id, handed, row});
    trace::Extend e;
    e.request = r.id;
    e.req_row = r.req_row = take_req_row();
    e.working_row = r.working_row = working;
    e.prefix_len = handed;
    e.cow_src_row = row;
    e.tokens = 1;
    e.track = extend_tracks(handed, handed + 1, row);
    emit(e);
    free_rows_.push_back(row);
    r.prompt_left = 0;
    r.started = true;
    r.extended_now = true;
    return true;
  }

  // The next prefill chunk of a request at `length` tokens with `left` prompt tokens to go:
  // chunk_size, or with edge_chunks one that ends one token before the next page boundary, on
  // it or one after it.
  int32_t chunk_tokens(int64_t length, int64_t left) {
    int64_t n = o_.chunk_size;
    if (o_.edge_chunks && o_.page_size > 0) {
      const int64_t to_boundary = o_.page_size - length % o_.page_size;  // 1 .. page_size
      n = std::min<int64_t>(n, std::max<int64_t>(1, to_boundary + rng_.range(-1, 1)));
    }
    return int32_t(std::min(n, left));
  }

  void prefill_chunks() {
    for (size_t index : running_) {
      Request& r = requests_[index];
      if (r.prompt_left == 0 || r.extended_now) continue;
      const int64_t old_len = tracker().request(r.id)->length;
      trace::Extend e;
      e.request = r.id;
      if (rng_.chance(0.5)) {  // rows are optional after the first extend
        e.req_row = r.req_row;
        e.working_row = r.working_row;
      }
      e.tokens = chunk_tokens(old_len, r.prompt_left);
      e.track = extend_tracks(old_len, old_len + e.tokens, -1);
      emit(e);
      r.prompt_left -= e.tokens;
      r.extended_now = true;
    }
  }

  // Depth d > 1: the requests that none of the d - 1 steps before this one holds, if any;
  // otherwise the host waits for those steps, and the requests that finished in them finish.
  void take_out_of_pipeline(std::vector<size_t>& batch, std::vector<size_t>& discarded) {
    auto out = [&](const std::vector<size_t>& from) {
      std::vector<size_t> kept;
      for (size_t index : from) {
        if (steps_done_ - requests_[index].last_step >= o_.overlap) kept.push_back(index);
      }
      return kept;
    };
    std::vector<size_t> free = out(batch), free_done = out(discarded);
    if (!free.empty() || !free_done.empty()) {
      batch = std::move(free);
      discarded = std::move(free_done);
      return;
    }
    for (size_t index : discarded)
      finish(index);
    discarded.clear();
  }

  void forward_step() {
    std::vector<size_t> batch, discarded;
    for (size_t index : running_) {
      const Request& r = requests_[index];
      if (r.finishing) {
        discarded.push_back(index);
      } else if (r.prompt_left == 0 && !r.extended_now) {
        batch.push_back(index);
      }
    }
    if (o_.overlap > 1) take_out_of_pipeline(batch, discarded);
    if (batch.empty() && discarded.empty()) return;
    const bool decode = rng_.chance(o_.decode_prob);
    // Decode entries are never discarded: a finishing request leaves before a decode step.
    if (decode) {
      for (size_t index : discarded)
        finish(index);
      discarded.clear();
      if (batch.empty()) return;
    }
    if (o_.overlap > 0) shuffle(batch);
    trace::Verify verify;
    trace::Decode dec;
    std::vector<int32_t> accepted;
    for (size_t index : batch) {
      const Request& r = requests_[index];
      int32_t a = decode ? 1 : draw_accepted();
      std::optional<DraftTree> tree;
      if (!decode && tree_) {
        tree = draw_path(a);
        a = int32_t(tree->path.size());
      }
      const int64_t old_len = tracker().request(r.id)->length;
      std::optional<TrackWrite> track = step_track(old_len, old_len + a);
      if (decode) {
        dec.batch.push_back({r.id, track});
      } else {
        verify.batch.push_back({r.id, a, track, std::move(tree)});
      }
      accepted.push_back(a);
    }
    for (size_t index : discarded) {  // at random places: the batch was prepared with them
      const auto at = verify.batch.begin() + rng_.range(0, int64_t(verify.batch.size()));
      verify.batch.insert(at,
                          trace::VerifyEntry{requests_[index].id, 0, std::nullopt, std::nullopt});
    }
    const int32_t entries = int32_t(batch.size() + discarded.size());
    const int32_t padding = padded(entries) - entries;
    if (decode) {
      dec.padding = padding;
      emit(dec);
    } else {
      verify.padding = padding;
      emit(verify);
    }
    for (size_t index : batch)
      requests_[index].last_step = steps_done_;
    for (size_t index : discarded)
      requests_[index].last_step = steps_done_;
    ++steps_done_;
    if (o_.check_every > 0 && steps_done_ % o_.check_every == 0) emit(trace::Check{});
    for (size_t index : discarded)
      finish(index);
    for (size_t i = 0; i < batch.size(); ++i) {
      Request& r = requests_[batch[i]];
      r.output_done += accepted[i];
      if (r.output_done < r.output_target) continue;
      // With overlap the next step is prepared before the host sees this one's results.
      if (o_.overlap > 0) {
        r.finishing = true;
      } else {
        finish(batch[i]);
      }
    }
  }

  void shuffle(std::vector<size_t>& v) {
    for (size_t i = v.size(); i > 1; --i)
      std::swap(v[i - 1], v[size_t(rng_.range(0, int64_t(i) - 1))]);
  }

  void finish(size_t index) {
    Request& r = requests_[index];
    emit(trace::Finish{r.id});
    release_rows(r);
    running_.erase(std::find(running_.begin(), running_.end(), index));
  }

  // The run ends: running and retracted requests finish; those never started stay out.
  void finish_all() {
    while (!running_.empty())
      finish(running_.front());
    for (size_t index : waiting_) {
      if (requests_[index].started) emit(trace::Finish{requests_[index].id});
    }
  }

  // ---- rows ---------------------------------------------------------------------------

  // A free row (the most recently freed first), else the least recently used snapshot row
  // other than `keep`, offloaded first when there is a host tier (into a slot other than
  // `keep_slot`); -1 when neither exists.
  int32_t take_row(int32_t keep, int32_t keep_slot = -1) {
    if (!free_rows_.empty()) {
      const int32_t row = free_rows_.back();
      free_rows_.pop_back();
      return row;
    }
    for (auto it = snapshot_rows_.begin(); it != snapshot_rows_.end(); ++it) {
      if (*it == keep) continue;
      const int32_t row = *it;
      snapshot_rows_.erase(it);
      if (o_.host_slots > 0) offload(row, keep_slot);
      return row;
    }
    return -1;
  }

  // The snapshot of `row` into the next unused host slot, else the least recently used one
  // other than `keep_slot` (the one being restored); with none, the snapshot is dropped.
  void offload(int32_t row, int32_t keep_slot) {
    int32_t slot = int32_t(host_lru_.size());  // slots fill in order: 0 .. size-1 are used
    if (slot == o_.host_slots) {
      const auto it = std::find_if(host_lru_.begin(), host_lru_.end(),
                                   [&](int32_t s) { return s != keep_slot; });
      if (it == host_lru_.end()) return;
      slot = *it;
      host_lru_.erase(it);
    }
    host_lru_.push_back(slot);
    emit(trace::Offload{row, slot});
  }

  // Host slot `slot` restored into a row taken as for a working row; the row, or -1 when none
  // is available.
  int32_t restore(int32_t slot) {
    const int32_t row = take_row(-1, slot);
    if (row < 0) return -1;
    host_lru_.erase(std::find(host_lru_.begin(), host_lru_.end(), slot));
    host_lru_.push_back(slot);
    emit(trace::Restore{slot, row});
    return row;
  }

  int32_t take_req_row() {
    const int32_t row = free_req_rows_.back();
    free_req_rows_.pop_back();
    return row;
  }

  void release_rows(Request& r) {
    free_rows_.push_back(r.working_row);
    free_req_rows_.push_back(r.req_row);
    r.working_row = r.req_row = -1;
  }

  void touch_snapshot(int32_t row) {
    snapshot_rows_.erase(std::find(snapshot_rows_.begin(), snapshot_rows_.end(), row));
    snapshot_rows_.push_back(row);
  }

  // Snapshots for an extend from `old_len` to `new_len` tokens: the last page boundary
  // crossed, sometimes the first one too.
  std::vector<TrackWrite> extend_tracks(int64_t old_len, int64_t new_len, int32_t keep) {
    std::vector<TrackWrite> tracks;
    if (o_.page_size == 0) return tracks;
    const int64_t page = o_.page_size;
    const int64_t first = (old_len / page + 1) * page, last = new_len / page * page;
    if (last <= old_len) return tracks;
    std::vector<int64_t> lengths;
    if (first < last && rng_.chance(0.5)) lengths.push_back(first);
    lengths.push_back(last);
    for (int64_t length : lengths) {
      if (!rng_.chance(o_.snapshot_prob)) continue;
      const int32_t row = take_row(keep);
      if (row < 0) break;
      tracks.push_back({length, row});
    }
    return tracks;
  }

  // A snapshot of the page boundary crossed by the accepted tokens, if any.
  std::optional<TrackWrite> step_track(int64_t old_len, int64_t new_len) {
    if (o_.page_size == 0) return std::nullopt;
    const int64_t boundary = new_len / o_.page_size * o_.page_size;
    if (boundary <= old_len || !rng_.chance(o_.snapshot_prob)) return std::nullopt;
    const int32_t row = take_row(-1);
    if (row < 0) return std::nullopt;
    return TrackWrite{boundary, row};
  }

  // ---- draws and output ---------------------------------------------------------------

  int32_t draw_accepted() {
    const double u = rng_.uniform() * accept_cdf_.back();
    for (size_t i = 0; i < accept_cdf_.size(); ++i) {
      if (u < accept_cdf_[i]) return int32_t(i + 1);
    }
    return T_;
  }

  // The tree with a path of up to `a` nodes from the root through uniformly chosen children.
  DraftTree draw_path(int32_t a) {
    DraftTree t = *tree_;
    while (int32_t(t.path.size()) < a) {
      const std::vector<int8_t> next = children(t, t.path.back());
      if (next.empty()) break;
      t.path.push_back(next[size_t(rng_.range(0, int64_t(next.size()) - 1))]);
    }
    return t;
  }

  // The batch padded up to the smallest CUDA-graph bucket that holds it (no graph is
  // captured beyond max_requests).
  int32_t padded(int32_t n) const {
    int32_t best = -1;
    for (int32_t bucket : o_.graph_buckets) {
      if (bucket >= n && (best < 0 || bucket < best)) best = bucket;
    }
    return best < 0 ? n : std::max(n, std::min(best, o_.max_requests));
  }

  const trace::ScheduleTracker& tracker() const { return validator_.tracker(); }

  void emit(trace::Event event) {
    const trace::Line line{next_line_++, std::move(event)};
    try {
      validator_.apply(line);
    } catch (const InputError& e) {
      SPECSTATE_ASSERT(false,
                       (std::string("the generator wrote an invalid event: ") + e.what()).c_str());
    }
    for (const TrackWrite& t : tracks_of(line.event))
      snapshot_rows_.push_back(t.row);
    if (const auto* r = std::get_if<trace::Restore>(&line.event)) snapshot_rows_.push_back(r->row);
    sink_(line);
  }

  static std::vector<TrackWrite> tracks_of(const trace::Event& event) {
    std::vector<TrackWrite> tracks;
    if (const auto* e = std::get_if<trace::Extend>(&event)) tracks = e->track;
    if (const auto* v = std::get_if<trace::Verify>(&event)) {
      for (const auto& entry : v->batch) {
        if (entry.track) tracks.push_back(*entry.track);
      }
    }
    if (const auto* d = std::get_if<trace::Decode>(&event)) {
      for (const auto& entry : d->batch) {
        if (entry.track) tracks.push_back(*entry.track);
      }
    }
    return tracks;
  }

  const GeneratorOptions& o_;
  const EventSink& sink_;
  Rng rng_;
  trace::TraceValidator validator_;  // the schedule so far and the summary's counts
  long next_line_ = 2;               // the header is line 1
  int32_t T_ = 1;
  std::vector<double> accept_cdf_;  // [T] cumulative weights of a = 1..T
  std::optional<DraftTree> tree_;   // the verifies' tree (root-only path), or chains
  double mean_accepted_ = 1;
  std::vector<Request> requests_;  // in arrival order
  size_t next_arrival_ = 0;
  std::deque<size_t> waiting_;          // new and retracted requests, first come first served
  std::vector<size_t> running_;         // in admission order
  std::vector<int32_t> free_rows_;      // LIFO: the most recently freed row is reused first
  std::vector<int32_t> free_req_rows_;  // LIFO
  std::vector<int32_t> snapshot_rows_;  // least recently used first
  std::vector<int32_t> host_lru_;       // filled host slots, least recently used first
  int64_t steps_done_ = 0;
  int64_t last_preempt_ = -(int64_t{1} << 40);
};

}  // namespace

void check_options(const GeneratorOptions& o) {
  make_geometry(o.preset, o.tp, o.rank);
  check_range("draft_tokens", o.draft_tokens, 0, trace::kMaxTokensPerVerify - 1);
  check_range("pool_rows", o.pool_rows, 1, trace::kMaxRows);
  check_range("max_requests", o.max_requests, 1, trace::kMaxRows);
  check_range("page_size", o.page_size, 0, trace::kMaxRows);
  check_range("requests", o.requests, 1, 1 << 20);
  check_range("steps", o.steps, 1, 1 << 22);
  check_range("prompt_min", o.prompt_min, 1, trace::kMaxTokens);
  check_range("prompt_max", o.prompt_max, o.prompt_min, trace::kMaxTokens);
  check_range("output_min", o.output_min, 0, trace::kMaxTokens);
  check_range("output_max", o.output_max, o.output_min, trace::kMaxTokens);
  check_range("chunk_size", o.chunk_size, 1, trace::kMaxTokens);
  check_fraction("prefix_hit_prob", o.prefix_hit_prob);
  check_fraction("snapshot_prob", o.snapshot_prob);
  check_range("host_slots", o.host_slots, 0, trace::kMaxRows);
  if (o.prefill_tp != 0) {
    try {
      make_geometry(o.preset, o.prefill_tp);
    } catch (const InputError& e) {
      throw InputError(std::string("prefill_tp: ") + e.what());
    }
  }
  check_fraction("accept_prob", o.accept_prob);
  check_fraction("decode_prob", o.decode_prob);
  check_range("preempt_after", o.preempt_after, 1, 1 << 30);
  check_range("check_every", o.check_every, 0, 1 << 30);
  for (int32_t bucket : o.graph_buckets)
    check_range("graph_buckets", bucket, 1, trace::kMaxRows);
  if (!o.accept_weights.empty()) check_accept_weights(o.accept_weights, o.draft_tokens + 1);
  check_range("overlap", o.overlap, 0, trace::kMaxOverlapDepth);
  if (o.overlap > 0 && !o.tree.empty())
    throw InputError("--overlap with --tree: overlap scheduling of draft trees is not modelled");
  if (o.tree.empty() && o.tree_nodes != 0)
    throw InputError("tree_nodes " + std::to_string(o.tree_nodes) + " without a tree shape");
  if (!o.tree.empty()) {
    check_range("tree_nodes", o.tree_nodes, 0, kMaxTreeNodes);
    if (int32_t(o.tree.size()) > o.draft_tokens) {
      throw InputError("a tree of " + std::to_string(o.tree.size()) +
                       " levels needs draft_tokens >= " + std::to_string(o.tree.size()) +
                       " (it has " + std::to_string(o.draft_tokens) + ")");
    }
    const int32_t nodes = tree_of_shape(o.tree, o.tree_nodes).nodes();
    if (nodes > kMaxTreeNodes) {
      throw InputError("a tree of " + std::to_string(nodes) + " nodes, more than " +
                       std::to_string(kMaxTreeNodes));
    }
  }
}

trace::Header generated_header(const GeneratorOptions& o) {
  check_options(o);
  trace::Header h;
  h.preset = o.preset;
  h.tp = o.tp;
  h.rank = o.rank;
  h.prefill_tp = o.prefill_tp;
  h.ssm_dtype = o.ssm_dtype;
  h.draft_tokens = o.draft_tokens;
  h.pool_rows = o.pool_rows;
  h.max_requests = o.max_requests;
  h.page_size = o.page_size;
  h.seed = o.seed;
  if (!o.tree.empty()) h.tree_nodes = tree_of_shape(o.tree, o.tree_nodes).nodes();
  h.overlap = o.overlap;
  h.host_slots = o.host_slots;
  h.version = h.lowest_version();
  return h;
}

trace::TraceSummary generate_events(const GeneratorOptions& options, const EventSink& sink) {
  return Generator(options, sink).run();  // its header checks the options first
}

trace::Trace generate_trace(const GeneratorOptions& options) {
  trace::Trace trace;
  trace.file = "<generator>";
  generate_events(options, [&](const trace::Line& line) { trace.events.push_back(line); });
  trace.header = generated_header(options);
  return trace;
}

}  // namespace specstate::sim
