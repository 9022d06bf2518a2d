#!/bin/bash
# First call of a session: the simulator's CUDA tests on any card; then on an H200 the record run
# (anchors, then bench_step beside them), on any other card the CUDA differential tests (exit 3).
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee $OUT/gpu.txt
start=$(date +%s)
timeout 120 .device/specstate_sim_cuda_tests > $OUT/sim_cuda.log 2>&1; echo "sim_cuda rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/sim_cuda.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
if ! nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  echo "NOT_H200"
  timeout 240 .device/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $OUT/cuda.log 2>&1; echo "cuda rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/cuda.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
  exit 3
fi
BEFORE_LIMIT=0 bash .device/call_bench.sh
echo "t=$(( $(date +%s)-start ))"
