// "Did you mean" for a mistyped name (a command, a preset, a strategy, a backend, a fault).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace specstate {

// Levenshtein distance of two short words.
size_t edit_distance(std::string_view a, std::string_view b);

// "; did you mean 'a', 'b'?" naming, in the order given, the `names` nearest to `word` (at the
// smallest edit distance, if at most 2) and those that begin with it (a shortened name:
// "qwen3-next"), ignoring case; "" when none is near. `names` is not empty.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& names);

}  // namespace specstate
