#!/bin/bash
# Runs on the GPU machine: Nsight Compute on the two kernels of one timed step of bench_step
# (prep_kernel and recur_kernel, after the set-up and warm-up launches), for each
# STEP/DTYPE/BATCH given, e.g. bench/ncu_steps.sh inline/fp32/64 deferred/bf16/64. KERNELS
# (a regex), COUNT (launches profiled) and BENCH (the binary in $BIN) profile other builds.
# Clocks are left as they are (--clock-control none). Logs: $OUT/ncu_<step>_<dtype>_<batch>.log;
# with REPORT=1 also the report with source counters (.ncu-rep) and its per-instruction source
# page (_source.csv: SASS, with the CUDA line where the build has -lineinfo).
set -u
BIN=${BIN:-.device}
OUT=${OUT:-/tmp/specstate-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$BIN:${LD_LIBRARY_PATH:-}"
for c in "$@"; do
  IFS=/ read -r step dtype batch <<< "$c"
  log="$OUT/ncu_${step}_${dtype}_${batch}.log"
  report=()
  [ "${REPORT:-0}" = 1 ] && report=(--section ComputeWorkloadAnalysis --section InstructionStats --section SourceCounters
    --import-source yes -f -o "${log%.log}")
  ncu --clock-control none -k "regex:${KERNELS:-prep_kernel|recur_kernel}" --launch-skip 40 \
    --launch-count "${COUNT:-2}" --section SpeedOfLight --section Occupancy --section LaunchStats \
    --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
    "${report[@]}" "$BIN/${BENCH:-bench_step}" --benchmark_filter="^${step}/${dtype}/batch:${batch}/" \
    > "$log" 2>&1
  if [ "${REPORT:-0}" = 1 ]; then
    ncu -i "${log%.log}.ncu-rep" --page details >> "$log" 2>&1
    ncu -i "${log%.log}.ncu-rep" --page source --csv --print-source sass,cuda \
      > "${log%.log}_source.csv" 2>&1 ||
      ncu -i "${log%.log}.ncu-rep" --page source --csv > "${log%.log}_source.csv" 2>&1
  fi
  echo "ncu $c rc=$?"
  grep -E '(prep|recur)_kernel|Duration|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Issue Slots Busy|Warp Cycles Per Issued|No Eligible' "$log" | head -40
done
