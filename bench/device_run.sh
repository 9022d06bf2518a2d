#!/bin/bash
# Runs on the GPU machine from the repository root, over binaries copied into a folder (default
# .device/: specstate_tests, specstate_cuda_tests, bench_step and libbenchmark.so.1*):
#   bench/device_run.sh tests       all test executables
#   bench/device_run.sh sanitize    compute-sanitizer memcheck + racecheck on the tiny cases
#   bench/device_run.sh anchors     the peers' kernels: tokenspeed's (anchor_bench.py), then vLLM's
#                                   and FLA's Triton kernels (anchor_triton.py), both from
#                                   $ANCHOR_DIR (the anchors' folder, not part of this repository;
#                                   default .anchor, copied in beside the binaries)
#                                   > $OUT/anchors.jsonl, stderr in $OUT/anchors.log
#   bench/device_run.sh bench       bench_step (BENCH_FILTER=regex), with the anchors of this call
#                                   (SPECSTATE_ANCHORS, default $OUT/anchors.jsonl) when present
#   bench/device_run.sh replay      the CPU replay of docs/performance.md ("CPU replay"): the
#                                   225-event Qwen3-Next TP8 trace through the 5 CPU lanes at
#                                   THREADS (default 1 2 4 8 16) threads, then CPU and CUDA lanes
#                                   together on layers 0,17,35 (needs specstate in $BIN)
# Run both in one call, anchors first, so both see the same GPU and clocks:
#   bench/device_run.sh anchors bench
# Logs go to $OUT (the device tool's output folder) or /tmp/specstate-out.
set -u
BIN=${BIN:-.device}
OUT=${OUT:-/tmp/specstate-out}
export ANCHOR_DIR=${ANCHOR_DIR:-.anchor}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$BIN:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv \
  > "$OUT/gpu.txt" 2>&1
for what in "$@"; do
  case "$what" in
    tests)
      for t in "$BIN"/specstate_*tests; do
        "$t" > "$OUT/$(basename "$t").log" 2>&1
        rc=$?
        echo "$(basename "$t") rc=$rc $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/$(basename "$t").log" | head -3 | tr '\n' ' ')"
      done ;;
    sanitize)
      for tool in memcheck racecheck; do
        compute-sanitizer --tool "$tool" --error-exitcode 9 "$BIN/specstate_cuda_tests" \
          --gtest_filter='*tiny*:*Registry*' > "$OUT/sanitize_$tool.log" 2>&1
        echo "compute-sanitizer $tool rc=$? $(tail -1 "$OUT/sanitize_$tool.log")"
      done ;;
    anchors)
      # A failure here (no torch/triton, no .anchor, a Triton error) leaves bench to run without.
      python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' \
        > "$OUT/anchors.log" 2>&1
      : > "$OUT/anchors.jsonl"
      for script in anchor_bench.py anchor_triton.py; do
        [ -f "$ANCHOR_DIR/$script" ] || { echo "$script: not in $ANCHOR_DIR"; continue; }
        timeout "${ANCHOR_TIMEOUT:-300}" env ANCHOR_DIR="$ANCHOR_DIR" \
          ANCHOR_BATCHES="${ANCHOR_BATCHES:-1,8,64,128}" python3 "$ANCHOR_DIR/$script" \
          > "$OUT/$script.jsonl" 2>> "$OUT/anchors.log"
        rc=$?
        cat "$OUT/$script.jsonl" >> "$OUT/anchors.jsonl"
        echo "$script rc=$rc cases=$(grep -c '"us"' "$OUT/$script.jsonl") errors=$(grep -c '"error"' "$OUT/$script.jsonl") $(head -1 "$OUT/$script.jsonl")"
        [ "$rc" = 0 ] || tail -3 "$OUT/anchors.log"
      done ;;
    bench)
      anchors=${SPECSTATE_ANCHORS:-$OUT/anchors.jsonl}
      if [ -s "$anchors" ] && grep -q '"us"' "$anchors"; then
        export SPECSTATE_ANCHORS="$anchors"
      else
        echo "bench_step: anchors missing ($anchors has no anchor case: see $OUT/anchors.log, or run the anchors verb first)"
        unset SPECSTATE_ANCHORS
      fi
      "$BIN/bench_step" --benchmark_filter="${BENCH_FILTER:-.}" \
        --benchmark_out="$OUT/bench.json" > "$OUT/bench.log" 2>&1
      echo "bench_step rc=$?"; sed -n '/^copy ceiling/,$p' "$OUT/bench.log" ;;
    replay)
      trace="$OUT/tp8.jsonl"
      "$BIN/specstate" generate --preset qwen3-next-80b-a3b --tp 8 --requests 8 --steps 200 \
        --seed 1 -o "$trace" > /dev/null
      nproc > "$OUT/nproc.txt"
      for n in ${THREADS:-1 2 4 8 16}; do
        "$BIN/specstate" replay "$trace" --threads "$n" > "$OUT/replay_threads$n.log" 2>&1
        echo "threads=$n rc=$? $(grep -E 'AGREE|DIVERGENCE|wall time' "$OUT/replay_threads$n.log" | tr '\n' ' ')"
      done
      "$BIN/specstate" replay "$trace" --backend cpu,cuda --layers 0,17,35 \
        > "$OUT/replay_cuda.log" 2>&1
      echo "cpu+cuda layers 0,17,35 rc=$? $(grep -E 'AGREE|DIVERGENCE|wall time' "$OUT/replay_cuda.log" | tr '\n' ' ')" ;;
  esac
done
