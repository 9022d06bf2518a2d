#!/bin/bash
# KDA on the CUDA kernels, in the device time left: the GDN steps before (2c8056c) and after,
# generated traces on both backends (GDN, KDA, host tier), the differential suite (GDN and KDA),
# memcheck on the tiny KDA cases.
set -u
export LD_LIBRARY_PATH=.device
mkdir -p "$OUT"
t0=$(date +%s); el() { echo "  [$1 $(( $(date +%s) - t0 ))s]"; }
LIMIT=${LIMIT:-440}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/gpu.txt
F='^(ring|ring\.fold|deferred|replay|inline|scatter|inline\.tree)/(fp32|bf16)/batch:64/'
for r in 1 2; do for b in bench_step_before bench_step; do
  timeout 40 .device/$b --benchmark_filter="$F" > $OUT/${b}_r$r.log 2>&1; echo "$b r$r rc=$?"; done; done; el bench
timeout 110 .device/specstate_sim_cuda_tests > $OUT/sim.log 2>&1; echo "sim rc=$?"; grep -E '^\[  (PASSED|FAILED) |FAILED  \]' $OUT/sim.log | head; el sim
left=$(( LIMIT - ($(date +%s)-t0) ))
timeout $left .device/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $OUT/cuda_tests.log 2>&1; echo "cuda_tests rc=$?"; grep -E '^\[  (PASSED|FAILED|SKIPPED) |FAILED  \]' $OUT/cuda_tests.log | head -20; grep -c '^\[       OK' $OUT/cuda_tests.log; el cuda_tests
left=$(( LIMIT - ($(date +%s)-t0) ))
[ $left -gt 15 ] && { timeout $left compute-sanitizer --tool memcheck --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter='*tiny_kda*' > $OUT/memcheck.log 2>&1; echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY|PASSED' $OUT/memcheck.log | tail -2 | tr '\n' ' ')"; el memcheck; }
cd "$OUT" && gzip -f memcheck.log cuda_tests.log 2>/dev/null; ls
