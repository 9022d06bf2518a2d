// What bench_step measures its steps against, apart from the timing itself (no CUDA here, so
// tests/bench can check it on any machine):
//  - the anchors: the JSON lines that anchor_bench.py and anchor_triton.py print (tokenspeed's,
//    vLLM's and FLA's Triton kernels on the same shapes, timed in the same device call), and
//    which anchor each specstate step is compared with;
//  - the roof of a step: the larger of its memory time and its FP32 work time.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace specstate::bench {

// One case of anchor_bench.py: {"variant", "ssm", "batch", "us", "pct_copy"} or, when the case
// failed, {"variant", "ssm", "batch", "error"}. pct_copy is against the copy bandwidth measured
// in the anchor's own process (bytes counted as bench_step counts them, see anchor_bench.py).
struct AnchorCase {
  double us = 0;
  double pct_copy = 0;
  std::string error;  // non-empty: the case failed, us and pct_copy are meaningless
};

// Everything one run of anchor_bench.py printed.
struct AnchorRun {
  std::string gpu;                          // torch.cuda.get_device_name()
  double copy_GBps = 0;                     // copy ceiling measured before the cases
  double copy_GBps_end = 0;                 // and after them
  std::map<std::string, AnchorCase> cases;  // by anchor_key
  std::vector<std::string> problems;        // lines that were not understood

  const AnchorCase* find(std::string_view variant, std::string_view dtype, int batch) const;
};

// "fp32" or "bf16" for anchor_bench.py's "ssm" field ("float32", "bfloat16"), or for the names
// bench_step uses; nullopt for anything else.
inline std::optional<std::string> anchor_dtype(std::string_view ssm) {
  if (ssm == "float32" || ssm == "fp32") return "fp32";
  if (ssm == "bfloat16" || ssm == "bf16") return "bf16";
  return std::nullopt;
}

inline std::string anchor_key(std::string_view variant, std::string_view dtype, int batch) {
  return std::string(variant) + "/" + std::string(dtype) + "/" + std::to_string(batch);
}

inline const AnchorCase* AnchorRun::find(std::string_view variant, std::string_view dtype,
                                         int batch) const {
  const auto it = cases.find(anchor_key(variant, dtype, batch));
  return it == cases.end() ? nullptr : &it->second;
}

// Adds one printed line to `run`. Blank lines and lines that do not start with '{' (anything a
// library printed to stdout) are skipped; a '{' line that is not one of the script's records is
// kept in run.problems.
inline void parse_anchor_line(std::string_view line, AnchorRun& run) {
  const auto first = line.find_first_not_of(" \t\r");
  if (first == std::string_view::npos || line[first] != '{') return;
  const nlohmann::json j = nlohmann::json::parse(std::string(line.substr(first)), nullptr, false);
  const auto problem = [&](const char* why) {
    run.problems.push_back(std::string(why) + ": " + std::string(line.substr(first, 200)));
  };
  if (j.is_discarded() || !j.is_object()) return problem("not JSON");
  if (j.contains("copy_GBps") && j["copy_GBps"].is_number()) {
    run.copy_GBps = j["copy_GBps"].get<double>();
    if (j.contains("gpu") && j["gpu"].is_string()) run.gpu = j["gpu"].get<std::string>();
    return;
  }
  if (j.contains("copy_GBps_end") && j["copy_GBps_end"].is_number()) {
    run.copy_GBps_end = j["copy_GBps_end"].get<double>();
    return;
  }
  // anchor_bench.py names the pool dtype "ssm", anchor_triton.py "ssm_dtype".
  const char* ssm = j.contains("ssm") ? "ssm" : "ssm_dtype";
  if (!j.contains("variant") || !j["variant"].is_string() || !j.contains(ssm) ||
      !j[ssm].is_string() || !j.contains("batch") || !j["batch"].is_number_integer())
    return problem("no variant/ssm/batch");
  const auto dtype = anchor_dtype(j[ssm].get<std::string>());
  if (!dtype) return problem("unknown ssm dtype");
  AnchorCase c;
  if (j.contains("error")) {
    c.error = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
    if (c.error.empty()) c.error = "error";
  } else if (j.contains("us") && j["us"].is_number() && j["us"].get<double>() > 0 &&
             j.contains("pct_copy") && j["pct_copy"].is_number()) {
    c.us = j["us"].get<double>();
    c.pct_copy = j["pct_copy"].get<double>();
  } else {
    return problem("no us/pct_copy");
  }
  run.cases[anchor_key(j["variant"].get<std::string>(), *dtype, j["batch"].get<int>())] = c;
}

inline AnchorRun parse_anchor_stream(std::istream& in) {
  AnchorRun run;
  std::string line;
  while (std::getline(in, line))
    parse_anchor_line(line, run);
  return run;
}

// The anchors a specstate step is compared with, and the goal where there is one
// ("step time <= max_ratio x anchor time at batch goal_batch", same run):
//   inline    <-> after         tokenspeed #159: verify writes state j to output_state_indices
//             <-> vllm_spec     vLLM's spec verify: every token's state written
//   scatter   <-> before        tokenspeed before #159: verify into intermediate buffers + scatter
//             <-> head_scratch  tokenspeed HEAD: verify into a [B,T,HV,V,K] scratch + index_copy
//   replay    <-> head_replay   tokenspeed HEAD: verify without state writes + replay commit
//                               (goal: <= 0.55 x at batch 64)
//   deferred  <-> after         (goal: <= 0.45 x at batch 64)
//   ring      <-> vllm_replay_verify  vLLM ReplaySSM, no fold (goal: <= 1.0 x at batch 64)
//   ring.fold <-> vllm_replay_flush   vLLM ReplaySSM, every request folds (goal: <= 1.0 x at 64)
// (tokenspeed's from anchor_bench.py, vLLM's from anchor_triton.py: device_run.sh's anchors
// verb runs both into one file.) The partial steps (scatter.verify, scatter.copy,
// replay.verify, replay.commit) have none.
struct AnchorRef {
  const char* variant;
  double max_ratio = 0;  // 0: no goal
  int goal_batch = 0;
};

inline std::vector<AnchorRef> anchors_of(std::string_view step) {
  if (step == "inline") return {{"after"}, {"vllm_spec"}};
  if (step == "scatter") return {{"before"}, {"head_scratch"}};
  if (step == "replay") return {{"head_replay", 0.55, 64}};
  if (step == "deferred") return {{"after", 0.45, 64}};
  if (step == "ring") return {{"vllm_replay_verify", 1.0, 64}};
  if (step == "ring.fold") return {{"vllm_replay_flush", 1.0, 64}};
  return {};
}

// Goals on the step's own % of copy: inline >= 90 % at batch >= 64 and >= 75 % at
// batch 8; the scatter commit copy >= 85 % at batch >= 64. 0: no such goal for this row.
inline double pct_copy_goal(std::string_view step, int batch) {
  if (step == "inline") return batch >= 64 ? 90.0 : batch == 8 ? 75.0 : 0.0;
  if (step == "scatter.copy") return batch >= 64 ? 85.0 : 0.0;
  return 0.0;
}

// FP32 peak of the device: SMs x FP32 lanes per SM x SM clock, one fma-class operation per lane
// and clock.
struct Fp32Peak {
  int sms = 0;
  int lanes_per_sm = 0;
  double clock_hz = 0;
  double ops_per_second() const { return double(sms) * lanes_per_sm * clock_hz; }
};

// FP32 lanes per SM by compute capability: 64 on sm_70 and sm_80, 128 on sm_86 and later
// (including sm_90, the H100 and H200).
inline int fp32_lanes_per_sm(int major, int minor) {
  return (major < 8 || (major == 8 && minor == 0)) ? 64 : 128;
}

// Roof of a step: memory time = bytes moved / copy bandwidth of the same run
// (100 % of copy); FP32 work time = fma-class operations / FP32 peak. The roof is the larger.
struct Roof {
  double memory_s = 0;
  double work_s = 0;
  double seconds() const { return std::max(memory_s, work_s); }
  const char* bound() const { return work_s > memory_s ? "fp32" : "mem"; }
};

inline Roof step_roof(double bytes, double copy_bytes_per_s, double fma_ops, const Fp32Peak& peak) {
  Roof r;
  r.memory_s = copy_bytes_per_s > 0 ? bytes / copy_bytes_per_s : 0;
  r.work_s = peak.ops_per_second() > 0 ? fma_ops / peak.ops_per_second() : 0;
  return r;
}

}  // namespace specstate::bench
