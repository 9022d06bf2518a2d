#include "core/index_list.h"

#include <algorithm>
#include <charconv>
#include <string>

#include "core/errors.h"

namespace specstate {
namespace {

struct ListParser {
  std::string_view text, flag, noun;
  int64_t count;

  [[noreturn]] void fail(const std::string& why) const {
    throw InputError(std::string(flag) + " '" + std::string(text) + "': " + why);
  }

  int64_t index(std::string_view item) const {
    int64_t value = -1;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() || value < 0 ||
        value >= count) {
      std::string why(1, '\'');  // built by appending: g++ 12 warns falsely on "'" + string
      why.append(item).append("' is not a ").append(noun).append(" 0..");
      fail(why + std::to_string(count - 1));
    }
    return value;
  }
};

}  // namespace

std::vector<int64_t> parse_index_list(std::string_view text, int64_t count, std::string_view flag,
                                      std::string_view noun) {
  const ListParser parse{text, flag, noun, count};
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = text.substr(start, comma - start);
    const size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      out.push_back(parse.index(item));
    } else {
      const int64_t first = parse.index(item.substr(0, dash));
      const int64_t last = parse.index(item.substr(dash + 1));
      if (last < first) parse.fail("range '" + std::string(item) + "' runs backwards");
      for (int64_t i = first; i <= last; ++i)
        out.push_back(i);
    }
    start = comma + 1;
  }
  std::sort(out.begin(), out.end());
  if (const auto twice = std::adjacent_find(out.begin(), out.end()); twice != out.end())
    parse.fail("names " + std::string(noun) + " " + std::to_string(*twice) + " twice");
  return out;
}

}  // namespace specstate
