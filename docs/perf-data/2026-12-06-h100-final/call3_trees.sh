#!/bin/bash
# bench_step with the anchors of call 1 (same warm machine), the tree and ring steps before and
# after in two interleaved rounds, racecheck on the tiny KDA cases at T 4; one tarball back.
set -u
export LD_LIBRARY_PATH=$PWD/.device
mkdir -p "$OUT/r"; cd "$OUT/r" || exit 1; R=$OLDPWD
t0=$(date +%s); el() { echo "  [$1 $(( $(date +%s) - t0 ))s]"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee gpu.txt
T='^(inline\.tree|ring)/(fp32|bf16)/batch:64/'
for r in 1 2; do for b in bench_step_before bench_step; do
  timeout 40 $R/.device/$b --benchmark_filter="$T" > ${b}_tree_r$r.log 2>&1; echo "$b r$r rc=$?"; done; done; el trees
timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 $R/.device/specstate_cuda_tests --gtest_filter='*tiny_kda*_t4' > racecheck.log 2>&1
echo "racecheck rc=$? $(grep -E 'RACECHECK SUMMARY|PASSED|tests ran' racecheck.log | tail -3 | tr '\n' ' ')"; el racecheck
cd "$OUT" && tar czf call3.tgz r && rm -rf r; ls
