#!/bin/bash
# Host-tier traces (offload/restore) through CPU and CUDA lanes of every strategy; memcheck.
set -u
export LD_LIBRARY_PATH=.device
mkdir -p "$OUT"
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for t in host_f32 host_bf16_overlap host_tree; do
  timeout 120 .device/specstate replay .device/traces/$t.jsonl --backend cpu,cuda > $OUT/$t.log 2>&1
  echo "$t rc=$? $(grep -E 'AGREE|DIVERGENCE|wall time' $OUT/$t.log | tr '\n' ' ') $(( $(date +%s)-t0 ))s"
done
timeout 200 .device/specstate replay .device/traces/host_qwen_tp8.jsonl --backend cpu,cuda --layers 0,17,35 > $OUT/host_qwen_tp8.log 2>&1
echo "qwen tp8 rc=$? $(grep -E 'AGREE|DIVERGENCE|wall time' $OUT/host_qwen_tp8.log | tr '\n' ' ') $(( $(date +%s)-t0 ))s"
timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 .device/specstate replay .device/traces/host_f32.jsonl --backend cuda > $OUT/memcheck.log 2>&1
echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY|AGREE' $OUT/memcheck.log | tr '\n' ' ') $(( $(date +%s)-t0 ))s"
