#!/bin/bash
# H200 call 1: anchors, then bench_step of HEAD and of 8d6ba0d (the "before"), interleaved.
set -u
export LD_LIBRARY_PATH=.device
mkdir -p "$OUT"
t0=$(date +%s); el() { echo "  [$1 $(( $(date +%s) - t0 ))s]"; }
F='^(inline|scatter|scatter\.verify|scatter\.copy|replay|replay\.verify|replay\.commit|deferred|ring|ring\.fold|inline\.tree)/(fp32|bf16)/batch:(8|64|128)/'
ANCHOR_BATCHES=8,64,128 ANCHOR_TIMEOUT=220 bash bench/device_run.sh anchors; el anchors
BENCH_FILTER="$F" timeout 150 bash bench/device_run.sh bench > "$OUT/bench_summary.txt"; el after_r1
timeout 120 .device/bench_step_before --benchmark_filter="$F" --anchors="$OUT/anchors.jsonl" > "$OUT/before_r1.log" 2>&1; el before_r1
left=$(( 580 - ($(date +%s) - t0) ))
[ $left -gt 100 ] && { timeout 120 .device/bench_step --benchmark_filter="$F" --anchors="$OUT/anchors.jsonl" > "$OUT/after_r2.log" 2>&1; el after_r2; }
cd "$OUT" && tar czf all.tgz --exclude all.tgz . && ls
