// CPU vs CUDA, byte for byte: every primitive and verify mode, one test each, fp32 and bf16
// pools, the tiny preset and one real layer (HV=32, H=16, K=V=128, conv_dim 8192), batches of 1,
// 7 and 64 requests on shuffled, non-contiguous rows, with -1 padding tasks between the real
// ones, every row poisoned first and unnamed (guard) rows checked unchanged at the end.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>
#include <random>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_factory.h"
#include "backends/cuda/kernels.h"
#include "backends/registry.h"
#include "core/draft_tree.h"
#include "core/errors.h"
#include "tests/backend_test_util.h"
#include "tests/cuda/backend_pair.h"

namespace specstate::test {
namespace {

constexpr uint64_t kSeed = 20261124;
constexpr uint8_t kPoison = 0xA5;

struct Case {
  bool real;  // real layer geometry, else tiny
  SsmDtype dtype;
  int32_t batch;
  int32_t T;
  bool kda = false;  // Kimi Delta Attention (a decay per state row); real: Kimi Linear's layer
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << (c.real ? "real" : "tiny") << (c.kda ? " kda " : " ") << dtype_name(c.dtype) << " batch "
      << c.batch << " T " << c.T;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return std::string(c.real ? "real" : "tiny") + (c.kda ? "_kda_" : "_") + dtype_name(c.dtype) +
         "_b" + std::to_string(c.batch) + "_t" + std::to_string(c.T);
}

// Per request r: a working row, T-1 draft rows and T scratch rows, scattered over the pool by a
// fixed permutation; the rows left over are guards no call names.
class Layout {
 public:
  Layout(int32_t batch, int32_t T) : batch_(batch), T_(T) {
    perm_.resize(size_t(batch) * 2 * T + 3 + batch / 4);
    std::iota(perm_.begin(), perm_.end(), 0);
    std::shuffle(perm_.begin(), perm_.end(), std::mt19937(batch * 31 + T));
  }
  int32_t rows() const { return int32_t(perm_.size()); }
  int32_t working(int r) const { return perm_[size_t(r) * 2 * T_]; }
  int32_t draft(int r, int j) const { return perm_[size_t(r) * 2 * T_ + j]; }  // j = 1..T-1
  int32_t scratch(int r, int j) const { return perm_[size_t(r) * 2 * T_ + T_ + j]; }
  std::vector<int32_t> guards() const {
    return {perm_.begin() + size_t(batch_) * 2 * T_, perm_.end()};
  }
  std::vector<int32_t> rows_of(int r) const {
    return {perm_.begin() + size_t(r) * 2 * T_, perm_.begin() + size_t(r + 1) * 2 * T_};
  }

 private:
  int32_t batch_, T_;
  std::vector<int32_t> perm_;
};

// Inserts a padding task (from = none) before the first task and after every third.
template <class Task>
std::vector<Task> with_padding(const std::vector<Task>& tasks) {
  std::vector<Task> out{Task{}};
  for (size_t i = 0; i < tasks.size(); ++i) {
    out.push_back(tasks[i]);
    if (i % 3 == 2) out.push_back(Task{});
  }
  return out;
}

// payload_tokens 0: T (replay, deferred); the ring tests use longer rings.
PoolShape case_shape(const Case& c, int32_t rows, bool wide_conv, int32_t payload_tokens = 0) {
  PoolShape s = c.real ? real_layer_shape(c.dtype, rows, c.T, wide_conv)
                       : make_shape("tiny", c.dtype, rows, c.T, wide_conv);
  if (c.kda && c.real) {  // one KDA layer of Kimi Linear (H = HV = 32, K = V = 128)
    s = make_shape("kimi-linear-48b-a3b", c.dtype, rows, c.T, wide_conv);
    s.geometry.layers = 1;
  } else if (c.kda) {
    s.geometry.recurrence = RecurrenceKind::kKimiDeltaAttention;
  }
  s.payload_slots = 2 * c.batch;
  if (payload_tokens > 0) s.payload_tokens = payload_tokens;
  return s;
}

class CudaDifferential : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  }
  void TearDown() override {
    if (cuda_available()) cuda_synchronize_checked();
  }

  const Case& c() const { return GetParam(); }
  // A poisoned CPU/CUDA pair whose requests are prefilled (pos: each request's next position).
  std::unique_ptr<BackendPair> make_pair(const Layout& layout, bool wide_conv,
                                         std::vector<int64_t>& pos, int32_t payload_tokens = 0) {
    auto pair = std::make_unique<BackendPair>(
        case_shape(c(), layout.rows(), wide_conv, payload_tokens), kSeed);
    poison(*pair, layout);
    pos.assign(size_t(c().batch), 0);
    prefill_all(*pair, layout, pos);
    return pair;
  }
  int accepted(int r) const { return 1 + (r * 5 + 2) % c().T; }  // a in 1..T
  int tokens(int r) const { return 1 + r % c().T; }              // verify count in 1..T

  void poison(BackendPair& p, const Layout& layout) {
    for (int32_t row = 0; row < layout.rows(); ++row)
      p.fill_row(row, kPoison);
  }

  // Prefill every request from zero into its working row (lengths 1..23 cross the recurrence
  // kernel's 16-token chunks), some with a snapshot into scratch 0; request 0 has 40 tokens, more
  // than one step launch takes, in a call of its own: two launches, the state carried between
  // them, its snapshot (after 20 tokens) in the first.
  void prefill_all(BackendPair& p, const Layout& layout, std::vector<int64_t>& pos) {
    std::vector<PrefillTask> tasks, long_tasks;
    for (int r = 0; r < c().batch; ++r) {
      const int n = r == 0 ? 40 : 1 + (r * 7 + 3) % 23;
      PrefillTask t = prefill_task(r, 0, n, layout.working(r));
      if (r % 3 == 0) t.writes.push_back({std::max(1, n / 2), layout.scratch(r, 0)});
      (r == 0 ? long_tasks : tasks).push_back(t);
      pos[r] = n;
    }
    p.prefill(tasks);
    p.prefill(long_tasks);
  }

  void check_requests(const BackendPair& p, const Layout& layout, const char* step) {
    for (int r = 0; r < c().batch; ++r) {
      ASSERT_TRUE(p.rows_equal(layout.rows_of(r))) << step << ", request " << r;
    }
  }

  // Guard rows still hold the poison on both backends.
  void check_guards(const BackendPair& p, const Layout& layout) {
    const RowBytes guard = p.ref().read_row(layout.guards().front());
    for (uint16_t w : guard.conv)
      ASSERT_EQ(w, 0xA5A5) << "guard row changed";
    for (uint8_t b : guard.ssm)
      ASSERT_EQ(b, kPoison) << "guard row changed";
    const uint64_t poison_digest = digest_of(guard, p.shape(), p.shape().conv_cols);
    for (int32_t g : layout.guards()) {
      EXPECT_EQ(p.ref().digest_row(g), poison_digest) << "guard " << g;
      EXPECT_EQ(p.cand().digest_row(g), poison_digest) << "guard " << g;
    }
  }
};

TEST_P(CudaDifferential, Prefill) {
  const Layout layout(c().batch, c().T);
  std::vector<int64_t> pos;
  const auto pair = make_pair(layout, /*wide_conv=*/false, pos);
  BackendPair& p = *pair;
  check_requests(p, layout, "prefill");

  // Chunked prefill in place (reads and writes the working row) and a COW prefill.
  std::vector<PrefillTask> more;
  for (int r = 0; r < c().batch; ++r) {
    if (r % 2 == 1) {
      more.push_back(
          prefill_task(r, pos[r], 3, layout.working(r), false, StateLoc::at(layout.working(r))));
    } else if (r % 5 == 2) {
      more.push_back(
          prefill_task(r, pos[r], 2, layout.scratch(r, 1), false, StateLoc::at(layout.working(r))));
    }
  }
  p.prefill(more);
  check_requests(p, layout, "second prefill");
  ASSERT_TRUE(p.all_rows_equal());
  check_guards(p, layout);
}

// Inline verify: out = [working, drafts], some -1, varying token counts; commit by copy.
TEST_P(CudaDifferential, InlineVerifyAndCommit) {
  const Layout layout(c().batch, c().T);
  std::vector<int64_t> pos;
  const auto pair = make_pair(layout, /*wide_conv=*/false, pos);
  BackendPair& p = *pair;
  std::vector<VerifyTask> inline_v;
  std::vector<RowCopy> commit;
  for (int r = 0; r < c().batch; ++r) {
    const int n = tokens(r);
    std::vector<int32_t> out{layout.working(r)};
    for (int j = 1; j < n; ++j)
      out.push_back(layout.draft(r, j));
    if (r % 4 == 3 && n > 2) out[1] = kNoRow;
    inline_v.push_back(verify_task(r, pos[r], n, StateLoc::at(layout.working(r)), out));
    const int a = 1 + (r * 3) % n;
    if (out[a - 1] != kNoRow && a > 1)
      commit.push_back({StateLoc::at(out[a - 1]), layout.working(r)});
  }
  p.verify(VerifyMode::kStateRows, with_padding(inline_v));
  ASSERT_TRUE(p.outputs_equal()) << "inline verify";
  check_requests(p, layout, "inline verify");
  p.copy_rows(with_padding(commit));
  check_requests(p, layout, "inline commit");
  ASSERT_TRUE(p.all_rows_equal());
  check_guards(p, layout);
}

// Scatter: verify T tokens into scratch rows, copy scratch a-1 to the working row.
TEST_P(CudaDifferential, ScatterVerifyAndCommit) {
  const Layout layout(c().batch, c().T);
  std::vector<int64_t> pos;
  const auto pair = make_pair(layout, /*wide_conv=*/false, pos);
  BackendPair& p = *pair;
  std::vector<VerifyTask> scatter_v;
  std::vector<RowCopy> commit;
  for (int r = 0; r < c().batch; ++r) {
    std::vector<int32_t> out;
    for (int j = 0; j < c().T; ++j)
      out.push_back(layout.scratch(r, j));
    scatter_v.push_back(verify_task(r, pos[r], c().T, StateLoc::at(layout.working(r)), out));
    commit.push_back({StateLoc::at(layout.scratch(r, accepted(r) - 1)), layout.working(r)});
  }
  p.verify(VerifyMode::kStateRows, with_padding(scatter_v));
  ASSERT_TRUE(p.outputs_equal()) << "scatter verify";
  p.copy_rows(with_padding(commit));
  check_requests(p, layout, "scatter");
  ASSERT_TRUE(p.all_rows_equal());
  check_guards(p, layout);
}

// Payload verify into slot r, then deferred: replay slot r's a tokens (committed to the working
// row, or to scratch 0 for r % 3 == 1) and verify new tokens into slot B + r; then the replay
// commit of the deferred step's payload, from the committed row into scratch T-1 (or in place for
// r % 2 == 0).
TEST_P(CudaDifferential, PayloadDeferredAndReplay) {
  const Layout layout(c().batch, c().T);
  std::vector<int64_t> pos;
  const auto pair = make_pair(layout, /*wide_conv=*/false, pos);
  BackendPair& p = *pair;
  std::vector<VerifyTask> payload_v, deferred_v;
  for (int r = 0; r < c().batch; ++r) {
    VerifyTask t = verify_task(r, pos[r], c().T, StateLoc::at(layout.working(r)));
    t.payload_slot = r;
    payload_v.push_back(t);
    pos[r] += accepted(r);
    VerifyTask d = verify_task(r, pos[r], c().T, StateLoc::at(layout.working(r)));
    d.payload_slot = c().batch + r;
    d.pending = {r, accepted(r), r % 3 == 1 ? layout.scratch(r, 0) : layout.working(r)};
    deferred_v.push_back(d);
  }
  p.verify(VerifyMode::kPayload, with_padding(payload_v));
  ASSERT_TRUE(p.outputs_equal()) << "payload verify";
  ASSERT_TRUE(p.payloads_equal()) << "payload verify";
  p.verify(VerifyMode::kPayload, with_padding(deferred_v));
  ASSERT_TRUE(p.outputs_equal()) << "deferred verify";
  ASSERT_TRUE(p.payloads_equal()) << "deferred verify";
  check_requests(p, layout, "deferred verify");

  std::vector<ReplayTask> replays;
  for (int r = 0; r < c().batch; ++r) {
    const int32_t from = r % 3 == 1 ? layout.scratch(r, 0) : layout.working(r);
    const int32_t dst = r % 2 == 0 ? from : layout.scratch(r, c().T - 1);
    replays.push_back({StateLoc::at(from), c().batch + r, accepted(r), dst});
  }
  p.replay(with_padding(replays));
  check_requests(p, layout, "replay");
  ASSERT_TRUE(p.all_rows_equal());
  check_guards(p, layout);
}

// The ring strategy's primitives on rings of 3T positions, each request's cursor at its own
// place so that spans wrap: a payload verify, a verify that replays its history without
// committing it (or committing it to scratch 0), a replay of a two-step history with its step
// boundary rounded into scratch T-1, and a verify that folds that history into the working row.
TEST_P(CudaDifferential, RingHistoryReplayFoldAndWrap) {
  const Layout layout(c().batch, c().T);
  const int32_t T = c().T, ring = 3 * T;
  std::vector<int64_t> pos;
  const auto pair = make_pair(layout, /*wide_conv=*/false, pos, ring);
  BackendPair& p = *pair;
  const int32_t most = std::min(T, (kMaxReplayTokens - T) / 2);  // history + T fit one task
  auto h1 = [&](int r) { return 1 + (r * 5 + 2) % most; };
  auto h2 = [&](int r) { return 1 + (r * 3 + 1) % most; };
  auto first = [&](int r) { return (r * 7 + 2 * T) % ring; };  // near the end: spans wrap
  auto at = [&](int r, int j) { return (first(r) + j) % ring; };
  auto verify_at = [&](int r, int32_t from_token) {
    VerifyTask t = verify_task(r, pos[r], T, StateLoc::at(layout.working(r)));
    t.payload_slot = r;
    t.payload_first_token = from_token;
    return t;
  };
  std::vector<VerifyTask> first_v, second_v, fold_v;
  for (int r = 0; r < c().batch; ++r) {
    first_v.push_back(verify_at(r, first(r)));
    pos[r] += h1(r);
  }
  p.verify(VerifyMode::kPayload, with_padding(first_v));
  ASSERT_TRUE(p.outputs_equal()) << "ring verify";
  ASSERT_TRUE(p.payloads_equal()) << "ring verify";
  for (int r = 0; r < c().batch; ++r) {
    VerifyTask t = verify_at(r, at(r, h1(r)));
    t.pending = {r, h1(r), r % 3 == 1 ? layout.scratch(r, 0) : kNoRow, first(r), 0};
    second_v.push_back(t);
    pos[r] += h2(r);
  }
  p.verify(VerifyMode::kPayload, with_padding(second_v));
  ASSERT_TRUE(p.outputs_equal()) << "ring verify after history";
  ASSERT_TRUE(p.payloads_equal()) << "ring verify after history";
  check_requests(p, layout, "ring verify after history");

  std::vector<ReplayTask> replays;
  for (int r = 0; r < c().batch; ++r) {
    const uint32_t boundary = 1u << (h1(r) - 1);
    replays.push_back({StateLoc::at(layout.working(r)), r, h1(r) + h2(r), layout.scratch(r, T - 1),
                       first(r), boundary});
    VerifyTask t = verify_at(r, at(r, h1(r) + h2(r)));
    t.pending = {r, h1(r) + h2(r), layout.working(r), first(r), boundary};
    fold_v.push_back(t);
  }
  p.replay(with_padding(replays));
  check_requests(p, layout, "ring replay");
  p.verify(VerifyMode::kPayload, with_padding(fold_v));
  ASSERT_TRUE(p.outputs_equal()) << "ring fold";
  ASSERT_TRUE(p.payloads_equal()) << "ring fold";
  check_requests(p, layout, "ring fold");
  ASSERT_TRUE(p.all_rows_equal());
  check_guards(p, layout);
}

// Swap-out / swap-in through the host.
TEST_P(CudaDifferential, SwapThroughTheHost) {
  const Layout layout(c().batch, c().T);
  std::vector<int64_t> pos;
  const auto pair = make_pair(layout, /*wide_conv=*/false, pos);
  BackendPair& p = *pair;
  const RowBytes saved = p.ref().read_state(StateLoc::at(layout.working(0)));
  p.write_state(layout.draft(0, c().T - 1), saved);
  ASSERT_TRUE(p.rows_equal({layout.draft(0, c().T - 1)}));
  ASSERT_TRUE(p.state_equal(StateLoc::at(layout.working(0))));
  ASSERT_TRUE(p.all_rows_equal());
  check_guards(p, layout);
}

TEST_P(CudaDifferential, WindowModeAndFlush) {
  const Layout layout(c().batch, c().T);
  std::vector<int64_t> pos;
  const auto pair = make_pair(layout, /*wide_conv=*/true, pos);
  BackendPair& p = *pair;

  // Two window verifies: the second starts from accepted a (SSM in out[a-1], window at a-1).
  std::vector<StateLoc> live(c().batch);
  for (int step = 0; step < 2; ++step) {
    std::vector<VerifyTask> tasks;
    for (int r = 0; r < c().batch; ++r) {
      const StateLoc from = step == 0 ? StateLoc::at(layout.working(r)) : live[r];
      std::vector<int32_t> out{layout.working(r)};
      for (int j = 1; j < c().T; ++j)
        out.push_back(layout.draft(r, j));
      if (r % 4 == 3) out[c().T - 1] = kNoRow;
      tasks.push_back(verify_task(r, pos[r], c().T, from, out));
      const int a = out[accepted(r) - 1] == kNoRow ? 1 : accepted(r);
      live[r] = StateLoc{out[a - 1], layout.working(r), a - 1};
      pos[r] += a;
    }
    p.verify(VerifyMode::kWindow, with_padding(tasks));
    ASSERT_TRUE(p.outputs_equal()) << "window verify " << step;
    check_requests(p, layout, "window verify");
    for (int r = 0; r < c().batch; ++r)
      ASSERT_TRUE(p.state_equal(live[r])) << "request " << r;
  }
  // Flush: the live state (window at its offset) down to offset 0 of the working row.
  std::vector<RowCopy> flush;
  for (int r = 0; r < c().batch; ++r)
    flush.push_back({live[r], layout.working(r)});
  p.copy_rows(with_padding(flush));
  check_requests(p, layout, "flush");
  ASSERT_TRUE(p.all_rows_equal());
  check_guards(p, layout);
}

// Request r's draft tree of 2T-1 nodes (every row of its layout but one): each node's parent a
// random earlier node above depth T-1, different per request, and an accepted path down
// through random children.
DraftTree request_tree(int r, int32_t T) {
  std::mt19937 rng(uint32_t(r * 131 + T));
  DraftTree t{{-1}, {0}};
  std::vector<int> depth{0};
  for (int i = 1; i < 2 * T - 1; ++i) {
    int p = int(rng() % uint32_t(i));
    while (depth[size_t(p)] >= T - 1)
      p = int(rng() % uint32_t(i));
    t.parents.push_back(int8_t(p));
    depth.push_back(depth[size_t(p)] + 1);
  }
  for (;;) {
    const std::vector<int8_t> next = children(t, t.path.back());
    if (next.empty() || rng() % 4 == 0) break;
    t.path.push_back(next[rng() % next.size()]);
  }
  return t;
}

// Draft trees: a state-rows tree verify (node i -> the request's i-th row), a payload tree
// verify into slot r and the gather of its accepted path, then a deferred step that replays that
// path (committing it) before a second tree, gathered again, and the replay of that path. The
// trees restart from the base state at their branch points, after the pending tokens in the
// deferred step.
TEST_P(CudaDifferential, TreeVerifyGatherAndPendingReplay) {
  const Layout layout(c().batch, c().T);
  std::vector<int64_t> pos;
  const int32_t n = 2 * c().T - 1;
  const auto pair = make_pair(layout, /*wide_conv=*/false, pos, n);
  BackendPair& p = *pair;
  std::vector<VerifyTask> rows_v, payload_v, deferred_v;
  std::vector<PayloadGather> gathers, gathers2;
  std::vector<ReplayTask> replays;
  for (int r = 0; r < c().batch; ++r) {
    const DraftTree tree = request_tree(r, c().T);
    const std::vector<int32_t> rows = layout.rows_of(r);
    VerifyTask t = verify_task(r, pos[r], n, StateLoc::at(layout.working(r)),
                               {rows.begin(), rows.begin() + n});
    t.parents = tree.parents;
    rows_v.push_back(t);
    VerifyTask pv = verify_task(r, pos[r], n, StateLoc::at(layout.working(r)));
    pv.parents = tree.parents;
    pv.payload_slot = r;
    payload_v.push_back(pv);
    const std::vector<int32_t> path(tree.path.begin(), tree.path.end());
    gathers.push_back({r, 0, path});
    const int32_t a = int32_t(path.size());
    pos[r] += a;
    const DraftTree next = request_tree(r + 1000, c().T);
    VerifyTask d = verify_task(r, pos[r], n, StateLoc::at(layout.working(r)));
    d.parents = next.parents;
    d.payload_slot = c().batch + r;
    d.pending = {r, a, layout.working(r)};
    deferred_v.push_back(d);
    const std::vector<int32_t> path2(next.path.begin(), next.path.end());
    gathers2.push_back({c().batch + r, 0, path2});
    replays.push_back({StateLoc::at(layout.working(r)), c().batch + r, int32_t(path2.size()),
                       layout.scratch(r, c().T - 1)});
  }
  p.verify(VerifyMode::kStateRows, with_padding(rows_v));
  ASSERT_TRUE(p.outputs_equal()) << "tree verify";
  check_requests(p, layout, "tree verify");
  p.verify(VerifyMode::kPayload, with_padding(payload_v));
  ASSERT_TRUE(p.outputs_equal()) << "payload tree verify";
  p.gather_payload(gathers);
  ASSERT_TRUE(p.payloads_equal()) << "gather";
  p.verify(VerifyMode::kPayload, with_padding(deferred_v));
  ASSERT_TRUE(p.outputs_equal()) << "deferred tree verify";
  p.gather_payload(gathers2);
  ASSERT_TRUE(p.payloads_equal()) << "deferred tree verify";
  p.replay(with_padding(replays));
  check_requests(p, layout, "replay of the path");
  ASSERT_TRUE(p.all_rows_equal());
  check_guards(p, layout);
}

TEST_P(CudaDifferential, AllocationsMatchTheShape) {
  const Layout layout(c().batch, c().T);
  const PoolShape shape = case_shape(c(), layout.rows(), false);
  auto cuda = make_backend("cuda", shape, kSeed);
  const AllocationReport r = cuda->allocations();
  EXPECT_EQ(r.conv_bytes, shape.conv_bytes());
  EXPECT_EQ(r.ssm_bytes, shape.ssm_bytes());
  EXPECT_EQ(r.payload_bytes, shape.payload_bytes());
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (bool real : {false, true}) {
    for (SsmDtype d : {SsmDtype::kF32, SsmDtype::kBF16}) {
      for (int32_t b : {1, 7, 64})
        cases.push_back({real, d, b, 4});
      if (!real) cases.push_back({real, d, 7, 16});  // 16 pending + 16 new: two chunks
      cases.push_back({real, d, 7, 4, /*kda=*/true});
      if (!real) cases.push_back({real, d, 7, 16, /*kda=*/true});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaDifferential, ::testing::ValuesIn(all_cases()), case_name);

// A one-layer state of uniform random values drawn from rng: conv inputs in [-2, 2), SSM elements
// in [-1, 1) in the pool's dtype. In a bf16 pool, bf16_at(e) replaces element e where it gives
// bits (a value is drawn for every element either way).
template <class Bf16At>
RowBytes random_state(const PoolShape& shape, std::mt19937& rng, Bf16At&& bf16_at) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const bool f32 = shape.ssm_dtype == SsmDtype::kF32;
  RowBytes state;
  state.conv.resize(size_t(shape.geometry.conv_dim()) * shape.geometry.conv_state_cols());
  for (auto& w : state.conv)
    w = num::bf16_from_float(2.0f * uniform(rng));
  state.ssm.resize(size_t(shape.ssm_row_bytes()));
  for (int64_t e = 0; e < shape.geometry.ssm_elements_per_layer(); ++e) {
    const float x = uniform(rng);
    if (f32) {
      std::memcpy(state.ssm.data() + 4 * e, &x, 4);
    } else {
      const num::bf16_bits b = bf16_at(e).value_or(num::bf16_from_float(x));
      std::memcpy(state.ssm.data() + 2 * e, &b, 2);
    }
  }
  return state;
}

// Host and device combine the partial chains of the canonical step identically: 256 requests x
// 32 value heads x 128 columns = 1,048,576 columns of one real layer start from random states
// (uniform in [-1, 1), not states a prefill reaches) and run a verify of 4 tokens; every state
// written and every output is compared byte for byte. Both pool dtypes.
class ChainCombine : public ::testing::TestWithParam<SsmDtype> {};

TEST_P(ChainCombine, MillionRandomColumnsAgree) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  const int32_t batch = 256, T = 4;
  const PoolShape shape = real_layer_shape(GetParam(), batch * T, T);
  BackendPair p(shape, kSeed);
  std::mt19937 rng(GetParam() == SsmDtype::kF32 ? 1 : 2);
  std::vector<VerifyTask> tasks;
  for (int32_t r = 0; r < batch; ++r) {
    p.write_state(
        r * T, random_state(shape, rng, [](int64_t) { return std::optional<num::bf16_bits>{}; }));
    tasks.push_back(
        verify_task(r, 0, T, StateLoc::at(r * T), {r * T, r * T + 1, r * T + 2, r * T + 3}));
  }
  p.verify(VerifyMode::kStateRows, tasks);
  ASSERT_TRUE(p.outputs_equal());
  ASSERT_TRUE(p.all_rows_equal());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ChainCombine, ::testing::Values(SsmDtype::kF32, SsmDtype::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// Issue 28, defect 1: one prefill of 2^16 + 3 tokens (a trace allows 2^24 per extend), with
// snapshots around 2^15 and 2^16, in two requests of different lengths: the CUDA backend runs it
// in launches of kStepMaxTokens with the state carried between them, the CPU backend in parts of
// its own; the rows agree byte for byte, both dtypes.
TEST(CudaLongPrefill, TwoToTheSixteenPlusThreeTokensAgreeWithTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
    BackendPair p(make_shape("tiny", dtype, 8, 4), kSeed);
    PrefillTask longest = prefill_task(1, 0, 65539, 0);
    for (int32_t k : {32766, 32767, 32768, 65536})
      longest.writes.push_back({k, int32_t(longest.writes.size())});
    p.prefill({longest, prefill_task(2, 0, 40000, 5)});
    ASSERT_TRUE(p.all_rows_equal()) << dtype_name(dtype);
  }
}

// A rank other than 0 generates its inputs and parameters from the model's channels and heads
// (num::RankIndex): a prefill, an inline verify and a payload verify agree with the CPU byte for
// byte on a rank of tiny, of one Qwen3-Next layer and of one Kimi Linear (KDA) layer.
TEST(CudaRanks, EveryRankAgreesWithTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  struct RankCase {
    const char* preset;
    int32_t tp, rank;
  };
  for (const RankCase& rc : {RankCase{"tiny", 2, 1}, RankCase{"qwen3-next-80b-a3b", 4, 2},
                             RankCase{"kimi-linear-48b-a3b", 4, 3}}) {
    for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
      PoolShape shape = make_shape(rc.preset, dtype, 8, 4);
      shape.geometry = with_layers(make_geometry(rc.preset, rc.tp, rc.rank), {1});
      BackendPair p(shape, kSeed);
      p.prefill({prefill_task(3, 0, 21, 0), prefill_task(4, 0, 5, 1)});
      p.verify(VerifyMode::kStateRows, {verify_task(3, 21, 4, StateLoc::at(0), {2, 3, 4, 5})});
      VerifyTask payload = verify_task(4, 5, 4, StateLoc::at(1));
      payload.payload_slot = 0;
      p.verify(VerifyMode::kPayload, {payload});
      ASSERT_TRUE(p.all_rows_equal())
          << rc.preset << " TP " << rc.tp << " rank " << rc.rank << " " << dtype_name(dtype);
      EXPECT_EQ(first_difference(p.ref().read_outputs(), p.cand().read_outputs(), shape), "");
      EXPECT_EQ(p.ref().read_payload(0), p.cand().read_payload(0));
    }
  }
}

// The recurrence kernel stores bf16 pairs through the conversion instruction: the same bits as
// the integer formula for every float, NaNs included.
TEST(CudaBf16, PairConversionMatchesTheFormulaOnEveryFloat) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  EXPECT_EQ(cuda::count_bf16_pair_mismatches(), 0u);
}

// A NaN in a bf16 state is stored as the CPU stores it, the canonical 0x7FC0, whatever its bits:
// the recurrence converts bf16 pairs by the conversion instruction, whose NaN is another, and a
// pair holding a NaN by the integer formula. Requests with and without NaNs share each launch: a
// payload verify, a deferred verify that rounds and commits its pending tokens, a verify that
// stores after every token. (The payloads' fp32 values are not compared: an fp32 NaN keeps the
// bits each processor gives it, a quieted operand on x86 and 0x7FFFFFFF on the GPU.)
TEST(CudaBf16, NanStatesAreStoredAsTheCpuStoresThem) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  const int32_t batch = 4, T = 4, rows_per_request = T + 1;
  for (const char* preset : {"tiny", "qwen3-next-80b-a3b"}) {
    PoolShape shape =
        make_shape(preset, SsmDtype::kBF16, batch * rows_per_request, T, false, 2 * batch);
    shape.geometry.layers = 1;
    BackendPair p(shape, kSeed);
    std::mt19937 rng(3);
    const int64_t elements = shape.ssm_row_bytes() / 2;
    // Request 0 has no NaN; 1 the canonical one; 2 two others (negative, signalling); 3 one in
    // every 97 elements.
    auto nan_at = [&](int r, int64_t e) -> std::optional<num::bf16_bits> {
      if (r == 1 && e == elements / 3) return 0x7FC0;
      if (r == 2 && e == 5) return 0xFFFF;
      if (r == 2 && e == elements - 7) return 0x7F81;
      if (r == 3 && e % 97 == 11) return 0xFFC1;
      return std::nullopt;
    };
    std::vector<VerifyTask> first, deferred, rows;
    for (int r = 0; r < batch; ++r) {
      const int32_t base = r * rows_per_request;
      p.write_state(base, random_state(shape, rng, [&](int64_t e) { return nan_at(r, e); }));
      VerifyTask t = verify_task(r, 0, T, StateLoc::at(base));
      t.payload_slot = r;
      first.push_back(t);
      VerifyTask d = verify_task(r, 2, T, StateLoc::at(base));
      d.payload_slot = batch + r;
      d.pending = {r, 2, base, 0, 0b1u};  // rounded after token 0 and after the last
      deferred.push_back(d);
      std::vector<int32_t> out(static_cast<size_t>(T));
      std::iota(out.begin(), out.end(), base + 1);
      rows.push_back(verify_task(r, 2 + T, T, StateLoc::at(base), out));
    }
    p.verify(VerifyMode::kPayload, first);
    ASSERT_TRUE(p.outputs_equal()) << preset << ": payload verify";
    p.verify(VerifyMode::kPayload, deferred);
    ASSERT_TRUE(p.outputs_equal()) << preset << ": deferred verify";
    p.verify(VerifyMode::kStateRows, rows);
    ASSERT_TRUE(p.outputs_equal()) << preset << ": state-row verify";
    ASSERT_TRUE(p.all_rows_equal()) << preset;
    // The NaNs reached the stored rows (a column with a NaN is NaN after a token).
    const RowBytes after = p.ref().read_row(3 * rows_per_request + T);
    bool canonical = false;
    for (size_t e = 0; e + 1 < after.ssm.size(); e += 2)
      canonical = canonical || (after.ssm[e] == 0xC0 && after.ssm[e + 1] == 0x7F);
    EXPECT_TRUE(canonical) << preset;
  }
}

// Needs no device: the kernels' limits are known on the host, and a geometry outside them is an
// input error naming the backend, as a trace's custom geometry is refused at its header.
TEST(CudaBackendRegistry, RefusesGeometriesTheKernelsDoNotRun) {
  EXPECT_NO_THROW(backend_entry("cuda").check_geometry(make_geometry("qwen3-next-80b-a3b", 8)));
  EXPECT_NO_THROW(backend_entry("cuda").check_geometry(make_custom_geometry(3, 2, 4, 16, 16, 4)));
  for (const ModelGeometry& g :
       {make_custom_geometry(3, 2, 4, 32, 24, 3), make_custom_geometry(3, 2, 4, 128, 128, 3),
        make_custom_geometry(3, 2, 4, 128, 64, 4)}) {
    EXPECT_NO_THROW(backend_entry("cpu").check_geometry(g));
    try {
      backend_entry("cuda").check_geometry(g);
      ADD_FAILURE() << "K " << g.head_k_dim << " V " << g.head_v_dim << " W " << g.conv_width;
    } catch (const InputError& e) {
      EXPECT_EQ(e.message(),
                "backend 'cuda': unsupported geometry (needs K = V = 16 or 128 and W = 4)");
    }
  }
  EXPECT_THROW(backend_entry("cpu").check_geometry(make_custom_geometry(3, 2, 4, 16, 12, 4)),
               InputError);
}

TEST(CudaBackendRegistry, ReportsTheDevice) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  EXPECT_GT(cuda_device_count(), 0);
  const auto names = available_backends();
  EXPECT_NE(std::find(names.begin(), names.end(), "cuda"), names.end());
  cuda_synchronize_checked();
}

}  // namespace
}  // namespace specstate::test
