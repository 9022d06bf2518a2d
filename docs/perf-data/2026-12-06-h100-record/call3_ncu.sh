#!/bin/bash
# Nsight Compute of the kept kernels (HEAD), batch 64, both dtypes.
set -u
mkdir -p "$OUT"
t0=$(date +%s)
for c in ring/fp32/64 ring/bf16/64 deferred/fp32/64 deferred/bf16/64 inline/fp32/64 inline/bf16/64 replay.commit/bf16/64 inline.tree/fp32/64 inline.tree/bf16/64 scatter.copy/bf16/64; do
  left=$(( 570 - ($(date +%s)-t0) )); [ $left -lt 40 ] && { echo "$c: no time left"; continue; }
  BIN=.device timeout $(( left < 90 ? left : 90 )) bash bench/ncu_steps.sh $c > /dev/null 2>&1
  echo "$c rc=$? $(( $(date +%s)-t0 ))s"
done
cd $OUT && tar czf ncu.tgz ncu_*.log && rm ncu_*.log
