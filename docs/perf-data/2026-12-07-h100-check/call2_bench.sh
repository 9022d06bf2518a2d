#!/bin/bash
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
start=$(date +%s)
timeout 110 .device/specstate_sim_cuda_tests --gtest_filter='SimulatorCuda.Handoff*' > $OUT/sim_handoff.log 2>&1; echo "handoff rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/sim_handoff.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
F='^(inline|scatter|scatter\.verify|scatter\.copy|replay|replay\.verify|replay\.commit|deferred|ring|ring\.fold|inline\.tree)/(fp32|bf16)/batch:(8|64|128)/'
ANCHOR_BATCHES=8,64,128 ANCHOR_TIMEOUT=130 bash bench/device_run.sh anchors; echo "anchors t=$(( $(date +%s)-start ))"
BENCH_FILTER=$F timeout 140 bash bench/device_run.sh bench > $OUT/bench_summary.txt 2>&1; echo "bench rc=$? t=$(( $(date +%s)-start ))"
if [ $(( $(date +%s)-start )) -lt 420 ]; then
  timeout 90 .device/bench_step_before --benchmark_filter="$F" > $OUT/bench_before.log 2>&1; echo "before rc=$? t=$(( $(date +%s)-start ))"
fi
