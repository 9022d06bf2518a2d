// Two backends of one shape and seed driven in lockstep (the reference "cpu" and a candidate,
// "cuda"), compared byte for byte. Strategy-level and trace-replay differential tests can build
// on it: apply the same call to both, then check the rows the call named (and, at the end,
// every row) and stop at the first difference with its row, layer, tensor and both values.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "backends/registry.h"
#include "tests/backend_test_util.h"

namespace specstate::test {

class BackendPair {
 public:
  BackendPair(const PoolShape& shape, uint64_t seed, const std::string& candidate = "cuda")
      : shape_(shape),
        ref_(make_backend("cpu", shape, seed)),
        cand_(make_backend(candidate, shape, seed)) {}

  const PoolShape& shape() const { return shape_; }
  StateBackend& ref() const { return *ref_; }
  StateBackend& cand() const { return *cand_; }

  // Runs fn(backend) on the reference, then on the candidate.
  template <class Fn>
  void apply(Fn&& fn) {
    fn(*ref_);
    fn(*cand_);
  }
  void prefill(const std::vector<PrefillTask>& t) {
    apply([&](StateBackend& b) { b.prefill(t); });
  }
  void verify(VerifyMode m, const std::vector<VerifyTask>& t) {
    apply([&](StateBackend& b) { b.verify(m, t); });
  }
  void replay(const std::vector<ReplayTask>& t) {
    apply([&](StateBackend& b) { b.replay(t); });
  }
  void gather_payload(const std::vector<PayloadGather>& g) {
    apply([&](StateBackend& b) { b.gather_payload(g); });
  }
  void copy_rows(const std::vector<RowCopy>& c) {
    apply([&](StateBackend& b) { b.copy_rows(c); });
  }
  void fill_row(int32_t row, uint8_t byte) {
    apply([&](StateBackend& b) { b.fill_row(row, byte); });
  }
  void write_state(int32_t row, const RowBytes& s) {
    apply([&](StateBackend& b) { b.write_state(row, s); });
  }

  // Whole row bytes equal, and the candidate's device digest equals the digest of its bytes
  // and the reference's digest.
  ::testing::AssertionResult row_equal(int32_t row) const {
    const RowBytes a = ref_->read_row(row), b = cand_->read_row(row);
    const std::string diff = first_difference(a, b, shape_);
    if (!diff.empty()) return ::testing::AssertionFailure() << "row " << row << ": " << diff;
    const uint64_t expected = digest_of(a, shape_, shape_.conv_cols);
    if (ref_->digest_row(row) != expected || cand_->digest_row(row) != expected) {
      return ::testing::AssertionFailure() << "row " << row << ": digests differ";
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult rows_equal(const std::vector<int32_t>& rows) const {
    for (int32_t r : rows) {
      if (r == kNoRow) continue;
      auto result = row_equal(r);
      if (!result) return result;
    }
    return ::testing::AssertionSuccess();
  }

  // Every row, compared by digest (cheap on the device); a differing digest is then explained
  // by the bytes.
  ::testing::AssertionResult all_rows_equal() const {
    for (int32_t r = 0; r < shape_.state_rows; ++r) {
      if (ref_->digest_row(r) != cand_->digest_row(r)) {
        auto result = row_equal(r);
        return result ? ::testing::AssertionFailure() << "row " << r << ": digests differ" : result;
      }
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult state_equal(const StateLoc& loc) const {
    const RowBytes a = ref_->read_state(loc), b = cand_->read_state(loc);
    const int32_t cols = shape_.geometry.conv_state_cols();
    const std::string diff = first_difference(a, b, shape_);
    if (!diff.empty())
      return ::testing::AssertionFailure() << "state at row " << loc.ssm_row << ": " << diff;
    if (cand_->digest_state(loc) != digest_of(a, shape_, cols)) {
      return ::testing::AssertionFailure() << "state at row " << loc.ssm_row << ": digest differs";
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult outputs_equal() const {
    const std::string diff = first_difference(ref_->read_outputs(), cand_->read_outputs(), shape_);
    if (diff.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << diff;
  }

  ::testing::AssertionResult payloads_equal() const {
    for (int32_t s = 0; s < shape_.payload_slots; ++s) {
      const auto a = ref_->read_payload(s), b = cand_->read_payload(s);
      for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] != b[i]) {
          return ::testing::AssertionFailure() << "payload slot " << s << " byte " << i << ": "
                                               << int(a[i]) << " vs " << int(b[i]);
        }
      }
    }
    return ::testing::AssertionSuccess();
  }

 private:
  PoolShape shape_;
  std::unique_ptr<StateBackend> ref_, cand_;
};

}  // namespace specstate::test
