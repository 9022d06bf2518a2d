#!/bin/bash
# The prep rewrite: the differential suite on the new build, then bench_step before / after (40 and
# 64 registers) in two interleaved rounds, then Nsight Compute on the new prep, then the sim tests.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee $OUT/gpu.txt
start=$(date +%s)
t() { echo "t=$(( $(date +%s)-start ))"; }
timeout 200 .device/new/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $OUT/cuda.log 2>&1; echo "cuda rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/cuda.log | tr '\n' ' ') $(t)"
grep -E '^\[  FAILED' $OUT/cuda.log | head
F='^(inline|scatter|replay|replay\.commit|deferred|ring|ring\.fold)/(fp32|bf16)/batch:64/'
for r in 1 2; do
  for v in before:.device/bench_step six:.device/new/bench_step one:.device/new/bench_step_mb1; do
    timeout 100 ${v#*:} --benchmark_filter="$F" > $OUT/bench_${v%%:*}_$r.log 2>&1; echo "${v%%:*} $r rc=$? $(t)"
  done
done
for f in $OUT/bench_*_1.log; do echo "== $f"; grep -E '^(ring|inline|deferred)/fp32' $f | head -3; done
BIN=.device/new OUT=$OUT/ncu KERNELS=prep_kernel COUNT=1 timeout 90 bash bench/ncu_steps.sh ring/fp32/64 > $OUT/ncu_summary.txt 2>&1; echo "ncu $(t)"
BIN=.device OUT=$OUT/ncu_before KERNELS=prep_kernel COUNT=1 timeout 90 bash bench/ncu_steps.sh ring/fp32/64 > $OUT/ncu_before_summary.txt 2>&1; echo "ncu before $(t)"
grep -E 'Duration|Registers|Achieved Occ|Issue Slots|Executed Ipc' $OUT/ncu/*.log $OUT/ncu_before/*.log | head -20
left=$(( 585 - ($(date +%s)-start) ))
timeout $left .device/new/specstate_sim_cuda_tests > $OUT/sim_cuda.log 2>&1; echo "sim_cuda rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/sim_cuda.log | tr '\n' ' ') $(t)"
