// Integer options that refuse what does not fit instead of wrapping: CLI11 reads "-1" and
// "18446744073709551616" for a uint64_t as 18446744073709551615. The text is checked first: a
// decimal integer, no sign for unsigned types, inside the type's range; otherwise the error
// names the flag and the bounds ("--request: '-1' is not an integer in 0..1844...615"), exit 2.
#pragma once

#include <CLI/CLI.hpp>
#include <charconv>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace specstate::cli {

template <typename Int>
CLI::Validator integer_text() {
  static_assert(std::is_integral_v<Int>);
  const std::string bounds = std::to_string(std::numeric_limits<Int>::min()) + ".." +
                             std::to_string(std::numeric_limits<Int>::max());
  return CLI::Validator(
      [bounds](std::string& text) -> std::string {
        Int value;
        const char* end = text.data() + text.size();
        const auto [at, error] = std::from_chars(text.data(), end, value);
        if (!text.empty() && error == std::errc() && at == end) return {};
        return "'" + text + "' is not an integer in " + bounds;
      },
      "");
}

template <typename T>
struct IntegerOf {
  using type = T;
};
template <typename T>
struct IntegerOf<std::vector<T>> {
  using type = T;
};

// add_option for an integer or a vector of integers (each element checked).
template <typename T>
CLI::Option* add_integer(CLI::App* cmd, const std::string& name, T& value,
                         const std::string& description) {
  return cmd->add_option(name, value, description)
      ->check(integer_text<typename IntegerOf<T>::type>());
}

}  // namespace specstate::cli
