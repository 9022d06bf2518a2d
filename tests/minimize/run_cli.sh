#!/usr/bin/env bash
# specstate minimize's habits, one case per behaviour, in a fresh temporary directory: the trace
# it writes validates and reproduces with replay (and agrees without the fault), --json, input
# errors (exit 2, FILE:LINE, nothing written), -o - (the trace on stdout, the report on stderr).
set -euo pipefail
bin="$1" python="$2" source="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$(mktemp -d)"
trap 'rm -rf "$PWD"' EXIT
case_name="${3:?case}"
expect() {  # expect CODE PATTERN -- command...; leaves the output in $out
  local code="$1" pattern="$2"; shift 3
  set +e; out="$("$@" 2>&1)"; rc=$?; set -e
  if [ "$rc" != "$code" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: $* -> exit $rc, wanted $code and /$pattern/:"; echo "$out"; exit 1
  fi
}
has() {  # has PATTERN: the last expect's output holds it
  grep -qE -- "$1" <<<"$out" || { echo "FAIL: no /$1/ in:"; echo "$out"; exit 1; }
}
"$bin" generate --preset tiny --requests 24 --steps 300 --seed 5 -o t.jsonl >/dev/null
case "$case_name" in
  writes)
    expect 0 '^minimized t.jsonl into small.jsonl in [0-9.]+ s: 382 -> [0-9] events$' -- \
      "$bin" minimize t.jsonl --inject decode-reads-old-row --strategy scatter,inline -o small.jsonl
    has '^  divergence kept: per-token outputs, cpu/scatter vs cpu/inline\+decode-reads-old-row \(input line [0-9]+\)$'
    has '^  [0-9]+ replays \(the first, of the input through every lane, [0-9.]+ s\), then of cpu/scatter, cpu/inline\+decode-reads-old-row on layer 0; '
    has '^  events +382 +[0-9]$'
    has '^DIVERGENCE at small.jsonl:[0-9]+: decode \[request 1\]$'
    head -1 small.jsonl | grep -qE '^# specstate minimize t.jsonl --strategy scatter,inline --inject decode-reads-old-row: 382 events -> [0-9]$'
    expect 0 '^  events +[0-9]:' -- "$bin" validate small.jsonl
    expect 1 '^  per-token outputs of request 1$' -- \
      "$bin" replay small.jsonl --inject decode-reads-old-row --strategy scatter,inline
    expect 0 '^AGREE: 7 lanes bit-identical' -- "$bin" replay small.jsonl ;;
  json)
    "$bin" generate --preset tiny --requests 24 --steps 300 --seed 5 --overlap -o o.jsonl >/dev/null
    "$bin" minimize o.jsonl --inject counts-reordered -o small.jsonl --json > m.json
    "$python" - m.json <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["signature"] == {"kind": "per-token outputs", "lane_a": "cpu/scatter",
                          "lane_b": "cpu/scatter@overlap+counts-reordered"}, m["signature"]
assert m["before"]["events"] == 382 and 0 < m["after"]["events"] <= 7, m["after"]
assert m["tested_lanes"] == ["cpu/scatter", "cpu/scatter@overlap+counts-reordered"]
assert m["tested_layers"] == [0]
assert [s["name"] for s in m["stages"]] == \
    ["requests", "events", "entries", "snapshots", "numbers", "rows", "model"]
assert m["replays"] == 1 + sum(s["replays"] for s in m["stages"]) + 2, m
assert m["replay"]["what"].startswith("per-token outputs") and m["replay"]["line"] > 1
assert m["seconds"] >= m["input_seconds"] > 0
PY
    expect 1 'per-token outputs' -- "$bin" replay small.jsonl --inject counts-reordered ;;
  errors)
    echo keep > small.jsonl
    expect 2 '^t.jsonl:383: the trace does not diverge: its 7 lanes agree to its end' -- \
      "$bin" minimize t.jsonl -o small.jsonl
    expect 2 '^\{"error":"t.jsonl:383: the trace does not diverge' -- \
      "$bin" minimize t.jsonl -o small.jsonl --json
    expect 2 "^unknown fault 'decode-read-old-row'; did you mean 'decode-reads-old-row'\?" -- \
      "$bin" minimize t.jsonl --inject decode-read-old-row -o small.jsonl
    expect 2 '^--inject stale-ring-cursor concerns only ring, which the lanes do not include$' -- \
      "$bin" minimize t.jsonl --inject stale-ring-cursor --strategy scatter,inline -o small.jsonl
    rules="$source/tests/trace_rules/decode-unknown-request.jsonl"
    expect 2 "^$rules:[0-9]+: request" -- "$bin" minimize "$rules" -o small.jsonl
    expect 2 'open' -- "$bin" minimize missing.jsonl -o small.jsonl
    expect 2 'output is required' -- "$bin" minimize t.jsonl
    expect 2 '^--json and -o - both write standard output' -- \
      "$bin" minimize t.jsonl --inject decode-reads-old-row -o - --json
    # refused before the search: not the "does not diverge" the search would find
    expect 2 '^-o missing/small.jsonl: .*No such file or directory' -- \
      "$bin" minimize t.jsonl -o missing/small.jsonl
    expect 2 '^-o \.: is a directory' -- "$bin" minimize t.jsonl --inject decode-reads-old-row -o .
    test "$(cat small.jsonl)" = keep ;;
  stdout)
    "$bin" minimize t.jsonl --inject decode-reads-old-row -o - > out.jsonl 2> report.txt
    grep -qE '^minimized t.jsonl into standard output in [0-9.]+ s: 382 -> [0-9] events$' report.txt
    expect 0 '^  events +[0-9]:' -- "$bin" validate out.jsonl
    test "$(ls)" = "$(printf 'out.jsonl\nreport.txt\nt.jsonl')" ;;
  *) echo "unknown case $case_name"; exit 2 ;;
esac
