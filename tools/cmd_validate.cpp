// specstate validate: check a trace and summarise it.
#include <cstdio>
#include <memory>
#include <string>

#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "tools/commands.h"
#include "tools/summary_json.h"

namespace specstate::cli {

Command add_validate(CLI::App& parent) {
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = parent.add_subcommand(
      "validate",
      "Check a trace (docs/trace-format.md): its syntax, its header, and that the schedule is\n"
      "possible (requests exist and run, rows are in range and not owned by another request,\n"
      "accepted lengths are in 1..T, snapshots sit on crossed page boundaries...). Prints a\n"
      "summary and exits 0, or prints the first error as FILE:LINE: message and exits 2.");
  cmd->add_option("FILE", *file, "Trace file (JSON Lines), - for standard input")->required();
  cmd->add_flag("--json", *json, "The summary as one JSON object (an error as {\"error\": ...})");
  return {cmd, [file, json] {
            const trace::Trace trace = trace::read_trace(*file);
            const trace::TraceSummary summary = trace::validate_trace(trace);
            if (*json) {
              nlohmann::ordered_json out = {{"file", *file}, {"valid", true}};
              out["summary"] = summary_json(summary);
              std::printf("%s\n", out.dump(2).c_str());
              return 0;
            }
            std::printf("%s: valid specstate trace (format version %d)\n%s", file->c_str(),
                        trace.header.version, trace::format_summary(summary).c_str());
            return 0;
          }};
}

}  // namespace specstate::cli
