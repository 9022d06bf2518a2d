#!/bin/bash
# The tree step's two kernels before (2c8056c) and with the KDA kernels, under Nsight Compute;
# then racecheck on the tiny KDA cases in the time left.
set -u
export LD_LIBRARY_PATH=.device
mkdir -p "$OUT"
t0=$(date +%s)
for b in bench_step_before bench_step; do
  for c in inline.tree/bf16/64 inline.tree/fp32/64; do
    BENCH=$b BIN=.device timeout 100 bash bench/ncu_steps.sh $c > "$OUT/${b}_$(echo $c | tr / _).txt" 2>&1
    echo "== $b $c rc=$? $(( $(date +%s)-t0 ))s"
    grep -E "(prep|recur)_kernel|Duration|Registers Per|Local" "$OUT/${b}_$(echo $c | tr / _).txt" | head -12
  done
done
left=$(( 560 - ($(date +%s)-t0) ))
[ $left -gt 30 ] && { timeout $left compute-sanitizer --tool racecheck --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter='*tiny_kda*' > $OUT/racecheck.log 2>&1; echo "racecheck rc=$? $(grep -E 'RACECHECK SUMMARY|PASSED' $OUT/racecheck.log | tail -2 | tr '\n' ' ')"; }
cd "$OUT" && tar czf ncu.tgz ncu_* 2>/dev/null; ls
