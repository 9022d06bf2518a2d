#include "backends/state_backend.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "core/numerics/digest.h"
#include "core/task_access.h"

namespace specstate {
namespace {

[[noreturn]] void bad_call(const std::string& message) {
  throw std::invalid_argument("StateBackend: " + message);
}

// Rows (or payload slots) a call reads and writes, to refuse tasks that would race with each
// other: on a device the tasks of one call run concurrently. Tasks whose guards exclude each
// other never both run, so they may share rows.
class RowAccess {
 public:
  explicit RowAccess(const char* call, const char* unit = "row") : call_(call), unit_(unit) {}
  void add(const TaskAccess& a) {
    if (a.index == kNoRow) return;
    (a.kind == TaskAccess::kRead ? task_reads_ : task_writes_).insert(a.index);
  }
  void begin_task(const Guard& guard) {
    guard_ = guard;
    task_reads_.clear();
    task_writes_.clear();
  }
  void end_task() {
    for (int32_t row : task_writes_) {
      if (clashes(writes_, row) || clashes(reads_, row)) {
        bad_call(std::string(call_) + ": " + unit_ + " " + std::to_string(row) +
                 " is written by one task and read or written by another of the same call");
      }
    }
    for (int32_t row : task_reads_) {
      if (clashes(writes_, row)) {
        bad_call(std::string(call_) + ": " + unit_ + " " + std::to_string(row) +
                 " is read by one task and written by another of the same call");
      }
    }
    for (int32_t row : task_reads_)
      reads_[row].push_back(guard_);
    for (int32_t row : task_writes_)
      writes_[row].push_back(guard_);
  }

 private:
  bool clashes(const std::map<int32_t, std::vector<Guard>>& seen, int32_t row) const {
    const auto it = seen.find(row);
    if (it == seen.end()) return false;
    return std::any_of(it->second.begin(), it->second.end(),
                       [&](const Guard& g) { return !guard_.excludes(g); });
  }

  const char* call_;
  const char* unit_;
  Guard guard_;
  std::map<int32_t, std::vector<Guard>> reads_, writes_;  // row -> guards of the tasks so far
  std::set<int32_t> task_reads_, task_writes_;
};

// The rows and the payload slots of one call, task by task (core/task_access.h).
class CallAccess {
 public:
  explicit CallAccess(const char* call) : rows_(call), slots_(call, "payload slot") {}
  template <class... Task>
  void task(const Guard& guard, const Task&... task) {
    rows_.begin_task(guard);
    slots_.begin_task(guard);
    for_each_access(task..., [&](const TaskAccess& a) {
      (a.unit == TaskAccess::kRow ? rows_ : slots_).add(a);
    });
    rows_.end_task();
    slots_.end_task();
  }

 private:
  RowAccess rows_, slots_;
};

// Whether two spans of a ring of `size` positions share a position.
bool spans_overlap(int32_t first_a, int32_t count_a, int32_t first_b, int32_t count_b,
                   int32_t size) {
  for (int32_t j = 0; j < count_b; ++j) {
    const int32_t offset = ((first_b + j - first_a) % size + size) % size;
    if (offset < count_a) return true;
  }
  return false;
}

// A draft tree of n nodes: node 0 the root (-1), every other node's parent before it, and no
// output row named twice (the nodes run depth first, and a node may read its parent's row).
void check_parents(const std::vector<int8_t>& parents, int32_t n, VerifyMode mode,
                   const std::array<int32_t, kMaxTreeNodes>& out_rows) {
  std::set<int32_t> rows;
  for (int32_t i = 0; i < n; ++i) {
    if (out_rows[size_t(i)] != kNoRow && !rows.insert(out_rows[size_t(i)]).second)
      bad_call("verify: a tree names out row " + std::to_string(out_rows[size_t(i)]) + " twice");
  }
  if (mode == VerifyMode::kWindow) bad_call("verify: window mode runs chains, not trees");
  if (int32_t(parents.size()) != n)
    bad_call("verify: " + std::to_string(parents.size()) + " parents for " + std::to_string(n) +
             " tokens");
  for (int32_t i = 0; i < n; ++i) {
    if (i == 0 ? parents[0] != -1 : parents[size_t(i)] < 0 || parents[size_t(i)] >= i)
      bad_call("verify: parent " + std::to_string(parents[size_t(i)]) + " of node " +
               std::to_string(i) + " (the root is node 0, parent -1; a parent comes before)");
  }
}

}  // namespace

StateBackend::StateBackend(PoolShape shape, uint64_t seed) : shape_(std::move(shape)), seed_(seed) {
  const ModelGeometry& g = shape_.geometry;
  if (g.layers < 1 || g.num_k_heads < 1 || g.num_v_heads % g.num_k_heads != 0 || g.head_k_dim < 1 ||
      g.head_v_dim < 1 || g.conv_width < 2) {
    bad_call("invalid geometry for preset '" + g.preset + "'");
  }
  if (shape_.state_rows < 1) bad_call("state_rows must be >= 1");
  if (shape_.conv_cols < g.conv_state_cols()) bad_call("conv_cols must be >= W-1");
  if (shape_.payload_slots < 0 || shape_.payload_tokens < 0 ||
      shape_.payload_tokens > kMaxPayloadTokens) {
    bad_call("invalid payload shape");
  }
}

StateBackend::~StateBackend() = default;

void StateBackend::check_row(int32_t row, const char* what) const {
  if (row < 0 || row >= shape_.state_rows) {
    bad_call(std::string(what) + ": row " + std::to_string(row) + " outside 0.." +
             std::to_string(shape_.state_rows - 1));
  }
}

void StateBackend::check_loc(const StateLoc& loc, const char* what) const {
  check_row(loc.ssm_row, what);
  check_row(loc.conv_row, what);
  const int32_t max_offset = shape_.conv_cols - shape_.geometry.conv_state_cols();
  if (loc.conv_offset < 0 || loc.conv_offset > max_offset) {
    bad_call(std::string(what) + ": conv offset " + std::to_string(loc.conv_offset) +
             " outside 0.." + std::to_string(max_offset));
  }
}

void StateBackend::check_slot(int32_t slot, int32_t first_token, int32_t tokens,
                              uint32_t round_after, const char* what, int32_t max_tokens) const {
  if (slot < 0 || slot >= shape_.payload_slots) {
    bad_call(std::string(what) + ": payload slot " + std::to_string(slot) + " outside 0.." +
             std::to_string(shape_.payload_slots - 1));
  }
  if (tokens < 1 || tokens > std::min(shape_.payload_tokens, max_tokens)) {
    bad_call(std::string(what) + ": " + std::to_string(tokens) +
             " payload tokens, a span holds 1.." +
             std::to_string(std::min(shape_.payload_tokens, max_tokens)));
  }
  if (first_token < 0 || first_token >= shape_.payload_tokens) {
    bad_call(std::string(what) + ": first token " + std::to_string(first_token) + " outside 0.." +
             std::to_string(shape_.payload_tokens - 1));
  }
  if (tokens < 32 && (round_after >> tokens) != 0) {
    bad_call(std::string(what) + ": round_after marks tokens past the span");
  }
}

void StateBackend::prefill(std::span<const PrefillTask> tasks) {
  CallAccess access("prefill");
  for (const PrefillTask& t : tasks) {
    if (t.tokens.count < 1) bad_call("prefill: token count must be >= 1");
    if (!t.from_zero) check_loc(t.from, "prefill source");
    for (const StateWrite& w : t.writes) {
      check_row(w.row, "prefill write");
      if (w.after_tokens < 1 || w.after_tokens > t.tokens.count) {
        bad_call("prefill: write after " + std::to_string(w.after_tokens) + " of " +
                 std::to_string(t.tokens.count) + " tokens");
      }
    }
    check_guard(t.guard, "prefill");
    access.task(t.guard, t);
  }
  do_prefill(tasks);
}

void StateBackend::verify(VerifyMode mode, std::span<const VerifyTask> tasks) {
  CallAccess access("verify");
  const int32_t w = shape_.geometry.conv_state_cols();
  for (const VerifyTask& t : tasks) {
    if (t.from.is_none()) continue;  // padding
    const int32_t n = t.tokens.count;
    const bool tree = !t.parents.empty();
    if (n < 1 || n > (tree ? kMaxTreeNodes : kMaxVerifyTokens))
      bad_call("verify: token count " + std::to_string(n));
    if (tree) check_parents(t.parents, n, mode, t.out_rows);
    check_loc(t.from, "verify source");
    if (t.pending.count > 0) {
      const PendingReplay& p = t.pending;
      check_slot(p.payload_slot, p.first_token, p.count, p.round_after, "verify pending replay");
      if (!tree && p.count + n > kMaxReplayTokens) {
        bad_call("verify: " + std::to_string(p.count) + " pending and " + std::to_string(n) +
                 " new tokens exceed " + std::to_string(kMaxReplayTokens));
      }
      if (p.commit_row != kNoRow) check_row(p.commit_row, "verify pending commit");
    }
    for (int j = n; j < kMaxTreeNodes; ++j) {
      if (t.out_rows[j] != kNoRow) bad_call("verify: out_rows set past the token count");
    }
    for (int j = 0; j < n; ++j) {
      if (t.out_rows[j] != kNoRow) check_row(t.out_rows[j], "verify out row");
    }
    switch (mode) {
      case VerifyMode::kStateRows:
        break;
      case VerifyMode::kWindow:
        if (w - 1 + n > shape_.conv_cols) {
          bad_call("verify: window mode needs conv_cols >= W-2 + T");
        }
        break;
      case VerifyMode::kPayload:
        check_slot(t.payload_slot, t.payload_first_token, n, 0, "verify payload", kMaxTreeNodes);
        if (t.pending.count > 0 && t.pending.payload_slot == t.payload_slot &&
            spans_overlap(t.pending.first_token, t.pending.count, t.payload_first_token, n,
                          shape_.payload_tokens)) {
          bad_call("verify: the new payload overwrites pending tokens of its slot");
        }
        break;
    }
    check_guard(t.guard, "verify");
    access.task(t.guard, mode, t);
  }
  do_verify(mode, tasks);
}

void StateBackend::replay(std::span<const ReplayTask> tasks) {
  CallAccess access("replay");
  for (const ReplayTask& t : tasks) {
    if (t.from.is_none()) continue;
    check_replay(t);
    access.task(t.guard, t);
  }
  do_replay(tasks);
}

void StateBackend::check_replay(const ReplayTask& t) const {
  check_loc(t.from, "replay source");
  check_slot(t.payload_slot, t.first_token, t.count, t.round_after, "replay payload");
  check_row(t.dst_row, "replay destination");
  check_guard(t.guard, "replay");
}

void StateBackend::copy_rows(std::span<const RowCopy> copies) {
  CallAccess access("copy_rows");
  for (const RowCopy& c : copies) {
    if (c.src.is_none() || c.dst_row == kNoRow) continue;
    check_loc(c.src, "copy source");
    check_row(c.dst_row, "copy destination");
    check_guard(c.guard, "copy");
    access.task(c.guard, c);
  }
  do_copy_rows(copies);
}

void StateBackend::gather_payload(std::span<const PayloadGather> gathers) {
  CallAccess access("gather_payload");
  for (const PayloadGather& g : gathers) {
    const int32_t n = int32_t(g.from.size());
    check_slot(g.slot, g.first_token, n, 0, "payload gather", kMaxTreeNodes);
    for (int32_t j = 0; j < n; ++j) {
      if (g.from[j] < j || g.from[j] >= shape_.payload_tokens ||
          (j > 0 && g.from[j] <= g.from[j - 1]))
        bad_call("payload gather: from[" + std::to_string(j) + "] = " + std::to_string(g.from[j]) +
                 " (from must increase, with from[j] >= j, inside the slot)");
    }
    access.task(Guard{}, g);
  }
  do_gather_payload(gathers);
}

void StateBackend::write_state(int32_t row, const RowBytes& state) {
  check_row(row, "write_state");
  const ModelGeometry& g = shape_.geometry;
  if (state.conv.size() != size_t(g.layers) * g.conv_dim() * g.conv_state_cols() ||
      state.ssm.size() != size_t(shape_.ssm_row_bytes()) * g.layers) {
    bad_call("write_state: the bytes are not one state of this pool's shape");
  }
  do_write_state(row, state);
}

void StateBackend::fill_row(int32_t row, uint8_t byte) {
  check_row(row, "fill_row");
  do_fill_row(row, byte);
}

void StateBackend::set_accepted(std::span<const AcceptedCount> counts) {
  std::set<int32_t> rows;
  for (const AcceptedCount& c : counts) {
    check_guard({c.req_row, c.count}, "set_accepted");
    if (!rows.insert(c.req_row).second)
      bad_call("set_accepted: request row " + std::to_string(c.req_row) + " twice");
  }
  do_set_accepted(counts);
}

int32_t StateBackend::accepted(int32_t req_row) const {
  if (req_row < 0 || req_row >= shape_.request_rows) {
    bad_call("accepted: request row " + std::to_string(req_row) + " outside 0.." +
             std::to_string(shape_.request_rows - 1));
  }
  return do_accepted(req_row);
}

void StateBackend::check_guard(const Guard& guard, const char* what) const {
  if (guard.is_none()) return;
  if (guard.req_row < 0 || guard.req_row >= shape_.request_rows || guard.count < 0) {
    bad_call(std::string(what) + ": guard on request row " + std::to_string(guard.req_row) +
             " (count " + std::to_string(guard.count) + "), the table has rows 0.." +
             std::to_string(shape_.request_rows - 1));
  }
}

RowBytes StateBackend::read_row(int32_t row) const {
  check_row(row, "read_row");
  return do_read(StateLoc::at(row), 0, shape_.conv_cols);
}

RowBytes StateBackend::read_state(const StateLoc& loc) const {
  check_loc(loc, "read_state");
  return do_read(loc, loc.conv_offset, shape_.geometry.conv_state_cols());
}

uint64_t StateBackend::digest_row(int32_t row) const {
  check_row(row, "digest_row");
  return do_digest(StateLoc::at(row), 0, shape_.conv_cols);
}

uint64_t StateBackend::digest_state(const StateLoc& loc) const {
  check_loc(loc, "digest_state");
  return do_digest(loc, loc.conv_offset, shape_.geometry.conv_state_cols());
}

uint64_t StateBackend::digest_replayed(const ReplayTask& task) {
  if (task.from.is_none()) bad_call("digest_replayed: a padding task replays nothing");
  check_replay(task);
  return do_digest_replayed(task);
}

uint64_t StateBackend::replay_then_digest(const ReplayTask& task) {
  do_replay({&task, 1});
  return do_digest(StateLoc::at(task.dst_row), 0, shape_.geometry.conv_state_cols());
}

VerifyOutputs StateBackend::read_outputs() const {
  return do_read_outputs();
}

std::vector<uint8_t> StateBackend::read_payload(int32_t slot) const {
  if (slot < 0 || slot >= shape_.payload_slots) bad_call("read_payload: slot out of range");
  return do_read_payload(slot);
}

uint64_t digest_of(const RowBytes& bytes, const PoolShape& shape, int32_t cols) {
  const ModelGeometry& g = shape.geometry;
  const size_t conv_words = size_t(g.layers) * g.conv_dim() * cols;
  if (bytes.conv.size() != conv_words ||
      bytes.ssm.size() != size_t(shape.ssm_row_bytes()) * g.layers) {
    bad_call("digest_of: RowBytes do not match the pool shape");
  }
  // The word stream: conv words, then the SSM bytes as little-endian 16-bit halves.
  const size_t ssm_words = bytes.ssm.size() / 2, words = conv_words + ssm_words;
  auto word = [&](size_t i) -> uint16_t {
    if (i >= words) return 0;  // the last block's padding
    if (i < conv_words) return bytes.conv[i];
    const size_t k = 2 * (i - conv_words);
    return uint16_t(bytes.ssm[k] | (bytes.ssm[k + 1] << 8));
  };
  uint64_t sum = 0;
  for (size_t b = 0; 4 * b < words; ++b) {
    sum += num::digest_block(
        b, num::digest_pack(word(4 * b), word(4 * b + 1), word(4 * b + 2), word(4 * b + 3)));
  }
  return sum;
}

}  // namespace specstate
