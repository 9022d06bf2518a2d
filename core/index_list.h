// Lists of indices as users write them on a command line: "0,17,35", "0-3", "0-3,17".
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace specstate {

// The indices `text` names, ascending, each inside 0..count-1 and named once. Throws
// InputError("FLAG 'TEXT': ...") naming the item that is not a `noun` of that range, a range
// that runs backwards, or an index named twice.
std::vector<int64_t> parse_index_list(std::string_view text, int64_t count, std::string_view flag,
                                      std::string_view noun);

}  // namespace specstate
