#!/bin/bash
# The anchors, then bench_step of HEAD beside them (batches 8, 64, 128), then memcheck of the tiny
# and rank cases, on whatever card comes.
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee $OUT/gpu_record.txt
start=$(date +%s)
F='^(inline|scatter|replay|replay\.commit|deferred|ring|ring\.fold|inline\.tree)/(fp32|bf16)/batch:(8|64|128)/'
ANCHOR_BATCHES=8,64,128 ANCHOR_TIMEOUT=170 bash bench/device_run.sh anchors; echo "anchors t=$(( $(date +%s)-start ))"
BENCH_FILTER=$F timeout 120 bash bench/device_run.sh bench > $OUT/bench_summary.txt 2>&1; echo "bench rc=$? t=$(( $(date +%s)-start ))"
timeout 60 .device/bench_step --benchmark_filter="$F" > $OUT/bench_again.log 2>&1; echo "again rc=$? t=$(( $(date +%s)-start ))"
grep -E 'batch:64' $OUT/bench_summary.txt | head -20
left=$(( 590 - ($(date +%s)-start) ))
timeout $left compute-sanitizer --tool memcheck --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter='*tiny*:CudaRanks*' > $OUT/san_memcheck.log 2>&1
echo "memcheck rc=$? $(grep -c 'OK \]' $OUT/san_memcheck.log) ok; $(tail -2 $OUT/san_memcheck.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
