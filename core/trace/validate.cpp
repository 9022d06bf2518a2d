#include "core/trace/validate.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <variant>

#include "core/trace/tracker.h"

namespace specstate::trace {
namespace {

// Adds one event's counts to the summary; the tracker has already accepted it.
struct Counter {
  TraceSummary& s;

  void operator()(const Extend& e) {
    ++s.extends;
    s.prefill_tokens += e.tokens;
    s.snapshots += int64_t(e.track.size());
    if (e.prefix_len > 0) {
      ++s.prefix_hits;
      s.prefix_hit_tokens += e.prefix_len;
    }
  }
  void operator()(const Verify& v) {
    ++s.verifies;
    step(int64_t(v.batch.size()), v.padding);
    for (const VerifyEntry& e : v.batch) {
      s.verified_tokens += e.tree ? e.tree->nodes() : s.header.tokens_per_verify();
      s.accepted_tokens += e.accepted;
      if (e.accepted == 0) {
        ++s.discarded;
      } else {
        ++s.acceptance[size_t(e.accepted - 1)];
      }
      s.snapshots += e.track.has_value();
    }
  }
  void operator()(const Decode& d) {
    ++s.decodes;
    step(int64_t(d.batch.size()), d.padding);
    s.decode_tokens += int64_t(d.batch.size());
    for (const DecodeEntry& e : d.batch)
      s.snapshots += e.track.has_value();
  }
  void operator()(const Retract&) { ++s.retracts; }
  void operator()(const Resume&) { ++s.resumes; }
  void operator()(const Finish&) { ++s.finishes; }
  void operator()(const Check&) { ++s.checks; }
  void operator()(const Offload&) { ++s.offloads; }
  void operator()(const Restore&) { ++s.restores; }
  void operator()(const Handoff&) { ++s.handoffs; }

  void step(int64_t batch, int32_t padding) {
    s.padding_rows += padding;
    s.max_batch = std::max(s.max_batch, batch);
  }
};

std::string percent(int64_t part, int64_t whole) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%",
                whole > 0 ? 100.0 * double(part) / double(whole) : 0.0);
  return text;
}

}  // namespace

TraceValidator::TraceValidator(const Header& header, std::string file, long header_line)
    : tracker_(header, std::move(file), header_line) {
  summary_.header = header;
  summary_.acceptance.assign(size_t(header.tokens_per_verify()), 0);
}

void TraceValidator::apply(const Line& line) {
  tracker_.apply(line);
  TraceSummary& s = summary_;
  ++s.events;
  std::visit(Counter{s}, line.event);
  s.peak_rows_in_use = std::max(s.peak_rows_in_use, tracker_.rows_in_use());
  s.peak_running = std::max(s.peak_running, tracker_.running_requests());
}

TraceSummary TraceValidator::summary() const {
  TraceSummary s = summary_;
  s.requests = int64_t(tracker_.requests().size());
  for (const auto& [id, info] : tracker_.requests()) {
    s.running_at_end += info.status == RequestStatus::kRunning;
    s.retracted_at_end += info.status == RequestStatus::kRetracted;
  }
  return s;
}

TraceSummary validate_trace(const Trace& trace) {
  TraceValidator validator(trace.header, trace.file, trace.header_line);
  for (const Line& line : trace.events)
    validator.apply(line);
  return validator.summary();
}

std::string format_summary(const TraceSummary& s) {
  const Header& h = s.header;
  const int32_t T = h.tokens_per_verify();
  std::string out;
  auto line = [&](const char* label, const std::string& text) {
    char head[16];
    std::snprintf(head, sizeof head, "  %-11s", label);
    out += head + text + "\n";
  };
  auto n = [](int64_t v) { return std::to_string(v); };
  std::string model = h.model_name();
  if (const auto& g = h.geometry) {
    model += " (" + n(g->layers) + " layers, H " + n(g->num_k_heads) + ", HV " + n(g->num_v_heads) +
             ", K " + n(g->head_k_dim) + ", V " + n(g->head_v_dim) + ", W " + n(g->conv_width) +
             ")";
  }
  const std::string rank = (h.tp > 1 ? " rank " + n(h.rank) : "") +
                           (h.prefill_tp > 0 ? ", prefill instance TP " + n(h.prefill_tp) : "");
  line("model", model + ", TP " + n(h.tp) + rank + ", SSM " + std::string(to_string(h.ssm_dtype)) +
                    ", T = " + n(T) + " (" + n(h.draft_tokens) + " draft tokens), seed " +
                    std::to_string(h.seed));
  line("pool",
       n(h.pool_rows) + " rows, " + n(h.max_requests) + " request rows, page " +
           (h.page_size > 0 ? n(h.page_size) + " tokens" : std::string("0 (no snapshots)")) +
           (h.host_slots > 0 ? ", " + n(h.host_slots) + " host slots" : std::string()));
  line("events",
       n(s.events) + ": " + n(s.extends) + " extend, " + n(s.verifies) + " verify, " +
           n(s.decodes) + " decode, " + n(s.retracts) + " retract, " + n(s.resumes) + " resume, " +
           n(s.finishes) + " finish, " + n(s.checks) + " check" +
           (h.host_slots > 0 ? ", " + n(s.offloads) + " offload, " + n(s.restores) + " restore"
                             : std::string()) +
           (s.handoffs > 0 ? ", " + n(s.handoffs) + " handoff" : std::string()));
  line("requests", n(s.requests) + " (" + n(s.finishes) + " finished, " + n(s.running_at_end) +
                       " running and " + n(s.retracted_at_end) + " retracted at the end)");
  line("steps", n(s.steps()) + " (" + n(s.verifies) + " verify + " + n(s.decodes) +
                    " decode), largest batch " + n(s.max_batch) + ", " + n(s.padding_rows) +
                    " padding rows");
  line("tokens", "prefill " + n(s.prefill_tokens) + ", prefix hits " + n(s.prefix_hit_tokens) +
                     " (" + n(s.prefix_hits) + " COW), verified " + n(s.verified_tokens) +
                     ", accepted " + n(s.accepted_tokens) + " (" +
                     percent(s.accepted_tokens, s.verified_tokens) + "), decoded " +
                     n(s.decode_tokens));
  const int64_t entries = [&] {
    int64_t total = 0;
    for (int64_t c : s.acceptance)
      total += c;
    return total;
  }();
  std::string histogram;
  for (int32_t a = 1; a <= T; ++a) {
    const int64_t count = s.acceptance[size_t(a - 1)];
    histogram += (a > 1 ? "  " : "") + std::string("a=") + n(a) + ": " + n(count) + " (" +
                 percent(count, entries) + ")";
  }
  line("accepted", histogram);
  if (h.overlap > 0) {
    line("overlap",
         (h.overlap == 1 ? std::string("steps prepared before the previous one's results; ")
                         : "depth " + n(h.overlap) + ": steps prepared before the results of the " +
                               n(h.overlap) + " before them; ") +
             n(s.discarded) + " discarded entries");
  }
  line("rows", "peak " + n(s.peak_rows_in_use) + " of " + n(h.pool_rows) +
                   " in use (working + snapshot), peak " + n(s.peak_running) + " running requests");
  line("snapshots", n(s.snapshots) + " track writes");
  return out;
}

}  // namespace specstate::trace
