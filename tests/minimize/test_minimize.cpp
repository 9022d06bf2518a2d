// specstate minimize's search (sim/minimize.h): generated traces that diverge with an injected
// fault come down to valid traces no longer than the hand-written scenario of their class
// (tests/scenarios/), which diverge the same way with the fault and agree without it; and
// repair() mends what removals break, leaving valid traces alone.
#include <gtest/gtest.h>

#include <ostream>
#include <set>
#include <sstream>
#include <string>

#include "core/errors.h"
#include "core/strategy/fault.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/generator.h"
#include "sim/minimize.h"
#include "sim/simulator.h"

namespace specstate::sim {
namespace {

// The lanes `specstate replay --inject FAULT` runs (tools/replay_lanes.h): every strategy on
// the CPU, also scheduled with overlap for an overlap trace; the fault in the lanes it concerns;
// a clean synchronous copy of the first lane first when that one is faulty.
std::vector<LaneSpec> replay_lanes(const trace::Header& h, Fault fault) {
  const bool overlap_fault = fault != Fault::kNone && fault_info(fault).overlap;
  std::vector<Schedule> schedules = {Schedule::synchronous()};
  if (h.overlap > 0) schedules.push_back(Schedule::overlap(h.overlap));
  std::vector<LaneSpec> lanes;
  for (Schedule s : schedules) {
    for (StrategyKind k : all_strategies()) {
      const bool concerns = fault_concerns(fault, k) && (!overlap_fault || s.is_overlap());
      lanes.push_back({"cpu", k, concerns ? fault : Fault::kNone, s});
    }
  }
  if (lanes.front().fault != Fault::kNone) lanes.insert(lanes.begin(), {"cpu", lanes[0].strategy});
  return lanes;
}

std::optional<Divergence> replay_through(const trace::Trace& t,
                                         const std::vector<LaneSpec>& lanes) {
  SimOptions o;
  o.lanes = lanes;
  return replay(t, o).divergence;
}

trace::Trace parse(const std::string& text) {
  std::istringstream in(text);
  return trace::read_trace(in, "t.jsonl");
}

size_t scenario_events(const std::string& fault) {
  return trace::read_trace("test_data/tests/scenarios/" + fault + ".jsonl").events.size();
}

struct Case {
  const char* fault;
  const char* kind;  // the divergence the generated trace shows
  GeneratorOptions generator;
};

// Names the case in test names (ctest's included), not the bytes of its pointers.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.fault;
}

GeneratorOptions generated(uint64_t seed, int32_t requests, int32_t steps) {
  GeneratorOptions g;
  g.seed = seed;
  g.requests = requests;
  g.steps = steps;
  return g;
}

std::vector<Case> cases() {
  GeneratorOptions no_retracts = generated(5, 24, 300);
  no_retracts.pool_rows = 48;  // rows enough for all: a finished request's row is reused
  GeneratorOptions overlap = generated(5, 24, 300);
  overlap.overlap = 1;
  GeneratorOptions pipeline = generated(5, 24, 300);
  pipeline.overlap = 2;
  GeneratorOptions host_tier = generated(5, 24, 300);
  host_tier.host_slots = 3;
  host_tier.pool_rows = 10;
  host_tier.prefix_hit_prob = 0.6;
  return {
      // A continuous-batching run of about 2,000 events: 64 requests, retracts, prefix hits.
      {"no-flush-on-retract", "swapped-out state", generated(1, 64, 1970)},
      {"decode-reads-old-row", "per-token outputs", generated(5, 24, 300)},
      {"stale-flush-after-reuse", "ownership", no_retracts},
      {"snapshot-post-accept", "snapshot row", generated(5, 24, 300)},
      {"counts-reordered", "per-token outputs", overlap},
      {"stale-commit-mapping", "ownership", pipeline},
      {"restore-read-early", "snapshot row", host_tier},
  };
}

class MinimizeFault : public testing::TestWithParam<Case> {};

// The result validates, diverges as the input did (through every lane replay would run, read
// back from its text) and agrees without the fault; it is no longer than the hand-written
// scenario of the class (measured: 2 to 5 events where the scenarios have 5 to 7).
TEST_P(MinimizeFault, ComesDownToAScenarioThatStillDiverges) {
  const Case& c = GetParam();
  const trace::Trace input = generate_trace(c.generator);
  const Fault fault = parse_fault(c.fault);
  MinimizeOptions options;
  options.lanes = replay_lanes(input.header, fault);
  const MinimizeResult r = minimize(input, options);
  EXPECT_EQ(r.signature.kind, c.kind);
  EXPECT_EQ(r.signature, Signature::of(r.result));

  std::ostringstream text;
  trace::write_trace(text, r.trace);
  const trace::Trace small = parse(text.str());
  EXPECT_NO_THROW(trace::validate_trace(small));
  const std::optional<Divergence> with_fault = replay_through(small, options.lanes);
  ASSERT_TRUE(with_fault.has_value());
  EXPECT_EQ(Signature::of(*with_fault).kind, c.kind) << with_fault->message();
  EXPECT_FALSE(replay_through(small, replay_lanes(small.header, Fault::kNone)).has_value());

  EXPECT_LE(small.events.size(), scenario_events(c.fault)) << text.str();
  std::set<int32_t> slots;  // the host slots left: numbered densely, the header cut to them
  for (const trace::Line& line : small.events) {
    if (const auto* o = std::get_if<trace::Offload>(&line.event)) slots.insert(o->slot);
    if (const auto* r = std::get_if<trace::Restore>(&line.event)) slots.insert(r->slot);
  }
  EXPECT_EQ(small.header.host_slots, int32_t(slots.size())) << text.str();
  if (!slots.empty()) {
    EXPECT_EQ(*slots.rbegin(), int32_t(slots.size()) - 1) << text.str();
  }
  EXPECT_LT(small.events.size(), input.events.size());
  std::printf("%s: %zu -> %zu events, %zu replays, %.2f s\n", c.fault, input.events.size(),
              small.events.size(), r.replays, r.seconds);
}

INSTANTIATE_TEST_SUITE_P(Faults, MinimizeFault, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           std::string name = info.param.fault;
                           std::erase(name, '-');
                           return name;
                         });

TEST(Minimize, IsDeterministic) {
  const trace::Trace input = generate_trace(generated(5, 24, 300));
  MinimizeOptions options;
  options.lanes = replay_lanes(input.header, Fault::kDecodeReadsOldRow);
  EXPECT_EQ(minimize(input, options).trace, minimize(input, options).trace);
}

TEST(Minimize, ATraceThatDoesNotDivergeIsAnInputError) {
  const trace::Trace input = generate_trace(generated(5, 8, 40));
  MinimizeOptions options;
  options.lanes = replay_lanes(input.header, Fault::kNone);
  try {
    minimize(input, options);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.line(), input.events.back().line);
    EXPECT_NE(e.message().find("does not diverge"), std::string::npos) << e.what();
  }
}

// Tests replay the two lanes of the divergence on one layer; the result is checked with all.
TEST(Minimize, TestsReplayTheDivergingLanesOnOneLayer) {
  const trace::Trace input = generate_trace(generated(5, 24, 300));
  MinimizeOptions options;
  options.lanes = replay_lanes(input.header, Fault::kDecodeReadsOldRow);
  const MinimizeResult r = minimize(input, options);
  ASSERT_EQ(r.lanes.size(), 2u);
  EXPECT_EQ(r.lanes[0].name(), "cpu/scatter");
  EXPECT_EQ(r.lanes[1].name(), "cpu/inline+decode-reads-old-row");
  EXPECT_EQ(r.layers, std::vector<int32_t>{0});
}

const char* kHeader =
    R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 3, "pool_rows": 4, "max_requests": 2, "page_size": 16, "seed": 1})"
    "\n";

TEST(Repair, LeavesAValidTraceAlone) {
  const trace::Trace t = generate_trace(generated(3, 16, 200));
  const std::optional<trace::Trace> r = repair(t);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->events, t.events);
}

TEST(Repair, DropsWhatNamesARequestWhoseFirstExtendIsGone) {
  const std::optional<trace::Trace> r = repair(parse(std::string(kHeader) + R"(
{"event": "extend", "request": 1, "tokens": 4}
{"event": "verify", "batch": [{"request": 1, "accepted": 2}, {"request": 2, "accepted": 1}]}
{"event": "retract", "request": 1}
{"event": "finish", "request": 1}
)"));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->events.empty());
}

TEST(Repair, PrefillsAPrefixWhoseSnapshotIsGoneAndDropsTracksNoLongerCrossed) {
  // Request 1's snapshot at 16 tokens (row 2) was removed; it now ends at 14 tokens, so the
  // verify's snapshot at 16 needs a = 2 or more.
  const std::optional<trace::Trace> r = repair(parse(std::string(kHeader) + R"(
{"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": 14}
{"event": "verify", "batch": [{"request": 1, "accepted": 1, "track": {"length": 16, "row": 2}}]}
{"event": "finish", "request": 1}
{"event": "extend", "request": 2, "req_row": 0, "working_row": 0, "tokens": 4, "prefix_len": 16, "cow_src_row": 2}
)"));
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->events.size(), 4u);
  const auto& verify = std::get<trace::Verify>(r->events[1].event);
  EXPECT_FALSE(verify.batch[0].track.has_value());
  const auto& extend = std::get<trace::Extend>(r->events[3].event);
  EXPECT_EQ(extend.tokens, 20);
  EXPECT_EQ(extend.prefix_len, 0);
  EXPECT_EQ(extend.cow_src_row, -1);
  EXPECT_EQ(r->events[3].line, 5);
}

TEST(Repair, RefusesWhatNoLocalFixMends) {
  // Request 1's finish was removed: request 2 cannot take its working row.
  EXPECT_FALSE(repair(parse(std::string(kHeader) + R"(
{"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": 4}
{"event": "extend", "request": 2, "req_row": 1, "working_row": 0, "tokens": 4}
)"))
                   .has_value());
}

}  // namespace
}  // namespace specstate::sim
