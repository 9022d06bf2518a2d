#!/bin/bash
# Small: the CUDA tests of ranks and handoffs, the tiny differential suite, then bench_step before
# (5c86cbd) and after (HEAD: prep and parameters hashed by the model's channel and head) on the
# verify steps at batch 64, one round, if time is left. Logs under $OUT.
set -u
export LD_LIBRARY_PATH=$PWD/.device
mkdir -p "$OUT"
t0=$(date +%s); el() { echo "  [$1 $(( $(date +%s) - t0 ))s]"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader | tee $OUT/gpu.txt
timeout 60 .device/specstate_cuda_tests --gtest_filter='CudaRanks.*' > $OUT/ranks.log 2>&1; echo "ranks rc=$?"; grep -E '^\[  (PASSED|FAILED) |FAILED  \]' $OUT/ranks.log | head -5; el ranks
timeout 150 .device/specstate_sim_cuda_tests > $OUT/sim.log 2>&1; echo "sim rc=$?"; grep -E '^\[  (PASSED|FAILED) |FAILED  \]|OK \] SimulatorCuda.Handoff' $OUT/sim.log | head -8; el sim
timeout 100 .device/specstate_cuda_tests --gtest_filter='-*OnEveryFloat*:CudaRanks.*:*real*' > $OUT/cuda_tiny.log 2>&1; echo "cuda tiny rc=$?"; grep -E '^\[  (PASSED|FAILED) |FAILED  \]' $OUT/cuda_tiny.log | head -5; el tiny
T='^(inline|ring|deferred|replay)/(fp32|bf16)/batch:64/'
if [ $(( $(date +%s) - t0 )) -lt 250 ]; then
  for b in bench_step_5c86cbd bench_step; do timeout 45 .device/$b --benchmark_filter="$T" > $OUT/$b.log 2>&1; echo "$b rc=$?"; done
  grep -hE '^(inline|ring|deferred|replay)/' $OUT/bench_step*.log | awk '{print $1, $2, $3}'; el bench
fi
