#!/bin/bash
# Runs on the GPU machine: Nsight Compute on the two kernels of one timed step of bench_step
# (prep_kernel and recur_kernel, after the set-up and warm-up launches), for each
# STEP/DTYPE/BATCH given, e.g. bench/ncu_steps.sh inline/fp32/64 deferred/bf16/64.
# Clocks are left as they are (--clock-control none). Logs: $OUT/ncu_<step>_<dtype>_<batch>.log.
set -u
BIN=${BIN:-.device}
OUT=${OUT:-/tmp/specstate-out}
export LD_LIBRARY_PATH="$BIN:${LD_LIBRARY_PATH:-}"
for c in "$@"; do
  IFS=/ read -r step dtype batch <<< "$c"
  log="$OUT/ncu_${step}_${dtype}_${batch}.log"
  ncu --clock-control none -k 'regex:prep_kernel|recur_kernel' --launch-skip 40 --launch-count 2 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats --section MemoryWorkloadAnalysis \
    "$BIN/bench_step" --benchmark_filter="^${step}/${dtype}/batch:${batch}/" > "$log" 2>&1
  echo "ncu $c rc=$?"
  grep -E '^  [a-z_]+<|Duration|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Issue Slots Busy|Warp Cycles Per Issued|No Eligible' "$log" | head -40
done
