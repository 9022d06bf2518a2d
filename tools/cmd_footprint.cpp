// specstate footprint: memory per strategy and state bytes moved per verify step.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/errors.h"
#include "core/geometry.h"
#include "core/strategy/strategy.h"
#include "tools/commands.h"
#include "tools/footprint_table.h"

namespace specstate::cli {
namespace {

struct FootprintArgs {
  std::string preset;
  int32_t tp = 1;
  int32_t batch = 0;
  int32_t draft_tokens = 3;
  std::string ssm_dtype = "f32";
  int32_t pool_rows = 0;  // 0: 2 x batch
  bool json = false;
};

double gib(int64_t bytes) {
  return double(bytes) / (1024.0 * 1024.0 * 1024.0);
}

PoolConfig footprint_config(const FootprintArgs& a) {
  if (a.batch < 1) throw InputError("--batch must be >= 1");
  PoolConfig config;
  config.geometry = make_geometry(a.preset, a.tp);
  config.ssm_dtype = parse_ssm_dtype(a.ssm_dtype);
  config.tokens_per_verify = a.draft_tokens + 1;
  config.max_requests = a.batch;
  config.pool_rows = a.pool_rows > 0 ? a.pool_rows : 2 * a.batch;
  return config;
}

nlohmann::json footprint_json(const PoolConfig& config) {
  nlohmann::json j = {{"preset", config.geometry.preset},
                      {"tp", config.geometry.tp},
                      {"ssm_dtype", to_string(config.ssm_dtype)},
                      {"tokens_per_verify", config.tokens_per_verify},
                      {"batch", config.max_requests},
                      {"pool_rows", config.pool_rows}};
  for (StrategyKind kind : all_strategies()) {
    const StrategyLayout l = make_layout(kind, config);
    const StepBytes step = verify_step_bytes(l, config.tokens_per_verify);
    j["strategies"].push_back({{"strategy", to_string(kind)},
                               {"pool_bytes", l.pool_bytes},
                               {"draft_bytes", l.draft_bytes},
                               {"scratch_bytes", l.scratch_bytes},
                               {"inspect_bytes", l.inspect_bytes},
                               {"payload_bytes", l.payload_bytes},
                               {"total_bytes", l.total_bytes()},
                               {"state_bytes_per_step", step.state_total() * config.max_requests},
                               {"payload_bytes_per_step",
                                (step.payload_read + step.payload_write) * config.max_requests}});
  }
  return j;
}

int run_footprint(const FootprintArgs& a) {
  const PoolConfig config = footprint_config(a);
  if (a.json) {
    std::printf("%s\n", footprint_json(config).dump(2).c_str());
  } else {
    print_footprint_table(config);
  }
  return 0;
}

}  // namespace

void print_footprint_table(const PoolConfig& config) {
  const int32_t batch = config.max_requests;
  std::printf("%s TP%d, SSM %s, T=%d, batch %d, pool %d rows, %d GDN layers\n",
              config.geometry.preset.c_str(), config.geometry.tp,
              std::string(to_string(config.ssm_dtype)).c_str(), config.tokens_per_verify, batch,
              config.pool_rows, config.geometry.layers);
  std::printf("%-9s %10s %14s %10s %10s   %15s %11s\n", "strategy", "pool GiB", "draft/scr GiB",
              "payload", "total GiB", "state GiB/step", "states/req");
  for (StrategyKind kind : all_strategies()) {
    const StrategyLayout l = make_layout(kind, config);
    const StepBytes step = verify_step_bytes(l, config.tokens_per_verify);
    const double states = double(step.state_total()) / double(l.shape.state_row_bytes());
    const int64_t extra = l.draft_bytes + l.scratch_bytes + l.inspect_bytes;
    std::printf("%-9s %10.3f %14.3f %10.3f %10.3f   %15.3f %11.2f\n",
                std::string(to_string(kind)).c_str(), gib(l.pool_bytes), gib(extra),
                gib(l.payload_bytes), gib(l.total_bytes()), gib(step.state_total() * batch),
                states);
  }
  std::printf(
      "state GiB/step: SSM + conv bytes one verify step of the whole batch reads and writes (all\n"
      "tokens accepted); states/req: the same per request, in units of one full state.\n");
}

Command add_footprint(CLI::App& parent) {
  auto args = std::make_shared<FootprintArgs>();
  CLI::App* cmd = parent.add_subcommand(
      "footprint",
      "Memory each strategy allocates (scheduler pool, draft region or scratch, payload) and the\n"
      "state bytes one verify step moves, for a model preset and batch size. Computed from the\n"
      "same layout the backends allocate.");
  cmd->add_option("--preset", args->preset, "Model preset (e.g. qwen3-next-80b-a3b, tiny)")
      ->required();
  cmd->add_option("--tp", args->tp, "Tensor-parallel degree (heads divided by it)");
  cmd->add_option("--batch", args->batch, "Running requests (request rows)")->required();
  cmd->add_option("--draft-tokens", args->draft_tokens,
                  "Draft tokens per verify (T = draft tokens + 1)")
      ->required();
  cmd->add_option("--ssm-dtype", args->ssm_dtype, "SSM pool dtype: f32 (default) or bf16");
  cmd->add_option("--pool-rows", args->pool_rows, "Scheduler rows (default 2 x batch)");
  cmd->add_flag("--json", args->json, "Write JSON instead of the table");
  return {cmd, [args] { return run_footprint(*args); }};
}

}  // namespace specstate::cli
