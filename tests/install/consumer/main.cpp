// Generates a trace and replays it through every CPU lane with the installed libraries, their
// headers included as <specstate/...> (README.md, "Build and install", shows this program).
#include <cstdio>

#include <specstate/sim/generator.h>
#include <specstate/sim/simulator.h>

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
