#!/bin/bash
# The simulator's CUDA tests, the differential suite, memcheck and racecheck on the tiny KDA cases.
set -u
export LD_LIBRARY_PATH=.device
mkdir -p "$OUT"
t0=$(date +%s); el() { echo "  [$1 $(( $(date +%s) - t0 ))s]"; }
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
timeout 120 .device/specstate_sim_cuda_tests > $OUT/sim.log 2>&1; echo "sim rc=$?"; grep -E '^\[  (PASSED|FAILED) |FAILED  \]' $OUT/sim.log | head; el sim
timeout 300 .device/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $OUT/cuda_tests.log 2>&1; echo "cuda_tests rc=$?"; grep -E '^\[  (PASSED|FAILED|SKIPPED) |FAILED  \]' $OUT/cuda_tests.log | head -20; el cuda_tests
for tool in memcheck racecheck; do
  left=$(( 580 - ($(date +%s)-t0) )); [ $left -lt 25 ] && { echo "$tool: no time left"; continue; }
  timeout $left compute-sanitizer --tool $tool --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter='*tiny_kda*:*.Tree*/tiny_*' > $OUT/sanitize_$tool.log 2>&1
  echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|tests ran' $OUT/sanitize_$tool.log | tail -3 | tr '\n' ' ')"; el $tool
done
cd "$OUT" && gzip -f sanitize_*.log cuda_tests.log 2>/dev/null; ls
