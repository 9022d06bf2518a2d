// specstate dump: one request's inputs, outputs and states as NumPy files (docs/interop.md).
#include <cstdio>
#include <memory>
#include <string>

#include "core/errors.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/dump.h"
#include "tools/commands.h"
#include "tools/integer_option.h"
#include "tools/memory_check.h"

namespace specstate::cli {
namespace {

struct DumpArgs {
  std::string file;
  uint64_t request = 0;
  std::string out;
  std::string strategy = "inline";
  std::string backend = "cpu";
};

int run_dump(const DumpArgs& args) {
  const trace::Trace trace = trace::read_trace(args.file);
  trace::validate_trace(trace);  // FILE:LINE errors before anything runs

  sim::DumpOptions options;
  options.request = args.request;
  options.out_dir = args.out;
  if (args.backend != "cpu" && args.backend != "cuda")
    throw InputError("unknown backend '" + args.backend + "' (known: cpu, cuda)");
  const std::vector<StrategyKind> strategies = parse_strategies(args.strategy);
  if (strategies.size() != 1) throw InputError("--strategy takes one strategy, not 'all'");
  options.lane = {args.backend, strategies.front()};
  check_pool_memory(trace, {options.lane}, sim::recorder_bytes(trace.header, options.lane));

  const sim::DumpReport report = sim::dump_request(trace, options);
  if (!report.agree) {
    std::printf("MISMATCH (nothing written) at %s\n", report.mismatch.c_str());
    return 1;
  }
  std::printf("dumped request %llu of %s through %s: %lld tokens, %lld files, %.1f MiB in %s\n",
              (unsigned long long)args.request, args.file.c_str(), options.lane.name().c_str(),
              (long long)report.tokens, (long long)report.files,
              double(report.bytes) / (1024.0 * 1024.0), args.out.c_str());
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
  cmd->add_option("FILE", args->file, "Trace file (JSON Lines, docs/trace-format.md)")->required();
  add_integer(cmd, "--request", args->request, "The request id to dump")->required();
  cmd->add_option("--out", args->out, "Output directory (must not exist, or be empty)")->required();
  cmd->add_option("--strategy", args->strategy,
                  "The lane's strategy: scatter, inline (default), window, replay, deferred");
  cmd->add_option("--backend", args->backend, "The lane's backend: cpu (default) or cuda");
  return {cmd, [args] { return run_dump(*args); }};
}

}  // namespace specstate::cli
