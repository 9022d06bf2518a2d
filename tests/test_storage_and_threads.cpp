// The CPU backend's bytes do not depend on the thread count; a layer subset computes exactly the
// bytes of those layers; a compact backend (backends/compact_backend.h) stores only its rows
// and behaves, on them, exactly like a full one.
#include <gtest/gtest.h>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>

#include "backends/compact_backend.h"
#include "backends/cpu/cpu_backend.h"
#include "tests/backend_test_util.h"

namespace specstate::test {
namespace {

constexpr uint64_t kSeed = 77;
constexpr int32_t kT = 4;

// Three real GDN layers of Qwen3-Next at TP 1 (HV = 32, K = V = 128, conv_dim 8192).
PoolShape three_real_layers(SsmDtype dtype, int32_t rows) {
  PoolShape s = make_shape("qwen3-next-80b-a3b", dtype, rows, kT, /*wide_conv=*/true);
  s.geometry.layers = 3;
  return s;
}

// Every primitive, batched: 7 prefills, a state-rows verify of 7 requests, a window verify, a
// payload verify with a pending replay, a replay, and copies. Rows 0..6 working, 7..34 outputs.
void run_sequence(StateBackend& b) {
  std::vector<PrefillTask> prefills;
  for (int r = 0; r < 7; ++r)
    prefills.push_back(prefill_task(r + 1, 0, 3 + r, r));
  prefills[2].writes.push_back({2, 40});
  b.prefill(prefills);
  std::vector<VerifyTask> verifies;
  for (int r = 0; r < 7; ++r) {
    verifies.push_back(verify_task(r + 1, 3 + r, kT, StateLoc::at(r),
                                   {7 + 4 * r, 8 + 4 * r, 9 + 4 * r, 10 + 4 * r}));
  }
  b.verify(VerifyMode::kStateRows, verifies);
  const VerifyTask window = verify_task(1, 7, kT, StateLoc::at(0), {35, 36, 37, 38});
  b.verify(VerifyMode::kWindow, {&window, 1});
  VerifyTask payload = verify_task(2, 8, kT, StateLoc::at(1));
  payload.payload_slot = 0;
  b.verify(VerifyMode::kPayload, {&payload, 1});
  VerifyTask pending = verify_task(2, 10, kT, StateLoc::at(1));
  pending.payload_slot = 1;
  pending.pending = {0, 2, 39};
  b.verify(VerifyMode::kPayload, {&pending, 1});
  const ReplayTask replay{StateLoc::at(39), 1, 3, 41};
  b.replay({&replay, 1});
  const RowCopy copies[] = {{StateLoc{36, 0, 1}, 42}, {StateLoc::at(41), 43}};
  b.copy_rows(copies);
}

std::vector<RowBytes> all_rows(const StateBackend& b) {
  std::vector<RowBytes> rows;
  for (int32_t r = 0; r < b.shape().state_rows; ++r)
    rows.push_back(b.read_row(r));
  return rows;
}

class Threads : public ::testing::TestWithParam<SsmDtype> {};

TEST_P(Threads, BytesAreTheSameForOneTwoAndSevenThreads) {
  if (!SPECSTATE_CPU_THREADS) GTEST_SKIP() << "the CPU backend was built without threads";
  std::vector<std::vector<RowBytes>> rows;
  std::vector<VerifyOutputs> outputs;
  std::vector<std::vector<uint64_t>> digests;
  for (int threads : {1, 2, 7}) {
    // More threads than this machine may have cores: raise TBB's limit, then run in an arena.
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(threads));
    tbb::task_arena arena(threads);
    arena.execute([&] {
      auto b = make_cpu_backend(three_real_layers(GetParam(), 44), kSeed);
      run_sequence(*b);
      rows.push_back(all_rows(*b));
      outputs.push_back(b->read_outputs());
      std::vector<uint64_t> d;
      for (int32_t r = 0; r < 44; ++r)
        d.push_back(b->digest_row(r));
      digests.push_back(d);
    });
  }
  for (size_t i = 1; i < rows.size(); ++i) {
    for (size_t r = 0; r < rows[0].size(); ++r) {
      ASSERT_EQ(rows[i][r], rows[0][r])
          << "row " << r << ", run " << i << ": "
          << first_difference(rows[i][r], rows[0][r], three_real_layers(GetParam(), 44));
    }
    EXPECT_EQ(outputs[i].values, outputs[0].values);
    EXPECT_EQ(digests[i], digests[0]);
  }
  // The per-layer digests add up to the host digest of the same bytes.
  const PoolShape shape = three_real_layers(GetParam(), 44);
  for (size_t r = 0; r < rows[0].size(); ++r)
    EXPECT_EQ(digests[0][r], digest_of(rows[0][r], shape, shape.conv_cols));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, Threads, ::testing::Values(SsmDtype::kF32, SsmDtype::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// RowBytes of layer `l` only.
RowBytes layer_of(const RowBytes& row, const PoolShape& shape, int l) {
  const ModelGeometry& g = shape.geometry;
  const size_t conv = row.conv.size() / g.layers, ssm = row.ssm.size() / g.layers;
  return {
      std::vector<num::bf16_bits>(row.conv.begin() + l * conv, row.conv.begin() + (l + 1) * conv),
      std::vector<uint8_t>(row.ssm.begin() + l * ssm, row.ssm.begin() + (l + 1) * ssm)};
}

TEST(LayerSubset, EachLayerHasTheBytesOfTheFullRun) {
  const PoolShape full = three_real_layers(SsmDtype::kF32, 44);
  PoolShape subset = full;
  subset.geometry = with_layers(full.geometry, {0, 2});
  auto a = make_cpu_backend(full, kSeed);
  auto b = make_cpu_backend(subset, kSeed);
  run_sequence(*a);
  run_sequence(*b);
  for (int32_t r = 0; r < 44; ++r) {
    const RowBytes ra = a->read_row(r), rb = b->read_row(r);
    ASSERT_EQ(layer_of(rb, subset, 0), layer_of(ra, full, 0)) << "row " << r << ", layer 0";
    ASSERT_EQ(layer_of(rb, subset, 1), layer_of(ra, full, 2)) << "row " << r << ", layer 2";
  }
  // Outputs [tasks, tokens, layers, HV, V]: the subset's layers 0, 1 are the full run's 0, 2.
  const VerifyOutputs oa = a->read_outputs(), ob = b->read_outputs();
  const size_t per_layer = size_t(full.geometry.num_v_heads) * full.geometry.head_v_dim;
  for (size_t tok = 0; tok < size_t(oa.tasks) * oa.tokens; ++tok) {
    for (int l : {0, 1}) {
      const int full_l = l == 0 ? 0 : 2;
      EXPECT_TRUE(std::equal(ob.values.begin() + (tok * 2 + l) * per_layer,
                             ob.values.begin() + (tok * 2 + l + 1) * per_layer,
                             oa.values.begin() + (tok * 3 + full_l) * per_layer))
          << "token " << tok << ", layer " << full_l;
    }
  }
}

TEST(CompactBackend, StoredRowsBehaveAsInAFullBackendAndOthersReadAsZero) {
  const PoolShape full = three_real_layers(SsmDtype::kF32, 4096);
  ASSERT_EQ(full.payload_slots, 4);
  StoredRows stored;
  for (int32_t r = 0; r <= 43; ++r)
    stored.rows.push_back(r);
  stored.slots = {0, 1};
  auto compact = make_compact_backend("cpu", full, stored, kSeed);
  PoolShape small = full;
  small.state_rows = 44;
  auto plain = make_cpu_backend(small, kSeed);
  run_sequence(*compact);
  run_sequence(*plain);
  for (int32_t r = 0; r < 44; ++r) {
    ASSERT_EQ(compact->read_row(r), plain->read_row(r)) << "row " << r;
    EXPECT_EQ(compact->digest_row(r), plain->digest_row(r));
  }
  EXPECT_EQ(compact->read_outputs().values, plain->read_outputs().values);
  EXPECT_EQ(compact->read_payload(1), plain->read_payload(1));
  // A row the lane never stored is the zero state, as in a fresh full pool.
  const RowBytes zero = compact->read_row(4000);
  EXPECT_TRUE(std::all_of(zero.conv.begin(), zero.conv.end(), [](auto w) { return w == 0; }));
  EXPECT_TRUE(std::all_of(zero.ssm.begin(), zero.ssm.end(), [](auto b) { return b == 0; }));
  EXPECT_EQ(compact->digest_row(4000), digest_of(zero, full, full.conv_cols));
  // It allocates its 44 rows and 2 slots, not the 4096 rows and 4 slots it answers to.
  const PoolShape inner = stored_shape(full, stored);
  EXPECT_EQ(compact->allocations().total(), inner.total_bytes());
  EXPECT_EQ(inner.state_rows, 44);
  EXPECT_LT(compact->allocations().total() * 90, full.total_bytes());
}

TEST(CompactBackendDeathTest, APrimitiveOnAnUnstoredRowAborts) {
  const PoolShape full = three_real_layers(SsmDtype::kF32, 64);
  auto compact = make_compact_backend("cpu", full, {{0, 1}, {}}, kSeed);
  const PrefillTask t = prefill_task(1, 0, 2, 5);
  EXPECT_DEATH(compact->prefill({&t, 1}), "only rows the lane's storage holds");
}

}  // namespace
}  // namespace specstate::test
