// specstate generate: a synthetic scheduler trace from a seed.
#include <chrono>
#include <cstdio>
#include <memory>
#include <ostream>
#include <string>

#include "core/errors.h"
#include "core/io/output_file.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/generator.h"
#include "tools/commands.h"
#include "tools/integer_option.h"
#include "tools/preset_option.h"
#include "tools/summary_json.h"

namespace specstate::cli {
namespace {

struct GenerateOptions {
  sim::GeneratorOptions generator;
  std::string ssm_dtype = "f32";
  std::string tree;
  bool no_padding = false;
  std::string output;
  bool json = false;
};

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// Writes each event as the generator makes it, so that memory stays bounded by the requests
// and rows whatever --steps is (the whole trace of 1M requests x 4M steps never fits).
trace::TraceSummary write_generated(const sim::GeneratorOptions& g, io::OutputFile& out) {
  std::ostream& stream = out.stream();
  stream << trace::header_to_json(sim::generated_header(g)) << '\n';
  return sim::generate_events(g, [&](const trace::Line& line) {
    stream << trace::event_to_json(line.event) << '\n';
    if (!stream) {  // a failed write (a full disk) ends the run: commit() throws, naming it
      out.commit();
      SPECSTATE_ASSERT(false, "OutputFile::commit() throws after a failed write");
    }
  });
}

int run_generate(GenerateOptions& options) {
  sim::GeneratorOptions& g = options.generator;
  if (options.json && options.output == "-")
    throw InputError("--json and -o - both write standard output; give -o a file");
  g.ssm_dtype = parse_ssm_dtype(options.ssm_dtype);
  if (!options.tree.empty()) g.tree = parse_tree_shape(options.tree, "--tree", g.tree_nodes);
  if (options.no_padding) g.graph_buckets.clear();
  sim::check_options(g);  // before the output is opened
  const auto start = std::chrono::steady_clock::now();
  io::OutputFile out(options.output, options.output);
  const trace::TraceSummary summary = write_generated(g, out);
  out.commit();
  const double ms = ms_since(start);
  if (options.json) {
    nlohmann::ordered_json report = {
        {"output", options.output}, {"events", summary.events}, {"generate_ms", ms}};
    report["summary"] = summary_json(summary);
    std::printf("%s\n", report.dump(2).c_str());
    return 0;
  }
  // With the trace on standard output, the report goes to standard error.
  std::FILE* report = options.output == "-" ? stderr : stdout;
  std::fprintf(report, "wrote %s: %lld events (generated and written in %.1f ms)\n%s",
               options.output == "-" ? "standard output" : options.output.c_str(),
               (long long)summary.events, ms, trace::format_summary(summary).c_str());
  return 0;
}

}  // namespace

Command add_generate(CLI::App& parent) {
  auto options = std::make_shared<GenerateOptions>();
  sim::GeneratorOptions& g = options->generator;
  CLI::App* cmd = parent.add_subcommand(
      "generate",
      "Write a synthetic scheduler trace (JSON Lines, docs/trace-format.md) from a seed.\n"
      "A continuous-batching scheduler: requests arrive, are prefilled in chunks (sometimes\n"
      "from a prefix-cache row), verify T = draft tokens + 1 tokens per step with a random\n"
      "accepted length, get retracted when rows run out and resume later, and finish. The\n"
      "same options and seed always give the same trace; the trace always validates.");
  add_preset_option(cmd, g.preset, "Model preset (tiny, qwen3-next-80b-a3b, ...)")->required();
  add_integer(cmd, "--tp", g.tp, "Tensor-parallel degree (must divide the head counts)")
      ->capture_default_str();
  add_integer(cmd, "--rank", g.rank,
              "Which rank of the TP split the trace records (0..tp-1): its heads' inputs")
      ->capture_default_str();
  add_integer(cmd, "--requests", g.requests, "Requests arriving over the first half of the run")
      ->required();
  add_integer(cmd, "--steps", g.steps,
              "Forward steps (verify + decode events); fewer if every request finishes")
      ->required();
  add_integer(cmd, "--seed", g.seed, "Seed of the schedule; also the trace's input seed")
      ->required();
  cmd->add_flag("--json", options->json,
                "Report as one JSON object (an error as {\"error\": ...})");
  cmd->add_option("-o,--output", options->output,
                  "Trace file to write, - for standard output (a regular file is replaced "
                  "atomically; a device or FIFO is written in place; links are followed)")
      ->required();
  cmd->add_option("--ssm-dtype", options->ssm_dtype, "SSM pool dtype: f32 or bf16")
      ->capture_default_str();
  add_integer(cmd, "--draft-tokens", g.draft_tokens, "Draft tokens per verify (T = this + 1)")
      ->capture_default_str();
  cmd->add_option("--accept-prob", g.accept_prob,
                  "Probability each draft token is accepted, until the first rejection")
      ->capture_default_str();
  cmd->add_option("--accept-weights", g.accept_weights,
                  "Weights of the accepted length a = 1..T, comma separated (replaces "
                  "--accept-prob), e.g. 1,2,3,4")
      ->delimiter(',');
  cmd->add_option("--decode-prob", g.decode_prob, "Probability a step decodes without drafts")
      ->capture_default_str();
  cmd->add_option("--tree", options->tree,
                  "Verify draft trees of this shape instead of chains: top-k children per level, "
                  "e.g. 2,2,2 (1+2+4+8 nodes; format version 2); the accepted length is drawn as "
                  "for a chain and descends through uniformly chosen children");
  add_integer(cmd, "--tree-nodes", g.tree_nodes,
              "Cut the --tree shape after this many nodes, breadth first (a dynamic tree's "
              "budget); 0 = the whole shape")
      ->capture_default_str();
  cmd->add_flag("--overlap{1}", g.overlap,
                "Overlap scheduling (format version 2): every step is prepared before the "
                "previous one's results reach the host, so a request that finishes is in the next "
                "verify as a discarded entry (accepted 0), and batches come reordered; "
                "--overlap=D keeps D steps in flight (pipeline parallelism, D up to 4): a step "
                "takes the requests that none of the D-1 steps before it holds");
  add_integer(cmd, "--pool-rows", g.pool_rows,
              "Scheduler rows (working + snapshot); fewer than --max-requests makes rows "
              "run out, which retracts requests")
      ->capture_default_str();
  add_integer(cmd, "--max-requests", g.max_requests, "Request rows: most requests running at once")
      ->capture_default_str();
  add_integer(cmd, "--page-size", g.page_size,
              "Prefix-cache page in tokens; 0 = no snapshots and no prefix hits")
      ->capture_default_str();
  add_integer(cmd, "--chunk-size", g.chunk_size, "Prefill tokens per request per step")
      ->capture_default_str();
  add_integer(cmd, "--host-slots", g.host_slots,
              "A host tier of this many slots (format version 2): snapshot rows are offloaded "
              "before reuse and prefix hits are sometimes restored from a slot; 0 = none")
      ->capture_default_str();
  add_integer(cmd, "--prefill-tp", g.prefill_tp,
              "A prefill instance of this TP degree (format version 2): about half the "
              "requests arrive from it by a handoff with all but their last prompt token "
              "prefilled, resliced to this rank; 0 = none")
      ->capture_default_str();
  cmd->add_flag("--edge-chunks", g.edge_chunks,
                "Prefill chunks end one token before a page boundary, on it or one after it (at "
                "most --chunk-size tokens): chunked prefills at the page edges");
  add_integer(cmd, "--prompt-min", g.prompt_min, "Shortest prompt (tokens)")->capture_default_str();
  add_integer(cmd, "--prompt-max", g.prompt_max, "Longest prompt (tokens)")->capture_default_str();
  add_integer(cmd, "--output-min", g.output_min,
              "Fewest generated tokens per request (0 with --output-max 0 = from --steps)")
      ->capture_default_str();
  add_integer(cmd, "--output-max", g.output_max, "Most generated tokens per request")
      ->capture_default_str();
  cmd->add_option("--prefix-hit-prob", g.prefix_hit_prob,
                  "Probability a new request starts from a snapshot row (copy-on-write)")
      ->capture_default_str();
  cmd->add_option("--snapshot-prob", g.snapshot_prob,
                  "Probability a crossed page boundary is snapshotted into a track row")
      ->capture_default_str();
  add_integer(cmd, "--preempt-after", g.preempt_after,
              "Steps a waiting request waits for a row before it retracts a running one")
      ->capture_default_str();
  add_integer(cmd, "--graph-buckets", g.graph_buckets,
              "CUDA-graph batch sizes, comma separated; batches are padded up to one")
      ->delimiter(',');
  cmd->add_flag("--no-padding", options->no_padding, "No CUDA-graph padding");
  add_integer(cmd, "--check-every", g.check_every, "Steps between check events; 0 = none")
      ->capture_default_str();
  return {cmd, [options] { return run_generate(*options); }};
}

}  // namespace specstate::cli
