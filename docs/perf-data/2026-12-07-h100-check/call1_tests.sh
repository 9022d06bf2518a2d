#!/bin/bash
# tests: sim cuda, cuda (minus OnEveryFloat), sanitizers on tiny cases
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
start=$(date +%s)
timeout 150 .device/specstate_sim_cuda_tests > $OUT/sim_cuda.log 2>&1; echo "sim_cuda rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/sim_cuda.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
timeout 200 .device/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $OUT/cuda.log 2>&1; echo "cuda rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/cuda.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
grep -E '^\[  FAILED' $OUT/*.log | head -20
for tool in memcheck racecheck; do
  timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter='*tiny*:CudaRanks*' > $OUT/san_$tool.log 2>&1
  echo "$tool rc=$? $(tail -2 $OUT/san_$tool.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
done
