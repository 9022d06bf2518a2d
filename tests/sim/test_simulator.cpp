// The simulator end to end on the CPU backend: generated traces replay clean through all five
// strategies, and a corrupted lane is reported at the right event, request, row and element.
#include <gtest/gtest.h>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/generator.h"
#include "sim/ownership.h"
#include "sim/simulator.h"
#include "sim/storage.h"
#include "tests/allocations.h"

namespace specstate::sim {
namespace {

SimOptions all_strategies_on_cpu() {
  SimOptions o;
  for (StrategyKind k : all_strategies())
    o.lanes.push_back({"cpu", k});
  return o;
}

TEST(Simulator, GeneratedTracesAgreeAcrossStrategies) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    GeneratorOptions g;
    g.seed = seed;
    g.requests = 24;
    g.steps = 150;
    g.ssm_dtype = seed % 2 ? SsmDtype::kF32 : SsmDtype::kBF16;
    g.draft_tokens = 1 + int32_t(seed % 4);
    const trace::Trace t = generate_trace(g);
    SimOptions o = all_strategies_on_cpu();
    o.compare_at = seed % 3 ? CompareAt::kEveryEvent : CompareAt::kChecks;
    const ReplayReport r = replay(t, o);
    ASSERT_TRUE(r.agree) << "seed " << seed << "\n" << r.divergence->message();
    EXPECT_EQ(r.events, t.events.size());
    // Every check and the end compare everything; every event is a comparison point when asked.
    const size_t checks = size_t(std::count_if(t.events.begin(), t.events.end(), [](const auto& l) {
      return std::holds_alternative<trace::Check>(l.event);
    }));
    EXPECT_EQ(r.full_compares, checks + 1);
    EXPECT_EQ(r.compares, (o.compare_at == CompareAt::kChecks ? checks : r.events) + 1);
  }
}

// Chunked prefills at the page edges (--edge-chunks): extends end one token before a page
// boundary, on it and one after it, snapshots are taken inside short chunks, and every strategy
// agrees at every event.
TEST(Simulator, EdgeChunkTracesAgreeAcrossStrategies) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    GeneratorOptions g;
    g.seed = seed;
    g.requests = 16;
    g.steps = 100;
    g.edge_chunks = true;
    g.ssm_dtype = seed % 2 ? SsmDtype::kF32 : SsmDtype::kBF16;
    const trace::Trace t = generate_trace(g);
    std::set<int64_t> ends;      // the extends' end positions relative to the next page boundary
    size_t short_snapshots = 0;  // snapshots inside extends shorter than a page
    std::map<uint64_t, int64_t> length;
    for (const trace::Line& line : t.events) {
      const auto* e = std::get_if<trace::Extend>(&line.event);
      if (e == nullptr) continue;
      int64_t& len = length[e->request];
      if (len == 0) len = e->prefix_len;
      len += e->tokens;
      ends.insert((len + 1) % g.page_size);  // 0: one before, 1: on, 2: one after a boundary
      if (e->tokens < g.page_size) short_snapshots += e->track.size();
    }
    EXPECT_TRUE(ends.count(0) && ends.count(1) && ends.count(2)) << "seed " << seed;
    EXPECT_GT(short_snapshots, 0u) << "seed " << seed;
    const ReplayReport r = replay(t, all_strategies_on_cpu());
    ASSERT_TRUE(r.agree) << "seed " << seed << "\n" << r.divergence->message();
    EXPECT_EQ(r.events, t.events.size());
  }
}

// Overlap traces of 1 to 4 steps in flight: requests finish late through discarded entries and
// batches come reordered; every strategy's overlap lane (at the trace's depth, and at depth 1)
// equals every synchronous lane at every event.
TEST(Simulator, GeneratedOverlapTracesAgreeAcrossSchedulesAndStrategies) {
  size_t discarded_deep = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    GeneratorOptions g;
    g.seed = seed;
    g.requests = 24;
    g.steps = 150;
    g.overlap = 1 + int32_t((seed - 1) % 4);
    g.ssm_dtype = seed % 2 ? SsmDtype::kF32 : SsmDtype::kBF16;
    g.draft_tokens = 1 + int32_t(seed % 4);
    const trace::Trace t = generate_trace(g);
    size_t discarded = 0;
    for (const trace::Line& line : t.events) {
      if (const auto* v = std::get_if<trace::Verify>(&line.event)) {
        for (const trace::VerifyEntry& e : v->batch)
          discarded += e.accepted == 0;
      }
    }
    if (g.overlap == 1) {
      EXPECT_GT(discarded, 0u) << "seed " << seed;
    }
    if (g.overlap > 1) discarded_deep += discarded;
    SimOptions o;
    for (Schedule schedule :
         {Schedule::synchronous(), Schedule::overlap(g.overlap), Schedule::overlap()}) {
      if (schedule == Schedule::overlap() && g.overlap == 1) continue;
      for (StrategyKind k : all_strategies())
        o.lanes.push_back({"cpu", k, Fault::kNone, schedule});
    }
    const ReplayReport r = replay(t, o);
    ASSERT_TRUE(r.agree) << "seed " << seed << "\n" << r.divergence->message();
    EXPECT_EQ(r.events, t.events.size());
  }
  EXPECT_GT(discarded_deep, 0u);
}

// Draft-tree traces (static shapes, some cut to a node budget) through every strategy that runs
// trees; the trees leave the first branch, so accepted paths are not prefixes of the node order.
TEST(Simulator, GeneratedTreeTracesAgreeAcrossStrategies) {
  const std::vector<std::vector<int32_t>> shapes = {{2, 2, 2}, {3, 2}, {4}, {2, 1, 2, 1}};
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    GeneratorOptions g;
    g.seed = seed;
    g.requests = 24;
    g.steps = 150;
    g.ssm_dtype = seed % 2 ? SsmDtype::kF32 : SsmDtype::kBF16;
    g.tree = shapes[seed % shapes.size()];
    g.draft_tokens = int32_t(g.tree.size()) + int32_t(seed % 2);
    g.tree_nodes = seed % 3 == 0 ? 6 : 0;
    const trace::Trace t = generate_trace(g);
    EXPECT_EQ(t.header.version, 2);
    SimOptions o;
    for (StrategyKind k : strategies_running(/*tree_nodes=*/1))
      o.lanes.push_back({"cpu", k});
    const ReplayReport r = replay(t, o);
    ASSERT_TRUE(r.agree) << "seed " << seed << "\n" << r.divergence->message();
    size_t off_prefix = 0;
    for (const trace::Line& line : t.events) {
      if (const auto* v = std::get_if<trace::Verify>(&line.event)) {
        for (const trace::VerifyEntry& e : v->batch) {
          for (size_t k = 0; k < e.tree->path.size(); ++k)
            off_prefix += e.tree->path[k] != int8_t(k);
        }
      }
    }
    EXPECT_GT(off_prefix, 0u) << "seed " << seed;
  }
}

// The issue's size: at least 64 requests and 2,000 events on the tiny preset.
TEST(Simulator, LargeGeneratedTraceAgrees) {
  GeneratorOptions g;
  g.seed = 2026;
  g.requests = 64;
  g.steps = 2000;
  const trace::Trace t = generate_trace(g);
  const trace::TraceSummary summary = trace::validate_trace(t);
  ASSERT_GE(t.events.size(), 2000u);
  ASSERT_GE(summary.requests, 64);
  SimOptions o = all_strategies_on_cpu();
  o.compare_at = CompareAt::kChecks;
  const ReplayReport r = replay(t, o);
  ASSERT_TRUE(r.agree) << r.divergence->message();
  EXPECT_GT(r.compares, 10u);
}

TEST(Simulator, FlippedBitIsReportedAtTheRightEventRowAndElement) {
  GeneratorOptions g;
  g.seed = 5;
  g.requests = 12;
  g.steps = 80;
  const trace::Trace t = generate_trace(g);
  // Corrupt the replay lane right after the 10th verify: flip one bit of one SSM element of
  // the first request of that batch, in its working row (replay keeps the live state there).
  const trace::Line* target = nullptr;
  int verifies = 0;
  for (const trace::Line& line : t.events) {
    if (const auto* v = std::get_if<trace::Verify>(&line.event);
        v && !v->batch.empty() && ++verifies == 10) {
      target = &line;
      break;
    }
  }
  ASSERT_NE(target, nullptr);
  const uint64_t victim = std::get<trace::Verify>(target->event).batch.front().request;

  SimOptions o;
  o.lanes = {{"cpu", StrategyKind::kInline}, {"cpu", StrategyKind::kReplay}};
  int32_t victim_row = -1;
  const int64_t element = 3 * 16 * 16 + 5 * 16 + 9;  // head 3, k 5, v 9 (tiny: K = V = 16)
  o.after_event = [&](size_t lane, const trace::Line& line, StateBackend& backend) {
    if (lane != 1 || &line != target) return;
    // The victim's working row, from the trace: the replay strategy keeps the live state there.
    for (const trace::Line& l : t.events) {
      if (l.line > line.line) break;
      if (const auto* e = std::get_if<trace::Extend>(&l.event);
          e && e->request == victim && e->working_row >= 0) {
        victim_row = e->working_row;
      }
      if (const auto* r = std::get_if<trace::Resume>(&l.event); r && r->request == victim)
        victim_row = r->working_row;
    }
    RowBytes state = backend.read_state(StateLoc::at(victim_row));
    const size_t layer1 = size_t(backend.shape().ssm_row_bytes());  // layer 1 starts here
    state.ssm[layer1 + element * 4 + 1] ^= 0x10;                    // one mantissa bit
    backend.write_state(victim_row, state);
  };
  const ReplayReport r = replay(t, o);
  ASSERT_FALSE(r.agree);
  const Divergence& d = *r.divergence;
  EXPECT_EQ(d.line, target->line);
  EXPECT_EQ(d.what, "live state");
  ASSERT_TRUE(d.request.has_value());
  EXPECT_EQ(*d.request, victim);
  EXPECT_EQ(d.row_b, victim_row);
  ASSERT_FALSE(d.elements.empty());
  EXPECT_EQ(d.elements.front().tensor, "ssm");
  EXPECT_EQ(d.elements.front().layer, 1);
  EXPECT_EQ(d.elements.front().index, "[head 3, k 5, v 9]");
  EXPECT_NE(d.message().find("line " + std::to_string(target->line)), std::string::npos);
}

// ---- prefill/decode handoff ----------------------------------------------------------------

// A decode rank of tiny (TP 2, rank 1) whose new requests come half of the time from a prefill
// instance at TP 1, or the whole model (TP 1) receiving from a prefill instance at TP 2.
GeneratorOptions handoff_options(uint64_t seed) {
  GeneratorOptions g;
  g.seed = seed;
  g.requests = 48;
  g.steps = 160;
  g.tp = seed % 2 ? 2 : 1;
  g.rank = g.tp - 1;
  g.prefill_tp = 3 - g.tp;
  g.ssm_dtype = seed % 3 ? SsmDtype::kF32 : SsmDtype::kBF16;
  g.host_slots = seed % 4 == 0 ? 2 : 0;
  return g;
}

// The same schedule on one instance: each handed-over request prefills its whole prompt itself,
// in two chunks that end where the prefill instance stopped (its handoff becomes a first extend
// of those tokens from zero, its hit an extend that continues). The chunk boundary matters in
// bf16: a state handed over, like a chunk's, is stored in the pool dtype there.
trace::Trace on_one_instance(const trace::Trace& t) {
  trace::Trace one = t;
  one.events.clear();
  std::map<uint64_t, int64_t> handed;  // request -> tokens the prefill instance ran
  for (const trace::Line& line : t.events) {
    if (const auto* h = std::get_if<trace::Handoff>(&line.event)) {
      handed[h->request] = h->length;
      continue;
    }
    trace::Line copy = line;
    if (auto* e = std::get_if<trace::Extend>(&copy.event); e && handed.count(e->request)) {
      EXPECT_EQ(e->prefix_len, handed[e->request]) << "line " << line.line;
      trace::Extend first = *e;
      first.tokens = int32_t(e->prefix_len);
      first.prefix_len = 0;
      first.cow_src_row = -1;
      first.track.clear();
      one.events.push_back({line.line, first});
      e->req_row = e->working_row = -1;  // a continuing extend names no rows
      e->prefix_len = 0;
      e->cow_src_row = -1;
      handed.erase(e->request);
    }
    one.events.push_back(copy);
  }
  return one;
}

// What a replay produced, lane by lane: every verify and decode's outputs in order, and the live
// state of the requests running at the end.
struct Produced {
  std::vector<std::vector<num::bf16_bits>> outputs;
  std::vector<std::pair<uint64_t, uint64_t>> final_digests;
};
Produced replay_producing(const trace::Trace& t, StrategyKind kind) {
  Produced p;
  SimOptions o;
  o.lanes.push_back({"cpu", kind});
  o.after_event = [&](size_t, const trace::Line& line, StateBackend& backend) {
    if (std::holds_alternative<trace::Verify>(line.event) ||
        std::holds_alternative<trace::Decode>(line.event))
      p.outputs.push_back(backend.read_outputs().values);
  };
  const ReplayReport r = replay(t, o);
  EXPECT_TRUE(r.agree) << r.divergence->message();
  p.final_digests = r.final_digests;
  return p;
}

// Every strategy replays handoff traces bit-identically at every event, and the decode rank
// computes what one instance running the whole schedule computes: the same outputs at every step
// and the same final states (the handed-over state is the receiving rank's own, core/reslice.h).
TEST(Simulator, HandoffTracesAgreeAcrossStrategiesAndWithOneInstance) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const GeneratorOptions g = handoff_options(seed);
    trace::Trace t = generate_trace(g);
    while (std::holds_alternative<trace::Finish>(t.events.back().event))  // some run at the end
      t.events.pop_back();
    EXPECT_EQ(t.header.version, 2);
    const size_t handoffs = size_t(std::count_if(t.events.begin(), t.events.end(), [](auto& l) {
      return std::holds_alternative<trace::Handoff>(l.event);
    }));
    EXPECT_GE(handoffs, 3u) << "seed " << seed;
    const ReplayReport all = replay(t, all_strategies_on_cpu());
    ASSERT_TRUE(all.agree) << "seed " << seed << "\n" << all.divergence->message();
    const trace::Trace one = on_one_instance(t);
    EXPECT_NO_THROW(trace::validate_trace(one));
    for (StrategyKind kind : {StrategyKind::kInline, StrategyKind::kRing}) {
      const Produced decoded = replay_producing(t, kind), alone = replay_producing(one, kind);
      ASSERT_EQ(decoded.outputs.size(), alone.outputs.size());
      for (size_t i = 0; i < decoded.outputs.size(); ++i)
        ASSERT_EQ(decoded.outputs[i], alone.outputs[i]) << "seed " << seed << ", step " << i;
      EXPECT_FALSE(decoded.final_digests.empty()) << "seed " << seed;
      EXPECT_EQ(decoded.final_digests, alone.final_digests) << "seed " << seed;
    }
  }
}

// SGLang #30997's cut diverges at the first handoff into a rank other than the whole model.
TEST(Simulator, HandoffConvCutAsOneBlockDivergesAtTheHandoff) {
  const trace::Trace t = generate_trace(handoff_options(1));
  long first = 0;
  for (const trace::Line& line : t.events) {
    if (std::holds_alternative<trace::Handoff>(line.event)) {
      first = line.line;
      break;
    }
  }
  SimOptions o;
  o.lanes = {{"cpu", StrategyKind::kInline},
             {"cpu", StrategyKind::kInline, Fault::kHandoffConvOneBlock}};
  const ReplayReport r = replay(t, o);
  ASSERT_FALSE(r.agree);
  EXPECT_EQ(r.divergence->line, first);
  EXPECT_EQ(r.divergence->what, "snapshot row");
}

GeneratorOptions host_tier_options(uint64_t seed) {
  GeneratorOptions g;
  g.seed = seed;
  g.requests = 40;
  g.steps = 300;
  g.pool_rows = 10;  // few rows: snapshots are evicted (offloaded) and hits restored
  g.max_requests = 6;
  g.host_slots = 3;
  g.prefix_hit_prob = 0.6;
  return g;
}

// Host-tier traces (offload before a snapshot row is reused, prefix hits restored from a slot):
// every strategy agrees at every event, synchronously and with overlap, in both dtypes, and the
// host slots are compared at each offload.
TEST(Simulator, HostTierTracesAgreeAcrossStrategiesAndSchedules) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    GeneratorOptions g = host_tier_options(seed);
    g.ssm_dtype = seed % 2 ? SsmDtype::kF32 : SsmDtype::kBF16;
    g.overlap = seed % 3 == 0;
    const trace::Trace t = generate_trace(g);
    size_t offloads = 0, hits_on_restored = 0;
    std::set<int32_t> restored;
    for (const trace::Line& line : t.events) {
      offloads += std::holds_alternative<trace::Offload>(line.event);
      if (const auto* r = std::get_if<trace::Restore>(&line.event)) restored.insert(r->row);
      if (const auto* e = std::get_if<trace::Extend>(&line.event))
        hits_on_restored += e->cow_src_row >= 0 && restored.count(e->cow_src_row);
    }
    EXPECT_GT(offloads, 0u) << "seed " << seed;
    EXPECT_GT(hits_on_restored, 0u) << "seed " << seed;
    SimOptions o;
    for (Schedule schedule : {Schedule::synchronous(), Schedule::overlap()}) {
      if (schedule == Schedule::overlap() && !g.overlap) continue;
      for (StrategyKind k : all_strategies())
        o.lanes.push_back({"cpu", k, Fault::kNone, schedule});
    }
    const ReplayReport r = replay(t, o);
    ASSERT_TRUE(r.agree) << "seed " << seed << "\n" << r.divergence->message();
    EXPECT_EQ(r.events, t.events.size());
  }
}

// A bit flipped in a cache row of one lane before it is offloaded is reported at the offload
// (the host slots differ); flipped in a restored row, at the restore.
TEST(Simulator, ACorruptedHostTransferIsReportedWhereItHappens) {
  const trace::Trace t = generate_trace(host_tier_options(2));
  for (bool at_restore : {false, true}) {
    // The first offload (or restore) and the event before it.
    const trace::Line* target = nullptr;
    const trace::Line* before = nullptr;
    for (size_t i = 1; i < t.events.size() && target == nullptr; ++i) {
      const trace::Event& e = t.events[i].event;
      if (at_restore ? std::holds_alternative<trace::Restore>(e)
                     : std::holds_alternative<trace::Offload>(e)) {
        target = &t.events[i];
        before = &t.events[i - 1];
      }
    }
    ASSERT_NE(target, nullptr);
    const int32_t row = at_restore ? std::get<trace::Restore>(target->event).row
                                   : std::get<trace::Offload>(target->event).row;
    SimOptions o;
    o.lanes = {{"cpu", StrategyKind::kInline}, {"cpu", StrategyKind::kRing}};
    o.after_event = [&](size_t lane, const trace::Line& line, StateBackend& backend) {
      if (lane != 1 || &line != (at_restore ? target : before)) return;
      RowBytes state = backend.read_state(StateLoc::at(row));
      state.ssm[4 * 7 + 2] ^= 0x01;  // layer 0, head 0, element 7
      backend.write_state(row, state);
    };
    const ReplayReport r = replay(t, o);
    ASSERT_FALSE(r.agree) << "at_restore " << at_restore;
    const Divergence& d = *r.divergence;
    EXPECT_EQ(d.line, target->line) << d.message();
    if (at_restore) {
      EXPECT_EQ(d.what, "snapshot row") << d.message();
      EXPECT_EQ(d.row_b, row);
    } else {
      const int32_t slot = std::get<trace::Offload>(target->event).slot;
      EXPECT_EQ(d.what, "host slot " + std::to_string(slot)) << d.message();
    }
    ASSERT_FALSE(d.elements.empty());
    EXPECT_EQ(d.elements.front().tensor, "ssm");
  }
}

// A restore whose upper layers land after the next event (restore-read-early) writes its row in
// that next event as the host tier, which the ownership check allows; when the restore brings
// back what the row already held, nothing diverges. A check event in between also lands it.
TEST(Simulator, ALateRestoreLandingIsTheHostTiersWrite) {
  for (bool with_check : {false, true}) {
    std::istringstream in(
        std::string(
            R"({"specstate_trace": 2, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 3, "pool_rows": 4, "max_requests": 2, "page_size": 16, "seed": 9, "host_slots": 1})"
            "\n"
            R"({"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": 20, "track": [{"length": 16, "row": 2}]})"
            "\n"
            R"({"event": "offload", "row": 2, "slot": 0})"
            "\n"
            R"({"event": "restore", "slot": 0, "row": 2})"
            "\n") +
        (with_check ? R"({"event": "check"})"
                      "\n"
                    : "") +
        R"({"event": "extend", "request": 2, "req_row": 1, "working_row": 1, "tokens": 5, "prefix_len": 16, "cow_src_row": 2})"
        "\n");
    const trace::Trace t = trace::read_trace(in, "late.jsonl");
    SimOptions o;
    for (Fault f : {Fault::kNone, Fault::kRestoreReadEarly})
      for (StrategyKind k : all_strategies())
        o.lanes.push_back({"cpu", k, f});
    const ReplayReport r = replay(t, o);
    ASSERT_TRUE(r.agree) << "check " << with_check << "\n" << r.divergence->message();
    EXPECT_EQ(r.events, t.events.size());
  }
}

// A faulty lane whose plan the backend refuses (padding tasks racing on row 0) is reported as
// a divergence of that lane even with the ownership checker off, never as a crash.
TEST(Simulator, BackendRefusalOfAFaultyLaneIsADivergence) {
  GeneratorOptions g;
  g.seed = 1;
  g.requests = 16;
  g.steps = 200;
  SimOptions o;
  o.lanes = {{"cpu", StrategyKind::kScatter},
             {"cpu", StrategyKind::kScatter, Fault::kPaddingWritesRow}};
  o.check_ownership = false;
  const ReplayReport r = replay(generate_trace(g), o);
  ASSERT_FALSE(r.agree);
  EXPECT_NE(r.divergence->what.find("backend refused the plan"), std::string::npos)
      << r.divergence->message();
  EXPECT_EQ(r.divergence->lane_a, "cpu/scatter+padding-writes-row");
}

// Payload slots are owned through the request row: a request writing another's slot is flagged.
TEST(Ownership, PayloadSlotOfAnotherRequestIsFlagged) {
  PoolConfig c;
  c.geometry = make_geometry("tiny");
  c.tokens_per_verify = 4;
  c.pool_rows = 4;
  c.max_requests = 2;
  const StrategyLayout layout = make_layout(StrategyKind::kReplay, c);
  OwnershipChecker checker(layout);
  trace::Verify v;
  v.batch = {{1, 2, std::nullopt, std::nullopt}};
  checker.begin_event(trace::Extend{1, 0, 0, 5, 0, -1, {}});
  checker.end_event(trace::Extend{1, 0, 0, 5, 0, -1, {}});
  checker.begin_event(trace::Extend{2, 1, 1, 5, 0, -1, {}});
  checker.end_event(trace::Extend{2, 1, 1, 5, 0, -1, {}});
  checker.begin_event(v);
  VerifyCall call;
  call.mode = VerifyMode::kPayload;
  VerifyTask t;
  t.tokens = {1, 5, 4};
  t.from = StateLoc::at(0);
  t.payload_slot = layout.payload_slot(1, 0);  // request 2's slot
  call.tasks = {t};
  call.requests = {1};
  const auto bad = checker.check({call});
  ASSERT_TRUE(bad.has_value());
  EXPECT_NE(bad->find("payload slot 1"), std::string::npos) << *bad;
  call.tasks[0].payload_slot = layout.payload_slot(0, 0);
  EXPECT_FALSE(checker.check({call}).has_value());
}

// Issue 19 defect 8: checking the plan of one extend with n track writes costs time linear in n
// (each write used to copy the set of the event's track rows: 45 s for a replay at n = 10k).
TEST(Ownership, TrackWritesCostLinearTime) {
  PoolConfig c;
  c.geometry = make_geometry("tiny");
  c.tokens_per_verify = 1;
  c.max_requests = 1;
  auto check_tracks = [&](int n) {
    c.pool_rows = n + 1;
    const StrategyLayout layout = make_layout(StrategyKind::kInline, c);
    OwnershipChecker checker(layout);
    trace::Extend e{1, 0, 0, n, 0, -1, {}};
    PrefillTask task;
    task.tokens = {1, 0, n};
    task.writes.push_back({n, 0});
    for (int i = 1; i <= n; ++i) {
      e.track.push_back({i, i});
      task.writes.push_back({i, i});
    }
    checker.begin_event(e);
    ASSERT_FALSE(checker.check({call_of<PrefillCall>(task, 1)}).has_value());
  };
  const double growth =
      specstate::test::allocation_growth_of_four_times_the_size(check_tracks, 5'000);
  EXPECT_LT(growth, specstate::test::kLinearGrowthBound);
}

}  // namespace
}  // namespace specstate::sim

namespace specstate::sim {
namespace {

// A replay's results do not depend on the thread count: the same agreement, and after every
// event the same per-token outputs and the same bytes in every row of every lane.
TEST(Simulator, OneTwoAndSevenThreadsGiveTheSameBytes) {
  GeneratorOptions g;
  g.preset = "qwen3.5-2b";
  g.tp = 16;
  g.seed = 9;
  g.requests = 6;
  g.steps = 30;
  g.pool_rows = 5;  // rows run out: retracts and resumes
  const trace::Trace t = generate_trace(g);
  std::vector<ReplayReport> reports;
  std::vector<uint64_t> output_hashes;
  for (int threads : {1, 2, 7}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(threads));
    tbb::task_arena arena(threads);
    arena.execute([&] {
      SimOptions o = all_strategies_on_cpu();
      uint64_t hash = 0;
      o.after_event = [&](size_t, const trace::Line&, StateBackend& b) {
        for (num::bf16_bits v : b.read_outputs().values)
          hash = hash * 1099511628211ull + v;
        for (int32_t row = 0; row < b.shape().state_rows; ++row)
          hash = hash * 1099511628211ull + b.digest_row(row);
      };
      reports.push_back(replay(t, o));
      output_hashes.push_back(hash);
    });
  }
  for (size_t i = 0; i < reports.size(); ++i) {
    ASSERT_TRUE(reports[i].agree) << reports[i].divergence->message();
    EXPECT_EQ(output_hashes[i], output_hashes[0]);
  }
}

// The lanes of a handoff event ask one shared sender for its states, under a lock held across the
// sender's parallel prefill. Waiting inside that prefill, a thread must not pick up another lane's
// task that asks for the same lock: unisolated, this replay deadlocked in 11 of 12 runs at 16
// threads on a 2-core VM (and 1 in 5 of the CUDA handoff test on a 16-core machine).
TEST(Simulator, HandoffLanesOnManyThreadsDoNotDeadlock) {
  GeneratorOptions g;
  g.tp = 2;
  g.rank = 1;
  g.prefill_tp = 1;
  g.seed = 45;
  g.requests = 24;
  g.steps = 150;
  const trace::Trace t = generate_trace(g);
  constexpr int kThreads = 16;
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(kThreads));
  tbb::task_arena arena(kThreads);
  for (int run = 0; run < 5; ++run) {
    const ReplayReport r = arena.execute([&] { return replay(t, all_strategies_on_cpu()); });
    ASSERT_TRUE(r.agree) << r.divergence->message();
  }
}

// Each lane stores the rows its plans name, not the pool: recording.md's example pool (256 rows,
// 128 request rows) with two requests costs a few rows per lane.
TEST(Simulator, LanesAllocateOnlyTheRowsTheTraceTouches) {
  GeneratorOptions g;
  g.preset = "qwen3.5-2b";
  g.tp = 16;
  g.seed = 3;
  g.requests = 2;
  g.steps = 10;
  g.pool_rows = 256;
  g.max_requests = 128;
  const trace::Trace t = generate_trace(g);
  const SimOptions o = all_strategies_on_cpu();
  const ReplayReport r = replay(t, o);
  ASSERT_TRUE(r.agree) << r.divergence->message();
  const PoolConfig config = pool_config(t.header);
  for (size_t i = 0; i < o.lanes.size(); ++i) {
    const StrategyLayout layout = make_layout(o.lanes[i].strategy, config);
    const StoredRows stored = lane_storage(t, o.lanes[i], config);
    EXPECT_EQ(r.lanes[i].allocated.total(), stored_shape(layout.shape, stored).total_bytes());
    EXPECT_LE(stored.rows.size(), size_t(2 * (config.tokens_per_verify + 1) + 4))
        << r.lanes[i].name;
    EXPECT_LT(r.lanes[i].allocated.total() * 10, layout.total_bytes()) << r.lanes[i].name;
  }
}

// A layer subset replays clean, and its outputs are the full replay's outputs of those layers.
TEST(Simulator, LayerSubsetReplaysTheSameLayers) {
  GeneratorOptions g;
  g.preset = "qwen3.5-2b";
  g.tp = 16;
  g.seed = 5;
  g.requests = 3;
  g.steps = 15;
  const trace::Trace t = generate_trace(g);
  auto outputs_of = [&](std::vector<int32_t> layers) {
    SimOptions o = all_strategies_on_cpu();
    o.layers = std::move(layers);
    std::vector<std::vector<num::bf16_bits>> out;
    o.after_event = [&](size_t lane, const trace::Line&, StateBackend& b) {
      if (lane == 0) out.push_back(b.read_outputs().values);
    };
    const ReplayReport r = replay(t, o);
    EXPECT_TRUE(r.agree) << r.divergence->message();
    return out;
  };
  const auto full = outputs_of({});
  const auto some = outputs_of({3, 11});
  ASSERT_EQ(full.size(), some.size());
  const size_t per_layer = 128;  // HV = 1, V = 128
  for (size_t e = 0; e < full.size(); ++e) {
    ASSERT_EQ(full[e].size() / 18, some[e].size() / 2) << "event " << e;
    for (size_t tok = 0; tok < some[e].size() / (2 * per_layer); ++tok) {
      for (int k = 0; k < 2; ++k) {
        const size_t l = k == 0 ? 3 : 11;
        EXPECT_TRUE(std::equal(some[e].begin() + (tok * 2 + k) * per_layer,
                               some[e].begin() + (tok * 2 + k + 1) * per_layer,
                               full[e].begin() + (tok * 18 + l) * per_layer))
            << "event " << e << " token " << tok << " layer " << l;
      }
    }
  }
}

}  // namespace
}  // namespace specstate::sim
