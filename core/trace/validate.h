// Whole-trace validation and the summary `specstate validate` prints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/trace/events.h"
#include "core/trace/tracker.h"

namespace specstate::trace {

struct TraceSummary {
  Header header;
  int64_t events = 0;
  int64_t extends = 0, verifies = 0, decodes = 0, retracts = 0, resumes = 0, finishes = 0,
          checks = 0, offloads = 0, restores = 0, handoffs = 0;
  int64_t requests = 0;  // distinct requests
  int64_t running_at_end = 0, retracted_at_end = 0;
  int64_t prefill_tokens = 0;       // extend tokens
  int64_t prefix_hits = 0;          // first extends starting from a cache row (COW)
  int64_t prefix_hit_tokens = 0;    // their prefix_len, not recomputed
  int64_t verified_tokens = 0;      // T per request per verify
  int64_t accepted_tokens = 0;      // sum of accepted lengths a
  int64_t decode_tokens = 0;        // one per request per decode
  std::vector<int64_t> acceptance;  // [T]: acceptance[a-1] = verify entries with length a
  int64_t discarded = 0;            // verify entries with a = 0 (overlap traces)
  int64_t snapshots = 0;            // track writes
  int64_t padding_rows = 0;         // CUDA-graph padding, summed over steps
  int64_t max_batch = 0;            // largest verify/decode batch (without padding)
  int32_t peak_rows_in_use = 0;     // working rows + rows holding a snapshot
  int32_t peak_running = 0;         // running requests

  int64_t steps() const { return verifies + decodes; }
};

// Runs a ScheduleTracker over every event. Throws InputError "FILE:LINE: message" at the
// first event the schedule does not allow.
TraceSummary validate_trace(const Trace& trace);

// validate_trace one event at a time, for a trace that is never held whole: the generator
// streams its events to the output and counts them here.
class TraceValidator {
 public:
  // Throws InputError "FILE:HEADER_LINE: ..." for a bad header.
  TraceValidator(const Header& header, std::string file, long header_line = 1);

  // Checks `line` against the schedule so far (ScheduleTracker::apply, the same InputError),
  // then counts it.
  void apply(const Line& line);

  const ScheduleTracker& tracker() const { return tracker_; }
  // The summary of the events applied so far.
  TraceSummary summary() const;

 private:
  ScheduleTracker tracker_;
  TraceSummary summary_;
};

// A few aligned lines for a human.
std::string format_summary(const TraceSummary& summary);

}  // namespace specstate::trace
