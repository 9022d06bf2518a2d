#!/bin/sh
# One hostile input (of an attack on every input class), run by CTest:
#   run_case.sh SPECSTATE PYTHON CASE RC MESSAGE MAX_RSS_MB MAX_SECONDS SANITIZED COMMAND [ARGS...]
# Writes input CASE (make_input.py; "-" for none) to ./CASE.jsonl, runs `SPECSTATE COMMAND ARGS`
# with @IN@ in ARGS standing for that file, and asserts: the exit code RC; a stderr line that
# starts with MESSAGE (@IN@ stands for the input's name; "" for no check); at most MAX_RSS_MB
# MiB peak RSS and MAX_SECONDS seconds (0: no bound); stderr under 4 KiB; no file created,
# changed or removed in the working directory. SANITIZED=1 (ASan builds) multiplies the memory
# bound by 4 and sets no address-space limit; otherwise the address space is capped at 8 times
# the bound, so that a regression fails fast instead of filling the machine.
set -u
specstate=$1 python=$2 case=$3 rc_want=$4 message=$5 max_mb=$6 max_s=$7 sanitized=$8
shift 8
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*"; exit 1; }

input=$case.jsonl
if [ "$case" != "-" ]; then
  "$python" "$here/make_input.py" "$case" "$input" || fail "cannot make input $case"
fi
cmd=$1
shift
args=
for a in "$@"; do
  [ "$a" = "@IN@" ] && a=$input
  args="$args $a"
done
rm -f stdout stderr usage
before=$(ls -l --time-style=+%s.%N . | grep -v '^total\| stdout$\| stderr$\| usage$' | sort)
sum_before=$( [ -f "$input" ] && cksum "$input")

limit=$max_mb
[ "$sanitized" = 1 ] && limit=$((max_mb * 4))
(
  if [ "$sanitized" != 1 ] && [ "$max_mb" -gt 0 ]; then ulimit -v $((max_mb * 8 * 1024)); fi
  # shellcheck disable=SC2086
  exec /usr/bin/time -f "%M %e" -o usage "$specstate" "$cmd" $args >stdout 2>stderr
)
rc=$?
head -c 2000 stderr
rss_kb=$(cut -d' ' -f1 usage | tail -1)
secs=$(cut -d' ' -f2 usage | tail -1)
echo "exit $rc, peak RSS $((rss_kb / 1024)) MiB, $secs s"

[ "$rc" -eq "$rc_want" ] || fail "exit code $rc, expected $rc_want"
if [ -n "$message" ]; then
  want=$(printf '%s' "$message" | sed "s|@IN@|$input|g")
  grep -qF -- "$want" stderr || fail "stderr does not say: $want"
  grep -- "$want" stderr | grep -q "^$want" || fail "the message does not start its line"
fi
size=$(wc -c <stderr)
[ "$size" -lt 4096 ] || fail "stderr holds $size bytes (echoed values must be cut)"
if [ "$max_mb" -gt 0 ] && [ $((rss_kb / 1024)) -gt "$limit" ]; then
  fail "peak RSS $((rss_kb / 1024)) MiB above $limit MiB"
fi
if [ "$max_s" -gt 0 ]; then
  awk "BEGIN { exit !($secs <= $max_s) }" || fail "took $secs s, bound $max_s s"
fi
after=$(ls -l --time-style=+%s.%N . | grep -v '^total\| stdout$\| stderr$\| usage$' | sort)
[ "$before" = "$after" ] || fail "files changed in the working directory"
[ "$(  [ -f "$input" ] && cksum "$input")" = "$sum_before" ] || fail "the input changed"
echo "PASS"
