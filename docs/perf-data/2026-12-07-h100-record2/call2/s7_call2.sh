#!/bin/bash
# Session 7, call 2: three builds of the token loop's bookkeeping against HEAD (14dd20f), bench in
# two interleaved rounds; SASS of each; the differential suite on v1.
#   v1: recur_lane in unsigned arithmetic; v2: v1 + the store mask read once per chunk;
#   v3: v1 + a chain's chunk split into a replayed and a computed loop.
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee $L/gpu_card.txt
start=$(date +%s)
t() { echo "t=$(( $(date +%s)-start ))"; }
pack() { (cd $OUT && tar czf logs.tgz logs); }
cuobjdump -sass .device/step_kernels_sm90.o 2>&1 | gzip > $L/sass_head.txt.gz
for v in v1 v2 v3; do cuobjdump -sass .device/$v/sk.o 2>&1 | gzip > $L/sass_$v.txt.gz; done; echo "sass $(t)"; pack
F='^(ring|ring\.fold|deferred|replay|inline|scatter)/(fp32|bf16)/batch:64/'
for r in 1 2; do
  for b in head v1 v2 v3; do
    bin=.device/bench_step; [ $b = head ] || bin=.device/$b/bench_step
    timeout 45 $bin --benchmark_filter="$F" > $L/bench_${b}_r$r.log 2>&1; echo "bench $b r$r rc=$? $(t)"
  done; pack
done
for b in head v1 v2 v3; do echo "== $b"; grep -hE 'batch:64' $L/bench_${b}_r*.log | awk '{print $1, $2}' | sort | awk '{a[$1]=a[$1]" "$2} END{for(k in a) print k, a[k]}' | sort; done
timeout 265 .device/v1/specstate_cuda_tests --gtest_filter=-*OnEveryFloat* > $L/cuda_v1.log 2>&1; echo "cuda v1 rc=$? $(grep -E '^\[  (PASSED|FAILED)' $L/cuda_v1.log | tr '\n' ' ') $(t)"
grep -E '^\[  FAILED' $L/cuda_v1.log | head
pack; rm -rf $L
