#!/bin/bash
# On an H200: the run of record (record_h200.sh). On any other card: the TP8 trace through the CPU
# and CUDA lanes together (the row-by-row comparison of backends) and memcheck of the tiny cases.
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then exec bash .device/record_h200.sh; fi
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee $OUT/gpu.txt
start=$(date +%s)
.device/specstate generate --preset qwen3-next-80b-a3b --tp 8 --requests 8 --steps 200 --seed 1 -o $OUT/tp8.jsonl > /dev/null
timeout 200 .device/specstate replay $OUT/tp8.jsonl --backend cpu,cuda --layers 0,17,35 > $OUT/replay_cpu_cuda.log 2>&1
echo "cpu+cuda layers 0,17,35 rc=$? $(grep -E 'AGREE|DIVERGENCE|wall time' $OUT/replay_cpu_cuda.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
timeout 120 .device/specstate replay $OUT/tp8.jsonl --threads 16 > $OUT/replay_threads16.log 2>&1
echo "cpu 16 threads rc=$? $(grep -E 'AGREE|DIVERGENCE|wall time' $OUT/replay_threads16.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
rm -f $OUT/tp8.jsonl
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter='*tiny*:CudaRanks*' > $OUT/san_memcheck.log 2>&1
echo "memcheck rc=$? $(grep -c 'OK \]' $OUT/san_memcheck.log) ok; $(tail -1 $OUT/san_memcheck.log) t=$(( $(date +%s)-start ))"
