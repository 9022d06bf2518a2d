// The HTML report of a replay (`specstate report`, `replay --html`): per lane, a timeline of the
// pool rows and payload slots over the events, with the request whose live state each row holds,
// what each event's plan read and wrote, and the first divergence marked on every lane, with a
// heat map of where the diverging states differ; the trace's summary. One self-contained file:
// inline SVG, CSS and a short script, nothing fetched.
//
// The recorder sees every event of every lane (SimOptions::observe) but keeps the plans' accesses
// of the last `window` events only, and of every event a count of live requests: a replay of
// 100,000 events draws the events up to the end (or the divergence) in detail and the rest as an
// overview, and the page says so.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "core/strategy/plan.h"
#include "core/trace/events.h"
#include "sim/lane.h"
#include "sim/simulator.h"

namespace specstate::sim {

class ReportRecorder {
 public:
  static constexpr size_t kDefaultWindow = 300;

  ReportRecorder(size_t lanes, size_t window = kDefaultWindow);

  // SimOptions::observe: thread-safe across lanes (each lane writes only its own record).
  void observe(size_t lane, const trace::Line& line, const Lane& state, const Plan& plan);

  // Where a request's live state is after an event: its row, and the payload slot holding the
  // tokens not yet replayed into it (deferred, ring), or kNoRow.
  struct Live {
    int32_t row = kNoRow;
    int32_t slot = kNoRow;
    friend bool operator==(const Live&, const Live&) = default;
  };
  struct Access {
    int32_t index = 0;
    bool write = false;
    bool slot = false;  // a payload slot, else a pool row
    uint64_t request = 0;
    const char* what = "";
  };
  struct Event {
    const trace::Line* line = nullptr;
    std::vector<Access> accesses;
    std::map<uint64_t, Live> changes;  // live entries that changed (Live{}: gone)
  };
  // A table after an event: `live` before it with the event's `changes`.
  static void apply(std::map<uint64_t, Live>& live, const std::map<uint64_t, Live>& changes);
  struct LaneRecord {
    std::map<uint64_t, Live> current;       // after the newest event
    std::map<uint64_t, Live> window_start;  // before the window's first event
    std::deque<Event> window;               // the last `window` events
    std::vector<int32_t> live_requests;     // per event replayed: requests with a live row
  };

  const std::vector<LaneRecord>& lanes() const { return lanes_; }
  size_t window() const { return window_; }

 private:
  size_t window_;
  std::vector<LaneRecord> lanes_;
};

// The page, titled by the trace's file name. `footprint_chart`: an SVG of the strategies'
// memory for the trace's model (`specstate footprint --svg`'s), drawn at the end; empty: none.
std::string render_report(const trace::Trace& trace, const ReplayReport& report,
                          const std::vector<LaneSpec>& lanes, const ReportRecorder& recorder,
                          const std::string& footprint_chart = "");

}  // namespace specstate::sim
