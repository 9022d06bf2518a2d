#include "core/suggest.h"

#include <algorithm>
#include <cctype>

namespace specstate {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& names) {
  const std::string w = lower(word);
  if (w.empty()) return "";
  std::vector<size_t> distances;
  for (std::string_view name : names)
    distances.push_back(edit_distance(w, lower(name)));
  const size_t closest = *std::min_element(distances.begin(), distances.end());
  std::string near;
  for (size_t i = 0; i < names.size(); ++i) {
    const bool typo = distances[i] <= 2 && distances[i] == closest;
    if (!typo && !lower(names[i]).starts_with(w)) continue;
    near += (near.empty() ? "'" : ", '") + std::string(names[i]) + "'";
  }
  return near.empty() ? "" : "; did you mean " + near + "?";
}

}  // namespace specstate
