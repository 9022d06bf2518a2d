#!/bin/bash
# Packed window words and the sliding conv: the differential suite on the new build, then
# bench_step before / 180ea46 / new at 6 and 8 blocks, two interleaved rounds, then ncu of prep.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee $OUT/gpu.txt
start=$(date +%s)
t() { echo "t=$(( $(date +%s)-start ))"; }
timeout 200 .device/v2/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $OUT/cuda.log 2>&1; echo "cuda rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/cuda.log | tr '\n' ' ') $(t)"
grep -E '^\[  FAILED' $OUT/cuda.log | head
F='^(inline|scatter|replay|replay\.commit|deferred|ring|ring\.fold|inline\.tree)/(fp32|bf16)/batch:64/'
mkdir -p $OUT/bench
for r in 1 2; do
  for v in before:.device/bench_step c180:.device/new/bench_step v6:.device/v2/bench_step6 v8:.device/v2/bench_step8; do
    timeout 100 ${v#*:} --benchmark_filter="$F" > $OUT/bench/${v%%:*}_$r.log 2>&1; echo "${v%%:*} $r rc=$? $(t)"
  done
done
mkdir -p $OUT/ncu
for v in before:.device/bench_step v6:.device/v2/bench_step6; do
  cp ${v#*:} /tmp/bench_step_${v%%:*}
  BIN=/tmp BENCH=bench_step_${v%%:*} OUT=$OUT/ncu/${v%%:*} KERNELS=prep_kernel COUNT=1 timeout 90 bash bench/ncu_steps.sh ring/fp32/64 inline/fp32/64 > $OUT/ncu/${v%%:*}_summary.txt 2>&1; echo "ncu ${v%%:*} $(t)"
  grep -E 'Duration|Registers Per|Achieved Occ|Issue Slots Busy|Executed Ipc A|Theoretical Occ' $OUT/ncu/${v%%:*}_summary.txt | head -12
done
left=$(( 585 - ($(date +%s)-start) ))
timeout $left .device/v2/specstate_sim_cuda_tests > $OUT/sim_cuda.log 2>&1; echo "sim_cuda rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/sim_cuda.log | tr '\n' ' ') $(t)"
cd $OUT && tar czf logs.tgz bench ncu cuda.log sim_cuda.log gpu.txt && rm -rf bench ncu
