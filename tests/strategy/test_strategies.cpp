// The six strategies in lockstep on the CPU backend: for random schedules every strategy
// yields bit-identical live states, per-token outputs, swapped-out states and snapshot rows for
// every request at every step; rows a step may not touch stay byte-for-byte unchanged; each
// strategy's memory equals its formula.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "backends/cpu/cpu_backend.h"
#include "core/errors.h"
#include "core/strategy/host_scheduler.h"
#include "core/strategy/pool_policy.h"
#include "sim/plan_executor.h"
#include "tests/allocations.h"
#include "tests/strategy/random_schedule.h"

namespace specstate::test {
namespace {

constexpr uint8_t kPoison = 0x5A;

struct Lane {
  HostScheduler host;
  std::unique_ptr<StateBackend> backend;
  sim::SwapSpace swap;

  Lane(StrategyKind kind, const PoolConfig& config, uint64_t seed,
       Schedule schedule = Schedule::synchronous())
      : host(kind, config, schedule), backend(make_cpu_backend(host.layout().shape, seed)) {
    for (int32_t r = 0; r < host.layout().shape.state_rows; ++r)
      backend->fill_row(r, kPoison);
  }
  const PoolPolicy& policy() const { return host.policy(); }
  void run(const Plan& plan) { sim::execute(plan, *backend, swap); }
  std::string name() const {
    return std::string(to_string(policy().kind())) +
           (host.schedule().is_overlap() ? "@" + to_string(host.schedule()) : "");
  }
  // The last step's outputs of its entries that were not discarded, in batch order.
  std::vector<num::bf16_bits> step_outputs(std::span<const VerifyOp> batch) const {
    const VerifyOutputs out = backend->read_outputs();
    const size_t per_task = out.tasks ? out.values.size() / size_t(out.tasks) : 0;
    std::vector<num::bf16_bits> values;
    for (size_t k = 0; k < batch.size(); ++k) {
      if (batch[k].accepted == 0) continue;
      const auto first = out.values.begin() + int64_t(size_t(host.batch_tasks()[k]) * per_task);
      values.insert(values.end(), first, first + int64_t(per_task));
    }
    return values;
  }
};

PoolConfig tiny_pool(int32_t T, int32_t pool_rows, int32_t max_requests,
                     SsmDtype dtype = SsmDtype::kF32) {
  PoolConfig c;
  c.geometry = make_geometry("tiny");
  c.ssm_dtype = dtype;
  c.tokens_per_verify = T;
  c.pool_rows = pool_rows;
  c.max_requests = max_requests;
  return c;
}

PoolConfig tiny_config(SsmDtype dtype, const ScheduleConfig& sc) {
  PoolConfig c = tiny_pool(sc.T, sc.pool_rows, sc.max_requests, dtype);
  c.tree_nodes = sc.tree_nodes;
  c.page_size = sc.page_size;  // the paged strategy's pages are the snapshots' pages
  return c;
}

// Applies one operation to a lane; returns the snapshot rows it wrote.
std::vector<int32_t> apply(Lane& lane, const Op& op) {
  std::vector<int32_t> snapshot_rows;
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<O, OpExtend>) {
          lane.run(lane.host.extend(o.op));
          for (const Snapshot& s : o.op.snapshots)
            snapshot_rows.push_back(s.row);
        } else if constexpr (std::is_same_v<O, OpVerify> || std::is_same_v<O, OpDecode>) {
          const bool decode = std::is_same_v<O, OpDecode>;
          lane.run(decode ? lane.host.decode(o.batch, o.padding)
                          : lane.host.verify(o.batch, o.padding));
          for (const VerifyOp& v : o.batch) {
            if (v.snapshot) snapshot_rows.push_back(v.snapshot->row);
          }
        } else if constexpr (std::is_same_v<O, OpRetract>) {
          lane.run(lane.host.retract(o.request));
        } else if constexpr (std::is_same_v<O, OpResume>) {
          lane.run(lane.host.resume(o.request, o.req_row, o.working_row));
        } else if constexpr (std::is_same_v<O, OpFinish>) {
          lane.run(lane.host.finish(o.request));
        }
      },
      op);
  return snapshot_rows;
}

std::span<const VerifyOp> step_batch(const Op& op) {
  if (const auto* v = std::get_if<OpVerify>(&op)) return v->batch;
  if (const auto* d = std::get_if<OpDecode>(&op)) return d->batch;
  return {};
}

// Compares every lane with lane 0 after an operation; returns a description of the first
// difference, or "".
std::string compare(std::vector<Lane>& lanes, const Op& op,
                    const std::vector<int32_t>& snapshot_rows) {
  const Lane& ref = lanes[0];
  const bool stepped = std::holds_alternative<OpVerify>(op) || std::holds_alternative<OpDecode>(op);
  const std::vector<num::bf16_bits> ref_out =
      stepped ? ref.step_outputs(step_batch(op)) : std::vector<num::bf16_bits>{};
  for (size_t i = 1; i < lanes.size(); ++i) {
    Lane& lane = lanes[i];
    const std::string who = lane.name() + " vs " + ref.name();
    if (stepped && lane.step_outputs(step_batch(op)) != ref_out) return who + ": outputs differ";
    for (int32_t row : snapshot_rows) {
      if (lane.backend->read_state(StateLoc::at(row)) !=
          ref.backend->read_state(StateLoc::at(row))) {
        return who + ": snapshot row " + std::to_string(row) + " differs";
      }
    }
    for (const auto& [request, live] : ref.policy().table()) {
      if (live.discarded) continue;  // it finishes next: nothing of it is kept
      if (live.retracted) {
        if (lane.swap.saved.at(request) != ref.swap.saved.at(request)) {
          return who + ": swapped-out state of request " + std::to_string(request) + " differs";
        }
        continue;
      }
      auto a = lanes[0].policy().readable(request);
      lanes[0].run(a.plan);
      auto b = lane.policy().readable(request);
      lane.run(b.plan);
      if (lane.backend->read_state(b.loc) != lanes[0].backend->read_state(a.loc)) {
        return who + ": live state of request " + std::to_string(request) + " differs";
      }
    }
  }
  return "";
}

// Lanes of every strategy synchronously, and with overlap of `overlap_depth` steps when > 0.
void run_equivalence(uint64_t seed, SsmDtype dtype, const ScheduleConfig& sc,
                     int32_t overlap_depth = 0,
                     RecurrenceKind recurrence = RecurrenceKind::kGatedDeltaNet) {
  PoolConfig config = tiny_config(dtype, sc);
  config.geometry.recurrence = recurrence;
  std::vector<Lane> lanes;
  for (Schedule schedule : {Schedule::synchronous(), Schedule::overlap(overlap_depth)}) {
    if (schedule.is_overlap() == (overlap_depth == 0)) continue;
    for (StrategyKind k : strategies_running(sc.tree_nodes))
      lanes.emplace_back(k, config, seed, schedule);
  }
  int step = 0;
  RandomSchedule(seed, sc).run([&](const Op& op) {
    std::vector<int32_t> snaps;
    for (Lane& lane : lanes)
      snaps = apply(lane, op);
    const std::string diff = compare(lanes, op, snaps);
    ASSERT_EQ(diff, "") << "seed " << seed << " " << (dtype == SsmDtype::kF32 ? "f32" : "bf16")
                        << " step " << step;
    ++step;
  });
}

class StrategyEquivalence : public ::testing::TestWithParam<SsmDtype> {};

TEST_P(StrategyEquivalence, TwoHundredRandomSchedulesAgreeBitForBit) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    ScheduleConfig sc;
    sc.T = 2 + int32_t(seed % 4);  // T = 2..5
    run_equivalence(seed, GetParam(), sc);
    if (HasFatalFailure()) return;
  }
}

// Draft trees of up to 12 nodes in random node orders, with chains between them: every strategy
// that runs trees gives the same outputs, live states, snapshots and swapped-out states.
TEST_P(StrategyEquivalence, RandomTreeSchedulesAgreeBitForBit) {
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    ScheduleConfig sc;
    sc.T = 2 + int32_t(seed % 4);
    sc.tree_nodes = 12;
    run_equivalence(seed, GetParam(), sc);
    if (HasFatalFailure()) return;
  }
}

// Overlap scheduling: every step prepared before the previous steps' counts reach the host (1 to
// 4 steps in flight), its reads resolved on the device by guarded variants; discarded entries
// among them. Every strategy's overlap lane equals every synchronous lane: outputs, live states,
// snapshots, swapped-out states.
TEST_P(StrategyEquivalence, OverlapSchedulesAgreeWithSynchronousOnesBitForBit) {
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    ScheduleConfig sc;
    sc.T = 2 + int32_t(seed % 4);
    sc.discards = true;
    run_equivalence(seed, GetParam(), sc, /*overlap_depth=*/1 + int32_t(seed / 4 % 4));
    if (HasFatalFailure()) return;
  }
}

// Kimi Delta Attention (a decay per key channel, docs/numerics.md) on the tiny geometry: chains,
// trees and overlap schedules agree across the strategies as GDN's do (fewer seeds: the step
// differs from GDN's only in its decays, which the payload strategies store K per head).
TEST_P(StrategyEquivalence, KdaSchedulesAgreeBitForBit) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    ScheduleConfig sc;
    sc.T = 2 + int32_t(seed % 4);
    if (seed % 4 == 1) sc.tree_nodes = 12;
    sc.discards = seed % 4 == 2;
    run_equivalence(seed, GetParam(), sc, /*overlap_depth=*/sc.discards ? 1 : 0,
                    RecurrenceKind::kKimiDeltaAttention);
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, StrategyEquivalence,
                         ::testing::Values(SsmDtype::kF32, SsmDtype::kBF16), [](const auto& info) {
                           return info.param == SsmDtype::kF32 ? "f32" : "bf16";
                         });

// The ring against scatter under ring parameters that fold often, rarely and every step, and
// wrap the ring: bit-identical, and the schedules do exercise folds, unfolded histories
// replayed by a verify, and spans that wrap past the ring's end.
TEST(RingEquivalence, EveryParameterSetAgreesWithScatterAndFoldsAndWraps) {
  struct Case {
    RingParams ring;
    int32_t T;
  };
  const std::vector<Case> cases = {{{32, 16, 0}, 4}, {{8, 4, 0}, 4}, {{9, 5, 1}, 4},
                                   {{11, 7, 3}, 3},  {{5, 3, 0}, 2}, {{32, 16, 0}, 16}};
  for (const Case& k : cases) {
    int folds = 0, replays = 0, wraps = 0;
    for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
      for (uint64_t seed = 1; seed <= 25; ++seed) {
        ScheduleConfig sc;
        sc.T = k.T;
        PoolConfig config = tiny_config(dtype, sc);
        config.ring = k.ring;
        std::vector<Lane> lanes;
        lanes.emplace_back(StrategyKind::kScatter, config, seed);
        lanes.emplace_back(StrategyKind::kRing, config, seed);
        const int32_t slots = k.ring.slots;
        int step = 0;
        RandomSchedule(seed, sc).run([&](const Op& op) {
          std::vector<int32_t> snaps = apply(lanes[0], op);
          std::visit(
              [&](const auto& o) {
                using O = std::decay_t<decltype(o)>;
                if constexpr (std::is_same_v<O, OpVerify>) {
                  const Plan plan = lanes[1].host.verify(o.batch, o.padding);
                  for (const VerifyTask& t : std::get<VerifyCall>(plan.front()).tasks) {
                    if (t.pending.count > 0) ++(t.pending.commit_row == kNoRow ? replays : folds);
                    if (t.from.is_none()) continue;
                    wraps += t.pending.first_token + t.pending.count > slots ||
                             t.payload_first_token + t.tokens.count > slots;
                  }
                  lanes[1].run(plan);
                } else {
                  apply(lanes[1], op);
                }
              },
              op);
          const std::string diff = compare(lanes, op, snaps);
          ASSERT_EQ(diff, "") << "ring " << k.ring.slots << "/" << k.ring.max_history << "/"
                              << k.ring.fold_at << " T " << k.T << " seed " << seed << " step "
                              << step;
          ++step;
        });
        if (HasFatalFailure()) return;
      }
    }
    EXPECT_GT(folds, 0) << k.ring.slots << "/" << k.ring.max_history;
    EXPECT_GT(wraps, 0) << k.ring.slots << "/" << k.ring.max_history;
    if (k.ring.fold_threshold(k.T) > 1) {
      EXPECT_GT(replays, 0) << k.ring.slots << "/" << k.ring.max_history;
    }
  }
}

// The footprint's long-run figures for the ring against its own policy: over many verifies of
// one request with accepted lengths drawn from the weights, the share of verifies that fold and
// the mean history they replay are those mean_verify_step_bytes computes.
TEST(RingLayout, MeanStepBytesMatchThePolicyOverALongRun) {
  for (const auto& [T, weights] : std::vector<std::pair<int32_t, std::vector<double>>>{
           {4, geometric_accept_weights(0.7, 4)}, {4, {0, 0, 0, 1}}, {3, {1, 1, 2}}}) {
    PoolConfig c = tiny_pool(T, 4, 2);
    PoolPolicy p(StrategyKind::kRing, c);
    p.extend({1, 0, 0, 5, 0, kNoRow, {}});
    std::mt19937_64 rng(7);
    std::discrete_distribution<int32_t> draw(weights.begin(), weights.end());
    constexpr int kSteps = 40000;
    double folds = 0, history = 0;
    for (int i = 0; i < kSteps; ++i) {
      const VerifyOp v{1, 1 + draw(rng), std::nullopt, std::nullopt};
      const VerifyTask t = std::get<VerifyCall>(p.verify({&v, 1}, 0).front()).tasks.front();
      folds += t.pending.commit_row != kNoRow;
      history += t.pending.count;
    }
    const MeanStepBytes m = mean_verify_step_bytes(p.layout(), weights);
    EXPECT_NEAR(folds / kSteps, m.fold_rate, 0.01) << "T " << T;
    EXPECT_NEAR(history / kSteps, m.history_tokens, 0.05) << "T " << T;
  }
}

// The same for paged: the share of verifies whose plan moves the running page (a copy before the
// verify) is mean_verify_step_bytes' page_moves, and each move adds one state read and written.
TEST(PagedLayout, MeanStepBytesMatchThePolicyOverALongRun) {
  for (const auto& [page, weights] : std::vector<std::pair<int32_t, std::vector<double>>>{
           {16, geometric_accept_weights(0.7, 4)}, {8, {0, 0, 0, 1}}, {5, {1, 1, 2, 0}}}) {
    PoolConfig c = tiny_pool(4, 4, 2);
    c.page_size = page;
    PoolPolicy p(StrategyKind::kPaged, c);
    p.extend({1, 0, 0, 5, 0, kNoRow, {}});
    std::mt19937_64 rng(7);
    std::discrete_distribution<int32_t> draw(weights.begin(), weights.end());
    constexpr int kSteps = 40000;
    double moves = 0;
    for (int i = 0; i < kSteps; ++i) {
      const VerifyOp v{1, 1 + draw(rng), std::nullopt, std::nullopt};
      moves += std::holds_alternative<CopyCall>(p.verify({&v, 1}, 0).front());
    }
    const MeanStepBytes m = mean_verify_step_bytes(p.layout(), weights);
    EXPECT_NEAR(moves / kSteps, m.page_moves, 0.005) << "page " << page;
    c.page_size = 0;
    const MeanStepBytes still =
        mean_verify_step_bytes(make_layout(StrategyKind::kPaged, c), weights);
    const int64_t state = make_layout(StrategyKind::kPaged, c).shape.geometry.layers *
                          (c.geometry.ssm_elements_per_layer() * 4 +
                           int64_t{c.geometry.conv_dim()} * 2 * c.geometry.conv_state_cols());
    EXPECT_EQ(still.page_moves, 0);
    EXPECT_NEAR(m.state_read - still.state_read, m.page_moves * double(state), 1e-6 * state);
    EXPECT_NEAR(m.state_write - still.state_write, m.page_moves * double(state), 1e-6 * state);
  }
}

TEST(RingLayout, ParametersOutsideTheirBoundsAreInputErrors) {
  PoolConfig c = tiny_pool(4, 8, 4);
  auto message = [&](RingParams r) {
    c.ring = r;
    try {
      make_layout(StrategyKind::kRing, c);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({32, 3, 0}).find("ring_history 3 outside 4..28"), std::string::npos);
  EXPECT_NE(message({19, 16, 0}).find("ring_slots 19 outside 20..128"), std::string::npos);
  EXPECT_NE(message({32, 16, 14}).find("ring_fold_at 14 outside 1..13"), std::string::npos);
  EXPECT_EQ(message({20, 16, 13}), "");
  c.ring = {};
  const StrategyLayout l = make_layout(StrategyKind::kRing, c);
  EXPECT_EQ(l.shape.payload_slots, 4);
  EXPECT_EQ(l.shape.payload_tokens, 32);
  EXPECT_EQ(l.inspect_rows, 1);
}

// Issue 28 (minor): a custom geometry at the format's bounds and 2^24 rows needs more bytes than
// int64 counts; make_layout refuses it with the size instead of forming the products.
TEST(StrategyLayouts, BytesBeyondTwoToTheSixtyTwoAreInputErrors) {
  PoolConfig c;
  c.geometry = make_custom_geometry(1024, 1024, 4096, 1024, 1024, 4);
  c.pool_rows = 1 << 24;
  c.max_requests = 1 << 24;
  for (StrategyKind kind : all_strategies()) {
    try {
      make_layout(kind, c);
      ADD_FAILURE() << to_string(kind) << ": no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("bytes), more than 2^62"), std::string::npos)
          << e.what();
    }
  }
  c.pool_rows = c.max_requests = 1;  // one row of it fits
  EXPECT_NO_THROW(make_layout(StrategyKind::kInline, c));
}

// Rows a step may touch, stated from the layout, independently of the policy's plans.
std::set<int32_t> allowed_rows(const Lane& lane, const Op& op,
                               const std::map<uint64_t, LiveState>& before) {
  const StrategyLayout& l = lane.host.layout();
  const int32_t T = l.config.tokens_per_verify;
  std::set<int32_t> rows;
  auto strategy_rows = [&](const LiveState& s) {
    rows.insert(s.working_row);
    if (l.kind == StrategyKind::kScatter) {
      for (int j = 0; j < T; ++j)
        rows.insert(l.scratch_row(s.working_row, j));
    }
    if (l.kind == StrategyKind::kInline || l.kind == StrategyKind::kWindow) {
      for (int j = 0; j + 1 < T; ++j)
        rows.insert(l.draft_row(s.req_row, j));
    }
    if (l.kind == StrategyKind::kPaged) {
      for (int j = 0; j < T; ++j)
        rows.insert(l.paged_block(s.req_row, j));
    }
  };
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<O, OpExtend>) {
          if (before.count(o.op.request)) {
            strategy_rows(before.at(o.op.request));  // paged: a chunk writes its page's block
          } else {
            rows.insert(o.op.working_row);
          }
          for (const Snapshot& s : o.op.snapshots)
            rows.insert(s.row);
        } else if constexpr (std::is_same_v<O, OpVerify> || std::is_same_v<O, OpDecode>) {
          for (const VerifyOp& v : o.batch) {
            strategy_rows(before.at(v.request));
            if (v.snapshot) rows.insert(v.snapshot->row);
          }
        } else if constexpr (std::is_same_v<O, OpResume>) {
          rows.insert(o.working_row);
        } else {
          rows.insert(before.at(o.request).working_row);  // retract / finish flush
        }
      },
      op);
  if (l.inspect_rows) rows.insert(l.inspect_row());  // materialised reads
  return rows;
}

TEST(StrategyRows, RowsOutsideAStepAreUnchanged) {
  for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
    for (uint64_t seed = 1; seed <= 8; ++seed) {
      ScheduleConfig sc;
      const PoolConfig config = tiny_config(dtype, sc);
      for (StrategyKind kind : all_strategies()) {
        Lane lane(kind, config, seed);
        const int32_t rows = lane.host.layout().shape.state_rows;
        std::vector<uint64_t> digest(rows);
        for (int32_t r = 0; r < rows; ++r)
          digest[r] = lane.backend->digest_row(r);
        int step = 0;
        RandomSchedule(seed, sc).run([&](const Op& op) {
          const auto before = lane.policy().table();
          apply(lane, op);
          for (const auto& [request, live] : lane.policy().table()) {
            if (!live.retracted) lane.run(lane.policy().readable(request).plan);
          }
          const std::set<int32_t> allowed = allowed_rows(lane, op, before);
          for (int32_t r = 0; r < rows; ++r) {
            const uint64_t now = lane.backend->digest_row(r);
            if (!allowed.count(r)) {
              ASSERT_EQ(now, digest[r])
                  << to_string(kind) << " seed " << seed << " step " << step << ": row " << r
                  << " changed but the step may not touch it";
            }
            digest[r] = now;
          }
          ++step;
        });
      }
    }
  }
}

TEST(StrategyLayouts, ExtraMemoryEqualsTheFormulas) {
  for (const char* preset : {"tiny", "qwen3-next-80b-a3b", "qwen3.5-397b-a17b"}) {
    PoolConfig c;
    c.geometry = make_geometry(preset);
    c.tokens_per_verify = 4;
    c.pool_rows = 128;
    c.max_requests = 64;
    const int64_t T = 4, layers = c.geometry.layers;
    const int64_t ssm = c.geometry.ssm_elements_per_layer() * 4 * layers;
    const int64_t conv_col = int64_t{c.geometry.conv_dim()} * 2 * layers;
    const int64_t state = ssm + 3 * conv_col;
    // x in bf16, then alpha [HV], k_hat [H, K] and delta [HV, V] in fp32 (docs/performance.md).
    const ModelGeometry& g = c.geometry;
    const int64_t token_payload =
        (int64_t{g.conv_dim()} * 2 +
         (g.num_v_heads + g.num_k_heads * g.head_k_dim + g.num_v_heads * g.head_v_dim) * 4) *
        layers;

    const StrategyLayout scatter = make_layout(StrategyKind::kScatter, c);
    EXPECT_EQ(scatter.scratch_rows, 128 * T);
    EXPECT_EQ(scatter.total_bytes(), (128 + 128 * T) * state);
    const StrategyLayout inl = make_layout(StrategyKind::kInline, c);
    EXPECT_EQ(inl.draft_rows, (64 + 1) * (T - 1));
    EXPECT_EQ(inl.total_bytes(), (128 + 65 * 3) * state);
    const StrategyLayout window = make_layout(StrategyKind::kWindow, c);
    EXPECT_EQ(window.draft_rows, 64 * (T - 1));
    EXPECT_EQ(window.total_bytes(), (128 + 64 * 3) * (ssm + (3 + T - 1) * conv_col));
    const StrategyLayout paged = make_layout(StrategyKind::kPaged, c);  // T blocks per request row
    EXPECT_EQ(paged.draft_rows, 64 * T);
    EXPECT_EQ(paged.total_bytes(), (128 + 64 * T) * (ssm + (3 + T - 1) * conv_col));
    const StrategyLayout replay = make_layout(StrategyKind::kReplay, c);
    EXPECT_EQ(replay.total_bytes(), 128 * state + 64 * T * token_payload);
    const StrategyLayout deferred = make_layout(StrategyKind::kDeferred, c);
    EXPECT_EQ(deferred.total_bytes(), 129 * state + 2 * 64 * T * token_payload);

    // The allocator really allocates these bytes (tiny only: the others are GiB).
    if (std::string(preset) == "tiny") {
      for (StrategyKind k : all_strategies()) {
        const StrategyLayout l = make_layout(k, c);
        EXPECT_EQ(make_cpu_backend(l.shape, 1)->allocations().total(), l.total_bytes())
            << to_string(k);
      }
    }
  }
}

TEST(StrategyLayouts, DesignAnchorMemoryAtBatch64) {
  // The memory anchor: 4 layers of Qwen3-Next geometry, batch 64, pool = 2 x batch rows, fp32:
  // before (scatter) 5.16 GiB, after (inline) 2.59 GiB.
  PoolConfig c;
  c.geometry = make_geometry("qwen3-next-80b-a3b");
  c.geometry.layers = 4;
  c.tokens_per_verify = 4;
  c.pool_rows = 128;
  c.max_requests = 64;
  const double gib = 1024.0 * 1024 * 1024;
  EXPECT_NEAR(make_layout(StrategyKind::kInline, c).total_bytes() / gib, 2.59, 0.01);
  EXPECT_NEAR(make_layout(StrategyKind::kScatter, c).total_bytes() / gib, 5.16, 0.05);
}

// The strategy table (core/strategy/strategy.h) holds every kind once, in enumerator order, and
// what the tools derive from it agrees with the layouts.
TEST(StrategyTable, EveryKindHasOneEntryThatTheToolsAgreeWith) {
  ScheduleConfig sc;
  PoolConfig tree = tiny_config(SsmDtype::kF32, sc);
  tree.tree_nodes = 7;
  std::set<std::string_view> names, colours;
  for (size_t i = 0; i < all_strategies().size(); ++i) {
    const StrategyKind k = all_strategies()[i];
    const StrategyInfo& info = strategy_info(k);
    EXPECT_EQ(size_t(k), i);
    EXPECT_EQ(info.kind, k);
    EXPECT_TRUE(names.insert(info.name).second) << info.name;
    EXPECT_TRUE(colours.insert(info.chart.colour).second) << info.name;
    EXPECT_EQ(parse_strategies(info.name), std::vector<StrategyKind>{k});
    const std::vector<StrategyKind> running = strategies_running(tree.tree_nodes);
    const bool runs = std::find(running.begin(), running.end(), k) != running.end();
    EXPECT_EQ(runs, info.runs_trees()) << info.name;
    if (!runs) {
      EXPECT_THROW(make_layout(k, tree), InputError) << info.name;
    }
    const StrategyLayout l = make_layout(k, tiny_config(SsmDtype::kF32, sc));
    EXPECT_EQ(l.shape.payload_slots, l.config.max_requests * info.payload_buffers) << info.name;
  }
  EXPECT_EQ(strategies_running(0), all_strategies());
  EXPECT_EQ(no_trees_text(), "the window and paged strategies do not run trees");
}

TEST(StrategyPolicy, RefusesImpossibleAcceptedLengths) {
  ScheduleConfig sc;
  const PoolConfig config = tiny_config(SsmDtype::kF32, sc);
  for (StrategyKind kind : all_strategies()) {
    PoolPolicy p(kind, config);
    ExtendOp e;
    e.request = 1;
    e.req_row = 0;
    e.working_row = 0;
    e.tokens = 5;
    p.extend(e);
    for (int32_t a : {-1, 5}) {
      const VerifyOp v{1, a, std::nullopt, std::nullopt};
      EXPECT_THROW(p.verify({&v, 1}, 0), InputError) << to_string(kind) << " a = " << a;
    }
    const VerifyOp unknown{2, 1, std::nullopt, std::nullopt};
    EXPECT_THROW(p.verify({&unknown, 1}, 0), InputError);
  }
}

// docs/strategies.md's worked example: rows and live locations as the doc states them.
TEST(StrategyDocs, WorkedExampleRows) {
  const PoolConfig c = tiny_pool(4, 8, 4);
  const std::map<StrategyKind, StateLoc> live_after_verify = {
      {StrategyKind::kScatter, StateLoc::at(3)},   {StrategyKind::kInline, StateLoc::at(12)},
      {StrategyKind::kWindow, StateLoc{12, 3, 2}}, {StrategyKind::kReplay, StateLoc::at(3)},
      {StrategyKind::kDeferred, StateLoc::at(3)},  {StrategyKind::kRing, StateLoc::at(3)},
      {StrategyKind::kPaged, StateLoc{13, 3, 2}},
  };
  for (StrategyKind kind : all_strategies()) {
    PoolPolicy p(kind, c);
    p.extend({7, 1, 3, 20, 0, kNoRow, {}});
    const VerifyOp v{7, 3, std::nullopt, std::nullopt};
    const Plan plan = p.verify({&v, 1}, 0);
    const auto& verify = std::get<VerifyCall>(plan.front());
    const auto& out = verify.tasks.front().out_rows;
    if (kind == StrategyKind::kScatter) {
      EXPECT_EQ((std::vector<int32_t>(out.begin(), out.begin() + 4)),
                (std::vector<int32_t>{20, 21, 22, 23}));
    }
    if (kind == StrategyKind::kInline || kind == StrategyKind::kWindow) {
      EXPECT_EQ((std::vector<int32_t>(out.begin(), out.begin() + 4)),
                (std::vector<int32_t>{3, 11, 12, 13}));
    }
    if (kind == StrategyKind::kPaged) {  // no pages: the running block stays the working row
      EXPECT_EQ((std::vector<int32_t>(out.begin(), out.begin() + 4)),
                (std::vector<int32_t>{3, 12, 13, 14}));
    }
    if (kind == StrategyKind::kReplay) {
      EXPECT_EQ(verify.tasks.front().payload_slot, 1);
    }
    if (kind == StrategyKind::kDeferred) {
      EXPECT_EQ(verify.tasks.front().payload_slot, 2);
    }
    if (kind == StrategyKind::kRing) {  // the ring of request row 1, from its cursor 0
      EXPECT_EQ(verify.tasks.front().payload_slot, 1);
      EXPECT_EQ(verify.tasks.front().payload_first_token, 0);
      EXPECT_EQ(verify.tasks.front().pending.count, 0);
    }
    EXPECT_EQ(p.live(7).loc, live_after_verify.at(kind)) << to_string(kind);
    EXPECT_EQ(p.live(7).length, 23);
    const bool pends = kind == StrategyKind::kDeferred || kind == StrategyKind::kRing;
    EXPECT_EQ(p.live(7).pending, pends ? 3 : 0);
    p.retract(7);
    p.resume(7, 0, 5);
    EXPECT_EQ(p.live(7).loc, StateLoc::at(5));
    if (kind == StrategyKind::kInline) {
      EXPECT_EQ(p.layout().draft_row(0, 0), 8);
    }
  }
}

// docs/strategies.md's paged example, pages of 8 tokens: a verify whose last token is in the
// next page first copies the live state into that page's block; the blocks of the pages both
// tables hold stay, the new lookahead page takes a free block, never the old running block.
TEST(StrategyDocs, PagedWorkedExample) {
  PoolConfig c = tiny_pool(4, 8, 4);
  c.page_size = 8;
  PoolPolicy p(StrategyKind::kPaged, c);
  p.extend({7, 1, 3, 6, 0, kNoRow, {}});  // length 6: page 0, blocks [3, 12, 13, 14]
  EXPECT_EQ(p.live(7).page, 0);
  EXPECT_EQ(p.live(7).loc, StateLoc::at(3));
  const VerifyOp v{7, 3, Snapshot{8, 6}, std::nullopt};  // tokens 6..9, boundary 8 crossed
  const Plan plan = p.verify({&v, 1}, 0);
  ASSERT_EQ(plan.size(), 3u);
  const auto& move = std::get<CopyCall>(plan[0]);
  ASSERT_EQ(move.tasks.size(), 1u);
  EXPECT_EQ(move.tasks[0].src, StateLoc::at(3));
  EXPECT_EQ(move.tasks[0].dst_row, 12);
  const VerifyTask& t = std::get<VerifyCall>(plan[1]).tasks.front();
  EXPECT_EQ(t.from, StateLoc::at(12));
  EXPECT_EQ((std::vector<int32_t>(t.out_rows.begin(), t.out_rows.begin() + 4)),
            (std::vector<int32_t>{12, 13, 14, 15}));
  const auto& snapshot = std::get<CopyCall>(plan[2]);  // the state after token 8 (index 1)
  EXPECT_EQ(snapshot.tasks[0].src, (StateLoc{13, 12, 1}));
  EXPECT_EQ(snapshot.tasks[0].dst_row, 6);
  EXPECT_EQ(p.live(7).page, 1);
  EXPECT_EQ(p.live(7).loc, (StateLoc{14, 12, 2}));
  // Length 9, a decode: its token 9 is still in page 1, so it runs in place in block 12.
  const VerifyOp d{7, 1, std::nullopt, std::nullopt};
  const Plan step = p.decode({&d, 1}, 0);
  ASSERT_EQ(step.size(), 1u);
  const VerifyTask& dt = std::get<VerifyCall>(step[0]).tasks.front();
  EXPECT_EQ(dt.from, (StateLoc{14, 12, 2}));
  EXPECT_EQ(dt.out_rows[0], 12);
  // A retract makes the state real in the working row; the resumed table starts there.
  EXPECT_EQ(std::get<CopyCall>(p.retract(7)[0]).tasks[0].dst_row, 3);
  p.resume(7, 2, 5);
  EXPECT_EQ(p.live(7).blocks[0], 5);
  EXPECT_EQ(p.live(7).blocks[1], c.pool_rows + 2 * 4);
}

// docs/strategies.md's ring example: histories 3, 7, 11, 15, then a verify that folds 15 tokens
// into row 3 and writes its payload from ring position 15.
TEST(StrategyDocs, RingWorkedExample) {
  PoolPolicy p(StrategyKind::kRing, tiny_pool(4, 8, 4));
  p.extend({7, 1, 3, 20, 0, kNoRow, {}});
  int32_t history = 0;
  for (int32_t a : {3, 4, 4, 4}) {
    const VerifyOp v{7, a, std::nullopt, std::nullopt};
    const VerifyTask t = std::get<VerifyCall>(p.verify({&v, 1}, 0).front()).tasks.front();
    EXPECT_EQ(t.pending.count, history);
    EXPECT_EQ(t.pending.commit_row, kNoRow);
    EXPECT_EQ(t.payload_first_token, history);
    history += a;
  }
  EXPECT_EQ(p.live(7).pending, 15);
  const VerifyOp v{7, 2, std::nullopt, std::nullopt};
  const VerifyTask t = std::get<VerifyCall>(p.verify({&v, 1}, 0).front()).tasks.front();
  EXPECT_EQ(t.pending.count, 15);
  EXPECT_EQ(t.pending.commit_row, 3);
  EXPECT_EQ(t.payload_first_token, 15);
  EXPECT_EQ(p.live(7).pending_first, 15);
  EXPECT_EQ(p.live(7).pending, 2);
  EXPECT_EQ(p.live(7).length, 20 + 15 + 2);
}

// A verify with T = 1 (no draft tokens) still takes each strategy's verify path, not the
// in-place decode path: scatter writes its scratch row, replay and deferred write payload.
TEST(StrategyPolicy, VerifyWithOneTokenUsesTheVerifyPath) {
  const PoolConfig c = tiny_pool(1, 4, 2);
  const VerifyOp v{7, 1, std::nullopt, std::nullopt};
  for (StrategyKind kind :
       {StrategyKind::kScatter, StrategyKind::kReplay, StrategyKind::kDeferred}) {
    PoolPolicy p(kind, c);
    p.extend({7, 1, 3, 5, 0, kNoRow, {}});
    const Plan plan = p.verify({&v, 1}, 0);
    const auto& call = std::get<VerifyCall>(plan.front());
    if (kind == StrategyKind::kScatter) {
      EXPECT_EQ(call.tasks.front().out_rows[0], p.layout().scratch_row(3, 0));
    } else {
      EXPECT_EQ(call.mode, VerifyMode::kPayload) << to_string(kind);
    }
  }
}

// A refused step leaves the live-state table as it was, even when an earlier request of the
// batch was fine.
TEST(StrategyPolicy, RefusedBatchChangesNothing) {
  const PoolConfig c = tiny_pool(4, 4, 2);
  for (StrategyKind kind : all_strategies()) {
    PoolPolicy p(kind, c);
    p.extend({1, 0, 0, 5, 0, kNoRow, {}});
    p.extend({2, 1, 1, 5, 0, kNoRow, {}});
    const VerifyOp batch[] = {{1, 2, std::nullopt, std::nullopt},
                              {2, 9, std::nullopt, std::nullopt}};
    EXPECT_THROW(p.verify(batch, 0), InputError);
    EXPECT_EQ(p.live(1).length, 5) << to_string(kind);
    EXPECT_EQ(p.live(1).loc, StateLoc::at(0)) << to_string(kind);
    const VerifyOp twice[] = {{1, 1, std::nullopt, std::nullopt},
                              {1, 1, std::nullopt, std::nullopt}};
    EXPECT_THROW(p.verify(twice, 0), InputError);
    EXPECT_THROW(p.extend({1, 0, 0, 3, 0, kNoRow, {{20, 2}}}), InputError);  // snapshot outside
    EXPECT_EQ(p.live(1).length, 5) << to_string(kind);
  }
}

// Issue 19 defect 3: padding is a count. A step carrying many padding rows plans one padding
// task, whatever the strategy, and runs on the CPU backend with outputs for batch + 1 tasks.
// (tests/hostile_inputs replays 2^24 padding rows under a memory bound.)
TEST(StrategyPolicy, PaddingCostsOneTaskWhateverItsCount) {
  constexpr int32_t kPadding = 1000;
  const PoolConfig c = tiny_pool(4, 4, 2);
  const VerifyOp v{7, 2, std::nullopt, std::nullopt};
  for (StrategyKind kind : all_strategies()) {
    Lane lane(kind, c, 3);
    lane.run(lane.host.extend({7, 1, 3, 5, 0, kNoRow, {}}));
    for (const bool decode : {false, true}) {
      const VerifyOp op{7, decode ? 1 : 2, std::nullopt, std::nullopt};
      const Plan plan =
          decode ? lane.host.decode({&op, 1}, kPadding) : lane.host.verify({&v, 1}, kPadding);
      const VerifyCall* call = nullptr;
      for (const PlanCall& pc : plan) {
        if (const auto* vc = std::get_if<VerifyCall>(&pc)) call = vc;
      }
      ASSERT_NE(call, nullptr) << to_string(kind);
      EXPECT_EQ(call->tasks.size(), 2u) << to_string(kind);
      EXPECT_EQ(call->requests.back(), kPaddingRequest) << to_string(kind);
      EXPECT_TRUE(call->tasks.back().from.is_none()) << to_string(kind);
      EXPECT_EQ(call->padding_rows, kPadding) << to_string(kind);
      lane.run(plan);
      EXPECT_EQ(lane.backend->read_outputs().tasks, 2) << to_string(kind);
    }
  }
}

// Issue 19 defect 4: finishing a retracted request drops its saved state.
TEST(StrategyPolicy, FinishOfARetractedRequestDropsItsSavedState) {
  const PoolConfig c = tiny_pool(4, 4, 2);
  for (StrategyKind kind : all_strategies()) {
    Lane lane(kind, c, 3);
    lane.run(lane.host.extend({7, 1, 3, 5, 0, kNoRow, {}}));
    const VerifyOp v{7, 2, std::nullopt, std::nullopt};
    lane.run(lane.host.verify({&v, 1}, 0));
    lane.run(lane.host.retract(7));
    ASSERT_EQ(lane.swap.saved.count(7), 1u) << to_string(kind);
    const Plan plan = lane.host.finish(7);
    ASSERT_EQ(plan.size(), 1u) << to_string(kind);
    EXPECT_TRUE(std::holds_alternative<DropSavedCall>(plan.front())) << to_string(kind);
    lane.run(plan);
    EXPECT_TRUE(lane.swap.saved.empty()) << to_string(kind);
    EXPECT_TRUE(lane.swap.saved_from.empty()) << to_string(kind);
    EXPECT_FALSE(lane.policy().has(7)) << to_string(kind);
  }
}

}  // namespace
}  // namespace specstate::test

namespace specstate::test {
namespace {

// Issue 28, defect 12: with overlap, each step copied the whole live-state table once per count
// the step might accept, twice: planning cost O(T x live requests) a step whatever the batch
// (16,384 live requests, one-entry verifies, T = 16: 97 ms a step). The table's copies now
// share its entries (core/strategy/live_table.h). Counted in allocations, which a copied table
// makes per entry: a one-entry step allocates about as much with 16,000 live requests as with
// 1,000.
TEST(HostScheduler, OverlapStepPlanningDoesNotGrowWithLiveRequests) {
  auto per_step = [](int live) {
    PoolConfig c;
    c.geometry = make_geometry("tiny");
    c.tokens_per_verify = 16;
    c.pool_rows = live;
    c.max_requests = live;
    HostScheduler host(StrategyKind::kInline, c, Schedule::overlap());
    for (int r = 0; r < live; ++r)
      host.extend({uint64_t(r + 1), r, r, 4, 0, kNoRow, {}});
    constexpr int kSteps = 512;  // several compactions of the table (LiveTable::kCompactAt)
    const VerifyOp op{1, 2, {}, {}};
    return double(allocations_of([&] {
             for (int s = 0; s < kSteps; ++s)
               host.verify(std::span(&op, 1), 0);
           })) /
           kSteps;
  };
  const double small = per_step(1'000), large = per_step(16'000);
  EXPECT_LT(large, 1.5 * small) << "allocations a step: " << small << " with 1,000 live "
                                << "requests, " << large << " with 16,000";
}

// The tiny geometry, T = 4, 4 pool rows and `requests` request rows.
PoolConfig tiny_pipeline_config(int32_t requests) {
  PoolConfig c;
  c.geometry = make_geometry("tiny");
  c.tokens_per_verify = 4;
  c.pool_rows = 4;
  c.max_requests = requests;
  return c;
}

// Depth 3 (pipeline parallelism): requests 1, 2, 3 verify in three steps, all in flight. A fourth
// step of request 1 (in the oldest, which this step resolves) runs guarded on its count, one task
// per count it may have accepted (1 .. T; 0 would have discarded it); a fourth step of request 2
// (in a step that would stay in flight) makes the host wait for it first, so its task is planned
// once, unguarded. Depth 1 guards request 3 after step 3.
TEST(HostScheduler, DeepPipelinesGuardTheOldestStepAndWaitForTheOthers) {
  const PoolConfig c = tiny_pipeline_config(4);
  auto fourth_step = [&](int32_t depth, uint64_t request) {
    HostScheduler host(StrategyKind::kScatter, c, Schedule::overlap(depth));
    for (int r = 0; r < 3; ++r)
      host.extend({uint64_t(r + 1), r, r, 4, 0, kNoRow, {}});
    for (uint64_t r = 1; r <= 3; ++r) {
      const VerifyOp op{r, 2, {}, {}};
      host.verify(std::span(&op, 1), 0);
    }
    const VerifyOp op{request, 3, {}, {}};
    const Plan plan = host.verify(std::span(&op, 1), 0);
    std::vector<Guard> guards;
    for (const PlanCall& call : plan) {
      if (const auto* v = std::get_if<VerifyCall>(&call)) {
        for (const VerifyTask& t : v->tasks)
          guards.push_back(t.guard);
      }
    }
    return guards;
  };
  const int32_t T = c.tokens_per_verify;
  for (auto [depth, request, guarded] :
       {std::tuple{3, 1, true}, {3, 2, false}, {3, 3, false}, {1, 3, true}, {1, 1, false}}) {
    const std::vector<Guard> guards = fourth_step(depth, uint64_t(request));
    SCOPED_TRACE("depth " + std::to_string(depth) + ", request " + std::to_string(request));
    if (guarded) {
      ASSERT_EQ(guards.size(), size_t(T));
      for (int32_t w = 1; w <= T; ++w)
        EXPECT_EQ(guards[size_t(w - 1)], (Guard{request - 1, w}));
    } else {
      ASSERT_EQ(guards.size(), 1u);
      EXPECT_TRUE(guards[0].is_none());
    }
  }
}

// Depth 2: request 1 verifies, is retracted, and request 2 takes its request row and verifies
// while request 1's step is still in flight. That step's count would overwrite the row's count
// that request 1's guards read, so the host waits for request 1's step first: request 1's resume
// is then planned once, unguarded (without the wait it read request 2's count as its own).
TEST(HostScheduler, ADeepPipelineWaitsBeforeAReusedRequestRowIsOverwritten) {
  const PoolConfig c = tiny_pipeline_config(2);
  HostScheduler host(StrategyKind::kInline, c, Schedule::overlap(2));
  host.extend({1, 0, 0, 4, 0, kNoRow, {}});
  const VerifyOp first{1, 2, {}, {}};
  host.verify(std::span(&first, 1), 0);
  host.retract(1);
  host.extend({2, 0, 1, 4, 0, kNoRow, {}});
  const VerifyOp second{2, 3, {}, {}};
  host.verify(std::span(&second, 1), 0);
  size_t calls = 0;
  for (const PlanCall& call : host.resume(1, 1, 2)) {
    std::visit(Overloaded{[&](const TasksCall auto& tasks) {
                            for (const auto& t : tasks.tasks) {
                              if constexpr (requires { t.guard; }) {
                                EXPECT_TRUE(t.guard.is_none());
                              }
                            }
                          },
                          [&](const RequestCall auto& one) { EXPECT_TRUE(one.guard.is_none()); },
                          [](const auto&) {}},
               call);
    ++calls;
  }
  EXPECT_GT(calls, 0u);
}

}  // namespace
}  // namespace specstate::test
