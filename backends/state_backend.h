// StateBackend: a dumb executor of a handful of primitives over explicit row indices.
//
// A backend owns, for every GDN layer,
//   conv    [state_rows, conv_dim, conv_cols]           bf16
//   ssm     [state_rows, HV, K, V]                      fp32 or bf16
//   payload [payload_slots, payload_tokens] tokens: x bf16, then alpha, k_hat, delta fp32
//           (core/numerics/payload_token.h: what a replay runs a token from)
//   outputs [tasks, T, layers, HV, V]                   bf16: per-token o of the last verify
// and the model parameters generated from the seed. It knows nothing of requests, strategies or
// the live-state table: core/ decides which rows each call reads and writes, identically for
// every backend, so a difference between backends is a kernel bug.
//
// Every primitive applies to all layers. Token inputs are regenerated from
// (seed, request, position, layer) by core/numerics/inputs.h; a replayed token runs from the
// values its verify kept in a payload slot.
// A state "row" holds, per layer, the SSM matrices and a conv window of W-1 columns at some
// offset inside the row's conv_cols columns (offset 0 unless the window strategy widens it).
//
// Row index -1 means "none": a padding task (CUDA-graph padding) reads and writes nothing.
// The public methods check their arguments once (std::invalid_argument on a malformed call,
// which is a bug in the caller) and then run the private do_* implementation, which may assume
// valid input. Tasks of one call must not write a row another task of the call reads or writes,
// unless their guards exclude each other (one request row, different counts).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/numerics/bf16.h"
#include "core/pool_shape.h"
#include "core/primitives.h"

namespace specstate {

// Bytes a backend really allocated, per tensor kind.
struct AllocationReport {
  int64_t conv_bytes = 0;
  int64_t ssm_bytes = 0;
  int64_t payload_bytes = 0;
  int64_t total() const { return conv_bytes + ssm_bytes + payload_bytes; }
};

// o of every token of the last verify call; entries of padding tasks and of tokens past a
// task's count are zero.
struct VerifyOutputs {
  int32_t tasks = 0;
  int32_t tokens = 0;                  // the largest token count of the call
  std::vector<num::bf16_bits> values;  // [tasks, tokens, layers, HV, V]
};

class StateBackend {
 public:
  StateBackend(PoolShape shape, uint64_t seed);
  virtual ~StateBackend();
  StateBackend(const StateBackend&) = delete;
  StateBackend& operator=(const StateBackend&) = delete;

  const PoolShape& shape() const { return shape_; }
  uint64_t seed() const { return seed_; }
  virtual std::string name() const = 0;

  void prefill(std::span<const PrefillTask> tasks);
  void verify(VerifyMode mode, std::span<const VerifyTask> tasks);
  void replay(std::span<const ReplayTask> tasks);
  void copy_rows(std::span<const RowCopy> copies);
  void gather_payload(std::span<const PayloadGather> gathers);
  // Writes a state read earlier by read_state (swap-in after a retract): the SSM and the W-1
  // window columns at offset 0 of `row`, all layers.
  void write_state(int32_t row, const RowBytes& state);
  // Sets every byte of a state row (all layers, conv and SSM) to `byte`: test poison.
  void fill_row(int32_t row, uint8_t byte);
  // Writes counts into the table of accepted counts, one per request row (shape().request_rows,
  // all 0 at first), in order with the calls before and after it: what an engine's sampler
  // leaves on the device. A guarded task (core/primitives.h, Guard) reads the table when it
  // runs, on the device: it runs only when its count matches, and is otherwise a padding task.
  void set_accepted(std::span<const AcceptedCount> counts);
  // The count of one request row (a host read: it waits for the work before it).
  int32_t accepted(int32_t req_row) const;

  // The whole row (all conv columns).
  RowBytes read_row(int32_t row) const;
  // The logical state at `loc`: SSM row and the W-1 window columns.
  RowBytes read_state(const StateLoc& loc) const;
  // Digests of the same bytes as read_row / read_state, computed where the data lives.
  uint64_t digest_row(int32_t row) const;
  uint64_t digest_state(const StateLoc& loc) const;
  // digest_state(StateLoc::at(task.dst_row)) as it would be after replay({task}), where a backend
  // may compute it without writing the destination: afterwards that row holds either the replayed
  // state or what it held before. What the simulator compares a pending state by (the CPU
  // backend digests the replayed heads in cache instead of storing 9 MB and reading it back).
  uint64_t digest_replayed(const ReplayTask& task);
  // Per-token outputs o of the last verify.
  VerifyOutputs read_outputs() const;
  // One payload slot's bytes: [payload_tokens, layers] of tokens laid out as
  // core/numerics/payload_token.h says (x bf16, then alpha, k_hat, delta fp32).
  std::vector<uint8_t> read_payload(int32_t slot) const;

  virtual AllocationReport allocations() const = 0;

 protected:
  // Raises std::invalid_argument naming the call and the offending field.
  void check_row(int32_t row, const char* what) const;
  // digest_replayed by its definition: the replay, then the digest of its destination.
  uint64_t replay_then_digest(const ReplayTask& task);

 private:
  virtual void do_prefill(std::span<const PrefillTask> tasks) = 0;
  virtual void do_verify(VerifyMode mode, std::span<const VerifyTask> tasks) = 0;
  virtual void do_replay(std::span<const ReplayTask> tasks) = 0;
  virtual void do_copy_rows(std::span<const RowCopy> copies) = 0;
  virtual void do_gather_payload(std::span<const PayloadGather> gathers) = 0;
  virtual void do_write_state(int32_t row, const RowBytes& state) = 0;
  virtual void do_fill_row(int32_t row, uint8_t byte) = 0;
  virtual void do_set_accepted(std::span<const AcceptedCount> counts) = 0;
  virtual int32_t do_accepted(int32_t req_row) const = 0;
  virtual RowBytes do_read(const StateLoc& loc, int32_t first_col, int32_t cols) const = 0;
  virtual uint64_t do_digest(const StateLoc& loc, int32_t first_col, int32_t cols) const = 0;
  virtual uint64_t do_digest_replayed(const ReplayTask& task) { return replay_then_digest(task); }
  virtual VerifyOutputs do_read_outputs() const = 0;
  virtual std::vector<uint8_t> do_read_payload(int32_t slot) const = 0;

  void check_loc(const StateLoc& loc, const char* what) const;
  void check_replay(const ReplayTask& task) const;
  void check_guard(const Guard& guard, const char* what) const;
  // A span of `tokens` tokens (at most max_tokens) of a payload slot.
  void check_slot(int32_t slot, int32_t first_token, int32_t tokens, uint32_t round_after,
                  const char* what, int32_t max_tokens = kMaxReplayTokens) const;

  PoolShape shape_;
  uint64_t seed_;
};

// Digest of RowBytes exactly as digest_row / digest_state compute it on any backend.
uint64_t digest_of(const RowBytes& bytes, const PoolShape& shape, int32_t cols);

}  // namespace specstate
