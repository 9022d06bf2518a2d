#!/bin/bash
# Correctness of HEAD's binaries: differential tests, generated traces, memcheck, racecheck.
set -u
export LD_LIBRARY_PATH=.device
mkdir -p "$OUT"
t0=$(date +%s); el() { echo "  [$1 $(( $(date +%s) - t0 ))s]"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
timeout 100 .device/specstate_sim_cuda_tests > $OUT/sim.log 2>&1; echo "sim rc=$?"; grep -E '^\[  (PASSED|FAILED) |FAILED  \]' $OUT/sim.log | head; el sim
timeout 260 .device/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $OUT/cuda_tests.log 2>&1; echo "cuda_tests rc=$?"; grep -E '^\[  (PASSED|FAILED|SKIPPED) |FAILED  \]' $OUT/cuda_tests.log | head -20; el cuda_tests
for tool in memcheck racecheck; do
  left=$(( 585 - ($(date +%s)-t0) )); [ $left -lt 20 ] && { echo "$tool: no time left"; continue; }
  timeout $left compute-sanitizer --tool $tool --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter='*tiny*' > $OUT/sanitize_$tool.log 2>&1
  echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|tests ran' $OUT/sanitize_$tool.log | tail -3 | tr '\n' ' ')"; el $tool
done
gzip -f $OUT/sanitize_*.log
