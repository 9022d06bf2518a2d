// The scheduler-side bookkeeping a trace implies: which request owns which row, each request's
// length and status, which rows hold prefix-cache snapshots of which length, and which host
// slots hold offloaded ones. The validator runs it over a trace; the simulator and the generator
// use the same class so that all three agree on what a trace means.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/trace/events.h"

namespace specstate::trace {

enum class RequestStatus : uint8_t { kRunning, kRetracted, kFinished };

struct RequestInfo {
  RequestStatus status = RequestStatus::kRunning;
  int32_t req_row = -1;      // while running, else -1
  int32_t working_row = -1;  // while running, else -1
  int64_t length = 0;        // tokens in the live state: prefix + extends + accepted
  long first_line = 0;       // the request's first extend
  long status_line = 0;      // the event that set `status` (first extend, resume, retract, finish)
  long discarded_line = 0;   // overlap: its entry in this step was discarded; it can only finish
};

struct RowUse {
  enum class Kind : uint8_t { kFree, kWorking, kCache };
  Kind kind = Kind::kFree;
  uint64_t request = 0;       // kWorking: the running request whose working row it is
  int64_t cached_length = 0;  // kCache: the row holds the state after this many tokens
};

class ScheduleTracker {
 public:
  // Throws InputError "FILE:LINE: ..." (at `header_line`) for a bad header.
  ScheduleTracker(const Header& header, std::string file, long header_line = 1);

  // Checks `line` against the schedule so far, then applies it. Throws InputError
  // "FILE:LINE: message" for an event the schedule does not allow, leaving the tracker
  // unchanged (each event is checked completely before anything changes).
  void apply(const Line& line);

  const Header& header() const { return header_; }
  int32_t tokens_per_verify() const { return header_.tokens_per_verify(); }

  // nullptr for a request no extend has named yet.
  const RequestInfo* request(uint64_t id) const;
  const std::unordered_map<uint64_t, RequestInfo>& requests() const { return requests_; }
  RowUse row(int32_t row) const;
  // Rows that are a working row or hold a snapshot; absent rows are free.
  const std::unordered_map<int32_t, RowUse>& used_rows() const { return rows_; }
  // The running request using `req_row`, or nullptr.
  const uint64_t* req_row_owner(int32_t req_row) const;
  int32_t rows_in_use() const { return int32_t(rows_.size()); }
  // The length of the snapshot host slot `slot` holds, or nullptr for an empty slot.
  const int64_t* slot_length(int32_t slot) const;
  const std::unordered_map<int32_t, int64_t>& filled_slots() const { return slots_; }
  int32_t running_requests() const { return int32_t(req_rows_.size()); }

 private:
  struct Context;     // the event being checked: file and line, for messages
  struct StepEntry {  // one request of a verify or decode batch (decode accepts 1)
    uint64_t request;
    int32_t accepted;
    const TrackWrite* track;
    const DraftTree* tree = nullptr;
  };

  void apply_extend(const Extend& e, const Context& at);
  void apply_step(const std::vector<StepEntry>& batch, int32_t padding, const Context& at);
  void check_tree(const DraftTree& tree, int32_t accepted, uint64_t request,
                  const Context& at) const;
  void apply_retract(const Retract& r, const Context& at);
  void apply_resume(const Resume& r, const Context& at);
  void apply_finish(const Finish& f, const Context& at);
  void apply_offload(const Offload& o, const Context& at);
  void apply_restore(const Restore& r, const Context& at);
  void apply_handoff(const Handoff& h, const Context& at);
  void check_slot_range(const char* event, int32_t slot, const Context& at) const;

  const RequestInfo& running(uint64_t id, const Context& at) const;
  void check_new_rows(int32_t req_row, int32_t working_row, const Context& at) const;
  void check_row_range(const char* field, int32_t row, const Context& at) const;
  // `row` (named `field` in the message) is no running request's working row.
  void check_not_working(const char* field, int32_t row, const Context& at) const;
  // `row`'s use, which must be a snapshot ("FIELD ROW holds no snapshot (it is free)" otherwise).
  RowUse snapshot_row(const char* field, int32_t row, const Context& at) const;
  void check_track(const TrackWrite& t, int64_t old_len, int64_t new_len, int32_t own_row,
                   std::unordered_set<int32_t>& written, const Context& at) const;
  void take_rows(uint64_t id, RequestInfo& info, int32_t req_row, int32_t working_row);
  void release_rows(RequestInfo& info);
  void store_snapshot(const TrackWrite& t);

  Header header_;
  std::string file_;
  std::unordered_map<uint64_t, RequestInfo> requests_;
  std::unordered_map<int32_t, RowUse> rows_;        // scheduler row -> use (absent = free)
  std::unordered_map<int32_t, uint64_t> req_rows_;  // request row -> running request
  std::unordered_map<int32_t, int64_t> slots_;      // host slot -> its snapshot's length
};

std::string_view to_string(RequestStatus status);

}  // namespace specstate::trace
