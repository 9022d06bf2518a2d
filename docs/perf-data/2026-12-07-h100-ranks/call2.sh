#!/bin/bash
# The second command of the same warm H100 (2026-12-07): memcheck on the rank and handoff tests,
# the real-geometry differential cases (130 s: 51 ran, all passed, before the limit), a second
# bench_step round after then before, and Nsight Compute on two KDA steps.
export LD_LIBRARY_PATH=$PWD/.device; t0=$(date +%s); el() { echo "  [$1 $(( $(date +%s) - t0 ))s]"; }
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter='CudaRanks.*' > $OUT/memcheck_ranks.log 2>&1; echo "memcheck ranks rc=$? $(grep -E 'ERROR SUMMARY' $OUT/memcheck_ranks.log | tail -1)"; el memcheck
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 .device/specstate_sim_cuda_tests --gtest_filter='*Handoff*' > $OUT/memcheck_handoff.log 2>&1; echo "memcheck handoff rc=$? $(grep -E 'ERROR SUMMARY' $OUT/memcheck_handoff.log | tail -1)"; el memcheck2
timeout 130 .device/specstate_cuda_tests --gtest_filter='*real*:-*OnEveryFloat*' > $OUT/cuda_real.log 2>&1; echo "cuda real rc=$?"; el real
T='^(inline|ring|deferred|replay)/(fp32|bf16)/batch:64/'
for b in bench_step bench_step_5c86cbd; do timeout 45 .device/$b --benchmark_filter="$T" > $OUT/${b}_r2.log 2>&1; done; el bench
timeout 70 bash bench/ncu_steps.sh kda.inline/fp32/64 kda.ring/fp32/64 > $OUT/ncu_kda.out 2>&1; echo "ncu rc=$?"; el ncu
