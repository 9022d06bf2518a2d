#include "core/trace/tracker.h"

#include <unordered_set>

#include "core/errors.h"
#include "core/trace/format.h"

namespace specstate::trace {

struct ScheduleTracker::Context {
  const std::string& file;
  long line;

  [[noreturn]] void fail(const std::string& message) const {
    throw InputError(file, line, message);
  }
};

namespace {

std::string req(uint64_t id) {
  return "request " + std::to_string(id);
}

}  // namespace

std::string_view to_string(RequestStatus status) {
  switch (status) {
    case RequestStatus::kRunning:
      return "running";
    case RequestStatus::kRetracted:
      return "retracted";
    case RequestStatus::kFinished:
      return "finished";
  }
  return "?";
}

ScheduleTracker::ScheduleTracker(const Header& header, std::string file, long header_line)
    : header_(header), file_(std::move(file)) {
  try {
    check_header(header_);
  } catch (const InputError& e) {
    throw InputError(file_, header_line, e.what());
  }
}

const RequestInfo* ScheduleTracker::request(uint64_t id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : &it->second;
}

RowUse ScheduleTracker::row(int32_t row) const {
  auto it = rows_.find(row);
  return it == rows_.end() ? RowUse{} : it->second;
}

const uint64_t* ScheduleTracker::req_row_owner(int32_t req_row) const {
  auto it = req_rows_.find(req_row);
  return it == req_rows_.end() ? nullptr : &it->second;
}

void ScheduleTracker::apply(const Line& line) {
  const Context at{file_, line.line};
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, Extend>) {
          apply_extend(e, at);
        } else if constexpr (std::is_same_v<E, Verify>) {
          std::vector<StepEntry> batch;
          for (const VerifyEntry& v : e.batch) {
            batch.push_back({v.request, v.accepted, v.track ? &*v.track : nullptr,
                             v.tree ? &*v.tree : nullptr});
          }
          apply_step(batch, e.padding, at);
        } else if constexpr (std::is_same_v<E, Decode>) {
          std::vector<StepEntry> batch;
          for (const DecodeEntry& d : e.batch) {
            batch.push_back({d.request, 1, d.track ? &*d.track : nullptr});
          }
          apply_step(batch, e.padding, at);
        } else if constexpr (std::is_same_v<E, Retract>) {
          apply_retract(e, at);
        } else if constexpr (std::is_same_v<E, Resume>) {
          apply_resume(e, at);
        } else if constexpr (std::is_same_v<E, Finish>) {
          apply_finish(e, at);
        } else if constexpr (std::is_same_v<E, Offload>) {
          apply_offload(e, at);
        } else if constexpr (std::is_same_v<E, Restore>) {
          apply_restore(e, at);
        } else if constexpr (std::is_same_v<E, Handoff>) {
          apply_handoff(e, at);
        }  // Check changes nothing.
      },
      line.event);
}

// ---- checks -------------------------------------------------------------------------------

const RequestInfo& ScheduleTracker::running(uint64_t id, const Context& at) const {
  const RequestInfo* info = request(id);
  if (info == nullptr) at.fail(req(id) + " does not exist (no extend has started it)");
  if (info->status == RequestStatus::kFinished) {
    at.fail(req(id) + " finished at line " + std::to_string(info->status_line));
  }
  if (info->status == RequestStatus::kRetracted) {
    at.fail(req(id) + " is not running: retracted at line " + std::to_string(info->status_line) +
            " and not resumed");
  }
  if (info->discarded_line > 0) {
    at.fail(req(id) + ": its entry at line " + std::to_string(info->discarded_line) +
            " was discarded (accepted 0), so the next event naming it must be its finish");
  }
  return *info;
}

void ScheduleTracker::check_row_range(const char* field, int32_t row, const Context& at) const {
  if (row < 0 || row >= header_.pool_rows) {
    at.fail(std::string(field) + " " + std::to_string(row) + " out of range 0.." +
            std::to_string(header_.pool_rows - 1) + " (pool_rows " +
            std::to_string(header_.pool_rows) + ")");
  }
}

void ScheduleTracker::check_not_working(const char* field, int32_t row, const Context& at) const {
  const RowUse use = this->row(row);
  if (use.kind == RowUse::Kind::kWorking) {
    at.fail(std::string(field) + " " + std::to_string(row) + " is the working row of live " +
            req(use.request));
  }
}

void ScheduleTracker::check_new_rows(int32_t req_row, int32_t working_row,
                                     const Context& at) const {
  if (req_row < 0 || req_row >= header_.max_requests) {
    at.fail("req_row " + std::to_string(req_row) + " out of range 0.." +
            std::to_string(header_.max_requests - 1) + " (max_requests " +
            std::to_string(header_.max_requests) + ")");
  }
  if (const uint64_t* owner = req_row_owner(req_row)) {
    at.fail("req_row " + std::to_string(req_row) + " is in use by " + req(*owner));
  }
  check_row_range("working_row", working_row, at);
  check_not_working("working_row", working_row, at);
}

// A snapshot of the state after `t.length` tokens, for a request going from `old_len` to
// `new_len` tokens in this event. `own_row` is the request's working row; `written` collects
// the rows this event writes so far.
void ScheduleTracker::check_track(const TrackWrite& t, int64_t old_len, int64_t new_len,
                                  int32_t own_row, std::unordered_set<int32_t>& written,
                                  const Context& at) const {
  const std::string what = "track row " + std::to_string(t.row);
  check_row_range("track row", t.row, at);
  if (header_.page_size == 0) at.fail("track write, but page_size is 0 (no snapshots)");
  if (t.length % header_.page_size != 0) {
    at.fail("track length " + std::to_string(t.length) + " is not a page boundary (page_size " +
            std::to_string(header_.page_size) + ")");
  }
  if (t.length <= old_len || t.length > new_len) {
    at.fail("track length " + std::to_string(t.length) +
            " is not a page boundary crossed by this event (the request goes from " +
            std::to_string(old_len) + " to " + std::to_string(new_len) + " tokens)");
  }
  if (t.row == own_row) at.fail(what + " is the request's own working row");
  check_not_working("track row", t.row, at);
  if (!written.insert(t.row).second) at.fail(what + " is written twice in this event");
}

// ---- events -------------------------------------------------------------------------------

void ScheduleTracker::apply_extend(const Extend& e, const Context& at) {
  const RequestInfo* existing = request(e.request);
  int64_t old_len = e.prefix_len;
  int32_t working_row = e.working_row;
  if (e.tokens < 1 || e.tokens > kMaxTokens) {
    at.fail("tokens " + std::to_string(e.tokens) + " outside 1.." + std::to_string(kMaxTokens));
  }
  if (existing != nullptr) {  // chunked prefill of a running request
    const RequestInfo& info = running(e.request, at);
    if (e.req_row >= 0 && e.req_row != info.req_row) {
      at.fail("req_row " + std::to_string(e.req_row) + " does not match " + req(e.request) +
              "'s req_row " + std::to_string(info.req_row));
    }
    if (e.working_row >= 0 && e.working_row != info.working_row) {
      at.fail("working_row " + std::to_string(e.working_row) + " does not match " + req(e.request) +
              "'s working_row " + std::to_string(info.working_row));
    }
    if (e.prefix_len != 0 || e.cow_src_row >= 0) {
      at.fail("prefix_len and cow_src_row belong on a request's first extend only (" +
              req(e.request) + " started at line " + std::to_string(info.first_line) + ")");
    }
    old_len = info.length;
    working_row = info.working_row;
  } else {  // a new request
    if (e.req_row < 0 || e.working_row < 0) {
      at.fail("the first extend of " + req(e.request) + " must name req_row and working_row");
    }
    check_new_rows(e.req_row, e.working_row, at);
    if (e.prefix_len < 0 || e.prefix_len > kMaxLength) {
      at.fail("prefix_len " + std::to_string(e.prefix_len) + " out of range");
    }
    if (e.prefix_len > 0 && e.cow_src_row < 0) {
      at.fail("prefix_len " + std::to_string(e.prefix_len) + " without cow_src_row");
    }
    if (e.prefix_len == 0 && e.cow_src_row >= 0) {
      at.fail("cow_src_row " + std::to_string(e.cow_src_row) + " without prefix_len");
    }
    if (e.cow_src_row >= 0) {
      check_row_range("cow_src_row", e.cow_src_row, at);
      const RowUse src = snapshot_row("cow_src_row", e.cow_src_row, at);
      const std::string what = "cow_src_row " + std::to_string(e.cow_src_row);
      if (src.cached_length != e.prefix_len) {
        at.fail(what + " holds a snapshot of " + std::to_string(src.cached_length) +
                " tokens, not prefix_len " + std::to_string(e.prefix_len));
      }
      if (e.cow_src_row == e.working_row) {
        at.fail(what + " is also the working_row; a prefix hit copies into another row");
      }
    }
  }
  const int64_t new_len = old_len + e.tokens;
  if (new_len > kMaxLength)
    at.fail(req(e.request) + " would exceed " + std::to_string(kMaxLength) + " tokens");
  std::unordered_set<int32_t> written;
  std::unordered_set<int64_t> lengths;
  for (const TrackWrite& t : e.track) {
    check_track(t, old_len, new_len, working_row, written, at);
    if (t.row == e.cow_src_row) {
      at.fail("track row " + std::to_string(t.row) + " is this extend's cow_src_row");
    }
    if (!lengths.insert(t.length).second) {
      at.fail("track length " + std::to_string(t.length) + " is written twice in this event");
    }
  }

  // Apply.
  if (existing == nullptr) {
    RequestInfo& info = requests_[e.request];
    info.first_line = at.line;
    info.status_line = at.line;
    take_rows(e.request, info, e.req_row, e.working_row);
  }
  requests_[e.request].length = new_len;
  for (const TrackWrite& t : e.track)
    store_snapshot(t);
}

void ScheduleTracker::apply_step(const std::vector<StepEntry>& batch, int32_t padding,
                                 const Context& at) {
  if (batch.empty()) at.fail("a step with an empty batch");
  if (padding < 0 || padding > kMaxTokens) {
    at.fail("padding " + std::to_string(padding) + " outside 0.." + std::to_string(kMaxTokens));
  }
  const int32_t T = tokens_per_verify();
  std::unordered_set<uint64_t> seen;
  std::unordered_set<int32_t> written;
  for (const StepEntry& entry : batch) {
    if (!seen.insert(entry.request).second) {
      at.fail(req(entry.request) + " appears twice in the batch");
    }
    const RequestInfo& info = running(entry.request, at);
    if (entry.accepted == 0 && header_.overlap && entry.tree == nullptr) {
      if (entry.track != nullptr) {
        at.fail("a discarded entry (accepted 0) carries no track (" + req(entry.request) + ")");
      }
      continue;
    }
    if (entry.accepted < 1 || entry.accepted > T) {
      at.fail("accepted length " + std::to_string(entry.accepted) + " outside 1.." +
              std::to_string(T) + " (" + req(entry.request) + ")" +
              (entry.accepted == 0 ? "; only an overlap trace (header overlap 1) has discarded "
                                     "entries"
                                   : ""));
    }
    if (entry.tree != nullptr) check_tree(*entry.tree, entry.accepted, entry.request, at);
    if (entry.track != nullptr) {
      // Only accepted tokens count: a snapshot of a rejected draft's state is the bug of
      // vLLM #43559.
      check_track(*entry.track, info.length, info.length + entry.accepted, info.working_row,
                  written, at);
    }
  }
  for (const StepEntry& entry : batch) {
    requests_[entry.request].length += entry.accepted;
    if (entry.accepted == 0) requests_[entry.request].discarded_line = at.line;
    if (entry.track != nullptr) store_snapshot(*entry.track);
  }
}

void ScheduleTracker::check_tree(const DraftTree& tree, int32_t accepted, uint64_t request,
                                 const Context& at) const {
  if (header_.tree_nodes == 0) {
    at.fail("a tree verify (" + req(request) + ") in a trace whose header declares no tree_nodes");
  }
  const std::string error = tree_error(tree, accepted, header_.tree_nodes, tokens_per_verify());
  if (!error.empty()) at.fail(error + " (" + req(request) + ")");
}

void ScheduleTracker::apply_retract(const Retract& r, const Context& at) {
  running(r.request, at);
  RequestInfo& info = requests_[r.request];
  release_rows(info);
  info.status = RequestStatus::kRetracted;
  info.status_line = at.line;
}

void ScheduleTracker::apply_resume(const Resume& r, const Context& at) {
  const RequestInfo* info = request(r.request);
  if (info == nullptr) at.fail(req(r.request) + " does not exist (no extend has started it)");
  if (info->status == RequestStatus::kFinished) {
    at.fail(req(r.request) + " finished at line " + std::to_string(info->status_line));
  }
  if (info->status != RequestStatus::kRetracted) {
    at.fail(req(r.request) + " is not retracted (it is running); only a retracted request resumes");
  }
  check_new_rows(r.req_row, r.working_row, at);
  RequestInfo& mutable_info = requests_[r.request];
  take_rows(r.request, mutable_info, r.req_row, r.working_row);
  mutable_info.status_line = at.line;
}

void ScheduleTracker::apply_finish(const Finish& f, const Context& at) {
  const RequestInfo* info = request(f.request);
  if (info == nullptr) at.fail(req(f.request) + " does not exist (no extend has started it)");
  if (info->status == RequestStatus::kFinished) {
    at.fail(req(f.request) + " finished at line " + std::to_string(info->status_line));
  }
  RequestInfo& mutable_info = requests_[f.request];
  if (mutable_info.status == RequestStatus::kRunning) release_rows(mutable_info);
  mutable_info.status = RequestStatus::kFinished;
  mutable_info.status_line = at.line;
}

// ---- bookkeeping --------------------------------------------------------------------------

void ScheduleTracker::take_rows(uint64_t id, RequestInfo& info, int32_t req_row,
                                int32_t working_row) {
  info.status = RequestStatus::kRunning;
  info.req_row = req_row;
  info.working_row = working_row;
  rows_[working_row] = RowUse{RowUse::Kind::kWorking, id, 0};  // evicts a snapshot there
  req_rows_[req_row] = id;
}

void ScheduleTracker::release_rows(RequestInfo& info) {
  rows_.erase(info.working_row);
  req_rows_.erase(info.req_row);
  info.req_row = -1;
  info.working_row = -1;
}

void ScheduleTracker::check_slot_range(const char* event, int32_t slot, const Context& at) const {
  if (header_.host_slots == 0) {
    at.fail(std::string(event) + " event, but the header has no host_slots (no host tier)");
  }
  if (slot < 0 || slot >= header_.host_slots) {
    at.fail("slot " + std::to_string(slot) + " out of range 0.." +
            std::to_string(header_.host_slots - 1) + " (host_slots " +
            std::to_string(header_.host_slots) + ")");
  }
}

RowUse ScheduleTracker::snapshot_row(const char* field, int32_t r, const Context& at) const {
  const RowUse use = row(r);
  if (use.kind != RowUse::Kind::kCache) {
    at.fail(std::string(field) + " " + std::to_string(r) + " holds no snapshot" +
            (use.kind == RowUse::Kind::kWorking
                 ? " (it is the working row of live " + req(use.request) + ")"
                 : std::string(" (it is free)")));
  }
  return use;
}

void ScheduleTracker::apply_offload(const Offload& o, const Context& at) {
  check_slot_range("offload", o.slot, at);
  check_row_range("offload row", o.row, at);
  const RowUse use = snapshot_row("offload row", o.row, at);
  slots_[o.slot] = use.cached_length;
}

void ScheduleTracker::apply_restore(const Restore& r, const Context& at) {
  check_slot_range("restore", r.slot, at);
  check_row_range("restore row", r.row, at);
  const auto slot = slots_.find(r.slot);
  if (slot == slots_.end()) {
    at.fail("slot " + std::to_string(r.slot) + " holds nothing (no offload has filled it)");
  }
  check_not_working("restore row", r.row, at);
  store_snapshot(TrackWrite{slot->second, r.row});
}

void ScheduleTracker::apply_handoff(const Handoff& h, const Context& at) {
  if (header_.prefill_tp == 0) {
    at.fail("handoff event, but the header has no prefill_tp (no prefill instance)");
  }
  check_row_range("handoff row", h.row, at);
  if (const RequestInfo* info = request(h.request)) {
    at.fail("handoff of " + req(h.request) + ", which started here at line " +
            std::to_string(info->first_line));
  }
  check_not_working("handoff row", h.row, at);
  store_snapshot(TrackWrite{h.length, h.row});
}

const int64_t* ScheduleTracker::slot_length(int32_t slot) const {
  const auto it = slots_.find(slot);
  return it == slots_.end() ? nullptr : &it->second;
}

void ScheduleTracker::store_snapshot(const TrackWrite& t) {
  rows_[t.row] = RowUse{RowUse::Kind::kCache, 0, t.length};
}

}  // namespace specstate::trace
