// Generates a trace and replays it through the five CPU lanes with the installed libraries.
#include <cstdio>

#include "sim/generator.h"
#include "sim/simulator.h"

int main() {
  specstate::sim::GeneratorOptions g;
  g.requests = 6;
  g.steps = 40;
  const specstate::trace::Trace trace = specstate::sim::generate_trace(g);
  specstate::sim::SimOptions options;
  for (specstate::StrategyKind s : specstate::all_strategies())
    options.lanes.push_back({"cpu", s});
  const specstate::sim::ReplayReport report = specstate::sim::replay(trace, options);
  std::printf("%s: %zu lanes, %zu events\n", report.agree ? "AGREE" : "DIVERGENCE",
              report.lanes.size(), report.events);
  return report.agree ? 0 : 1;
}
