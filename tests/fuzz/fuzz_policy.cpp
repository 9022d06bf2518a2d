// libFuzzer target over the validator and the pool policy (docs/failure-classes.md,
// "Fuzzing"): every trace the validator accepts must be accepted by the policy of every
// strategy, event by event, and every plan must pass the row-ownership checker. A refusal or a
// violation on a valid trace means the validator and the policy disagree on what a trace
// means. Nothing is allocated: plans are built and checked, never run.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "core/errors.h"
#include "core/strategy/pool_policy.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/ownership.h"
#include "sim/simulator.h"

namespace {

using specstate::InputError;
namespace trace = specstate::trace;

[[noreturn]] void finding(const trace::Line& line, specstate::StrategyKind kind,
                          const std::string& what) {
  std::fprintf(stderr, "valid trace, line %ld, %s: %s\n", line.line,
               std::string(specstate::to_string(kind)).c_str(), what.c_str());
  std::abort();
}

void run_policy(const trace::Trace& t, specstate::StrategyKind kind) {
  specstate::PoolPolicy policy(kind, specstate::sim::pool_config(t.header));
  specstate::sim::OwnershipChecker ownership(policy.layout());
  for (const trace::Line& line : t.events) {
    specstate::Plan plan;
    try {
      plan = specstate::sim::plan_for(policy, line.event);
    } catch (const InputError& e) {
      finding(line, kind, std::string("the policy refuses it: ") + e.what());
    }
    ownership.begin_event(line.event);
    if (auto bad = ownership.check(plan)) finding(line, kind, *bad);
    ownership.end_event(line.event);
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
    return 0;
  }
  for (specstate::StrategyKind kind : specstate::all_strategies())
    run_policy(parsed, kind);
  return 0;
}
