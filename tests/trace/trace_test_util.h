// Helpers for the trace tests: build a trace text line by line and get its first error.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"

namespace specstate::trace::testing {

// pool_rows 8, max_requests 4, T = 4, page 16.
inline const std::string kHeader =
    R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", )"
    R"("draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, "seed": 1})";

// Request 5 in request row 0, working row 2, 24 tokens, a snapshot of 16 tokens in row 3.
inline const std::string kStart5 =
    R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 24, )"
    R"("track": [{"length": 16, "row": 3}]})";

inline std::string lines(const std::vector<std::string>& l) {
  std::string text;
  for (const std::string& s : l)
    text += s + "\n";
  return text;
}

// The message of the first error reading and validating `text` as file "t.jsonl", or "ok".
inline std::string first_error(const std::string& text) {
  std::istringstream in(text);
  try {
    validate_trace(read_trace(in, "t.jsonl"));
  } catch (const InputError& e) {
    return e.what();
  }
  return "ok";
}

// The first error of a trace made of kHeader and the given event lines (line 2 onward).
inline std::string event_error(const std::vector<std::string>& events) {
  std::vector<std::string> all = {kHeader};
  all.insert(all.end(), events.begin(), events.end());
  return first_error(lines(all));
}

}  // namespace specstate::trace::testing
