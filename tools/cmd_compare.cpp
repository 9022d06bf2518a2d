// specstate compare: two dumps (docs/interop.md), typically an engine's against specstate's.
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/errors.h"
#include "sim/dump_compare.h"
#include "tools/commands.h"
#include "tools/integer_option.h"

namespace specstate::cli {
namespace {

// CLI::NonNegativeNumber lets "nan" through (nan < 0 is false).
CLI::Validator finite_non_negative() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) || value < 0)
          return text + " is not a finite number >= 0";
        return "";
      },
      "NUMBER >= 0");
}

struct CompareArgs {
  std::string a, b;
  sim::DumpTolerance tolerance;
  bool json = false;
};

// Forensics as JSON: the verdict, and every candidate nearest first (an infinite distance, from
// a NaN, is null).
nlohmann::ordered_json forensics_json(const sim::DumpForensics& f) {
  nlohmann::ordered_json candidates = nlohmann::ordered_json::array();
  for (const sim::DumpCandidate& c : f.candidates) {
    candidates.push_back({{"offset", c.offset},
                          {"row", c.row},
                          {"token_text", c.token_text},
                          {"distance", c.distance()},
                          {"ssm", c.ssm},
                          {"conv", c.conv}});
  }
  return {{"examined", f.examined},     {"among", f.among},       {"row", f.row},
          {"token_text", f.token_text}, {"matched", f.matched()}, {"verdict", f.verdict()},
          {"candidates", candidates}};
}

// The report of --json: one object, "first" and "forensics" only for a divergence.
nlohmann::ordered_json report_json(const CompareArgs& args, const sim::DumpComparison& c) {
  nlohmann::ordered_json out = {
      {"a", args.a},
      {"b", args.b},
      {"agree", c.agree},
      {"tolerance",
       {{"rtol", args.tolerance.rtol}, {"atol", args.tolerance.atol}, {"ulp", args.tolerance.ulp}}},
      {"files", c.files},
      {"tokens", c.tokens},
      {"elements", c.elements},
      {"max_abs", c.max_abs},
      {"only_a", c.only_a},
      {"only_b", c.only_b}};
  if (c.first) {
    const sim::DumpDifference& d = *c.first;
    out["first"] = {{"file", d.file},
                    {"layer", d.layer},
                    {"token", d.token},
                    {"token_text", d.token_text},
                    {"index", d.coords},
                    {"index_text", d.index},
                    {"a", d.a},
                    {"b", d.b},
                    {"outside", d.outside},
                    {"elements", d.elements}};
  }
  if (c.forensics) out["forensics"] = forensics_json(*c.forensics);
  return out;
}

}  // namespace

Command add_compare(CLI::App& parent) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = parent.add_subcommand(
      "compare",
      "Compare two dumps in the layout of docs/interop.md (meta.json, layerNN/*.npy), typically\n"
      "an engine's dump (DIR_A) against `specstate dump` of the same trace and request (DIR_B).\n"
      "Every file present in both is compared, token by token; an element agrees when\n"
      "|a - b| <= atol + rtol * |b| or when they are at most --ulp float32 ulps apart.\n"
      "Prints AGREE, or the first divergence (token, trace event, layer, file, element, both\n"
      "values) and, at a token, which state the second dump holds there among the first's\n"
      "up to 4 tokens before and after (\"stale by one token\", with the distance to each: max\n"
      "|diff| per head over max |value| per head; the other way round when that explains it);\n"
      "exits 0 when they agree, 1 when they differ, 2 on an input error.");
  cmd->add_option("DIR_A", args->a, "First dump (the engine's)")->required();
  cmd->add_option("DIR_B", args->b, "Second dump (the reference's)")->required();
  cmd->add_option("--rtol", args->tolerance.rtol, "Relative tolerance, of |b|")
      ->check(finite_non_negative());
  cmd->add_option("--atol", args->tolerance.atol, "Absolute tolerance")
      ->check(finite_non_negative());
  add_integer(cmd, "--ulp", args->tolerance.ulp,
              "Float32 units in the last place (one bf16 ulp is 65536 of them)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
  cmd->add_flag("--json", args->json, "Report as one JSON object (an error as {\"error\": ...})");
  return {cmd, [args] {
            const sim::DumpComparison c = sim::compare_dumps(args->a, args->b, args->tolerance);
            if (args->json) {
              // Directory and file names need not be UTF-8: bad bytes become U+FFFD.
              const auto replace = nlohmann::ordered_json::error_handler_t::replace;
              std::printf("%s\n", report_json(*args, c).dump(2, ' ', false, replace).c_str());
            } else {
              std::printf("%s\n", c.message(args->a, args->b).c_str());
            }
            return c.agree ? 0 : 1;
          }};
}

}  // namespace specstate::cli
