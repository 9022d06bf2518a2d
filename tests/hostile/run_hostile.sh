#!/bin/bash
# One hostile-input case of the specstate command line, run by CTest:
#   run_hostile.sh SPECSTATE CASE
# Each case works in a fresh temporary directory, asserts the exit code and the message, and
# that no file was created or changed (a listing with modes, sizes, link targets and checksums
# is compared before and after). Exit 0 passed, 1 failed, 77 cannot run here (skipped).
set -u
specstate=$(realpath "$1") case=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/specstate-hostile-XXXXXX") || exit 1
cd "$work" || exit 1

fail() { echo "FAIL: $case: $*"; exit 1; }
skip() { echo "SKIP: $case: $*"; exit 77; }

# Every entry under the directory: path, type, mode, size, link target, and its checksum.
listing() {
  find . -mindepth 1 -printf '%p %y %m %s %l\n' | sort
  find . -type f -exec md5sum {} + | sort -k2
}

# run RC COMMAND...: runs COMMAND with stdout to out.txt and stderr to err.txt (kept outside the
# listing) and checks its exit code.
run() {
  local want=$1
  shift
  "$@" >"$work.out" 2>"$work.err"
  local rc=$?
  cat "$work.out" "$work.err"
  [ "$rc" -eq "$want" ] || fail "exit code $rc, expected $want: $*"
}
said() { grep -qF -- "$1" "$work.err" || fail "stderr does not say: $1"; }
printed_nothing() { [ ! -s "$work.out" ] || fail "stdout is not empty"; }
unchanged() { [ "$(listing)" = "$before" ] || { listing; fail "files changed"; }; }
trap 'rm -rf "$work" "$work.out" "$work.err"' EXIT

device() {  # device NAME MINOR: a memory device (1, MINOR) here, never the real /dev
  mknod "$1" c 1 "$2" 2>/dev/null || skip "mknod not permitted here"
}
small_trace() { "$specstate" generate --preset tiny --requests 4 --steps 40 --seed 1 -o t.jsonl >/dev/null; }
# touching PRESET N: a trace of N short requests, each on rows of its own (lanes store only the
# rows a trace touches, so it is the requests, not pool_rows, that make a pool large).
touching() {
  printf '{"specstate_trace": 1, "preset": "%s", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 3, "pool_rows": %s, "max_requests": %s, "page_size": 0, "seed": 1}\n' "$1" "$2" "$2"
  seq 0 $(($2 - 1)) | awk '{printf "{\"event\": \"extend\", \"request\": %d, \"req_row\": %d, \"working_row\": %d, \"tokens\": 8}\n", $1 + 1, $1, $1}'
  seq 1 "$2" | awk '{printf "{\"event\": \"finish\", \"request\": %d}\n", $1}'
}
under_ulimit_v() {  # the binary must start under the limit (AddressSanitizer does not)
  (ulimit -v 4000000 && "$specstate" --help >/dev/null 2>&1) || skip "cannot run under ulimit -v"
}
# wait_for GLOB...: polls up to 20 s until a file matching one of the GLOBs exists.
wait_for() {
  for _ in $(seq 400); do
    for glob in "$@"; do
      compgen -G "$glob" >/dev/null && return 0
    done
    sleep 0.05
  done
  return 1
}
gen=(generate --preset tiny --requests 4 --steps 40 --seed 2)

case $case in
generate_device_node_written_in_place)  # it was renamed into a 13 KB regular file
  device null 3
  before=$(listing)
  run 0 "$specstate" "${gen[@]}" -o null
  [ -c null ] || fail "null is no longer a character device"
  unchanged ;;
generate_full_device_names_the_reason)
  device full 7
  before=$(listing)
  run 2 "$specstate" "${gen[@]}" -o full
  said "full: write failed: No space left on device"
  unchanged ;;
generate_file_size_limit_keeps_the_old_trace)  # a full disk, for one process
  small_trace
  before=$(listing)
  (trap '' XFSZ; ulimit -f 2; exec "$specstate" generate --preset tiny --requests 64 --steps 400 \
    --seed 3 -o t.jsonl) >"$work.out" 2>"$work.err"
  rc=$?
  cat "$work.err"
  [ $rc -eq 2 ] || fail "exit code $rc, expected 2"
  said "t.jsonl: write failed: File too large"
  unchanged ;;
generate_follows_a_symlink_and_keeps_the_mode)
  small_trace
  chmod 640 t.jsonl
  ln -s t.jsonl link.jsonl
  run 0 "$specstate" "${gen[@]}" -o link.jsonl
  [ -L link.jsonl ] && [ "$(readlink link.jsonl)" = t.jsonl ] || fail "the link was replaced"
  [ "$(stat -c %a t.jsonl)" = 640 ] || fail "mode $(stat -c %a t.jsonl), expected 640"
  "$specstate" validate t.jsonl | grep -q "seed 2" || fail "t.jsonl is not the new trace"
  [ "$(ls -A | wc -l)" -eq 2 ] || { ls -A; fail "files left beside"; } ;;
generate_ignores_a_planted_temp_link)  # OUT.tmp.PID was predictable and followed links
  echo precious >victim
  before=$(listing)
  # exec keeps the shell's pid, so the link sits exactly where the old writer wrote.
  sh -c 'ln -s victim out.jsonl.tmp.$$ && exec "$0" "$@" -o out.jsonl' "$specstate" "${gen[@]}" \
    >/dev/null 2>&1 || fail "generate failed"
  [ "$(cat victim)" = precious ] || fail "the victim file was overwritten"
  rm out.jsonl out.jsonl.tmp.*
  unchanged ;;
generate_killed_leaves_no_temp_file)  # it left a 52 MB .tmp file
  set -m  # job control: a background job of a script would otherwise ignore SIGINT
  "$specstate" generate --preset tiny --requests 800 --steps 16000 --seed 3 --max-requests 128 \
    --pool-rows 150 -o big.jsonl >/dev/null 2>&1 &
  pid=$!
  wait_for ".big.jsonl.tmp-*" "big.jsonl.tmp.*" || { wait $pid; skip "the write ended before it was seen"; }
  kill -INT $pid
  wait $pid
  rc=$?
  [ $rc -eq 130 ] || fail "exit status $rc, expected 130 (SIGINT)"
  [ -z "$(ls -A)" ] || { ls -lA; fail "files left behind"; } ;;
dump_killed_leaves_no_temp_directory)  # it left a 722 MB hidden directory
  "$specstate" generate --preset tiny --requests 64 --steps 6000 --seed 3 -o t.jsonl >/dev/null
  before=$(listing)
  "$specstate" dump t.jsonl --request 1000 --out d >/dev/null 2>&1 &
  pid=$!
  wait_for ".d.tmp-*/layer00/*.npy" || { wait $pid; skip "the dump ended before it was seen"; }
  sleep 0.2
  kill -TERM $pid
  wait $pid
  rc=$?
  [ $rc -eq 143 ] || fail "exit status $rc, expected 143 (SIGTERM)"
  unchanged ;;
dump_as_root_into_a_shared_folder_follows_no_planted_link)  # /root/victim was overwritten
  [ "$(id -u)" -eq 0 ] || skip "needs root, to dump as root and plant as another user"
  id nobody >/dev/null 2>&1 && command -v su >/dev/null || skip "no user nobody, or no su"
  chmod 0755 "$work"
  "$specstate" generate --preset tiny --requests 64 --steps 6000 --seed 3 -o t.jsonl >/dev/null
  echo precious >victim
  mkdir out && chown nobody out && chmod 0777 out  # a folder of another user, world-writable
  "$specstate" dump t.jsonl --request 1000 -o out >/dev/null 2>&1 &
  pid=$!
  wait_for ".out.tmp-*/layer00/*.npy" || { wait $pid; skip "the dump ended before it was seen"; }
  staging=$(compgen -G ".out.tmp-*")
  [ "$(stat -c %a "$staging")" = 700 ] || fail "the staging directory is $(stat -c %a "$staging")"
  su -s /bin/sh nobody -c "ln -s $work/victim $staging/meta.json" 2>/dev/null &&
    fail "nobody planted a link inside the staging directory"
  wait $pid || fail "the dump failed"
  [ "$(cat victim)" = precious ] || fail "the victim file was overwritten"
  [ "$(stat -c %a out)" = 777 ] || fail "the dump is $(stat -c %a out), not the folder's 777"
  [ -f out/meta.json ] && [ ! -L out/meta.json ] || fail "no meta.json in the dump" ;;
dump_of_200_layers_under_ulimit_n_64)  # 7 files open per layer: 200 layers failed at 1024
  printf '%s\n' '{"specstate_trace": 2, "geometry": {"layers": 200, "H": 1, "HV": 1, "K": 16, "V": 16, "conv_dim": 48, "W": 4}, "tp": 1, "ssm_dtype": "f32", "draft_tokens": 1, "pool_rows": 2, "max_requests": 1, "page_size": 0, "seed": 1}' \
    '{"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": 5}' \
    '{"event": "verify", "batch": [{"request": 1, "accepted": 2}]}' >t.jsonl
  run 0 bash -c 'ulimit -n 64 && exec "$0" dump t.jsonl --request 1 -o d' "$specstate"
  [ "$(find d -name "*.npy" | wc -l)" -eq 2400 ] || fail "not 12 files for each of 200 layers" ;;
dump_refuses_a_pool_too_large)  # it ended "internal error: std::bad_alloc", exit 3
  touching qwen3.5-397b-a17b 20000 >big.jsonl  # about 3.7 TB
  before=$(listing)
  run 2 "$specstate" dump big.jsonl --request 1 --out d
  said "big.jsonl:1: the pools need "
  said "GiB for 1 lane(s) on the cpu backend, more than its "
  unchanged ;;
dump_refuses_a_pool_over_ulimit_v)  # 4.5 GB fit in memory, not in 4 GB of address space
  under_ulimit_v
  touching qwen3.5-397b-a17b 24 >mid.jsonl
  before=$(listing)
  run 2 bash -c 'ulimit -v 4000000 && exec "$0" dump mid.jsonl --request 1 --out d' "$specstate"
  said "mid.jsonl:1: the pools need "
  said "of address space left under the process's limit (ulimit -v)"
  unchanged ;;
replay_refuses_a_pool_over_ulimit_v)
  under_ulimit_v
  touching qwen3.5-397b-a17b 24 >mid.jsonl
  before=$(listing)
  run 2 bash -c 'ulimit -v 4000000 && exec "$0" replay mid.jsonl --strategy inline' "$specstate"
  said "mid.jsonl:1: the pools need "
  said "(ulimit -v)"
  unchanged ;;
footprint_batch_300m_is_refused)  # negative sizes, exit 0
  run 2 "$specstate" footprint --preset qwen3-next-80b-a3b --batch 300000000
  said "--batch 300000000: scatter: state rows exceed 2147483647"
  printed_nothing ;;
footprint_batch_500m_is_refused)  # "internal invariant broken at core/strategy/strategy.cpp:95"
  run 2 "$specstate" footprint --preset qwen3-next-80b-a3b --batch 500000000
  said "--batch 500000000: scatter: state rows exceed 2147483647"
  printed_nothing ;;
footprint_batch_2p30_prints_nothing)  # a header with a negative pool came first
  run 2 "$specstate" footprint --preset qwen3-next-80b-a3b --batch 64,1073741824
  said "--batch 1073741824: the default pool of 2 x batch rows exceeds 2147483647 rows"
  printed_nothing ;;
footprint_svg_failed_write_keeps_the_old_chart)  # a full disk truncated the old chart
  "$specstate" footprint --preset tiny --svg chart.svg 2>/dev/null || fail "no first chart"
  before=$(listing)
  (trap '' XFSZ; ulimit -f 2; exec "$specstate" footprint --preset qwen3-next-80b-a3b \
    --svg chart.svg) >"$work.out" 2>"$work.err"
  rc=$?
  cat "$work.err"
  [ $rc -eq 2 ] || fail "exit code $rc, expected 2"
  said "--svg chart.svg: write failed: File too large"
  unchanged ;;
footprint_svg_stderr_full_fails)  # "wrote FILE" goes to stderr: a lost message is an error
  device full 7
  "$specstate" footprint --preset tiny --svg chart.svg 2>full
  rc=$?
  [ $rc -eq 2 ] || fail "exit code $rc, expected 2" ;;
replay_json_stdout_full_fails)
  device full 7
  small_trace
  "$specstate" replay t.jsonl --json >full 2>"$work.err"
  rc=$?
  cat "$work.err"
  [ $rc -eq 2 ] || fail "exit code $rc, expected 2"
  said "specstate: cannot write standard output: No space left on device" ;;
validate_stdout_full_fails)
  device full 7
  small_trace
  "$specstate" validate t.jsonl >full 2>"$work.err"
  rc=$?
  cat "$work.err"
  [ $rc -eq 2 ] || fail "exit code $rc, expected 2"
  said "specstate: cannot write standard output: No space left on device" ;;
validate_stdout_closed_fails)
  small_trace
  "$specstate" validate t.jsonl >&- 2>"$work.err"
  rc=$?
  cat "$work.err"
  [ $rc -eq 2 ] || fail "exit code $rc, expected 2"
  said "specstate: cannot write standard output: Bad file descriptor" ;;
flag_request_minus_one_is_refused)  # all three became 18446744073709551615
  small_trace
  before=$(listing)
  run 2 "$specstate" dump t.jsonl --request -1 --out d
  said "--request: '-1' is not an integer in 0..18446744073709551615"
  unchanged ;;
flag_request_2p64_is_refused)
  small_trace
  before=$(listing)
  run 2 "$specstate" dump t.jsonl --request 18446744073709551616 --out d
  said "--request: '18446744073709551616' is not an integer in 0..18446744073709551615"
  unchanged ;;
flag_seed_minus_one_is_refused)
  before=$(listing)
  run 2 "$specstate" generate --preset tiny --requests 4 --steps 40 --seed -1 -o t.jsonl
  said "--seed: '-1' is not an integer in 0..18446744073709551615"
  unchanged ;;
flag_batch_2p32_is_refused)
  run 2 "$specstate" footprint --preset tiny --batch 64,4294967296
  said "--batch: '4294967296' is not an integer in -2147483648..2147483647"
  printed_nothing ;;
*)
  fail "unknown case" ;;
esac
echo "PASS: $case"
