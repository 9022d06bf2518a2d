// The HTML report's recorder and page (sim/report.h): the window keeps what it should and
// rebuilds the live-state table, the divergence is marked on every lane and located on the ones
// it names, and trace text is escaped. (Rendering in a browser: tests/browser.)
#include <gtest/gtest.h>

#include <string>

#include "core/trace/format.h"
#include "sim/generator.h"
#include "sim/report.h"
#include "sim/simulator.h"

namespace specstate::sim {
namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

struct Recorded {
  ReplayReport report;
  ReportRecorder recorder;
};

Recorded replay_recorded(const trace::Trace& trace, SimOptions options, size_t window) {
  Recorded r{{}, ReportRecorder(options.lanes.size(), window)};
  options.observe = [&](size_t lane, const trace::Line& line, const Lane& state, const Plan& plan) {
    r.recorder.observe(lane, line, state, plan);
  };
  r.report = replay(trace, options);
  return r;
}

SimOptions every_strategy(Fault fault = Fault::kNone) {
  SimOptions o;
  o.lanes.push_back({"cpu", StrategyKind::kScatter});  // the clean reference
  for (StrategyKind k : all_strategies()) {
    if (k == StrategyKind::kScatter) continue;
    const bool faulty = fault != Fault::kNone && fault_concerns(fault, k);
    o.lanes.push_back({"cpu", k, faulty ? fault : Fault::kNone});
  }
  return o;
}

trace::Trace generated(uint64_t seed) {
  GeneratorOptions g;
  g.seed = seed;
  g.requests = 12;
  g.steps = 60;
  return generate_trace(g);
}

// The window holds the last `window` events; the live table before it, with the window's
// changes applied in order, is the table after the last event; every event counts its requests.
TEST(Report, TheWindowRebuildsTheLiveTable) {
  const trace::Trace t = generated(3);
  ASSERT_GT(t.events.size(), 40u);
  const Recorded r = replay_recorded(t, every_strategy(), 40);
  ASSERT_TRUE(r.report.agree) << r.report.divergence->message();
  for (const ReportRecorder::LaneRecord& lane : r.recorder.lanes()) {
    ASSERT_EQ(lane.window.size(), 40u);
    EXPECT_EQ(lane.window.back().line, &t.events.back());
    EXPECT_EQ(lane.live_requests.size(), t.events.size());
    std::map<uint64_t, ReportRecorder::Live> live = lane.window_start;
    for (const ReportRecorder::Event& e : lane.window) {
      for (const auto& [request, change] : e.changes) {
        ASSERT_TRUE(!live.count(request) || live.at(request) != change)
            << "line " << e.line->line << ": request " << request << " recorded unchanged";
        if (change == ReportRecorder::Live{}) {
          ASSERT_TRUE(live.erase(request))
              << "line " << e.line->line << ": request " << request << " left without being live";
        } else {
          live[request] = change;
        }
      }
    }
    EXPECT_EQ(live, lane.current);
    EXPECT_EQ(int32_t(lane.current.size()), lane.live_requests.back());
  }
  // A window longer than the replay starts from an empty table.
  const Recorded whole = replay_recorded(t, every_strategy(), t.events.size() + 5);
  for (const ReportRecorder::LaneRecord& lane : whole.recorder.lanes()) {
    EXPECT_TRUE(lane.window_start.empty());
    EXPECT_EQ(lane.window.size(), t.events.size());
  }
  const std::string page = render_report(t, r.report, every_strategy().lanes, r.recorder);
  EXPECT_NE(page.find("The last 40 of the " + std::to_string(t.events.size())), std::string::npos);
  EXPECT_EQ(count(page, "class=\"divergence-marker"), 0u);
  EXPECT_EQ(count(page, "<polyline"), all_strategies().size());
}

// An injected fault: every lane's timeline ends on the diverging line with the marker, the two
// lanes the divergence names and their rows are marked, and the map of differences is drawn.
TEST(Report, MarksTheDivergenceOnEveryLane) {
  const trace::Trace t = trace::read_trace("test_data/tests/scenarios/ring-stale-accepted.jsonl");
  const SimOptions options = every_strategy(Fault::kRingStaleAccepted);
  const Recorded r = replay_recorded(t, options, ReportRecorder::kDefaultWindow);
  ASSERT_FALSE(r.report.agree);
  const Divergence& d = *r.report.divergence;
  EXPECT_EQ(d.lane_b, "cpu/ring+ring-stale-accepted");
  ASSERT_TRUE(d.map.has_value());
  int64_t differing = 0;
  for (int64_t n : d.map->ssm_count)
    differing += n;
  EXPECT_GT(differing, 0);
  for (const ReportRecorder::LaneRecord& lane : r.recorder.lanes())
    EXPECT_EQ(lane.window.back().line->line, d.line);
  const std::string page = render_report(t, r.report, options.lanes, r.recorder);
  const size_t lanes = options.lanes.size();
  EXPECT_EQ(count(page, "<svg class=\"timeline\""), lanes);
  EXPECT_EQ(count(page, "class=\"divergence-marker"), lanes);
  EXPECT_EQ(count(page, "class=\"divergence-marker named\""), 2u);
  EXPECT_EQ(count(page, "class=\"bad-row\""), 2u);
  EXPECT_EQ(count(page, "id=\"heat-map\""), 1u);
  EXPECT_EQ(count(page, "class=\"heat\""), d.map->layer_ids.size() * (d.map->heads + 1));
  EXPECT_NE(page.find("DIVERGENCE at line " + std::to_string(d.line)), std::string::npos);
  // Every lane's table after the diverging event lists the request it diverged on.
  EXPECT_EQ(count(page, "<details class=\"live\">"), lanes);
  EXPECT_EQ(count(page, "<tr><td>" + std::to_string(*d.request) + "</td>"), lanes);
}

TEST(Report, EscapesWhatTheTraceNames) {
  trace::Trace t = generated(5);
  t.file = "a<b>&\"c\".jsonl";
  const Recorded r = replay_recorded(t, every_strategy(), 20);
  const std::string page = render_report(t, r.report, every_strategy().lanes, r.recorder);
  EXPECT_EQ(page.find("a<b>"), std::string::npos);
  EXPECT_NE(page.find("a&lt;b&gt;&amp;&quot;c&quot;.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace specstate::sim
