// Properties of the primitives on the CPU reference backend, for fp32 and bf16 SSM pools:
//  - verify of T tokens writes at output j exactly what a prefill of j+1 more tokens writes;
//  - replay of a tokens writes exactly verify's output a-1;
//  - all verify modes (state rows, window, payload, deferred) agree on outputs and states;
//  - rows not named by a call are byte-for-byte unchanged (poisoned first), -1 rows skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>

#include "backends/cpu/cpu_backend.h"
#include "backends/registry.h"
#include "backends/sequence_job.h"
#include "core/draft_tree.h"
#include "core/errors.h"
#include "tests/backend_test_util.h"

namespace specstate::test {
namespace {

constexpr uint64_t kSeed = 1234;
constexpr int32_t kT = 4;
constexpr uint8_t kPoison = 0xA5;

class CpuBackendProperties : public ::testing::TestWithParam<SsmDtype> {
 protected:
  std::unique_ptr<StateBackend> make(int32_t rows, bool wide_conv = false) {
    return make_cpu_backend(make_shape("tiny", GetParam(), rows, kT, wide_conv), kSeed);
  }
  // Prefill request 7 with 5 tokens into `row`.
  static void start(StateBackend& b, int32_t row) {
    const PrefillTask t = prefill_task(7, 0, 5, row);
    b.prefill({&t, 1});
  }
};

TEST_P(CpuBackendProperties, VerifyOutputJEqualsPrefillOfJPlusOneTokens) {
  auto b = make(16);
  start(*b, 0);
  const VerifyTask v = verify_task(7, 5, kT, StateLoc::at(0), {1, 2, 3, 4});
  b->verify(VerifyMode::kStateRows, {&v, 1});
  for (int j = 0; j < kT; ++j) {
    const PrefillTask p = prefill_task(7, 5, j + 1, 10, false, StateLoc::at(0));
    b->prefill({&p, 1});
    EXPECT_EQ(b->read_row(10), b->read_row(1 + j)) << "token " << j;
  }
}

// A tree whose every node is its predecessor's child is the chain: the same inputs (branch 0),
// the same states and outputs.
TEST_P(CpuBackendProperties, ChainShapedTreeEqualsTheChain) {
  auto b = make(16);
  start(*b, 0);
  const VerifyTask chain = verify_task(7, 5, kT, StateLoc::at(0), {1, 2, 3, 4});
  b->verify(VerifyMode::kStateRows, {&chain, 1});
  const VerifyOutputs chain_out = b->read_outputs();
  VerifyTask tree = verify_task(7, 5, kT, StateLoc::at(0), {6, 7, 8, 9});
  tree.parents = {-1, 0, 1, 2};
  b->verify(VerifyMode::kStateRows, {&tree, 1});
  EXPECT_EQ(b->read_outputs().values, chain_out.values);
  for (int j = 0; j < kT; ++j)
    EXPECT_EQ(b->read_row(6 + j), b->read_row(1 + j)) << "token " << j;
}

// Each node continues from its parent: its state is the replay of its root-to-node path from
// the payload the tree verify wrote (gathered to the front of the slot), and siblings differ.
TEST_P(CpuBackendProperties, TreeNodesContinueFromTheirParents) {
  const std::vector<int8_t> parents = {-1, 0, 0, 1, 2, 2};
  const int32_t n = int32_t(parents.size());
  PoolShape shape = make_shape("tiny", GetParam(), 16, n);
  auto b = make_cpu_backend(shape, kSeed);
  start(*b, 0);
  VerifyTask rows = verify_task(7, 5, n, StateLoc::at(0), {1, 2, 3, 4, 5, 6});
  rows.parents = parents;
  b->verify(VerifyMode::kStateRows, {&rows, 1});
  const std::vector<std::vector<int32_t>> paths = {{0, 1, 3}, {0, 2, 4}, {0, 2, 5}, {0, 2}};
  for (size_t k = 0; k < paths.size(); ++k) {
    VerifyTask payload = verify_task(7, 5, n, StateLoc::at(0));
    payload.parents = parents;
    payload.payload_slot = int32_t(k);
    b->verify(VerifyMode::kPayload, {&payload, 1});
    const PayloadGather gather{int32_t(k), 0, paths[k]};
    b->gather_payload({&gather, 1});
    const ReplayTask replay{StateLoc::at(0), int32_t(k), int32_t(paths[k].size()), 10};
    b->replay({&replay, 1});
    EXPECT_EQ(b->read_row(10), b->read_row(1 + paths[k].back())) << "path " << k;
  }
  EXPECT_NE(b->read_row(2), b->read_row(3));  // siblings 1 and 2
  EXPECT_NE(b->read_row(5), b->read_row(6));  // siblings 4 and 5
  // A tree names each output row once: nodes run depth first and may read their parent's row.
  VerifyTask twice = rows;
  twice.out_rows[5] = twice.out_rows[3];
  EXPECT_THROW(b->verify(VerifyMode::kStateRows, {&twice, 1}), std::invalid_argument);
}

// The recurrence order of the 2,2,2 tree (15 nodes, breadth first): depth first, every node
// once and after its parent; 7 nodes are not their parent's first child. With exact rows they
// read their parent's row; without, they restart from the base and run their 17 ancestors again.
TEST(RecurrenceSteps, DepthFirstEveryNodeOnceAfterItsParent) {
  const DraftTree tree = tree_of_shape({2, 2, 2});
  SequenceJob job;
  job.count = tree.nodes();
  job.parents = tree.parents;
  for (int n = 0; n < job.count; ++n)
    job.writes.push_back({n + 1, 100 + n});
  for (bool exact : {true, false}) {
    const std::vector<RecurStep> steps = recurrence_steps(job, exact);
    std::vector<int> position(size_t(job.count), -1);
    int own = 0, from_rows = 0, restarts = 0, silent = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      const RecurStep& st = steps[i];
      from_rows += st.from_node >= 0;
      restarts += st.restart;
      silent += st.silent;
      if (st.silent) continue;
      ++own;
      EXPECT_EQ(position[size_t(st.token)], -1) << "node " << st.token << " runs twice";
      position[size_t(st.token)] = int(i);
      const int parent = tree.parents[size_t(st.token)];
      if (parent >= 0) {
        EXPECT_LT(position[size_t(parent)], int(i)) << "node " << st.token;
      }
    }
    EXPECT_EQ(own, 15);
    EXPECT_EQ(from_rows, exact ? 7 : 0);
    EXPECT_EQ(restarts, exact ? 0 : 7);
    EXPECT_EQ(silent, exact ? 0 : 17);
    EXPECT_EQ(has_restart(steps), !exact);
  }
}

// fp32 only: on a bf16 pool the state between two chunks is stored, hence rounded, to bf16
// (as in an engine), while one prefill carries fp32 across all its tokens.
TEST(CpuBackendF32, ChunkedPrefillEqualsOnePrefill) {
  auto b = make_cpu_backend(make_shape("tiny", SsmDtype::kF32, 8, kT), kSeed);
  const PrefillTask whole = prefill_task(3, 0, 9, 0);
  b->prefill({&whole, 1});
  const PrefillTask first = prefill_task(3, 0, 4, 1);
  b->prefill({&first, 1});
  const PrefillTask second = prefill_task(3, 4, 5, 1, false, StateLoc::at(1));
  b->prefill({&second, 1});
  EXPECT_EQ(b->read_row(0), b->read_row(1));
}

// Issue 28, defect 1: a prefill past 2^15 tokens overflowed the 16-bit conv column indices (a
// crash at 32,766 tokens, wrong states at 32,768). A trace allows 2^24 tokens per extend: one
// prefill of 2^16 + 3 tokens, with snapshots around 2^15 and 2^16, equals a chain of prefills
// shorter than 2^14 (fp32, where a chain of prefills is exact).
TEST(CpuBackendF32, PrefillOfTwoToTheSixteenPlusThreeTokensEqualsAChainOfShortOnes) {
  auto b = make_cpu_backend(make_shape("tiny", SsmDtype::kF32, 16, kT), kSeed);
  const std::vector<int32_t> snapshots = {32766, 32767, 32768, 65536, 65539};
  PrefillTask whole = prefill_task(3, 0, snapshots.back(), 0);
  for (size_t i = 0; i + 1 < snapshots.size(); ++i)
    whole.writes.push_back({snapshots[i], int32_t(1 + i)});
  b->prefill({&whole, 1});
  int32_t done = 0;
  for (size_t i = 0; i < snapshots.size(); ++i) {
    while (done < snapshots[i]) {
      const int32_t n = std::min(snapshots[i] - done, 16383);
      const PrefillTask piece = prefill_task(3, done, n, 8, done == 0, StateLoc::at(8));
      b->prefill({&piece, 1});
      done += n;
    }
    const int32_t row = i + 1 < snapshots.size() ? int32_t(1 + i) : 0;
    EXPECT_EQ(b->read_row(row), b->read_row(8)) << "after " << snapshots[i] << " tokens";
  }
}

TEST_P(CpuBackendProperties, PrefillSnapshotsEqualShorterPrefills) {
  auto b = make(8);
  PrefillTask t = prefill_task(3, 0, 9, 0);
  t.writes.push_back({4, 1});
  t.writes.push_back({1, 2});
  b->prefill({&t, 1});
  const PrefillTask four = prefill_task(3, 0, 4, 3);
  const PrefillTask one = prefill_task(3, 0, 1, 4);
  b->prefill({&four, 1});
  b->prefill({&one, 1});
  EXPECT_EQ(b->read_row(1), b->read_row(3));
  EXPECT_EQ(b->read_row(2), b->read_row(4));
}

TEST_P(CpuBackendProperties, ReplayOfATokensEqualsVerifyOutputAMinusOne) {
  auto b = make(16);
  start(*b, 0);
  const VerifyTask inline_v = verify_task(7, 5, kT, StateLoc::at(0), {1, 2, 3, 4});
  b->verify(VerifyMode::kStateRows, {&inline_v, 1});
  const auto inline_outputs = b->read_outputs();
  VerifyTask payload_v = verify_task(7, 5, kT, StateLoc::at(0));
  payload_v.payload_slot = 2;
  b->verify(VerifyMode::kPayload, {&payload_v, 1});
  EXPECT_EQ(b->read_outputs().values, inline_outputs.values);
  for (int a = 1; a <= kT; ++a) {
    const ReplayTask r{StateLoc::at(0), 2, a, 11};
    b->replay({&r, 1});
    EXPECT_EQ(b->read_row(11), b->read_row(a)) << "a = " << a;
  }
}

// digest_replayed is the digest a replay leaves at its destination, for every count, with and
// without step boundaries, GDN and KDA, and the CPU backend computes it without writing the
// destination (its heads are digested in cache). A guarded task runs only when its count is the
// table's, as a replay does.
TEST_P(CpuBackendProperties, DigestReplayedIsTheDigestOfTheReplayedRow) {
  for (RecurrenceKind kind :
       {RecurrenceKind::kGatedDeltaNet, RecurrenceKind::kKimiDeltaAttention}) {
    SCOPED_TRACE(kind == RecurrenceKind::kGatedDeltaNet ? "GDN" : "KDA");
    PoolShape shape = make_shape("tiny", GetParam(), 16, kT);
    shape.geometry.recurrence = kind;
    shape.request_rows = 1;
    auto b = make_cpu_backend(shape, kSeed);
    start(*b, 0);
    VerifyTask v = verify_task(7, 5, kT, StateLoc::at(0));
    v.payload_slot = 2;
    b->verify(VerifyMode::kPayload, {&v, 1});
    b->fill_row(12, kPoison);
    const RowBytes poisoned = b->read_row(12);
    for (int a = 1; a <= kT; ++a) {
      for (uint32_t round_after : {0u, 0b101u & ((1u << a) - 1)}) {
        const ReplayTask written{StateLoc::at(0), 2, a, 11, 0, round_after};
        b->replay({&written, 1});
        ReplayTask digested = written;
        digested.dst_row = 12;
        EXPECT_EQ(b->digest_replayed(digested), b->digest_state(StateLoc::at(11)))
            << "a = " << a << ", round_after = " << round_after;
        EXPECT_EQ(b->read_row(12), poisoned) << "a = " << a;
      }
    }
    ReplayTask guarded{StateLoc::at(0), 2, 3, 12};
    guarded.guard = {0, 3};
    EXPECT_EQ(b->digest_replayed(guarded), b->digest_state(StateLoc::at(12)));  // count 0: skipped
    const AcceptedCount three{0, 3};
    b->set_accepted({&three, 1});
    const ReplayTask written{StateLoc::at(0), 2, 3, 11};
    b->replay({&written, 1});
    EXPECT_EQ(b->digest_replayed(guarded), b->digest_state(StateLoc::at(11)));
  }
}

TEST_P(CpuBackendProperties, WindowModeKeepsEveryTokensStateAtItsOffset) {
  auto inline_b = make(16);
  auto window_b = make(16, /*wide_conv=*/true);
  start(*inline_b, 0);
  start(*window_b, 0);
  const VerifyTask iv = verify_task(7, 5, kT, StateLoc::at(0), {1, 2, 3, 4});
  inline_b->verify(VerifyMode::kStateRows, {&iv, 1});
  const VerifyTask wv = verify_task(7, 5, kT, StateLoc::at(0), {0, 5, 6, 7});
  window_b->verify(VerifyMode::kWindow, {&wv, 1});
  EXPECT_EQ(inline_b->read_outputs().values, window_b->read_outputs().values);
  for (int j = 0; j < kT; ++j) {
    const StateLoc w{wv.out_rows[j], 0, j};
    EXPECT_EQ(window_b->read_state(w), inline_b->read_state(StateLoc::at(1 + j))) << "token " << j;
  }
  // Continue from accepted a = 3 (SSM in row 6, window at offset 2): same as inline from row 3.
  const VerifyTask iv2 = verify_task(7, 8, kT, StateLoc::at(3), {3, 8, 9, 10});
  inline_b->verify(VerifyMode::kStateRows, {&iv2, 1});
  const VerifyTask wv2 = verify_task(7, 8, kT, StateLoc{6, 0, 2}, {0, 5, 6, 7});
  window_b->verify(VerifyMode::kWindow, {&wv2, 1});
  EXPECT_EQ(inline_b->read_outputs().values, window_b->read_outputs().values);
  EXPECT_EQ(window_b->read_state({7, 0, 3}), inline_b->read_state(StateLoc::at(10)));
  // Flush: copy the window state at offset 1 down to offset 0 of its own row.
  const RowCopy flush{{5, 0, 1}, 0};
  window_b->copy_rows({&flush, 1});
  EXPECT_EQ(window_b->read_state(StateLoc::at(0)), inline_b->read_state(StateLoc::at(8)));
}

TEST_P(CpuBackendProperties, DeferredReplayThenVerifyEqualsInline) {
  auto inline_b = make(16);
  auto deferred_b = make(16);
  start(*inline_b, 0);
  start(*deferred_b, 0);
  // Step 1: verify 4 tokens, accept a = 3.
  const VerifyTask iv = verify_task(7, 5, kT, StateLoc::at(0), {0, 1, 2, 3});
  inline_b->verify(VerifyMode::kStateRows, {&iv, 1});
  VerifyTask dv = verify_task(7, 5, kT, StateLoc::at(0));
  dv.payload_slot = 0;
  deferred_b->verify(VerifyMode::kPayload, {&dv, 1});
  // Step 2: verify from the accepted state (inline: row 2) / replay 3 pending tokens first.
  const VerifyTask iv2 = verify_task(7, 8, kT, StateLoc::at(2), {0, 1, 2, 3});
  inline_b->verify(VerifyMode::kStateRows, {&iv2, 1});
  VerifyTask dv2 = verify_task(7, 8, kT, StateLoc::at(0));
  dv2.payload_slot = 1;
  dv2.pending = {0, 3, 0};
  deferred_b->verify(VerifyMode::kPayload, {&dv2, 1});
  EXPECT_EQ(inline_b->read_outputs().values, deferred_b->read_outputs().values);
  // The committed row holds the state after the 3 accepted tokens (as rounded in the pool).
  auto reference = make(16);
  start(*reference, 0);
  const PrefillTask accepted = prefill_task(7, 5, 3, 1, false, StateLoc::at(0));
  reference->prefill({&accepted, 1});
  EXPECT_EQ(deferred_b->read_row(0), reference->read_row(1));
  // Replaying the step-2 payload for a = 2 equals inline's output 1.
  const ReplayTask r{StateLoc::at(0), 1, 2, 5};
  deferred_b->replay({&r, 1});
  EXPECT_EQ(deferred_b->read_row(5), inline_b->read_row(1));
}

TEST_P(CpuBackendProperties, UnnamedRowsUnchangedAndPaddingSkipped) {
  const int32_t rows = 24;
  auto b = make(rows);
  for (int32_t r = 0; r < rows; ++r)
    b->fill_row(r, kPoison);
  std::vector<uint64_t> before(rows);
  for (int32_t r = 0; r < rows; ++r)
    before[r] = b->digest_row(r);
  const PrefillTask p1 = prefill_task(1, 0, 3, 2);
  const PrefillTask p2 = prefill_task(2, 0, 6, 9);
  const PrefillTask ps[] = {p1, p2};
  b->prefill(ps);
  VerifyTask padding;  // from = none
  const VerifyTask tasks[] = {verify_task(1, 3, kT, StateLoc::at(2), {2, 4, 5, -1}), padding,
                              verify_task(2, 6, kT, StateLoc::at(9), {12, 13, 14, 15})};
  b->verify(VerifyMode::kStateRows, tasks);
  const auto out = b->read_outputs();
  EXPECT_EQ(out.tasks, 3);
  const size_t per_task = out.values.size() / 3;
  for (size_t i = per_task; i < 2 * per_task; ++i)
    ASSERT_EQ(out.values[i], 0) << "padding output";
  const RowCopy copies[] = {{StateLoc::at(14), 9}, {StateLoc{}, 20}};
  b->copy_rows(copies);
  const std::vector<int32_t> touched = {2, 4, 5, 9, 12, 13, 14, 15};
  for (int32_t r = 0; r < rows; ++r) {
    const bool named = std::find(touched.begin(), touched.end(), r) != touched.end();
    if (named) {
      EXPECT_NE(b->digest_row(r), before[r]) << "row " << r;
    } else {
      EXPECT_EQ(b->digest_row(r), before[r]) << "row " << r << " was not named but changed";
    }
  }
  EXPECT_EQ(b->read_row(9), b->read_row(14));
}

TEST_P(CpuBackendProperties, SwapOutAndInRestoresTheState) {
  auto b = make(8, /*wide_conv=*/true);
  start(*b, 1);
  const VerifyTask wv = verify_task(7, 5, kT, StateLoc::at(1), {1, 2, 3, 4});
  b->verify(VerifyMode::kWindow, {&wv, 1});
  const StateLoc live{3, 1, 2};
  const RowBytes saved = b->read_state(live);
  b->fill_row(6, kPoison);
  b->write_state(6, saved);
  EXPECT_EQ(b->read_state(StateLoc::at(6)), saved);
  EXPECT_EQ(b->digest_state(StateLoc::at(6)), b->digest_state(live));
}

TEST_P(CpuBackendProperties, DigestMatchesBytes) {
  auto b = make(4);
  start(*b, 1);
  EXPECT_EQ(b->digest_row(1), digest_of(b->read_row(1), b->shape(), b->shape().conv_cols));
  EXPECT_NE(b->digest_row(1), b->digest_row(0));
}

TEST_P(CpuBackendProperties, RefusesMalformedCalls) {
  auto b = make(8);
  const PrefillTask out_of_range = prefill_task(1, 0, 3, 8);
  EXPECT_THROW(b->prefill({&out_of_range, 1}), std::invalid_argument);
  const VerifyTask racing[] = {verify_task(1, 0, kT, StateLoc::at(0), {1, 2, 3, 4}),
                               verify_task(2, 0, kT, StateLoc::at(4), {5, 6, 7, -1})};
  EXPECT_THROW(b->verify(VerifyMode::kStateRows, racing), std::invalid_argument);
  const ReplayTask too_long{StateLoc::at(0), 0, kT + 1, 1};
  EXPECT_THROW(b->replay({&too_long, 1}), std::invalid_argument);
  VerifyTask same_slot[] = {verify_task(1, 0, kT, StateLoc::at(0)),
                            verify_task(2, 0, kT, StateLoc::at(1))};
  same_slot[0].payload_slot = same_slot[1].payload_slot = 2;  // two tasks writing one slot race
  EXPECT_THROW(b->verify(VerifyMode::kPayload, same_slot), std::invalid_argument);
  const VerifyTask bad_offset = verify_task(1, 0, kT, StateLoc{0, 0, 1}, {1});
  EXPECT_THROW(b->verify(VerifyMode::kStateRows, {&bad_offset, 1}), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CpuBackendProperties,
                         ::testing::Values(SsmDtype::kF32, SsmDtype::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// The same property on one real layer (K = V = 128, HV = 32): vectorised loops over 128 columns.
TEST(CpuBackendRealLayer, VerifyOutputJEqualsPrefill) {
  for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
    auto b = make_cpu_backend(real_layer_shape(dtype, 8, kT), kSeed);
    const PrefillTask p = prefill_task(4, 0, 3, 0);
    b->prefill({&p, 1});
    const VerifyTask v = verify_task(4, 3, kT, StateLoc::at(0), {1, 2, 3, 4});
    b->verify(VerifyMode::kStateRows, {&v, 1});
    const PrefillTask p3 = prefill_task(4, 3, 3, 5, false, StateLoc::at(0));
    b->prefill({&p3, 1});
    EXPECT_EQ(b->read_row(5), b->read_row(3)) << dtype_name(dtype);
  }
}

// The registry's table (backends/registry.h): every entry answers its capability queries, the
// CPU one everywhere; a name outside it is refused with the known ones.
TEST(BackendRegistry, EveryEntryAnswersItsQueries) {
  std::vector<std::string> names;
  for (const BackendEntry& e : backend_entries()) {
    names.emplace_back(e.name);
    EXPECT_EQ(&backend_entry(e.name), &e);
    EXPECT_EQ(e.available(), e.unavailable().empty()) << e.name;
    if (e.available()) {
      EXPECT_NO_THROW(e.check_available()) << e.name;
    } else {
      EXPECT_THROW(e.check_available(), InputError) << e.name;
      EXPECT_EQ(e.memory_limit().bytes, -1) << e.name;
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"cpu", "cuda"}));
  const BackendEntry& cpu = backend_entry("cpu");
  EXPECT_TRUE(cpu.available());
  EXPECT_GT(cpu.memory_limit().bytes, 0);
  EXPECT_NO_THROW(cpu.check_step_tokens(make_geometry("tiny"), 1000));
  EXPECT_EQ(available_backends().front(), "cpu");
  try {
    backend_entry("cpu2");
    ADD_FAILURE() << "cpu2 is no backend";
  } catch (const InputError& e) {
    EXPECT_EQ(e.message(), "unknown backend 'cpu2'; did you mean 'cpu'? (known: cpu, cuda)");
  }
}

}  // namespace
}  // namespace specstate::test
