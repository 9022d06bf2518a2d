// libFuzzer target over the validator and the pool policy (docs/failure-classes.md,
// "Fuzzing"): every trace the validator accepts must be accepted by the policy of every
// strategy, event by event, and every plan must pass the row-ownership checker. A refusal or a
// violation on a valid trace means the validator and the policy disagree on what a trace
// means. When the pool and the trace are small (kMaxExecutedBytes, kMaxExecutedTokens), the plans
// also run on the CPU backend, so that memory a plan should not cost (padding rows materialised,
// saved states of finished requests kept) shows as a finding or as libFuzzer's -rss_limit_mb /
// -malloc_limit_mb.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "core/errors.h"
#include "core/strategy/pool_policy.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "sim/ownership.h"
#include "sim/plan_executor.h"
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

// Pools up to this size run on the CPU backend (tiny preset, a few dozen rows), and traces of up
// to this many tokens: enough to cross the backend's 512-token prefill parts several times, few
// enough for libFuzzer's -timeout (a valid extend may carry 2^24 tokens: minutes of arithmetic,
// which is not a finding).
constexpr int64_t kMaxExecutedBytes = int64_t{4} << 20;
constexpr int64_t kMaxExecutedTokens = 4096;

int64_t trace_tokens(const trace::Trace& t) {
  int64_t tokens = 0;
  for (const trace::Line& line : t.events)
    tokens += specstate::sim::event_tokens(line.event, t.header.tokens_per_verify());
  return tokens;
}

// Memory a plan must not keep: a saved state of a request that is not retracted, outputs for
// more tasks than the batch and one padding task.
void check_memory(const trace::Line& line, specstate::StrategyKind kind,
                  const specstate::PoolPolicy& policy, const specstate::sim::SwapSpace& swap,
                  const specstate::StateBackend& backend) {
  for (const auto& [request, state] : swap.saved) {
    if (!policy.has(request) || !policy.live(request).retracted) {
      finding(line, kind,
              "the saved state of request " + std::to_string(request) + " outlives its retract");
    }
  }
  size_t batch = 0;
  if (const auto* v = std::get_if<trace::Verify>(&line.event)) batch = v->batch.size();
  if (const auto* d = std::get_if<trace::Decode>(&line.event)) batch = d->batch.size();
  if (batch > 0 && size_t(backend.read_outputs().tasks) > batch + 1) {
    finding(line, kind,
            "outputs for " + std::to_string(backend.read_outputs().tasks) + " tasks, batch " +
                std::to_string(batch) + " (padding must cost one task)");
  }
}

void run_policy(const trace::Trace& t, specstate::StrategyKind kind) {
  std::unique_ptr<specstate::PoolPolicy> made;
  try {
    made = std::make_unique<specstate::PoolPolicy>(kind, specstate::sim::pool_config(t.header));
  } catch (const InputError&) {
    return;  // a strategy that refuses the header (window and draft trees): replay leaves it out
  }
  specstate::PoolPolicy& policy = *made;
  specstate::sim::OwnershipChecker ownership(policy.layout());
  std::unique_ptr<specstate::StateBackend> backend;
  specstate::sim::SwapSpace swap;
  if (policy.layout().shape.total_bytes() <= kMaxExecutedBytes &&
      trace_tokens(t) <= kMaxExecutedTokens)
    backend = specstate::make_cpu_backend(policy.layout().shape, t.header.seed);
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
    if (!backend) continue;
    try {
      specstate::sim::execute(plan, *backend, swap);
    } catch (const std::invalid_argument& e) {
      finding(line, kind, std::string("the backend refuses the plan: ") + e.what());
    }
    check_memory(line, kind, policy, swap, *backend);
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
