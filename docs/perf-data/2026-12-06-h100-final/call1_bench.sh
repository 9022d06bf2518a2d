#!/bin/bash
# Anchors, then bench_step of HEAD with them (GDN steps at 8/64/128, KDA steps at 64), then the
# tree step before (2c8056c) and after in two interleaved rounds.
set -u
export LD_LIBRARY_PATH=.device
mkdir -p "$OUT"
t0=$(date +%s); el() { echo "  [$1 $(( $(date +%s) - t0 ))s]"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/gpu.txt
ANCHOR_BATCHES=8,64,128 ANCHOR_TIMEOUT=150 bash bench/device_run.sh anchors; el anchors
F='^(inline|scatter|scatter\.verify|scatter\.copy|replay|replay\.verify|replay\.commit|deferred|ring|ring\.fold|inline\.tree)/(fp32|bf16)/batch:(8|64|128)/|^kda\.(inline|replay|deferred|ring|ring\.fold)/(fp32|bf16)/batch:64/'
BENCH_FILTER="$F" timeout 200 bash bench/device_run.sh bench > "$OUT/bench_summary.txt"; echo "bench rc=$?"; el bench
T='^(inline\.tree|ring)/(fp32|bf16)/batch:64/'
for r in 1 2; do for b in bench_step_before bench_step; do
  timeout 40 .device/$b --benchmark_filter="$T" > $OUT/${b}_tree_r$r.log 2>&1; echo "$b r$r rc=$?"; done; done; el trees
grep -E '^(step|inline\.tree|ring |kda)' $OUT/bench_summary.txt | head -60
