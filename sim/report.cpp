#include "sim/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/strategy/plan_access.h"
#include "core/trace/format.h"

namespace specstate::sim {
namespace {

std::string escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// JSON inside a <script> element: "</" would end the element early.
std::string script_safe(std::string json) {
  for (size_t at = json.find("</"); at != std::string::npos; at = json.find("</", at))
    json.replace(at, 2, "<\\/");
  return json;
}

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

// A request's colour: hues spread by the golden angle, so that neighbouring ids differ.
std::string request_colour(uint64_t request) {
  const double hue = std::fmod(double(request % 360) * 137.508, 360.0);
  return "hsl(" + fixed(hue, 0) + ",70%,45%)";
}

// What one lane holds at the window's events: the rows and slots drawn, top to bottom.
struct Track {
  bool slot = false;
  int32_t index = 0;
  friend auto operator<=>(const Track&, const Track&) = default;
  std::string label() const { return (slot ? "slot " : "row ") + std::to_string(index); }
};

std::vector<Track> tracks_of(const ReportRecorder::LaneRecord& lane) {
  std::set<Track> seen;
  auto add_live = [&](const ReportRecorder::Live& live) {
    if (live.row != kNoRow) seen.insert({false, live.row});
    if (live.slot != kNoRow) seen.insert({true, live.slot});
  };
  for (const auto& [request, live] : lane.window_start)
    add_live(live);
  for (const ReportRecorder::Event& e : lane.window) {
    for (const auto& a : e.accesses)
      seen.insert({a.slot, a.index});
    for (const auto& [request, live] : e.changes)
      add_live(live);
  }
  return {seen.begin(), seen.end()};
}

constexpr int kRowHeight = 12, kLabelWidth = 64, kTop = 4;

int column_width(size_t events) {
  return std::clamp(int(1100 / std::max<size_t>(events, 1)), 4, 28);
}

// A colour for each kind of access (`what`) drawn on the page, the same in every lane.
using Palette = std::map<std::string, std::string>;

Palette access_palette(const ReportRecorder& recorder) {
  static constexpr const char* kColours[] = {"#222222", "#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                             "#E69F00", "#56B4E9", "#8c564b", "#7f7f7f", "#bcbd22"};
  Palette palette;
  for (const ReportRecorder::LaneRecord& lane : recorder.lanes()) {
    for (const ReportRecorder::Event& e : lane.window)
      for (const auto& a : e.accesses)
        palette.emplace(a.what, "");
  }
  size_t k = 0;
  for (auto& [what, colour] : palette)
    colour = kColours[k++ % std::size(kColours)];
  return palette;
}

void legend(std::ostream& os, const Palette& palette) {
  os << "<p id=\"legend\">";
  for (const auto& [what, colour] : palette) {
    os << "<span class=\"key\"><svg width=\"10\" height=\"10\"><rect width=\"10\" "
          "height=\"10\" fill=\""
       << colour << "\"/></svg> " << escape(what) << "</span>";
  }
  os << "</p>\n";
}

// Where a lane's timeline puts its tracks (down) and events (across).
struct Grid {
  std::vector<Track> tracks;  // sorted
  size_t events = 0;
  int cw = 0, width = 0, height = 0;

  Grid(std::vector<Track> t, size_t n)
      : tracks(std::move(t)),
        events(n),
        cw(column_width(n)),
        width(kLabelWidth + int(n) * cw + 8),
        height(kTop + int(tracks.size()) * kRowHeight + 4) {}
  int x(size_t event) const { return kLabelWidth + int(event) * cw; }
  int y(const Track& t) const {
    return kTop +
           int(std::lower_bound(tracks.begin(), tracks.end(), t) - tracks.begin()) * kRowHeight;
  }
};

// Track labels and lines; the row the divergence names in red.
void track_labels(std::ostream& os, const Grid& g, int32_t bad_row) {
  for (const Track& t : g.tracks) {
    const int y = g.y(t);
    const bool bad = !t.slot && t.index == bad_row;
    os << "<text class=\"track" << (bad ? " bad" : "") << "\" x=\"2\" y=\"" << y + kRowHeight - 2
       << "\">" << t.label() << "</text>";
    os << "<line class=\"grid\" x1=\"" << kLabelWidth << "\" x2=\"" << g.width << "\" y1=\""
       << y + kRowHeight << "\" y2=\"" << y + kRowHeight << "\"/>\n";
    if (bad)
      os << "<rect class=\"bad-row\" x=\"" << kLabelWidth << "\" y=\"" << y << "\" width=\""
         << g.width - kLabelWidth << "\" height=\"" << kRowHeight << "\"/>\n";
  }
}

// Ownership: a bar per run of events after which a track holds one request's live state.
void ownership_bars(std::ostream& os, const Grid& g, const ReportRecorder::LaneRecord& lane) {
  std::map<uint64_t, ReportRecorder::Live> live = lane.window_start;
  std::map<Track, std::pair<uint64_t, size_t>> open;  // track -> (request, first event)
  auto close = [&](const Track& t, size_t end) {
    const auto [request, first] = open.at(t);
    os << "<rect class=\"own\" fill=\"" << request_colour(request) << "\" x=\"" << g.x(first)
       << "\" y=\"" << g.y(t) + 1 << "\" width=\"" << int(end - first) * g.cw << "\" height=\""
       << kRowHeight - 2 << "\"><title>" << t.label() << ": live state of request " << request
       << "</title></rect>\n";
    open.erase(t);
  };
  for (size_t i = 0; i <= g.events; ++i) {  // column i: after event i; i = events closes all
    std::map<Track, uint64_t> owners;
    if (i < g.events) {
      ReportRecorder::apply(live, lane.window[i].changes);
      for (const auto& [request, l] : live) {
        if (l.row != kNoRow) owners[{false, l.row}] = request;
        if (l.slot != kNoRow) owners[{true, l.slot}] = request;
      }
    }
    std::vector<Track> ended;
    for (const auto& [t, run] : open) {
      const auto it = owners.find(t);
      if (it == owners.end() || it->second != run.first) ended.push_back(t);
    }
    for (const Track& t : ended)
      close(t, i);
    for (const auto& [t, request] : owners) {
      if (!open.count(t)) open[t] = {request, i};
    }
  }
}

// Accesses: a filled square for a write, an open one for a read, coloured by what the task does
// with the row (`what` of core/task_access.h); one path per kind and colour, as a window of a
// large batch holds some 10^5 of them.
void access_marks(std::ostream& os, const Grid& g, const ReportRecorder::LaneRecord& lane,
                  const Palette& palette) {
  std::map<std::pair<std::string, bool>, std::ostringstream> marks;  // (what, write) -> path
  const int s = std::max(2, std::min(g.cw, kRowHeight) - 4);
  for (size_t i = 0; i < g.events; ++i) {
    for (const auto& a : lane.window[i].accesses) {
      const int x = g.x(i) + (g.cw - s) / 2, y = g.y({a.slot, a.index}) + (kRowHeight - s) / 2;
      marks[{a.what, a.write}] << 'M' << x << ' ' << y << "h" << s << "v" << s << "h-" << s << 'z';
    }
  }
  for (const auto& [key, path] : marks) {
    os << "<path class=\"" << (key.second ? "write" : "read") << "\" data-what=\""
       << escape(key.first) << "\" " << (key.second ? "fill" : "stroke") << "=\""
       << palette.at(key.first) << "\" d=\"" << path.str() << "\"/>\n";
  }
}

// Event columns: hovering one shows its trace line (the page's script, from #lines).
void event_columns(std::ostream& os, const Grid& g, const ReportRecorder::LaneRecord& lane) {
  for (size_t i = 0; i < g.events; ++i) {
    const trace::Line& l = *lane.window[i].line;
    os << "<rect class=\"event\" data-line=\"" << l.line << "\" x=\"" << g.x(i)
       << "\" y=\"0\" width=\"" << g.cw << "\" height=\"" << g.height << "\"><title>line " << l.line
       << ": " << trace::event_name(l.event) << "</title></rect>\n";
  }
}

// One lane's timeline, with the divergence marker on its last event when that is the diverging
// one (the lanes it names marked "named").
void lane_svg(std::ostream& os, const ReportRecorder::LaneRecord& lane, const std::string& name,
              const std::optional<Divergence>& d, const Palette& palette) {
  const Grid g(tracks_of(lane), lane.window.size());
  const bool named = d && (d->lane_a == name || d->lane_b == name);
  const int32_t bad_row = !d                  ? kNoRow
                          : d->lane_a == name ? d->row_a
                          : d->lane_b == name ? d->row_b
                                              : kNoRow;
  os << "<svg class=\"timeline\" data-lane=\"" << escape(name) << "\" width=\"" << g.width
     << "\" height=\"" << g.height << "\" viewBox=\"0 0 " << g.width << ' ' << g.height << "\">\n";
  track_labels(os, g, bad_row);
  ownership_bars(os, g, lane);
  access_marks(os, g, lane, palette);
  event_columns(os, g, lane);
  if (d && g.events > 0 && lane.window.back().line->line == d->line) {
    const int x = g.x(g.events - 1) + g.cw / 2;
    os << "<line class=\"divergence-marker" << (named ? " named" : "") << "\" x1=\"" << x
       << "\" x2=\"" << x << "\" y1=\"0\" y2=\"" << g.height << "\"><title>first divergence: line "
       << d->line << "</title></line>\n";
  }
  os << "</svg>\n";
}

// The lane's live-state table after the last event drawn (the divergence, or the end).
void live_table(std::ostream& os, const std::map<uint64_t, ReportRecorder::Live>& live) {
  os << "<details class=\"live\"><summary>live-state table after the last event: " << live.size()
     << " requests</summary><table><tr><th>request</th><th>row</th><th>payload "
        "slot (tokens not replayed yet)</th></tr>\n";
  for (const auto& [request, l] : live) {
    os << "<tr><td>" << request << "</td><td>" << (l.row == kNoRow ? "-" : std::to_string(l.row))
       << "</td><td>" << (l.slot == kNoRow ? "-" : std::to_string(l.slot)) << "</td></tr>\n";
  }
  os << "</table></details>\n";
}

// The map of where the diverging states differ: layers down, SSM value heads across, the colour
// the log of the largest |difference|; the conv window per layer in its own column.
void heat_map(std::ostream& os, const DiffMap& map) {
  const size_t layers = map.layer_ids.size();
  if (layers == 0) return;
  double top = 0;
  for (double v : map.ssm_max)
    top = std::max(top, std::isinf(v) ? 0.0 : v);
  for (double v : map.conv_max)
    top = std::max(top, std::isinf(v) ? 0.0 : v);
  const int cell = 14, left = 70, width = left + (map.heads + 2) * cell + 4;
  const int height = int(layers) * cell + 4;
  auto colour = [&](double v, int64_t count) -> std::string {
    if (count == 0) return "#f2f2f2";
    if (std::isinf(v) || top == 0) return "#67000d";
    const double t = std::clamp(1.0 + std::log10(v / top) / 8.0, 0.0, 1.0);  // 8 decades
    return "hsl(0,80%," + fixed(90.0 - 60.0 * t, 0) + "%)";
  };
  os << "<p>SSM value heads 0 to " << map.heads - 1
     << " across, then the conv window; the darker, the larger the largest |difference| (8 "
        "decades; grey: equal).</p>\n<svg id=\"heat-map\" width=\""
     << width << "\" height=\"" << height << "\">\n";
  for (size_t l = 0; l < layers; ++l) {
    const int y = int(l) * cell;
    os << "<text x=\"2\" y=\"" << y + cell - 3 << "\">layer " << map.layer_ids[l] << "</text>";
    for (int h = 0; h < map.heads; ++h) {
      const size_t c = l * size_t(map.heads) + size_t(h);
      os << "<rect class=\"heat\" x=\"" << left + h * cell << "\" y=\"" << y << "\" width=\""
         << cell - 1 << "\" height=\"" << cell - 1 << "\" fill=\""
         << colour(map.ssm_max[c], map.ssm_count[c]) << "\"><title>layer " << map.layer_ids[l]
         << " head " << h << ": " << map.ssm_count[c] << " elements differ, largest |difference| "
         << map.ssm_max[c] << "</title></rect>";
    }
    os << "<rect class=\"heat\" x=\"" << left + (map.heads + 1) * cell << "\" y=\"" << y
       << "\" width=\"" << cell - 1 << "\" height=\"" << cell - 1 << "\" fill=\""
       << colour(map.conv_max[l], map.conv_count[l]) << "\"><title>layer " << map.layer_ids[l]
       << " conv: " << map.conv_count[l] << " elements differ, largest |difference| "
       << map.conv_max[l] << "</title></rect>\n";
  }
  os << "</svg>\n";
}

void divergence_section(std::ostream& os, const trace::Trace& trace, const ReplayReport& report) {
  os << "<section id=\"verdict\">\n";
  if (!report.divergence) {
    os << "<h2 class=\"agree\">AGREE</h2><p>" << report.lanes.size()
       << " lanes bit-identical after " << report.events << " events (" << report.compares
       << " comparison points).</p></section>\n";
    return;
  }
  const Divergence& d = *report.divergence;
  os << "<h2 class=\"diverge\">DIVERGENCE at line " << d.line << "</h2>\n<pre id=\"divergence\">"
     << escape(d.report(trace.file)) << "</pre>\n";
  if (!d.elements.empty()) {
    os << "<table><tr><th>tensor</th><th>layer</th><th>element</th><th>" << escape(d.lane_a)
       << "</th><th>" << escape(d.lane_b) << "</th></tr>\n";
    for (const ElementDiff& e : d.elements) {
      os << "<tr><td>" << e.tensor << "</td><td>" << e.layer << "</td><td>" << escape(e.index)
         << "</td><td>" << e.a.text() << "</td><td>" << e.b.text() << "</td></tr>\n";
    }
    os << "</table>\n";
  }
  if (d.map) {
    os << "<h3>Where the states differ</h3>\n";
    heat_map(os, *d.map);
  }
  os << "</section>\n";
}

// A bar chart of counts by value, drawn as SVG.
void histogram(std::ostream& os, const std::string& id, const std::string& title,
               const std::map<int64_t, int64_t>& counts) {
  os << "<figure><figcaption>" << escape(title) << "</figcaption>";
  if (counts.empty()) {
    os << "<p>none</p></figure>\n";
    return;
  }
  int64_t top = 1;
  for (const auto& [value, count] : counts)
    top = std::max(top, count);
  const int bar = 18, h = 80, width = int(counts.size()) * bar + 4;
  os << "<svg id=\"" << id << "\" width=\"" << width << "\" height=\"" << h + 14 << "\">";
  int x = 2;
  for (const auto& [value, count] : counts) {
    const int bh = std::max(1, int(double(count) / double(top) * h));
    os << "<rect class=\"bar\" x=\"" << x << "\" y=\"" << h - bh << "\" width=\"" << bar - 3
       << "\" height=\"" << bh << "\"><title>" << value << ": " << count << "</title></rect>"
       << "<text x=\"" << x << "\" y=\"" << h + 12 << "\">" << value << "</text>";
    x += bar;
  }
  os << "</svg></figure>\n";
}

void summary_section(std::ostream& os, const trace::Trace& trace, const ReplayReport& report,
                     const ReportRecorder& recorder) {
  std::map<int64_t, int64_t> accepted, batch;
  std::map<std::string, int64_t> kinds;
  for (const trace::Line& l : trace.events) {
    ++kinds[std::string(trace::event_name(l.event))];
    if (const auto* v = std::get_if<trace::Verify>(&l.event)) {
      ++batch[int64_t(v->batch.size())];
      for (const auto& e : v->batch)
        ++accepted[e.accepted];
    } else if (const auto* dc = std::get_if<trace::Decode>(&l.event)) {
      ++batch[int64_t(dc->batch.size())];
    }
  }
  os << "<section id=\"summary\"><h2>Trace</h2><p>" << trace.events.size() << " events:";
  for (const auto& [kind, count] : kinds)
    os << ' ' << count << ' ' << kind;
  os << "; " << trace.header.pool_rows << " pool rows, " << trace.header.max_requests
     << " request rows, T = " << trace.header.tokens_per_verify() << ".</p>\n<div class=\"row\">";
  histogram(os, "accepted", "accepted tokens per verify entry", accepted);
  histogram(os, "batch", "requests per verify or decode", batch);
  os << "</div>\n";
  // Live requests over the whole replay, per lane: the overview of what the window leaves out.
  os << "<h3>Requests with a live state, every event replayed</h3>\n";
  const int w = 700, h = 40;
  for (size_t i = 0; i < recorder.lanes().size(); ++i) {
    const std::vector<int32_t>& counts = recorder.lanes()[i].live_requests;
    int32_t top = 1;
    for (int32_t c : counts)
      top = std::max(top, c);
    os << "<div class=\"spark\"><span>" << escape(report.lanes[i].name) << " (max " << top
       << ")</span><svg class=\"overview\" width=\"" << w << "\" height=\"" << h
       << "\"><polyline points=\"";
    const size_t n = counts.size();
    const size_t step = std::max<size_t>(1, n / size_t(w));  // at most one point per pixel
    for (size_t e = 0; e < n; e += step) {
      os << fixed(double(e) / double(std::max<size_t>(n - 1, 1)) * (w - 2) + 1, 1) << ','
         << fixed(h - 2 - double(counts[e]) / top * (h - 4), 1) << ' ';
    }
    os << "\"/></svg></div>\n";
  }
  os << "</section>\n";
}

const char* kStyle = R"(
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; } h2 { font-size: 16px; margin: 12px 0 4px; } h3 { font-size: 14px; }
.agree { color: #1a7f37; } .diverge { color: #b00020; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 6px; }
.row { display: flex; gap: 24px; } figure { margin: 0; } figcaption { font-size: 12px; }
.timeline text, #heat-map text, figure svg text { font: 10px monospace; fill: #333; }
.lane h3 { margin: 14px 0 2px; } .lane.named h3 { color: #b00020; }
.grid { stroke: #eee; } .own { opacity: 0.35; } .read { fill: none; stroke-width: 0.8; } .key { margin-right: 14px; white-space: nowrap; }
.event { fill: transparent; } .event:hover, .event.hover { fill: rgba(0,0,255,0.08); }
.divergence-marker { stroke: #b00020; stroke-width: 2; } .bad-row { fill: none; stroke: #b00020; }
.track.bad { fill: #b00020; font-weight: bold; } .bar { fill: #4a6fa5; }
.overview polyline { fill: none; stroke: #4a6fa5; } .spark { display: flex; align-items: center; } .spark span { width: 240px; flex: none; }
#line-info { position: sticky; top: 0; background: #fffbe6; border: 1px solid #e0d080; padding: 4px 8px;
  font: 12px monospace; white-space: pre-wrap; min-height: 1.4em; }
)";

// Hovering an event column shows its line in the box above the timelines, in every lane.
const char* kScript = R"(
(function () {
  const info = document.getElementById('line-info');
  const lines = JSON.parse(document.getElementById('lines').textContent);
  const columns = document.querySelectorAll('rect.event');
  function show(line, on) {
    document.querySelectorAll('rect.event[data-line="' + line + '"]').forEach(function (r) {
      r.classList.toggle('hover', on);
    });
  }
  columns.forEach(function (r) {
    r.addEventListener('mouseenter', function () {
      info.textContent = 'line ' + r.dataset.line + ': ' + (lines[r.dataset.line] || '');
      show(r.dataset.line, true);
    });
    r.addEventListener('mouseleave', function () { show(r.dataset.line, false); });
  });
  document.body.dataset.ready = String(columns.length);
})();
)";

}  // namespace

void ReportRecorder::apply(std::map<uint64_t, Live>& live,
                           const std::map<uint64_t, Live>& changes) {
  for (const auto& [request, change] : changes) {
    if (change == Live{}) {
      live.erase(request);
    } else {
      live[request] = change;
    }
  }
}

ReportRecorder::ReportRecorder(size_t lanes, size_t window)
    : window_(std::max<size_t>(window, 1)), lanes_(lanes) {}

void ReportRecorder::observe(size_t lane, const trace::Line& line, const Lane& state,
                             const Plan& plan) {
  LaneRecord& r = lanes_.at(lane);
  Event e;
  e.line = &line;
  for (const PlanCall& call : plan) {
    for_each_access(call, [&](const PlanAccess& a) {
      e.accesses.push_back(
          {a.index, a.kind == PlanAccess::kWrite, a.unit == PlanAccess::kSlot, a.request, a.what});
    });
  }
  std::map<uint64_t, Live> now;
  for (const auto& [request, s] : state.policy().table()) {
    const Live live{s.loc.ssm_row, s.pending > 0 ? s.pending_slot : kNoRow};
    if (live.row != kNoRow || live.slot != kNoRow) now[request] = live;
  }
  for (const auto& [request, live] : now) {
    const auto it = r.current.find(request);
    if (it == r.current.end() || it->second != live) e.changes[request] = live;
  }
  for (const auto& [request, live] : r.current) {
    if (!now.count(request)) e.changes[request] = Live{};
  }
  r.current = std::move(now);
  r.live_requests.push_back(int32_t(r.current.size()));
  r.window.push_back(std::move(e));
  if (r.window.size() > window_) {
    apply(r.window_start, r.window.front().changes);
    r.window.pop_front();
  }
}

std::string render_report(const trace::Trace& trace, const ReplayReport& report,
                          const std::vector<LaneSpec>& lanes, const ReportRecorder& recorder,
                          const std::string& footprint_chart) {
  SPECSTATE_ASSERT(recorder.lanes().size() == lanes.size() && report.lanes.size() == lanes.size(),
                   "the recorder observed the replay's lanes");
  std::ostringstream os;
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>specstate report: "
     << escape(trace.file) << "</title><style>" << kStyle << "</style></head><body>\n";
  os << "<h1>specstate report: " << escape(trace.file) << "</h1>\n<p>"
     << escape(trace.header.model_name()) << " TP" << trace.header.tp << ", SSM "
     << to_string(trace.header.ssm_dtype) << ", " << lanes.size() << " lanes.</p>\n";
  divergence_section(os, trace, report);
  const size_t shown = recorder.lanes().empty() ? 0 : recorder.lanes()[0].window.size();
  os << "<section id=\"timelines\"><h2>Rows over time</h2>\n<p>";
  if (shown < report.events) {
    os << "The last " << shown << " of the " << report.events << " events replayed ("
       << recorder.window() << " at most; the overview below covers every event).";
  } else {
    os << "All " << shown << " events replayed.";
  }
  os << " A bar: the row (or payload slot) holds the live state of the request of its colour. "
        "A filled square: the event wrote the row, an open one: it read it, coloured by what for "
        "(the key). Hover an event for its line."
     << (report.divergence ? " The red line is the first divergence." : "") << "</p>\n";
  const Palette palette = access_palette(recorder);
  legend(os, palette);
  os << "<div id=\"line-info\"></div>\n";
  for (size_t i = 0; i < lanes.size(); ++i) {
    const std::string name = report.lanes[i].name;
    const bool named = report.divergence &&
                       (report.divergence->lane_a == name || report.divergence->lane_b == name);
    os << "<div class=\"lane" << (named ? " named" : "") << "\"><h3>" << escape(name) << "</h3>\n";
    lane_svg(os, recorder.lanes()[i], name, report.divergence, palette);
    live_table(os, recorder.lanes()[i].current);
    os << "</div>\n";
  }
  os << "</section>\n";
  summary_section(os, trace, report, recorder);
  if (!footprint_chart.empty()) {
    os << "<section id=\"footprint\"><h2>Memory by strategy</h2>\n<p>What each strategy "
          "allocates for this model against the batch size (<code>specstate footprint</code>; "
          "the lanes above store only the rows the trace touches).</p>\n"
       << footprint_chart << "</section>\n";
  }
  // The trace lines of the drawn events, once for every lane: {"line": "JSON text"}.
  nlohmann::json lines = nlohmann::json::object();
  if (!recorder.lanes().empty()) {
    for (const ReportRecorder::Event& e : recorder.lanes()[0].window)
      lines[std::to_string(e.line->line)] = trace::event_to_json(e.line->event);
  }
  os << "<script type=\"application/json\" id=\"lines\">" << script_safe(lines.dump())
     << "</script>\n<script>" << kScript << "</script>\n</body></html>\n";
  return os.str();
}

}  // namespace specstate::sim
