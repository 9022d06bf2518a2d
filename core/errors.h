// The errors specstate raises, each for one kind of fault, never mixed:
//  - InputError: the user's input is wrong (trace line, flag, preset, size). The CLI prints
//    what() — "FILE:LINE: message" when a location is known — and exits with code 2; under
//    --json it also writes file(), line() and message() as a JSON object.
//  - std::invalid_argument: a malformed call of a StateBackend primitive (backends/
//    state_backend.h), a bug in its caller. The simulator reports it at its trace line: as the
//    finding of a lane with an injected fault, or (std::logic_error) as a bug of a clean lane.
//  - std::bad_alloc: memory the system refused (the CPU backend's mmap); the memory check
//    before allocation (tools/lane_checks.h) makes it rare.
//  - SPECSTATE_ASSERT: an internal invariant is broken (a bug in specstate). It prints the
//    invariant, the file and the line, and aborts.
// Anything else reaching the CLI is an internal error: exit code 3.
#pragma once

#include <stdexcept>
#include <string>

namespace specstate {

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message)
      : std::runtime_error(message), message_(message) {}
  // "FILE:LINE: message", FILE as quote_file_name() writes it.
  InputError(const std::string& file, long line, const std::string& message);

  // The location and the message without it, for reports in JSON (line 0: none known).
  const std::string& file() const { return file_; }
  long line() const { return line_; }
  const std::string& message() const { return message_; }

 private:
  std::string file_;
  long line_ = 0;
  std::string message_;
};

// `file` as it goes in front of ":LINE:" in a message: as it is when it holds only letters,
// digits and ._-/+@%,=~, else in double quotes with C escapes (\n, \", \xNN), so that no file
// name (a newline, a colon, a control byte in it) can fake a location or split the line.
std::string quote_file_name(const std::string& file);

[[noreturn]] void assert_fail(const char* expression, const char* message, const char* file,
                              int line);

}  // namespace specstate

#define SPECSTATE_ASSERT(cond, message)                                          \
  do {                                                                           \
    if (!(cond)) ::specstate::assert_fail(#cond, (message), __FILE__, __LINE__); \
  } while (0)
