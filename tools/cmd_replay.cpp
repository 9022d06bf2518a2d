// specstate replay: run a trace through lanes (backend x strategy) in lockstep and compare.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "backends/registry.h"
#include "core/errors.h"
#include "core/geometry.h"
#include "core/io/output_file.h"
#include "core/strategy/fault.h"
#include "core/strategy/host_scheduler.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/dump.h"
#include "sim/report.h"
#include "sim/simulator.h"
#include "sim/storage.h"
#include "tools/byte_text.h"
#include "tools/commands.h"
#include "tools/footprint_table.h"
#include "tools/lane_checks.h"
#include "tools/replay_json.h"
#include "tools/replay_lanes.h"
#include "tools/run_options.h"

namespace specstate::cli {
namespace {

struct ReplayArgs {
  std::string file;
  LaneFlags lanes;  // --backend, --strategy, --schedule, --inject
  std::string compare = "every-event";
  std::string layers;
  int threads = 0;
  bool json = false;
  bool no_ownership = false;
  RingParams ring;
  std::string dump_dir;  // --dump-on-divergence
  std::string html;      // --html, or report's -o
  size_t html_window = sim::ReportRecorder::kDefaultWindow;
  bool report_only = false;  // `specstate report`: the page is the result
};

void print_injection(const std::vector<sim::LaneSpec>& lanes) {
  std::string names;
  Fault fault = Fault::kNone;
  for (const sim::LaneSpec& lane : lanes) {
    if (lane.fault == Fault::kNone) continue;
    fault = lane.fault;
    names += (names.empty() ? "" : ", ") + std::string(to_string(lane.strategy));
  }
  const FaultInfo& f = fault_info(fault);
  std::printf("injected fault %s into %s\n  models: %s\n  wrong decision: %s\n",
              std::string(f.name).c_str(), names.c_str(), std::string(f.bug).c_str(),
              std::string(f.what).c_str());
}

// --dump-on-divergence DIR: refused before the replay runs unless DIR can be made (its parent is
// a directory) or is an empty directory.
void check_dump_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string flag = "--dump-on-divergence " + dir + ": ";
  if (dir == "-") throw InputError(flag + "the dumps go into a directory, not a stream");
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) {
    const fs::path parent = fs::path(dir).parent_path();
    if (!parent.empty() && !fs::is_directory(parent, ec))
      throw InputError(flag + "its parent " + parent.string() + " is not a directory");
    return;
  }
  if (ec) throw InputError(flag + "cannot read: " + ec.message());
  if (!fs::is_directory(st)) throw InputError(flag + "exists and is not a directory");
  if (!fs::is_empty(dir, ec) || ec) throw InputError(flag + "exists and is not empty");
}

// The footprint chart of the trace's model, T and dtype (footprint --svg's), over batch sizes up
// to 64 or the trace's request rows (4,096 at most), with its pool rows per request row.
std::string footprint_chart(const trace::Header& header) {
  const PoolConfig config = sim::pool_config(header);
  const int32_t requests = std::max(config.max_requests, 1);
  const int32_t rows_per_request = std::max(1, (config.pool_rows + requests - 1) / requests);
  return footprint_svg(config, std::clamp(requests, 64, 4096), rows_per_request);
}

// What --dump-on-divergence wrote for one lane.
struct LaneDump {
  std::string lane, dir;
  sim::DumpReport report;
  std::string error;  // why it was not dumped; empty: dumped
};

// The lanes a divergence names, as specs: both lanes, or the lane and the first (clean) lane for a
// divergence of one lane (ownership).
std::vector<sim::LaneSpec> diverging_lanes(const sim::Divergence& d,
                                           const std::vector<sim::LaneSpec>& lanes) {
  std::vector<sim::LaneSpec> out;
  const auto add = [&](const std::string& name) {
    for (const sim::LaneSpec& lane : lanes) {
      const bool listed = std::any_of(out.begin(), out.end(),
                                      [&](const sim::LaneSpec& l) { return l.name() == name; });
      if (lane.name() == name && !listed) out.push_back(lane);
    }
  };
  if (d.lane_b.empty()) add(lanes.front().name());
  add(d.lane_a);
  add(d.lane_b);
  return out;
}

// The dump of the diverging request through `lane` up to the divergence's line, following the
// lane (sim/dump.h, follow_lane), into DIR/BACKEND-STRATEGY[+FAULT].
LaneDump dump_lane(const trace::Trace& trace, const sim::Divergence& d, const sim::LaneSpec& lane,
                   const ReplayArgs& args, const std::vector<int32_t>& layers) {
  std::string folder = lane.name();
  std::replace(folder.begin(), folder.end(), '/', '-');
  LaneDump out{lane.name(), (std::filesystem::path(args.dump_dir) / folder).string(), {}, {}};
  if (lane.schedule.is_overlap()) {
    out.error = "not dumped: dump follows a lane's synchronous schedule only";
    return out;
  }
  sim::DumpOptions o;
  o.request = *d.request;
  o.out_dir = out.dir;
  o.lane = lane;
  o.layers = layers;
  o.ring = args.ring;
  o.until_line = d.line;
  o.follow_lane = true;
  try {
    const PoolConfig config = sim::pool_config(trace.header, layers, args.ring);
    o.storage = sim::lane_storage(trace, lane, config);
    const PoolShape stored = stored_shape(make_layout(lane.strategy, config).shape, *o.storage);
    check_lanes_can_run(trace, {lane}, {stored}, sim::recorder_bytes(trace.header, lane, layers));
    out.report = sim::dump_request(trace, o);
  } catch (const InputError& e) {
    out.error = std::string("not dumped: ") + e.what();
  }
  return out;
}

// --dump-on-divergence: the diverging request's dump from each lane the divergence names.
std::vector<LaneDump> dump_divergence(const trace::Trace& trace, const sim::Divergence& d,
                                      const ReplayArgs& args, const sim::SimOptions& options) {
  std::vector<LaneDump> dumps;
  if (!d.request) return dumps;
  std::error_code ec;  // a failure shows in each lane's dump_request error
  std::filesystem::create_directory(args.dump_dir, ec);  // absent, or an empty directory
  for (const sim::LaneSpec& lane : diverging_lanes(d, options.lanes))
    dumps.push_back(dump_lane(trace, d, lane, args, options.layers));
  return dumps;
}

void print_dumps(const sim::Divergence& d, const std::vector<LaneDump>& dumps,
                 const std::string& dir) {
  if (!d.request) {
    std::printf("nothing dumped into %s: the divergence concerns no request\n", dir.c_str());
    return;
  }
  std::printf("dumps of request %llu up to line %ld in %s:\n", (unsigned long long)*d.request,
              d.line, dir.c_str());
  std::vector<std::string> written;
  for (const LaneDump& l : dumps) {
    if (!l.error.empty()) {
      std::printf("  %s: %s\n", l.lane.c_str(), l.error.c_str());
      continue;
    }
    written.push_back(l.dir);
    std::printf("  %s: %lld tokens, %s\n", l.dir.c_str(), (long long)l.report.tokens,
                l.report.differs.empty()
                    ? "the lane agrees with the recorder"
                    : ("the lane differs from the recorder first at " + l.report.differs).c_str());
  }
  if (written.size() == 2) {
    std::printf("  compare them: specstate compare %s %s\n", written[0].c_str(),
                written[1].c_str());
  }
}

nlohmann::json dumps_json(const sim::Divergence& d, const std::vector<LaneDump>& dumps,
                          const std::string& dir) {
  nlohmann::json lanes = nlohmann::json::array();
  for (const LaneDump& l : dumps) {
    nlohmann::json lane = {{"lane", l.lane}, {"dir", l.dir}};
    if (l.error.empty()) {
      lane["tokens"] = l.report.tokens;
      lane["differs"] =
          l.report.differs.empty() ? nlohmann::json() : nlohmann::json(l.report.differs);
    } else {
      lane["error"] = l.error;
    }
    lanes.push_back(lane);
  }
  return {{"dir", dir},
          {"request", d.request ? nlohmann::json(*d.request) : nlohmann::json()},
          {"until_line", d.line},
          {"lanes", lanes}};
}

int run_replay(const ReplayArgs& args, const ThreadPool& pool) {
  const int threads = pool.threads();
  check_lane_backends(args.lanes);
  if (!args.dump_dir.empty()) check_dump_dir(args.dump_dir);
  const trace::Trace trace = trace::read_trace(args.file);
  trace::validate_trace(trace);  // FILE:LINE errors before anything runs

  sim::SimOptions options;
  if (args.compare == "checks") {
    options.compare_at = sim::CompareAt::kChecks;
  } else if (args.compare != "every-event") {
    throw InputError("--compare must be every-event or checks, got '" + args.compare + "'");
  }
  options.check_ownership = !args.no_ownership;
  options.lanes = make_replay_lanes(args.lanes, trace.header);
  const PoolConfig full = sim::pool_config(trace.header);
  if (!args.layers.empty()) options.layers = parse_layer_list(args.layers, full.geometry.layers);
  options.ring = args.ring;
  const PoolConfig config = sim::pool_config(trace.header, options.layers, args.ring);
  options.storage = check_replay_lanes(trace, options.lanes, config);
  // On a terminal, also under --json: the report goes to standard output, the bar to stderr.
  if (auto bar = progress_bar()) {
    const size_t lanes = options.lanes.size();
    options.progress = [bar, lanes](const sim::Progress& p) {
      bar(p.work_done, p.work_total, p.seconds,
          std::to_string(lanes) + " lanes, " + std::to_string(p.events_done) + "/" +
              std::to_string(p.events_total) + " events");
    };
  }

  const trace::Header& h = trace.header;
  if (!args.json && !args.report_only) {
    const std::string rank = h.tp > 1 ? " rank " + std::to_string(h.rank) : "";
    std::printf(
        "replaying %s: %s TP%d%s, SSM %s, T=%d, %d pool rows, %d request rows, %zu events\n",
        args.file.c_str(), h.model_name().c_str(), h.tp, rank.c_str(),
        std::string(to_string(h.ssm_dtype)).c_str(), h.tokens_per_verify(), h.pool_rows,
        h.max_requests, trace.events.size());
    std::printf("  layers %s of %d, %s\n", args.layers.empty() ? "all" : args.layers.c_str(),
                full.geometry.layers, pool.describe().c_str());
    if (args.lanes.strategies == "all" && h.tree_nodes > 0)
      std::printf("  draft trees of up to %d nodes: %s\n", h.tree_nodes, no_trees_text().c_str());
    if (const Schedule s = options.lanes.back().schedule; s.depth == 1) {
      std::printf(
          "  overlap scheduling: each step prepared before the previous one's accepted "
          "counts reach the host (lanes @overlap)\n");
    } else if (s.is_overlap()) {
      std::printf(
          "  overlap scheduling: up to %d steps in flight, each prepared before the "
          "accepted counts of those before it reach the host (lanes @%s)\n",
          s.depth, to_string(s).c_str());
    }
    if (!args.lanes.inject.empty()) print_injection(options.lanes);
  }
  std::optional<sim::ReportRecorder> recorder;
  std::optional<io::OutputFile> page;  // opened first: a target it cannot write fails now
  if (!args.html.empty()) {
    page.emplace(args.html, (args.report_only ? "-o " : "--html ") + args.html);
    recorder.emplace(options.lanes.size(), args.html_window);
    options.observe = [&recorder](size_t lane, const trace::Line& line, const sim::Lane& state,
                                  const Plan& plan) { recorder->observe(lane, line, state, plan); };
  }
  const sim::ReplayReport report = sim::replay(trace, options);
  if (page) {
    page->stream() << sim::render_report(trace, report, options.lanes, *recorder,
                                         footprint_chart(trace.header));
    page->commit();
  }
  if (args.report_only) {
    const std::string verdict =
        report.agree ? "AGREE" : "DIVERGENCE at line " + std::to_string(report.divergence->line);
    std::printf("%s: %s, %zu lanes, %zu events; wrote %s\n", args.file.c_str(), verdict.c_str(),
                report.lanes.size(), report.events, args.html.c_str());
    return 0;
  }
  std::vector<LaneDump> dumps;
  const bool dump = !report.agree && !args.dump_dir.empty();
  if (dump) dumps = dump_divergence(trace, *report.divergence, args, options);
  if (args.json) {
    nlohmann::json out = replay_json(trace, report, options.lanes, options.layers, threads);
    if (dump) out["dumps"] = dumps_json(*report.divergence, dumps, args.dump_dir);
    std::printf("%s\n", out.dump(2).c_str());
    return report.agree ? 0 : 1;
  }
  if (report.agree && report.lanes.size() == 1) {
    // One lane has nothing to agree with: say what was checked.
    std::printf(
        "OK: 1 lane (%s) ran %zu events: the schedule is valid%s; nothing to compare it with "
        "(--strategy all or --backend cpu,cuda run more lanes)\n",
        report.lanes[0].name.c_str(), report.events,
        options.check_ownership
            ? " and every write went to a row the protocol gives its request (row ownership)"
            : "");
  } else if (report.agree) {
    std::printf(
        "AGREE: %zu lanes bit-identical after %zu events (%zu comparison points, %zu of "
        "them full%s)\n",
        report.lanes.size(), report.events, report.compares, report.full_compares,
        options.check_ownership ? ", row ownership checked" : "");
  } else {
    std::printf("DIVERGENCE at %s", report.divergence->report(args.file).c_str());
  }
  size_t width = 16;
  for (const auto& lane : report.lanes)
    width = std::max(width, lane.name.size());
  std::printf("  %-*s %10s %12s\n", int(width), "lane", "plans", "allocated");
  for (const auto& lane : report.lanes) {
    std::printf("  %-*s %8.3f s %12s\n", int(width), lane.name.c_str(), lane.seconds,
                byte_text(double(lane.allocated.total())).c_str());
  }
  std::printf("  wall time %.3f s (comparisons %.3f s), %d threads\n", report.seconds,
              report.compare_seconds, threads);
  if (dump) print_dumps(*report.divergence, dumps, args.dump_dir);
  return report.agree ? 0 : 1;
}

// The options `replay` and `report` share: the trace, its lanes, what is compared.
void add_run_options(CLI::App* cmd, ReplayArgs& args) {
  cmd->add_option("FILE", args.file, "Trace file (JSON Lines, docs/trace-format.md), - for stdin")
      ->required();
  cmd->add_option("--backend", args.lanes.backends, "cpu, cuda, or cpu,cuda (default cpu)");
  cmd->add_option("--strategy", args.lanes.strategies,
                  strategy_names_text() + ", a comma list, or all (default all)");
  cmd->add_option("--schedule", args.lanes.schedule,
                  "How each lane's host schedules: sync, overlap (every step prepared before the "
                  "previous step's accepted counts reach the host, docs/strategies.md), "
                  "overlap=D (up to D steps in flight, as pipeline parallelism keeps; D up to 4), "
                  "both (sync and overlap), or trace (default: both for a trace whose header says "
                  "overlap, at its depth, else sync)");
  cmd->add_option("--compare", args.compare,
                  "every-event (default) or checks: when to compare states");
  cmd->add_flag("--no-ownership", args.no_ownership, "Do not check which rows each task writes");
  cmd->add_option("--layers", args.layers,
                  "Replay only these GDN layers: a list and ranges such as 0,17,35 or 0-3 "
                  "(default all); each layer's bytes are those of a full replay");
  add_threads_option(cmd, args.threads);
  add_ring_options(cmd, args.ring);
  std::string faults;
  for (const FaultInfo& f : all_faults())
    faults += "\n  " + std::string(f.name) + ": " + std::string(f.bug);
  cmd->add_option("--inject", args.lanes.inject,
                  "Inject a known protocol bug into every lane whose strategy it concerns (a clean "
                  "reference lane is kept); docs/failure-classes.md. One of:" +
                      faults);
}

Command run_command(CLI::App* cmd, const std::shared_ptr<ReplayArgs>& args) {
  return {cmd, [args] {
            ThreadPool pool(args->threads);
            return pool.run([&] { return run_replay(*args, pool); });
          }};
}

}  // namespace

Command add_replay(CLI::App& parent) {
  auto args = std::make_shared<ReplayArgs>();
  CLI::App* cmd = parent.add_subcommand(
      "replay",
      "Replay a trace through every lane (backend x strategy) in lockstep. After every event\n"
      "(or at check events) the live state of every request, the snapshot rows and the\n"
      "per-token outputs must be bit-identical across strategies, and every row byte-identical\n"
      "between backends running the same strategy. Exit 0 when all lanes agree, 1 at the first\n"
      "divergence (with a report naming the trace line, request, row, layer and elements),\n"
      "2 for input errors.");
  add_run_options(cmd, *args);
  cmd->add_flag("--json", args->json,
                "Write a machine-readable report (lanes, events, digests, timings) to stdout");
  cmd->add_option(
      "--dump-on-divergence", args->dump_dir,
      "At a divergence, dump the diverging request from each lane the divergence names into\n"
      "DIR/BACKEND-STRATEGY[+FAULT] (absent, or an empty directory), as `specstate dump` does\n"
      "but following what the lane holds (a faulty lane's dump shows its fault), up to the\n"
      "diverging event; then `specstate compare DIR/LANE_A DIR/LANE_B` names the first token\n"
      "where they differ and what the second holds there (docs/interop.md)");
  cmd->add_option("--html", args->html,
                  "Also draw the replay into this HTML page, as `specstate report` does "
                  "(docs/report.md)");
  return run_command(cmd, args);
}

Command add_report(CLI::App& parent) {
  auto args = std::make_shared<ReplayArgs>();
  args->report_only = true;
  CLI::App* cmd = parent.add_subcommand(
      "report",
      "Replay a trace as `replay` does and draw it into one self-contained HTML page\n"
      "(docs/report.md): per lane the pool rows and payload slots over the events, whose live\n"
      "state each holds and what each event read and wrote; the first divergence marked on\n"
      "every lane, with the elements and a map of where the states differ; the trace's\n"
      "summary. Exit 0 when the page is written, whether the lanes agree or not; 2 for input\n"
      "errors.");
  add_run_options(cmd, *args);
  cmd->add_option("-o,--output", args->html, "The HTML file to write")->required();
  cmd->add_option("--window", args->html_window,
                  "Events drawn in detail, the last ones replayed (default 300); the page's "
                  "overview covers every event")
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  return run_command(cmd, args);
}

}  // namespace specstate::cli
