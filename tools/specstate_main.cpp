// The specstate command line. Exit codes: 0 ok, 1 a check failed (e.g. a divergence), 2 bad
// input (a flag, a trace: "FILE:LINE: message" on stderr) or output that could not be written,
// 3 an internal error.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <vector>

#include "core/errors.h"
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

int run(int argc, char** argv) {
  CLI::App app{
      "specstate: bit-exact reference of GDN recurrent-state handling under MTP speculative "
      "decoding"};
  app.require_subcommand(1);
  const std::vector<specstate::cli::Command> commands = {
      specstate::cli::add_demo(app),      specstate::cli::add_generate(app),
      specstate::cli::add_validate(app),  specstate::cli::add_replay(app),
      specstate::cli::add_footprint(app), specstate::cli::add_dump(app),
      specstate::cli::add_compare(app),
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

}  // namespace

int main(int argc, char** argv) {
  reserve_standard_descriptors();
  return finish_output(run(argc, argv));
}
