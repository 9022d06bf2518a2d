#!/bin/bash
# Session 8, call 1: two column pairs a recurrence thread (w2: 256-thread heads, 128 registers)
# against 062ed21 (v1), bench at batch 64 in two interleaved rounds; the differential suite and
# the simulator's CUDA tests on w2.
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee $L/gpu_card.txt
start=$(date +%s)
t() { echo "t=$(( $(date +%s)-start ))"; }
pack() { (cd $OUT && tar czf logs.tgz logs); }
F='^(ring|ring\.fold|deferred|replay|inline|scatter)/(fp32|bf16)/batch:64/'
for r in 1 2; do
  for b in v1 w2; do
    timeout 45 .device/$b/bench_step --benchmark_filter="$F" > $L/bench_${b}_r$r.log 2>&1; echo "bench $b r$r rc=$? $(t)"
  done; pack
done
for b in v1 w2; do echo "== $b"; grep -hE 'batch:64' $L/bench_${b}_r*.log | awk '{print $1, $2}' | sort | awk '{a[$1]=a[$1]" "$2} END{for(k in a) print k, a[k]}' | sort; done
timeout 265 .device/w2/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $L/cuda_w2.log 2>&1; echo "cuda w2 rc=$? $(grep -E '^\[  (PASSED|FAILED)' $L/cuda_w2.log | tr '\n' ' ') $(t)"
grep -E '^\[  FAILED' $L/cuda_w2.log | head
pack
timeout 120 .device/w2/specstate_sim_cuda_tests > $L/sim_w2.log 2>&1; echo "sim w2 rc=$? $(grep -E '^\[  (PASSED|FAILED)' $L/sim_w2.log | tr '\n' ' ') $(t)"
pack; rm -rf $L
