// specstate demo: the main job on a generated example — a realistic continuous-batching trace
// replayed through every strategy (and the CUDA backend when a GPU is present), then the
// memory footprint of a real model.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "backends/registry.h"
#include "core/errors.h"
#include "core/io/output_file.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/generator.h"
#include "sim/simulator.h"
#include "tools/commands.h"
#include "tools/footprint_table.h"
#include "tools/integer_option.h"
#include "tools/replay_json.h"
#include "tools/summary_json.h"

namespace specstate::cli {
namespace {

struct DemoOptions {
  std::string dtype = "f32";
  uint64_t seed = 2026;
  std::string trace_out;  // empty: demo.jsonl in a fresh temporary directory
  bool json = false;
};

// A fresh directory under the system's temporary directory (mkdtemp), kept: the demo prints
// the trace's path so that it can be replayed again.
std::string fresh_trace_path() {
  std::string pattern = (std::filesystem::temp_directory_path() / "specstate-demo-XXXXXX").string();
  if (!mkdtemp(pattern.data()))
    throw InputError("cannot create a temporary directory like " + pattern + ": " +
                     std::strerror(errno));
  return pattern + "/demo.jsonl";
}

// Writes the generated trace to `path` and reads it back (the replay runs what is on disk).
trace::Trace write_and_read(const sim::GeneratorOptions& g, const std::string& path) {
  const trace::Trace generated = sim::generate_trace(g);
  io::OutputFile out(path, path);
  trace::write_trace(out.stream(), generated);
  out.commit();
  return trace::read_trace(path);
}

// Every backend here x every strategy that runs the trace.
sim::SimOptions lanes_for(const trace::Trace& trace) {
  sim::SimOptions options;
  for (const std::string& backend : available_backends()) {
    for (StrategyKind s : strategies_running(trace.header.tree_nodes))
      options.lanes.push_back({backend, s});
  }
  return options;
}

void print_replay(const sim::ReplayReport& report, const std::string& file) {
  if (report.agree) {
    std::printf(
        "   AGREE: live states, snapshot rows and per-token outputs bit-identical across all\n"
        "   lanes after each of %zu events; no task wrote a row its request does not own.\n",
        report.events);
  } else {
    std::printf("   DIVERGENCE at %s", report.divergence->report(file).c_str());
  }
  for (const auto& lane : report.lanes)
    std::printf("     %-16s %7.3f s\n", lane.name.c_str(), lane.seconds);
}

// demo.jsonl -> demo-tree.jsonl beside it.
std::string tree_trace_path(const std::string& path) {
  const std::string ext = ".jsonl";
  const bool has_ext =
      path.size() >= ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0;
  return (has_ext ? path.substr(0, path.size() - ext.size()) : path) + "-tree.jsonl";
}

int run_demo(DemoOptions o) {
  if (o.trace_out.empty()) o.trace_out = fresh_trace_path();
  sim::GeneratorOptions g;
  g.seed = o.seed;
  g.ssm_dtype = parse_ssm_dtype(o.dtype);
  g.requests = 64;
  g.steps = 2000;
  const trace::Trace trace = write_and_read(g, o.trace_out);
  const trace::TraceSummary summary = trace::validate_trace(trace);
  const sim::SimOptions options = lanes_for(trace);
  // Draft trees: EAGLE's static tree of top-2 on three levels (15 nodes).
  sim::GeneratorOptions gt = g;
  gt.requests = 24;
  gt.steps = 400;
  gt.tree = {2, 2, 2};
  const std::string tree_out = tree_trace_path(o.trace_out);
  const trace::Trace tree_trace = write_and_read(gt, tree_out);
  const sim::SimOptions tree_options = lanes_for(tree_trace);
  PoolConfig config;
  config.geometry = make_geometry("qwen3-next-80b-a3b", 1);
  config.ssm_dtype = g.ssm_dtype;
  config.tokens_per_verify = 4;
  config.max_requests = 64;
  config.pool_rows = 128;
  if (o.json) {
    const sim::ReplayReport report = sim::replay(trace, options);
    const sim::ReplayReport tree_report = sim::replay(tree_trace, tree_options);
    const nlohmann::ordered_json j = {
        {"trace", o.trace_out},
        {"summary", summary_json(summary)},
        {"replay", replay_json(trace, report, options.lanes, {}, 0)},
        {"tree_trace", tree_out},
        {"tree_replay", replay_json(tree_trace, tree_report, tree_options.lanes, {}, 0)},
        {"cuda", cuda_available()},
        {"footprint", footprint_json(config)}};
    std::printf("%s\n", j.dump(2).c_str());
    return report.agree && tree_report.agree ? 0 : 1;
  }
  std::printf("1. Generated a continuous-batching trace (tiny preset, seed %llu): %s\n%s\n",
              (unsigned long long)o.seed, o.trace_out.c_str(),
              trace::format_summary(summary).c_str());

  const sim::ReplayReport report = sim::replay(trace, options);
  std::printf(
      "2. Replayed it through %zu lanes (backend x strategy), comparing after every event:\n",
      report.lanes.size());
  print_replay(report, o.trace_out);
  if (!cuda_available()) std::printf("   (no CUDA device here: CPU lanes only)\n");

  const sim::ReplayReport tree_report = sim::replay(tree_trace, tree_options);
  std::printf(
      "\n3. Draft trees (EAGLE top-2 on three levels, 15 nodes per verify; format version 2):\n"
      "   %s, %zu events, through the %zu lanes of the strategies that run trees:\n",
      tree_out.c_str(), tree_trace.events.size(), tree_report.lanes.size());
  print_replay(tree_report, tree_out);

  std::printf("\n4. What each strategy costs on a real model (specstate footprint):\n");
  print_footprint_table(config);
  return report.agree && tree_report.agree ? 0 : 1;
}

}  // namespace

Command add_demo(CLI::App& parent) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* demo = parent.add_subcommand(
      "demo",
      "The main job on a generated example: write a realistic trace (64 requests, ~2,000\n"
      "events: chunked prefill, prefix hits, MTP verifies, decodes, retract/resume, snapshots,\n"
      "padding), replay it through all six strategies on every available backend, and print\n"
      "the agreement and the memory footprint of Qwen3-Next-80B-A3B.");
  demo->add_option("--ssm-dtype", options->dtype, "SSM pool dtype: f32 (default) or bf16");
  add_integer(demo, "--seed", options->seed, "Seed of the generated trace");
  demo->add_option("-o,--output,--trace-out", options->trace_out,
                   "Where to write the generated trace (default: demo.jsonl in a fresh temporary "
                   "directory, kept)");
  demo->add_flag("--json", options->json,
                 "Report as one JSON object: the trace, its summary, the replay (as replay --json) "
                 "and the footprint (as footprint --json)");
  return {demo, [options] { return run_demo(*options); }};
}

}  // namespace specstate::cli
