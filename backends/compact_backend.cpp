#include "backends/compact_backend.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "backends/registry.h"
#include "core/errors.h"
#include "core/task_access.h"

namespace specstate {
namespace {

std::optional<int32_t> position(const std::vector<int32_t>& sorted, int32_t value) {
  const auto it = std::lower_bound(sorted.begin(), sorted.end(), value);
  if (it == sorted.end() || *it != value) return std::nullopt;
  return int32_t(it - sorted.begin());
}

class CompactBackend final : public StateBackend {
 public:
  CompactBackend(const PoolShape& full, StoredRows stored, std::unique_ptr<StateBackend> inner)
      : StateBackend(full, inner->seed()),
        stored_(std::move(stored)),
        inner_(std::move(inner)),
        zero_row_digest_(zero_digest(full.conv_cols)),
        zero_state_digest_(zero_digest(full.geometry.conv_state_cols())) {}

  std::string name() const override { return inner_->name(); }
  AllocationReport allocations() const override { return inner_->allocations(); }

 private:
  // The inner row of a stored row; kNoRow stays kNoRow.
  int32_t row(int32_t r) const {
    if (r == kNoRow) return kNoRow;
    const std::optional<int32_t> p = position(stored_.rows, r);
    SPECSTATE_ASSERT(p.has_value(), "a primitive names only rows the lane's storage holds");
    return *p;
  }
  int32_t slot(int32_t s) const {
    if (s == kNoRow) return kNoRow;
    const std::optional<int32_t> p = position(stored_.slots, s);
    SPECSTATE_ASSERT(p.has_value(),
                     "a primitive names only payload slots the lane's storage holds");
    return *p;
  }
  // `tasks` with every row and slot they name as the inner backend stores it.
  template <class Task, class... Mode>
  std::vector<Task> inner_tasks(std::span<const Task> tasks, Mode... mode) const {
    std::vector<Task> inner(tasks.begin(), tasks.end());
    for (Task& t : inner) {
      for_each_row(mode..., t, [&](int32_t& index, const RowUse& use) {
        if (use.first_use) index = use.unit == TaskAccess::kRow ? row(index) : slot(index);
      });
    }
    return inner;
  }

  void do_prefill(std::span<const PrefillTask> tasks) override {
    inner_->prefill(inner_tasks(tasks));
  }
  void do_verify(VerifyMode mode, std::span<const VerifyTask> tasks) override {
    inner_->verify(mode, inner_tasks(tasks, mode));
  }
  void do_replay(std::span<const ReplayTask> tasks) override { inner_->replay(inner_tasks(tasks)); }
  uint64_t do_digest_replayed(const ReplayTask& task) override {
    return inner_->digest_replayed(inner_tasks(std::span<const ReplayTask>(&task, 1))[0]);
  }
  void do_copy_rows(std::span<const RowCopy> copies) override {
    inner_->copy_rows(inner_tasks(copies));
  }
  void do_gather_payload(std::span<const PayloadGather> gathers) override {
    inner_->gather_payload(inner_tasks(gathers));
  }
  void do_write_state(int32_t r, const RowBytes& state) override {
    inner_->write_state(row(r), state);
  }
  void do_fill_row(int32_t r, uint8_t byte) override { inner_->fill_row(row(r), byte); }
  // Request rows are not remapped: the table is whole in every backend.
  void do_set_accepted(std::span<const AcceptedCount> counts) override {
    inner_->set_accepted(counts);
  }
  int32_t do_accepted(int32_t req_row) const override { return inner_->accepted(req_row); }

  // read_row's request (all conv columns of one row), as opposed to read_state's.
  bool is_whole_row(const StateLoc& l, int32_t first_col, int32_t cols) const {
    return first_col == 0 && cols == shape().conv_cols && l == StateLoc::at(l.ssm_row);
  }

  // Reads may name rows the lane never stored (the physical comparison reads the rows either of
  // two lanes stored): those parts are the zero state.
  RowBytes do_read(const StateLoc& l, int32_t first_col, int32_t cols) const override {
    const std::optional<int32_t> ssm = position(stored_.rows, l.ssm_row);
    const std::optional<int32_t> conv = position(stored_.rows, l.conv_row);
    const bool whole_row = is_whole_row(l, first_col, cols);
    if (ssm && conv) {
      return whole_row ? inner_->read_row(*ssm) : inner_->read_state({*ssm, *conv, l.conv_offset});
    }
    const ModelGeometry& g = shape().geometry;
    RowBytes out;
    out.conv.assign(size_t(g.layers) * g.conv_dim() * cols, 0);
    out.ssm.assign(size_t(shape().ssm_row_bytes()) * g.layers, 0);
    if (ssm) out.ssm = inner_->read_state(StateLoc::at(*ssm)).ssm;
    if (conv) {
      out.conv = whole_row ? inner_->read_row(*conv).conv
                           : inner_->read_state({*conv, *conv, l.conv_offset}).conv;
    }
    return out;
  }
  uint64_t do_digest(const StateLoc& l, int32_t first_col, int32_t cols) const override {
    const bool ssm = position(stored_.rows, l.ssm_row).has_value();
    const bool conv = position(stored_.rows, l.conv_row).has_value();
    if (!ssm && !conv) return cols == shape().conv_cols ? zero_row_digest_ : zero_state_digest_;
    if (ssm && conv) {
      const StateLoc in = {row(l.ssm_row), row(l.conv_row), l.conv_offset};
      return is_whole_row(l, first_col, cols) ? inner_->digest_row(in.ssm_row)
                                              : inner_->digest_state(in);
    }
    return digest_of(do_read(l, first_col, cols), shape(), cols);
  }
  VerifyOutputs do_read_outputs() const override { return inner_->read_outputs(); }
  std::vector<uint8_t> do_read_payload(int32_t s) const override {
    if (const std::optional<int32_t> p = position(stored_.slots, s))
      return inner_->read_payload(*p);
    return std::vector<uint8_t>(size_t(shape().geometry.layers) * shape().payload_slot_bytes(), 0);
  }

  uint64_t zero_digest(int32_t cols) const {
    const ModelGeometry& g = shape().geometry;
    RowBytes zero;
    zero.conv.assign(size_t(g.layers) * g.conv_dim() * cols, 0);
    zero.ssm.assign(size_t(shape().ssm_row_bytes()) * g.layers, 0);
    return digest_of(zero, shape(), cols);
  }

  StoredRows stored_;
  std::unique_ptr<StateBackend> inner_;
  uint64_t zero_row_digest_, zero_state_digest_;  // of a row no primitive has named
};

}  // namespace

PoolShape stored_shape(const PoolShape& full, const StoredRows& stored) {
  PoolShape s = full;
  s.state_rows = std::max<int32_t>(1, int32_t(stored.rows.size()));  // a backend has >= 1 row
  s.payload_slots = int32_t(stored.slots.size());
  return s;
}

std::unique_ptr<StateBackend> make_compact_backend(const std::string& kind, const PoolShape& full,
                                                   StoredRows stored, uint64_t seed) {
  auto check_list = [&](const std::vector<int32_t>& list, int32_t limit) {
    SPECSTATE_ASSERT(std::is_sorted(list.begin(), list.end()) &&
                         std::adjacent_find(list.begin(), list.end()) == list.end() &&
                         (list.empty() || (list.front() >= 0 && list.back() < limit)),
                     "stored rows and slots are ascending, distinct and inside the pool");
  };
  check_list(stored.rows, full.state_rows);
  check_list(stored.slots, full.payload_slots);
  std::unique_ptr<StateBackend> inner = make_backend(kind, stored_shape(full, stored), seed);
  return std::make_unique<CompactBackend>(full, std::move(stored), std::move(inner));
}

}  // namespace specstate
