// The subcommands of the specstate command line. Each lives in its own cmd_*.cpp: it adds
// its CLI11 subcommand (options bound to state it owns) and returns what runs it. To add a
// command: declare add_<name> here, list it in specstate_main.cpp and tools/CMakeLists.txt.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace specstate::cli {

struct Command {
  CLI::App* app = nullptr;   // parsed when the user names it
  std::function<int()> run;  // the exit code; may throw InputError (exit code 2)
};

Command add_demo(CLI::App& parent);
Command add_generate(CLI::App& parent);
Command add_validate(CLI::App& parent);
Command add_replay(CLI::App& parent);
Command add_report(CLI::App& parent);  // in cmd_replay.cpp: a replay drawn into HTML
Command add_footprint(CLI::App& parent);
Command add_dump(CLI::App& parent);
Command add_compare(CLI::App& parent);
Command add_minimize(CLI::App& parent);
Command add_presets(CLI::App& parent);

}  // namespace specstate::cli
