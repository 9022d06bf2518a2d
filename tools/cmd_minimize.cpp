// specstate minimize: cut a diverging trace down to the few events that matter (sim/minimize.h).
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/errors.h"
#include "core/geometry.h"
#include "core/io/output_file.h"
#include "core/strategy/fault.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/minimize.h"
#include "tools/commands.h"
#include "tools/replay_lanes.h"
#include "tools/run_options.h"

namespace specstate::cli {
namespace {

struct MinimizeArgs {
  std::string file;
  std::string output;
  LaneFlags lanes;
  std::string layers;
  bool no_ownership = false;
  bool json = false;
  int threads = 0;
  RingParams ring;
};

// The flags that choose the lanes, as the user gave them: what `specstate replay` needs to see
// the same divergence.
std::string lane_flags(const MinimizeArgs& args) {
  const LaneFlags d;
  const RingParams r;
  std::string s;
  auto add = [&](const char* flag, const std::string& value, const std::string& unset) {
    if (value != unset) s += std::string(" ") + flag + " " + value;
  };
  add("--backend", args.lanes.backends, d.backends);
  add("--strategy", args.lanes.strategies, d.strategies);
  add("--schedule", args.lanes.schedule, d.schedule);
  add("--inject", args.lanes.inject, d.inject);
  add("--layers", args.layers, "");
  add("--ring-slots", std::to_string(args.ring.slots), std::to_string(r.slots));
  add("--ring-history", std::to_string(args.ring.max_history), std::to_string(r.max_history));
  add("--ring-fold-at", std::to_string(args.ring.fold_at), std::to_string(r.fold_at));
  if (args.no_ownership) s += " --no-ownership";
  return s;
}

// The minimized trace as written: a comment saying where it comes from, then the trace.
std::string output_text(const MinimizeArgs& args, const trace::Trace& input,
                        const sim::MinimizeResult& r) {
  std::ostringstream os;
  os << "# specstate minimize " << quote_file_name(args.file) << lane_flags(args) << ": "
     << input.events.size() << " events -> " << r.trace.events.size() << "\n"
     << "# diverges as the input did (its line " << r.original.line << "): " << r.signature.kind
     << ", " << r.signature.lane_a
     << (r.signature.lane_b.empty() ? "" : " vs " + r.signature.lane_b) << "\n";
  trace::write_trace(os, r.trace);
  return os.str();
}

// The written text read back, validated and replayed through every lane the user chose, as
// `specstate validate` and `specstate replay` will see it. Anything but a divergence is a bug.
sim::ReplayReport replay_output(const std::string& text, const std::string& name,
                                const sim::MinimizeOptions& options) {
  try {
    std::istringstream in(text);
    const trace::Trace small = trace::read_trace(in, name);
    trace::validate_trace(small);
    sim::SimOptions o;
    o.lanes = options.lanes;
    o.layers = options.layers;
    o.ring = options.ring;
    o.check_ownership = options.check_ownership;
    sim::ReplayReport report = sim::replay(small, o);
    SPECSTATE_ASSERT(report.divergence, "the minimized trace diverges through the user's lanes");
    return report;
  } catch (const InputError& e) {
    throw std::logic_error(std::string("the minimized trace is refused: ") + e.what());
  }
}

// A line on stderr while it runs, on a terminal only, from the first second on, ten times a
// second at most.
std::function<void(const std::string&, size_t, size_t, double)> progress_line() {
  if (!isatty(STDERR_FILENO)) return {};
  return [drawn = -1.0](const std::string& stage, size_t events, size_t replays,
                        double seconds) mutable {
    if (seconds < 1.0 || seconds - drawn < 0.1) return;
    drawn = seconds;
    std::fprintf(stderr, "\r\033[K  minimizing: %s stage, %zu events left, %zu replays, %.1f s",
                 stage.c_str(), events, replays, seconds);
  };
}

nlohmann::ordered_json size_json(const trace::TraceSummary& s) {
  const trace::Header& h = s.header;
  return {{"events", s.events},
          {"requests", s.requests},
          {"steps", s.steps()},
          {"pool_rows", h.pool_rows},
          {"max_requests", h.max_requests},
          {"peak_rows_in_use", s.peak_rows_in_use},
          {"T", h.tokens_per_verify()},
          {"model", h.model_name()},
          {"prefill_tokens", s.prefill_tokens},
          {"accepted_tokens", s.accepted_tokens},
          {"decode_tokens", s.decode_tokens}};
}

nlohmann::ordered_json divergence_json(const sim::Divergence& d) {
  return {{"line", d.line}, {"what", d.what}, {"lane_a", d.lane_a}, {"lane_b", d.lane_b}};
}

nlohmann::ordered_json result_json(const MinimizeArgs& args, const sim::MinimizeResult& r,
                                   const trace::TraceSummary& before,
                                   const trace::TraceSummary& after,
                                   const sim::ReplayReport& replay) {
  nlohmann::ordered_json lanes = nlohmann::ordered_json::array();
  for (const sim::LaneSpec& lane : r.lanes)
    lanes.push_back(lane.name());
  nlohmann::ordered_json stages = nlohmann::ordered_json::array();
  for (const sim::StageCost& s : r.stages) {
    stages.push_back(
        {{"name", s.name}, {"replays", s.replays}, {"kept", s.kept}, {"seconds", s.seconds}});
  }
  return {{"input", args.file},
          {"output", args.output},
          {"signature",
           {{"kind", r.signature.kind},
            {"lane_a", r.signature.lane_a},
            {"lane_b", r.signature.lane_b}}},
          {"before", size_json(before)},
          {"after", size_json(after)},
          {"input_divergence", divergence_json(r.original)},
          {"replay", divergence_json(*replay.divergence)},
          {"tested_lanes", lanes},
          {"tested_layers", r.layers},  // empty: all
          {"replays", r.replays},
          {"invalid", r.invalid},
          {"repeated", r.repeated},
          {"rounds", r.rounds},
          {"stages", stages},
          {"input_seconds", r.input_seconds},
          {"seconds", r.seconds}};
}

void print_sizes(std::FILE* out, const trace::TraceSummary& a, const trace::TraceSummary& b) {
  auto row = [&](const char* what, long long x, long long y) {
    std::fprintf(out, "  %-16s %10lld %10lld\n", what, x, y);
  };
  std::fprintf(out, "  %-16s %10s %10s\n", "", "input", "minimized");
  row("events", a.events, b.events);
  row("requests", a.requests, b.requests);
  row("steps", a.steps(), b.steps());
  row("pool rows", a.header.pool_rows, b.header.pool_rows);
  row("request rows", a.header.max_requests, b.header.max_requests);
  row("T", a.header.tokens_per_verify(), b.header.tokens_per_verify());
  row("prefill tokens", a.prefill_tokens, b.prefill_tokens);
  row("accepted tokens", a.accepted_tokens, b.accepted_tokens);
  if (a.header.model_name() != b.header.model_name()) {
    std::fprintf(out, "  %-16s %10s %10s\n", "model", a.header.model_name().c_str(),
                 b.header.model_name().c_str());
  }
}

void print_result(std::FILE* out, const MinimizeArgs& args, const sim::MinimizeResult& r,
                  const trace::TraceSummary& before, const trace::TraceSummary& after,
                  const sim::ReplayReport& replay) {
  std::string lanes, layers = "all layers";
  for (const sim::LaneSpec& lane : r.lanes)
    lanes += (lanes.empty() ? "" : ", ") + lane.name();
  for (size_t i = 0; i < r.layers.size(); ++i)
    layers = (i ? layers + "," : "layer ") + std::to_string(r.layers[i]);
  std::fprintf(out, "minimized %s into %s in %.2f s: %lld -> %lld events\n", args.file.c_str(),
               args.output == "-" ? "standard output" : args.output.c_str(), r.seconds,
               (long long)before.events, (long long)after.events);
  std::fprintf(out, "  divergence kept: %s, %s%s (input line %ld)\n", r.signature.kind.c_str(),
               r.signature.lane_a.c_str(),
               r.signature.lane_b.empty() ? "" : (" vs " + r.signature.lane_b).c_str(),
               r.original.line);
  std::fprintf(out,
               "  %zu replays (the first, of the input through every lane, %.2f s), then of %s on "
               "%s; %zu candidates refused by the validator, %zu seen before, %zu rounds\n",
               r.replays, r.input_seconds, lanes.c_str(), layers.c_str(), r.invalid, r.repeated,
               r.rounds);
  print_sizes(out, before, after);
  std::fprintf(out, "  %-16s %10s %10s %10s\n", "stage", "replays", "kept", "seconds");
  for (const sim::StageCost& s : r.stages)
    std::fprintf(out, "  %-16s %10zu %10zu %10.2f\n", s.name.c_str(), s.replays, s.kept, s.seconds);
  std::fprintf(out, "specstate replay %s%s:\nDIVERGENCE at %s", args.output.c_str(),
               lane_flags(args).c_str(), replay.divergence->report(args.output).c_str());
}

int run_minimize(const MinimizeArgs& args) {
  if (args.json && args.output == "-")
    throw InputError("--json and -o - both write standard output; give -o a file");
  check_lane_backends(args.lanes);
  const trace::Trace input = trace::read_trace(args.file);
  const trace::TraceSummary before = trace::validate_trace(input);
  sim::MinimizeOptions options;
  options.lanes = make_replay_lanes(args.lanes, input.header);
  if (!args.layers.empty())
    options.layers = parse_layer_list(args.layers, trace::header_geometry(input.header).layers);
  options.ring = args.ring;
  options.check_ownership = !args.no_ownership;
  check_replay_lanes(input, options.lanes,
                     sim::pool_config(input.header, options.layers, args.ring));
  options.progress = progress_line();  // a terminal only, --json or not
  // Opened before the search, so that an output that cannot be written is refused before the
  // minutes a large trace takes; the old file stays until commit().
  io::OutputFile out(args.output, "-o " + args.output);

  const sim::MinimizeResult result = sim::minimize(input, options);
  if (options.progress) std::fprintf(stderr, "\r\033[K");
  const std::string text = output_text(args, input, result);
  const sim::ReplayReport replay = replay_output(text, args.output, options);
  out.stream() << text;
  out.commit();

  const trace::TraceSummary after = trace::validate_trace(result.trace);
  if (args.json) {
    std::printf("%s\n", result_json(args, result, before, after, replay).dump(2).c_str());
  } else {  // with the trace on standard output, the report goes to standard error
    print_result(args.output == "-" ? stderr : stdout, args, result, before, after, replay);
  }
  return 0;
}

}  // namespace

Command add_minimize(CLI::App& parent) {
  auto args = std::make_shared<MinimizeArgs>();
  CLI::App* cmd = parent.add_subcommand(
      "minimize",
      "Cut a diverging trace down to a small valid trace that still diverges the same way: the\n"
      "same kind of divergence (per-token outputs, live state, snapshot row, swapped-out state,\n"
      "ownership, ...) between the same lanes, at any line. Delta debugging over requests,\n"
      "events, batch entries, token counts, rows and the model, keeping every schedule rule\n"
      "(docs/minimize.md). Exit 0 with the trace written, 2 for input errors, among them a\n"
      "trace that does not diverge.");
  cmd->add_option("FILE", args->file, "Trace file (JSON Lines, docs/trace-format.md), - for stdin")
      ->required();
  cmd->add_option("-o,--output", args->output,
                  "The minimized trace, - for standard output (a regular file is replaced "
                  "atomically; links are followed)")
      ->required();
  cmd->add_option("--backend", args->lanes.backends, "As for replay: cpu, cuda, or cpu,cuda");
  cmd->add_option("--strategy", args->lanes.strategies,
                  "As for replay: a comma list of strategies, or all (default)");
  cmd->add_option("--schedule", args->lanes.schedule,
                  "As for replay: sync, overlap, overlap=D, both, or trace (default)");
  std::string faults;
  for (const FaultInfo& f : all_faults())
    faults += (faults.empty() ? "" : ", ") + std::string(f.name);
  cmd->add_option(
      "--inject", args->lanes.inject,
      "As for replay: a known protocol bug in every lane it concerns. One of: " + faults);
  cmd->add_option("--layers", args->layers,
                  "As for replay: the GDN layers replayed (default all; the tests replay one "
                  "layer when that shows the same divergence)");
  cmd->add_flag("--no-ownership", args->no_ownership, "As for replay: no row-ownership check");
  cmd->add_flag("--json", args->json, "Report as one JSON object (an error as {\"error\": ...})");
  add_threads_option(cmd, args->threads);
  add_ring_options(cmd, args->ring);
  return {cmd, [args] {
            ThreadPool pool(args->threads);
            return pool.run([&] { return run_minimize(*args); });
          }};
}

}  // namespace specstate::cli
