#!/bin/bash
# Session 8, call 2: bf16 pairs converted with one NaN branch per store or rounding (n1) against
# 062ed21 (v1): bench at batch 64 in two interleaved rounds, then 8 and 128; the differential
# suite (with the NaN-state test) and the simulator's CUDA tests on n1.
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee $L/gpu_card.txt
start=$(date +%s)
t() { echo "t=$(( $(date +%s)-start ))"; }
pack() { (cd $OUT && tar czf logs.tgz logs); }
S='(ring|ring\.fold|deferred|replay|inline|scatter)/(fp32|bf16)'
for r in 1 2; do
  for b in v1 n1; do
    timeout 60 .device/$b/bench_step --benchmark_filter="^$S/batch:64/" > $L/bench_${b}_r$r.log 2>&1; echo "bench $b r$r rc=$? $(t)"
  done; pack
done
for b in v1 n1; do
  timeout 90 .device/$b/bench_step --benchmark_filter="^$S/batch:(8|128)/" > $L/bench_${b}_8_128.log 2>&1; echo "bench $b 8,128 rc=$? $(t)"
done; pack
for b in v1 n1; do echo "== $b"; grep -hE 'manual_time' $L/bench_${b}_*.log | awk '{print $1, $2}' | sort | awk '{a[$1]=a[$1]" "$2} END{for(k in a) print k, a[k]}' | sort | sed 's/iterations:[0-9]*.manual_time//'; done
timeout 265 .device/n1/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $L/cuda_n1.log 2>&1; echo "cuda n1 rc=$? $(grep -E '^\[  (PASSED|FAILED)' $L/cuda_n1.log | tr '\n' ' ') $(t)"
grep -E '^\[  FAILED|Nan' $L/cuda_n1.log | head
pack
timeout 120 .device/n1/specstate_sim_cuda_tests > $L/sim_n1.log 2>&1; echo "sim n1 rc=$? $(grep -E '^\[  (PASSED|FAILED)' $L/sim_n1.log | tr '\n' ' ') $(t)"
pack; rm -rf $L
