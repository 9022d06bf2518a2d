#include "core/errors.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace specstate {

InputError::InputError(const std::string& file, long line, const std::string& message)
    : std::runtime_error(quote_file_name(file) + ":" + std::to_string(line) + ": " + message),
      file_(file),
      line_(line),
      message_(message) {}

std::string quote_file_name(const std::string& file) {
  auto plain = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::strchr("._-/+@%,=~", c) != nullptr;
  };
  bool quote = file.empty();
  for (char c : file)
    quote = quote || c == '\0' || !plain(static_cast<unsigned char>(c));
  if (!quote) return file;
  std::string out = "\"";
  for (char ch : file) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;  // printable ASCII and UTF-8 bytes
    }
  }
  return out + "\"";
}

void assert_fail(const char* expression, const char* message, const char* file, int line) {
  std::fprintf(stderr, "specstate: internal invariant broken at %s:%d: %s (%s)\n", file, line,
               message, expression);
  std::fflush(stderr);
  std::abort();
}

}  // namespace specstate
