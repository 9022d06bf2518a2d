#!/bin/bash
# Session 7: racecheck and memcheck of the tiny and rank cases first (owed on the barrier-free
# prep), then the anchors and bench_step of HEAD in the same call (batches 8, 64, 128), then
# Nsight Compute of the ring step. Logs tarred into $OUT/logs.tgz after each stage.
OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee $L/gpu_card.txt
start=$(date +%s)
t() { echo "t=$(( $(date +%s)-start ))"; }
pack() { (cd $OUT && tar czf logs.tgz logs); }
timeout 90 compute-sanitizer --tool racecheck --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter="*tiny*:CudaRanks*-$(cat .device/race_rest.filter)" > $L/san_racecheck.log 2>&1
echo "racecheck rc=$? $(grep -c 'OK \]' $L/san_racecheck.log) ok; $(tail -2 $L/san_racecheck.log | tr '\n' ' ') $(t)"; pack
timeout 70 compute-sanitizer --tool memcheck --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter='*tiny*:CudaRanks*' > $L/san_memcheck.log 2>&1
echo "memcheck rc=$? $(grep -c 'OK \]' $L/san_memcheck.log) ok; $(tail -2 $L/san_memcheck.log | tr '\n' ' ') $(t)"; pack
F='^(inline|scatter|replay|replay\.commit|deferred|ring|ring\.fold|inline\.tree)/(fp32|bf16)/batch:(8|64|128)/'
OUT=$L ANCHOR_BATCHES=8,64,128 ANCHOR_TIMEOUT=170 bash bench/device_run.sh anchors; echo "anchors $(t)"; pack
OUT=$L BENCH_FILTER=$F timeout 100 bash bench/device_run.sh bench > $L/bench_summary.txt 2>&1; echo "bench rc=$? $(t)"
grep -E 'batch:64' $L/bench_summary.txt | head -20; pack
cuobjdump -sass .device/step_kernels_sm90.o 2>&1 | gzip > $L/step_kernels_sass.txt.gz; echo "sass $(zcat $L/step_kernels_sass.txt.gz | wc -l) lines"
left=$(( 560 - ($(date +%s)-start) ))
[ $left -gt 40 ] && { OUT=$L timeout $left env REPORT=1 bash bench/ncu_steps.sh ring/fp32/64 ring/bf16/64 > $L/ncu_summary.txt 2>&1; echo "ncu $(t)"; grep -E '(prep|recur)_kernel|Duration' $L/ncu_summary.txt | head -12; }
rm -f $L/*.ncu-rep; gzip $L/*_source.csv; pack; rm -rf $L
