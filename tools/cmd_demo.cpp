// specstate demo: a built-in scenario through the CPU backend.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backends/registry.h"
#include "core/errors.h"
#include "tools/commands.h"

namespace specstate::cli {
namespace {

// Built-in scenario: four requests on the tiny preset; each step verifies T = 4 tokens in two
// ways (inline output rows, and payload + replay of the accepted tokens) and checks that both
// leave bit-identical states and outputs.
int run_demo(const std::string& preset, const std::string& dtype) {
  const int32_t T = 4, requests = 4, steps = 6;
  PoolShape shape;
  shape.geometry = make_geometry(preset, 1);
  shape.ssm_dtype = parse_ssm_dtype(dtype);
  shape.conv_cols = shape.geometry.conv_state_cols();
  shape.state_rows = requests * (T + 1);  // working row + T output rows per request
  shape.payload_slots = requests;
  shape.payload_tokens = T;
  auto backend = make_backend("cpu", shape, 2026);
  std::printf("specstate demo: preset %s, SSM %s, %d requests, T = %d, %d verify steps\n",
              preset.c_str(), dtype.c_str(), requests, T, steps);

  std::vector<int64_t> position(requests);
  std::vector<PrefillTask> prefills;
  for (int r = 0; r < requests; ++r) {
    PrefillTask p;
    p.tokens = {uint64_t(r), 0, 8 + 5 * r};
    p.writes = {{p.tokens.count, r * (T + 1)}};
    position[r] = p.tokens.count;
    prefills.push_back(p);
  }
  backend->prefill(prefills);

  int mismatches = 0;
  for (int step = 0; step < steps; ++step) {
    std::vector<VerifyTask> inline_tasks, payload_tasks;
    for (int r = 0; r < requests; ++r) {
      const int32_t working = r * (T + 1);
      VerifyTask v;
      v.tokens = {uint64_t(r), position[r], T};
      v.from = StateLoc::at(working);
      for (int j = 0; j < T; ++j)
        v.out_rows[j] = working + 1 + j;
      inline_tasks.push_back(v);
      VerifyTask pv = v;
      pv.out_rows = VerifyTask::filled_rows();
      pv.payload_slot = r;
      payload_tasks.push_back(pv);
    }
    backend->verify(VerifyMode::kStateRows, inline_tasks);
    const VerifyOutputs inline_out = backend->read_outputs();
    backend->verify(VerifyMode::kPayload, payload_tasks);
    if (backend->read_outputs().values != inline_out.values) ++mismatches;

    std::printf("step %d  accepted", step);
    std::vector<ReplayTask> replays;
    std::vector<int32_t> accepted(requests);
    for (int r = 0; r < requests; ++r) {
      accepted[r] = 1 + (step * 7 + r * 3) % T;
      replays.push_back({StateLoc::at(r * (T + 1)), r, accepted[r], r * (T + 1)});
      std::printf(" %d", accepted[r]);
    }
    backend->replay(replays);  // commit: working row := state after the accepted tokens
    std::printf("  working-row digests");
    for (int r = 0; r < requests; ++r) {
      const int32_t working = r * (T + 1);
      const bool same = backend->digest_row(working) == backend->digest_row(working + accepted[r]);
      mismatches += !same;
      position[r] += accepted[r];
      std::printf(" %016llx%s", (unsigned long long)backend->digest_row(working),
                  same ? "" : "(!)");
    }
    std::printf("\n");
  }
  std::printf(
      "%s: replay of the accepted tokens equals the inline output row for every request and step\n",
      mismatches == 0 ? "AGREE" : "DIVERGE");
  return mismatches == 0 ? 0 : 1;
}

struct DemoOptions {
  std::string preset = "tiny";
  std::string dtype = "f32";
};

}  // namespace

Command add_demo(CLI::App& parent) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* demo = parent.add_subcommand(
      "demo", "Run a built-in scenario through the CPU backend and check it agrees with itself");
  demo->add_option("--preset", options->preset, "Model preset (tiny, qwen3-next-80b-a3b, ...)");
  demo->add_option("--ssm-dtype", options->dtype, "SSM pool dtype: f32 or bf16");
  return {demo, [options] { return run_demo(options->preset, options->dtype); }};
}

}  // namespace specstate::cli
