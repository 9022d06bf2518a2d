// libFuzzer target over the trace reader and the schedule validator (docs/failure-classes.md,
// "Fuzzing"). Whatever the bytes, reading and validating must either succeed or throw an
// InputError: any other exception, crash, hang or sanitizer report is a finding. A trace that
// passes both must also survive a write/read round trip unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "core/errors.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"

namespace {

using specstate::InputError;
namespace trace = specstate::trace;

// Aborts (a finding) when a written and re-read valid trace differs from the original, but for
// the format version, which the writer lowers to the oldest that expresses the trace (a header
// that says 2 and uses nothing of version 2 is written as version 1).
void check_round_trip(const trace::Trace& original) {
  std::ostringstream out;
  trace::write_trace(out, original);
  std::istringstream in(out.str());
  const trace::Trace again = trace::read_trace(in, "round-trip");
  trace::Header lowered = original.header;
  lowered.version = lowered.lowest_version();
  bool same = again.header == lowered && again.events.size() == original.events.size();
  for (size_t i = 0; same && i < again.events.size(); ++i)
    same = again.events[i].event == original.events[i].event;
  if (!same) {
    std::fprintf(stderr, "round trip changed the trace:\n%s\n", out.str().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  trace::Trace parsed;
  try {
    parsed = trace::read_trace(in, "fuzz.jsonl");
    trace::validate_trace(parsed);
  } catch (const InputError&) {
    return 0;  // refused with a message: the expected outcome for most inputs
  }
  check_round_trip(parsed);
  return 0;
}
