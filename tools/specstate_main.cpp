// The specstate command line. Exit codes: 0 ok, 1 a check failed (e.g. a divergence), 2 bad
// input (a flag, a trace: "FILE:LINE: message" on stderr), 3 an internal error.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <vector>

#include "core/errors.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "specstate: bit-exact reference of GDN recurrent-state handling under MTP speculative "
      "decoding"};
  app.require_subcommand(1);
  const std::vector<specstate::cli::Command> commands = {
      specstate::cli::add_demo(app),
      specstate::cli::add_generate(app),
      specstate::cli::add_validate(app),
      specstate::cli::add_replay(app),
      specstate::cli::add_footprint(app),
      specstate::cli::add_dump(app),
  };
  try {
    app.parse(argc, argv);
    for (const auto& command : commands) {
      if (*command.app) return command.run();
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const specstate::InputError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "specstate: internal error: %s\n", e.what());
    return 3;
  }
  return 0;
}
