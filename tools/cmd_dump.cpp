// specstate dump: one request's inputs, outputs and states as NumPy files (docs/interop.md).
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "backends/registry.h"
#include "core/errors.h"
#include "core/geometry.h"
#include "core/index_list.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/dump.h"
#include "sim/storage.h"
#include "tools/commands.h"
#include "tools/integer_option.h"
#include "tools/lane_checks.h"
#include "tools/run_options.h"

namespace specstate::cli {
namespace {

struct DumpArgs {
  std::string file;
  uint64_t request = 0;
  std::string out;
  std::string strategy = "inline";
  std::string backend = "cpu";
  std::string layers;
  std::string tokens;
  int threads = 0;
  bool json = false;
};

int run_dump(const DumpArgs& args) {
  check_backend_flag({args.backend});
  const trace::Trace trace = trace::read_trace(args.file);
  trace::validate_trace(trace);  // FILE:LINE errors before anything runs

  sim::DumpOptions options;
  options.request = args.request;
  options.out_dir = args.out;
  if (args.out == "-") throw InputError("-o -: a dump is a directory, not a stream");
  const std::vector<StrategyKind> strategies = parse_strategies(args.strategy);
  if (strategies.size() != 1) throw InputError("--strategy takes one strategy, not 'all'");
  options.lane = {args.backend, strategies.front()};
  const int64_t tokens = sim::request_tokens(trace, args.request);
  const int32_t layers = sim::pool_config(trace.header).geometry.layers;
  if (!args.layers.empty()) options.layers = parse_layer_list(args.layers, layers);
  if (!args.tokens.empty())
    options.tokens = parse_index_list(args.tokens, tokens, "--tokens", "token");
  const PoolConfig config = sim::pool_config(trace.header, options.layers);
  options.storage = sim::lane_storage(trace, options.lane, config);
  const PoolShape stored =
      stored_shape(make_layout(options.lane.strategy, config).shape, *options.storage);
  check_lanes_can_run(trace, {options.lane}, {stored},
                      sim::recorder_bytes(trace.header, options.lane, options.layers));
  if (auto bar = progress_bar()) {
    const uint64_t request = args.request;
    options.progress = [bar, request](const sim::Progress& p) {
      bar(p.work_done, p.work_total, p.seconds,
          "request " + std::to_string(request) + ", " + std::to_string(p.events_done) + "/" +
              std::to_string(p.events_total) + " events");
    };
  }

  const sim::DumpReport report = sim::dump_request(trace, options);
  if (args.json) {
    nlohmann::ordered_json out = {{"trace", args.file},
                                  {"request", args.request},
                                  {"lane", options.lane.name()},
                                  {"agree", report.agree}};
    if (!report.agree) out["mismatch"] = report.mismatch;
    out["out"] = args.out;
    out["tokens"] = report.tokens;
    out["request_tokens"] = tokens;
    out["layers"] = options.layers.empty() ? nlohmann::ordered_json("all")
                                           : nlohmann::ordered_json(options.layers);
    out["files"] = report.files;
    out["bytes"] = report.bytes;
    out["seconds"] = report.seconds;
    std::printf("%s\n", out.dump(2).c_str());
    return report.agree ? 0 : 1;
  }
  if (!report.agree) {
    std::printf("MISMATCH (nothing written) at %s\n", report.mismatch.c_str());
    return 1;
  }
  std::printf(
      "dumped request %llu of %s through %s: %lld of %lld tokens, %d of %d layers, %lld "
      "files, %.1f MiB in %s (%.1f s)\n",
      (unsigned long long)args.request, args.file.c_str(), options.lane.name().c_str(),
      (long long)report.tokens, (long long)tokens, config.geometry.layers, layers,
      (long long)report.files, double(report.bytes) / (1024.0 * 1024.0), args.out.c_str(),
      report.seconds);
  return 0;
}

}  // namespace

Command add_dump(CLI::App& parent) {
  auto args = std::make_shared<DumpArgs>();
  CLI::App* cmd = parent.add_subcommand(
      "dump",
      "Dump one request's inputs, outputs and states, token by token, as NumPy .npy files for\n"
      "external references (docs/interop.md). The trace is replayed through one lane; the\n"
      "state after every token the request processed (prefill, verified accepted or not,\n"
      "decode) is recorded with the same primitives and checked against the lane. Exit 0\n"
      "when written, 1 when the lane disagreed with the recording (nothing written), 2 for\n"
      "input errors.");
  cmd->add_option("FILE", args->file, "Trace file (JSON Lines, docs/trace-format.md), - for stdin")
      ->required();
  add_integer(cmd, "--request", args->request, "The request id to dump")->required();
  cmd->add_option("-o,--output,--out", args->out, "Output directory (must not exist, or be empty)")
      ->required();
  cmd->add_option("--strategy", args->strategy,
                  "The lane's strategy: " + strategy_names_text() + " (default inline)");
  cmd->add_option("--backend", args->backend, "The lane's backend: cpu (default) or cuda");
  cmd->add_option(
      "--layers", args->layers,
      "Dump only these GDN layers: a list and ranges such as 0,17,35 or 0-3 (default all)");
  cmd->add_option("--tokens", args->tokens,
                  "Write only these of the request's tokens (indices in its token order, e.g. "
                  "0-99 or 19,20; default all); every token is still computed and checked");
  add_threads_option(cmd, args->threads);
  cmd->add_flag("--json", args->json, "Report as one JSON object (an error as {\"error\": ...})");
  return {cmd, [args] {
            ThreadPool pool(args->threads);
            return pool.run([&] { return run_dump(*args); });
          }};
}

}  // namespace specstate::cli
