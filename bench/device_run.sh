#!/bin/bash
# Runs on the GPU machine from the repository root, over binaries copied into a folder (default
# .device/: specstate_tests, specstate_cuda_tests, bench_step and libbenchmark.so.1*):
#   bench/device_run.sh tests       all test executables
#   bench/device_run.sh sanitize    compute-sanitizer memcheck + racecheck on the tiny cases
#   bench/device_run.sh bench [regex]
# Logs go to $OUT (the device tool's output folder) or /tmp/specstate-out.
set -u
BIN=${BIN:-.device}
OUT=${OUT:-/tmp/specstate-out}
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
    bench)
      "$BIN/bench_step" --benchmark_filter="${BENCH_FILTER:-.}" \
        --benchmark_out="$OUT/bench.json" > "$OUT/bench.log" 2>&1
      echo "bench_step rc=$?"; sed -n '/copy ceiling/,$p' "$OUT/bench.log" ;;
  esac
done
