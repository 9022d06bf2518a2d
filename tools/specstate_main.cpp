// The specstate command line. Exit codes: 0 ok, 1 a check failed (e.g. a divergence), 2 bad
// input (a flag, a trace: "FILE:LINE: message" on stderr) or output that could not be written,
// 3 an internal error.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/suggest.h"
#include "tools/commands.h"

namespace {

// A closed standard descriptor gets a read-only /dev/null: no file the command opens later can
// take descriptor 1 or 2 (printf would write into it), and every write to it fails, which
// finish_output() then reports.
void reserve_standard_descriptors() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);  // the lowest free one: fd
    if (null >= 0 && null != fd) {
      dup2(null, fd);
      close(null);
    }
  }
}

// A report that did not reach its reader is a failure whatever the command found: exit 2.
int finish_output(int code) {
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    const int error = errno;
    std::fprintf(stderr, "specstate: cannot write standard output: %s\n",
                 error != 0 ? std::strerror(error) : "write error");
    code = 2;
  }
  if (std::fflush(stderr) != 0 || std::ferror(stderr)) code = 2;
  return code;
}

// The command `word` names: a known one, or InputError naming the nearest ones.
CLI::App* find_command(CLI::App& app, const std::string& word) {
  std::vector<std::string_view> names;
  for (CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == word) return sub;
    names.push_back(sub->get_name());
  }
  throw specstate::InputError("unknown command '" + word + "'" +
                              specstate::did_you_mean(word, names) +
                              " (specstate --help lists the commands)");
}

int run(int argc, char** argv) {
  CLI::App app{
      "specstate: bit-exact reference of GDN recurrent-state handling under MTP speculative "
      "decoding"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "specstate " SPECSTATE_VERSION);
  const std::vector<specstate::cli::Command> commands = {
      specstate::cli::add_demo(app),      specstate::cli::add_generate(app),
      specstate::cli::add_validate(app),  specstate::cli::add_replay(app),
      specstate::cli::add_footprint(app), specstate::cli::add_dump(app),
      specstate::cli::add_compare(app),   specstate::cli::add_presets(app),
      specstate::cli::add_minimize(app),  specstate::cli::add_report(app),
  };
  std::string help_topic;
  CLI::App* help = app.add_subcommand("help", "Show the help of specstate or of one command");
  help->add_option("COMMAND", help_topic, "The command to explain");
  try {
    // A first argument that is no option and no command is a mistyped command.
    if (argc > 1 && argv[1][0] != '-') find_command(app, argv[1]);
    app.parse(argc, argv);
    if (*help) {
      // The formatter itself: App::help() of the parent would show the selected `help`.
      CLI::App* topic = help_topic.empty() ? &app : find_command(app, help_topic);
      std::printf("%s", app.get_formatter()
                            ->make_help(topic, topic == &app ? argv[0] : topic->get_name(),
                                        CLI::AppFormatMode::Normal)
                            .c_str());
      return 0;
    }
    for (const auto& command : commands) {
      if (*command.app) return command.run();
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const specstate::InputError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    // Under --json the report on stdout is a JSON error object, so that a script reading it
    // gets one either way.
    if (std::find_if(argv + 1, argv + argc,
                     [](const char* a) { return std::strcmp(a, "--json") == 0; }) != argv + argc) {
      nlohmann::ordered_json error = {{"error", e.what()}, {"message", e.message()}};
      if (e.line() > 0) {
        error["file"] = e.file();
        error["line"] = e.line();
      }
      // A file name need not be UTF-8: its bad bytes become U+FFFD instead of an exception
      // thrown inside this handler (std::terminate).
      std::printf("%s\n",
                  error.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "specstate: internal error: %s\n", e.what());
    return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  reserve_standard_descriptors();
  return finish_output(run(argc, argv));
}
