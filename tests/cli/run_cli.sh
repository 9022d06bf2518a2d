#!/usr/bin/env bash
# The command line's habits, one case per behaviour, in a fresh temporary directory:
# --version, help [COMMAND], "did you mean" for a mistyped command, presets (text and JSON), and
# what a replay of one lane says it checked.
set -euo pipefail
bin="$1" python="$2" source="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$(mktemp -d)"
trap 'rm -rf "$PWD"' EXIT
case_name="${3:?case}"
expect() {  # expect CODE PATTERN -- command...
  local code="$1" pattern="$2"; shift 3
  set +e; out="$("$@" 2>&1)"; rc=$?; set -e
  if [ "$rc" != "$code" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: $* -> exit $rc, wanted $code and /$pattern/:"; echo "$out"; exit 1
  fi
}
case "$case_name" in
  version) expect 0 '^specstate [0-9]+\.[0-9]+\.[0-9]+$' -- "$bin" --version ;;
  help) expect 0 '^  presets +List the model presets' -- "$bin" help
        expect 0 'Compare two dumps' -- "$bin" help compare
        expect 2 "^unknown command 'dmup'; did you mean 'dump'\?" -- "$bin" help dmup ;;
  did-you-mean)
        expect 2 "^unknown command 'replya'; did you mean 'replay'\? \(specstate --help" -- \
          "$bin" replya trace.jsonl
        expect 2 "did you mean 'footprint'\?" -- "$bin" foot
        expect 2 "^unknown command 'zzzzzz' \(specstate --help lists the commands\)$" -- \
          "$bin" zzzzzz
        expect 2 "^--preset: unknown preset 'qwen3-next'; did you mean 'qwen3-next-80b-a3b'\? \(specstate presets lists them\)$" -- \
          "$bin" generate --preset qwen3-next --requests 2 --steps 4 --seed 1 -o t.jsonl
        expect 2 "^--preset: unknown preset 'Qwen3.5-9B'; did you mean 'qwen3.5-9b'\? " -- \
          "$bin" footprint --preset Qwen3.5-9B --batch 4
        expect 2 "^--preset: unknown preset 'gpt2' \(specstate presets lists them\)$" -- \
          "$bin" footprint --preset gpt2 --batch 4
        trace="$source/examples/retract-resume.jsonl"
        expect 2 "^unknown strategy 'inlne'; did you mean 'inline'\? \(known: " -- \
          "$bin" replay "$trace" --strategy scatter,inlne
        expect 2 "^--backend: unknown backend 'gpu'; did you mean 'cpu'\? \(known: cpu, cuda\)$" -- \
          "$bin" replay "$trace" --backend gpu
        expect 2 "^unknown fault 'decode-read-old-row'; did you mean 'decode-reads-old-row'\?" -- \
          "$bin" replay "$trace" --inject decode-read-old-row
        test ! -e t.jsonl ;;
  presets)
        expect 0 '^qwen3-next-80b-a3b +36/48 +16 +32 +128 +128 +8192 +4 +73\.69 MiB +gated-deltanet +Qwen3-Next' -- "$bin" presets
        expect 0 '^tiny +2/2 +2 +4 +16 +16 +128 +4 +9\.50 KiB' -- "$bin" presets
        "$bin" presets --json > presets.json
        "$python" - presets.json <<'PY'
import json, sys
presets = json.load(open(sys.argv[1]))
names = [p["name"] for p in presets]
assert len(presets) == 9 and names[0] == "qwen3-next-80b-a3b" and names[-1] == "tiny", names
q = presets[0]
assert (q["gdn_layers"], q["H"], q["HV"], q["K"], q["V"], q["conv_dim"], q["W"]) == \
    (36, 16, 32, 128, 128, 8192, 4), q
assert q["state_bytes_per_request"] == 36 * (32 * 128 * 128 * 4 + 8192 * 3 * 2)
assert {p["recurrence"] for p in presets} == {"gated-deltanet", "kimi-delta-attention"}, presets
PY
        ;;
  single-lane)
        expect 0 "^OK: 1 lane \(cpu/inline\) ran 19 events: the schedule is valid and every write went to a row the protocol gives its request \(row ownership\); nothing to compare it with" -- \
          "$bin" replay "$source/examples/retract-resume.jsonl" --strategy inline
        expect 0 "^AGREE: 2 lanes bit-identical after 19 events" -- \
          "$bin" replay "$source/examples/retract-resume.jsonl" --strategy inline,replay ;;
  option-ranges)
        expect 2 '^--requests 0 outside 1\.\.1048576$' -- \
          "$bin" generate --preset tiny --requests 0 --steps 5 --seed 1 -o t.jsonl
        expect 2 '^--accept-prob 2 outside 0\.\.1$' -- \
          "$bin" generate --preset tiny --requests 4 --steps 5 --seed 1 -o t.jsonl --accept-prob 2
        expect 2 '^--ulp: Value -1 not in range 0 to 9223372036854775807' -- \
          "$bin" compare a b --ulp -1
        test ! -e t.jsonl ;;
  json)
        trace="$source/examples/retract-resume.jsonl"
        "$bin" validate "$trace" --json > validate.json
        "$bin" generate --preset tiny --requests 2 --steps 4 --seed 1 -o g.jsonl --json > generate.json
        "$bin" dump "$trace" --request 10 --out a --json > dump.json
        "$bin" dump "$trace" --request 10 --out b --strategy replay >/dev/null
        "$bin" compare a b --json > agree.json
        "$python" -c 'import sys, numpy as np; f = sys.argv[1]; x = np.load(f); x[3, 1, 2, 5] += 1; np.save(f, x)' \
          b/layer01/ssm_state.npy
        set +e
        "$bin" compare a b --json > differ.json; differ=$?
        "$bin" validate "$source/tests/trace_rules/verify-accepted-zero.jsonl" --json \
          > error.json 2> error.txt; error=$?
        set -e
        "$python" - "$differ" "$error" <<'PY'
import json, sys
v = json.load(open("validate.json"))
assert v["valid"] and v["summary"]["events"]["total"] == 19, v
assert len(v["summary"]["acceptance"]) == v["summary"]["header"]["T"] == 3, v
g = json.load(open("generate.json"))
assert g["output"] == "g.jsonl" and g["events"] == g["summary"]["events"]["total"], g
d = json.load(open("dump.json"))
assert d["agree"] and d["request"] == 10 and d["tokens"] == d["request_tokens"] == 29, d
a = json.load(open("agree.json"))
assert a["agree"] and a["files"] == 24 and "first" not in a, a
assert sys.argv[1] == "1"
x = json.load(open("differ.json"))
first = x["first"]
assert not x["agree"] and first["token"] == 3 and first["layer"] == 1, x
assert first["index"] == [1, 2, 5] and first["file"] == "layer01/ssm_state.npy", first
assert sys.argv[2] == "2"
e = json.load(open("error.json"))
assert e["line"] == 3 and e["message"] == "accepted length 0 outside 1..4 (request 1); only an overlap trace (header overlap 1) has discarded entries", e
assert open("error.txt").read().strip() == e["error"]
PY
        ;;
  stdio)
        "$bin" generate --preset tiny --requests 3 --steps 6 --seed 2 -o - > piped.jsonl 2> report.txt
        grep -q '^wrote standard output: ' report.txt
        "$bin" generate --preset tiny --requests 3 --steps 6 --seed 2 -o file.jsonl > /dev/null
        cmp piped.jsonl file.jsonl
        test ! -e ./-
        expect 0 '^-: valid specstate trace' -- sh -c '"$0" validate - < piped.jsonl' "$bin"
        expect 0 '^AGREE: 7 lanes bit-identical' -- sh -c '"$0" replay - < piped.jsonl' "$bin"
        expect 2 '^-:2: field .tokens. in extend event is 0, outside 1\.\.16777216$' -- \
          sh -c 'head -1 "$1" > bad.jsonl; echo "{\"event\": \"extend\", \"request\": 1, \"req_row\": 0, \"working_row\": 0, \"tokens\": 0}" >> bad.jsonl; "$0" validate - < bad.jsonl' "$bin" piped.jsonl
        expect 2 '^--json and -o - both write standard output' -- \
          "$bin" generate --preset tiny --requests 3 --steps 6 --seed 2 -o - --json
        expect 2 '^-o -: a dump is a directory' -- "$bin" dump file.jsonl --request 1000 -o -
        expect 0 '^dumped request 1000 of file.jsonl' -- "$bin" dump file.jsonl --request 1000 -o d1
        test -f d1/meta.json
        test ! -e ./- ;;
  threads)  # at most 4 per hardware thread; a count the system cannot start is refused
        trace="$source/examples/retract-resume.jsonl"
        expect 0 '^  layers all of 2, [0-9]+ threads \(--threads 4096 capped at 4 per hardware thread\)$' -- \
          "$bin" replay "$trace" --threads 4096
        "$bin" replay "$trace" --threads 4096 --json > capped.json
        "$python" -c 'import json, sys; t = json.load(open(sys.argv[1]))["threads"]; assert 4 <= t < 4096 and t % 4 == 0, t' capped.json
        expect 2 '^--threads: Value 4097 not in range 1 to 4096' -- "$bin" replay "$trace" --threads 4097
        if [ -z "${SPECSTATE_SANITIZED:-}" ]; then  # ASan's shadow memory needs the address space
          # 30 MB: one thread runs (it needs about 21 MB, the CUDA kernels' code mapped in); eight
          # threads' stacks (4 MB each) do not fit.
          expect 0 '^AGREE: 7 lanes' -- sh -c 'ulimit -v 30000; exec "$0" replay "$1" --threads 1' \
            "$bin" "$trace"
          expect 2 '^--threads 4096: cannot start [0-9]+ threads: Resource temporarily unavailable$' -- \
            sh -c 'ulimit -v 30000; exec "$0" replay "$1" --threads 4096' "$bin" "$trace"
        fi ;;
  generate-memory)  # events stream to the output: 10x the steps, the same peak memory
        ASAN_OPTIONS="quarantine_size_mb=0:${ASAN_OPTIONS:-}" "$python" - "$bin" <<'PY'
import os, subprocess, sys
def peak_kib(steps):  # the child's own peak RSS (wait4), its trace to /dev/null
    p = subprocess.Popen([sys.argv[1], "generate", "--preset", "tiny", "--requests", "64",
                          "--steps", str(steps), "--seed", "1", "-o", "/dev/null"],
                         stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    return usage.ru_maxrss
small, large = peak_kib(10_000), peak_kib(100_000)
# Holding the trace took 15 MiB at 10k steps and 101 MiB at 100k.
assert large <= small + 16 * 1024, f"peak RSS {small} KiB at 10k steps, {large} KiB at 100k"
PY
        ;;
  demo-temp)
        mkdir tmp
        TMPDIR="$PWD/tmp" "$bin" demo > first.txt
        TMPDIR="$PWD/tmp" "$bin" demo > second.txt
        first=$(sed -n 's/^1\. Generated .*: \(.*\)$/\1/p' first.txt)
        second=$(sed -n 's/^1\. Generated .*: \(.*\)$/\1/p' second.txt)
        case "$first" in "$PWD"/tmp/specstate-demo-*/demo.jsonl) ;; *) echo "FAIL: $first"; exit 1 ;; esac
        test "$first" != "$second" && test -s "$first" && test -s "$second"
        cmp "$first" "$second"  # the same seed gives the same trace
        test "$(ls tmp | wc -l)" = 2 ;;
  footprint-edges)
        expect 2 '^--batch excludes --svg' -- "$bin" footprint --preset tiny --svg c.svg --batch 4
        expect 2 '^--max-batch requires --svg' -- "$bin" footprint --preset tiny --max-batch 8
        expect 2 '^--pool-rows 10: fewer than the --batch 64 running requests' -- \
          "$bin" footprint --preset tiny --batch 64 --pool-rows 10
        expect 2 '^--draft-tokens 16: must be in 0\.\.15' -- \
          "$bin" footprint --preset tiny --batch 4 --draft-tokens 16
        test "$(sh -c '"$0" footprint --preset tiny --batch 4 --draft-tokens 16 2>/dev/null' "$bin" | wc -c)" = 0
        test ! -e c.svg
        "$bin" footprint --preset tiny --svg tiny.svg --max-batch 16 2>/dev/null
        grep -q 'total state memory (MiB)' tiny.svg
        ! grep -q ' 0\.0 GiB' tiny.svg
        "$bin" footprint --preset qwen3-next-80b-a3b --svg q.svg 2>/dev/null
        grep -q 'total state memory (GiB)' q.svg ;;
  open-errors)  # a file that does not open says why
        for command in validate replay "dump --request 1 -o d"; do
          expect 2 '^missing\.jsonl: cannot open for reading: No such file or directory$' -- \
            "$bin" $command missing.jsonl
        done
        if [ "$(id -u)" != 0 ]; then  # root reads any file
          echo '{}' > locked.jsonl && chmod 000 locked.jsonl
          expect 2 '^locked\.jsonl: cannot open for reading: Permission denied$' -- \
            "$bin" validate locked.jsonl
        fi ;;
  backend-check)  # a backend that cannot run here is refused before anything is printed
        trace="$source/examples/retract-resume.jsonl"
        for command in "replay $trace --backend cpu,cuda" "dump $trace --request 10 -o d --backend cuda"; do
          set +e; "$bin" $command > out.txt 2> err.txt; rc=$?; set -e
          [ "$rc" = 0 ] && continue  # a CUDA build on a machine with a GPU
          [ "$rc" = 2 ] && [ ! -s out.txt ] && grep -qE \
            "^--backend: backend 'cuda': (specstate was not built with CUDA|no CUDA device is visible)" err.txt ||
            { echo "FAIL: $command -> exit $rc:"; cat out.txt err.txt; exit 1; }
          test ! -e d
        done ;;
  footprint-units)  # each figure in its own unit: a fixed GiB column printed 0.000 for tiny
        expect 0 '^scatter +76 KiB +304 KiB +0 B +380 KiB +266 KiB +7\.00$' -- \
          "$bin" footprint --preset tiny --batch 4
        expect 0 '^memory, total +46\.05 GiB +23\.24 GiB +22\.81 GiB +49\.5%$' -- \
          "$bin" footprint --preset qwen3-next-80b-a3b --batch 64 --compare scatter,inline
        expect 0 '^memory, total +96 KiB +380 KiB +-284 KiB +-293\.8%$' -- \
          "$bin" footprint --preset tiny --batch 4 --compare replay,scatter
        if "$bin" footprint --preset tiny --batch 4 | grep -q '0\.000'; then
          echo "FAIL: a figure printed as 0.000"; exit 1
        fi ;;
  json-shapes)
        "$bin" footprint --preset tiny --batch 4 --json > one.json
        "$bin" footprint --preset tiny --batch 4,8 --json > two.json
        set +e
        "$bin" replay "$source/tests/scenarios/decode-reads-old-row.jsonl" \
          --inject decode-reads-old-row --strategy inline,scatter --json > divergence.json
        rc=$?
        set -e
        test "$rc" = 1
        "$python" - <<'PY'
import json
one, two = json.load(open("one.json")), json.load(open("two.json"))
assert isinstance(one, list) and len(one) == 1 and len(two) == 2, (one, two)
assert one[0].keys() == two[0].keys() and one[0]["gdn_layers"] == 2 and two[1]["batch"] == 8
assert one[0]["recurrence"] == "gated-deltanet", one[0]
r = json.load(open("divergence.json"))
d = r["divergence"]
assert d["fault"] == "decode-reads-old-row" and d["line"] == 10, d
assert d["lanes"] == ["cpu/inline", "cpu/inline+decode-reads-old-row"], d
lanes = {l["lane"]: l for l in r["lanes"]}
assert lanes["cpu/inline+decode-reads-old-row"]["fault"] == "decode-reads-old-row"
assert lanes["cpu/scatter"]["fault"] is None and lanes["cpu/scatter"]["strategy"] == "scatter"
import struct  # values are numbers, their bits a string beside them ("0x3c98 (0.0185...)" was one)
for e in d["elements"]:
    assert e["tensor"] == "outputs" and e["dtype"] == "bf16" and isinstance(e["element"], int), e
    for side in "ab":
        bits = int(e[side + "_bits"], 16)
        assert type(e[side]) is float, e
        assert e[side] == struct.unpack("<f", struct.pack("<I", bits << 16))[0], e
PY
        ;;
  demo-json)
        mkdir tmp
        TMPDIR="$PWD/tmp" "$bin" demo --json > demo.json
        "$python" - <<'PY'
import json
j = json.load(open("demo.json"))
assert list(j) == ["trace", "summary", "replay", "tree_trace", "tree_replay", "cuda", "footprint"], list(j)
r = j["replay"]
assert r["agree"] and r["events"] == j["summary"]["events"]["total"] == r["events_total"], r
strategies = {l["strategy"] for l in r["lanes"]}
assert strategies == {"scatter", "inline", "window", "replay", "deferred", "ring", "paged"}, strategies
f = j["footprint"]
assert f["preset"] == "qwen3-next-80b-a3b" and f["batch"] == 64, f
ring = [s for s in f["strategies"] if s["strategy"] == "ring"][0]
assert ring["folds_per_step"] == 0.25 and ring["history_tokens_per_step"] == 10, ring
t = j["tree_replay"]
assert t["agree"] and t["events"] > 0, t
assert {l["strategy"] for l in t["lanes"]} == {"scatter", "inline", "replay", "deferred", "ring"}, t
PY
        ;;
  trees)
        expect 0 '^wrote t\.jsonl' -- "$bin" generate --preset tiny --requests 12 --steps 120 \
          --seed 3 --tree 2,2,2 -o t.jsonl
        grep -q '"specstate_trace":2,.*"tree_nodes":15}' t.jsonl || { echo "FAIL: header"; exit 1; }
        expect 0 '^AGREE: 5 lanes' -- "$bin" replay t.jsonl
        expect 0 'the window and paged strategies do not run trees' -- "$bin" replay t.jsonl
        expect 2 '^t\.jsonl:1: the window strategy does not run draft trees' -- \
          "$bin" replay t.jsonl --strategy window
        expect 1 'DIVERGENCE at t\.jsonl:[0-9]+: verify' -- \
          "$bin" replay t.jsonl --inject tree-contiguous-path
        expect 0 'draft trees of 15 nodes' -- "$bin" footprint --preset tiny --batch 4 --tree 2,2,2
        expect 0 'draft trees of 8 nodes' -- "$bin" footprint --preset tiny --batch 4 --tree-nodes 8
        expect 2 "^--tree '9,9': 91 nodes, more than 64" -- \
          "$bin" footprint --preset tiny --batch 4 --tree 9,9
        expect 2 '^a tree of 4 levels needs draft_tokens >= 4' -- \
          "$bin" generate --preset tiny --requests 2 --steps 4 --seed 1 --tree 2,1,1,1 -o u.jsonl
        [ ! -e u.jsonl ] || { echo "FAIL: a refused generate wrote u.jsonl"; exit 1; }
        request=$(grep -m1 -o '"request":[0-9]*,"accepted":[0-9]*,"tree"' t.jsonl | grep -o '[0-9]*' | head -1)
        expect 2 "^t\.jsonl:[0-9]+: request $request verifies a draft tree; dump records chains" -- \
          "$bin" dump t.jsonl --request "$request" -o d
        [ ! -e d ] || { echo "FAIL: a refused dump wrote d"; exit 1; }
        ;;
  overlap)
        expect 0 '^wrote o\.jsonl' -- "$bin" generate --preset tiny --requests 12 --steps 120 \
          --seed 3 --overlap -o o.jsonl
        grep -q '"specstate_trace":2,.*"overlap":1}' o.jsonl || { echo "FAIL: header"; exit 1; }
        grep -q '"accepted":0}' o.jsonl || { echo "FAIL: no discarded entry"; exit 1; }
        expect 0 'discarded entries' -- "$bin" validate o.jsonl
        expect 0 '^AGREE: 14 lanes' -- "$bin" replay o.jsonl
        expect 0 'cpu/ring@overlap' -- "$bin" replay o.jsonl
        expect 0 '^AGREE: 7 lanes' -- "$bin" replay o.jsonl --schedule sync
        expect 0 '^AGREE: 7 lanes' -- "$bin" replay o.jsonl --schedule overlap
        expect 1 'DIVERGENCE at o\.jsonl:[0-9]+: ' -- "$bin" replay o.jsonl --inject advanced-length
        expect 2 '^--inject counts-reordered concerns only .* with overlap scheduling' -- \
          "$bin" replay o.jsonl --schedule sync --inject counts-reordered
        expect 2 "^--schedule must be trace, sync, overlap, overlap=D or both, got 'async'" -- \
          "$bin" replay o.jsonl --schedule async
        expect 2 '^--schedule overlap=5: the overlap depth must be 1..4' -- \
          "$bin" replay o.jsonl --schedule overlap=5
        expect 0 '^AGREE: 7 lanes' -- "$bin" replay o.jsonl --schedule overlap=3
        expect 0 '^wrote o3\.jsonl' -- "$bin" generate --preset tiny --requests 24 --steps 150 \
          --seed 1 --overlap=3 -o o3.jsonl
        grep -q '"overlap":3}' o3.jsonl || { echo "FAIL: depth 3 header"; exit 1; }
        expect 0 'depth 3: steps prepared before the results of the 3 before them' -- \
          "$bin" validate o3.jsonl
        expect 0 'cpu/ring@overlap=3' -- "$bin" replay o3.jsonl
        expect 0 '^AGREE: 14 lanes' -- "$bin" replay o3.jsonl
        expect 1 'DIVERGENCE at o3\.jsonl:[0-9]+: ' -- "$bin" replay o3.jsonl --inject advanced-length
        request=$(grep -m1 -o '"request":[0-9]*,"accepted":0' o.jsonl | grep -o '[0-9]*' | head -1)
        expect 0 "^dumped request $request of o\.jsonl" -- "$bin" dump o.jsonl --request "$request" -o d
        expect 0 '^wrote t\.jsonl' -- "$bin" generate --preset tiny --requests 4 --steps 20 \
          --seed 3 --tree 2,2 -o t.jsonl
        expect 2 '^t\.jsonl:1: overlap scheduling of draft trees is not modelled' -- \
          "$bin" replay t.jsonl --schedule overlap
        expect 2 '^--overlap with --tree: overlap scheduling of draft trees is not modelled' -- \
          "$bin" generate --preset tiny --requests 2 --steps 4 --seed 1 --overlap --tree 2 -o u.jsonl
        [ ! -e u.jsonl ] || { echo "FAIL: a refused generate wrote u.jsonl"; exit 1; }
        ;;
  ring-options)
        printf '%s\n' '{"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 15, "pool_rows": 4, "max_requests": 2, "page_size": 0, "seed": 1}' \
          '{"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": 4}' > t16.jsonl
        expect 2 '^t16\.jsonl:1: ring: ring_history 8 outside 16\.\.16' -- \
          "$bin" replay t16.jsonl --ring-history 8
        expect 0 '^AGREE: 5 lanes' -- "$bin" replay t16.jsonl --ring-history 8 \
          --strategy scatter,inline,window,replay,deferred
        expect 0 '^AGREE: 7 lanes' -- "$bin" replay "$source/examples/retract-resume.jsonl" \
          --ring-slots 9 --ring-history 6 --ring-fold-at 2
        expect 0 'folds 1\.000 times' -- "$bin" footprint --preset tiny --batch 4 --ring-fold-at 1
        expect 0 'replays 8\.04 history tokens' -- \
          "$bin" footprint --preset qwen3-next-80b-a3b --batch 64 --accept-prob 0.7
        expect 2 '^--accept-prob: must be in 0\.\.1' -- \
          "$bin" footprint --preset tiny --batch 4 --accept-prob 1.5
        expect 2 'excludes --accept-weights' -- \
          "$bin" footprint --preset tiny --batch 4 --accept-prob 0.5 --accept-weights 1,1,1,1
        expect 2 '^--accept-weights: 2 given, expected T = 4' -- \
          "$bin" footprint --preset tiny --batch 4 --accept-weights 1,1 ;;
  custom-geometry)  # format version 2: the tiny preset written as a custom geometry
        "$bin" generate --preset tiny --requests 3 --steps 6 --seed 3 -o tiny.jsonl > /dev/null
        "$python" - tiny.jsonl custom.jsonl <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
header = json.loads(lines[0])
assert header.pop("preset") == "tiny" and header.pop("specstate_trace") == 1
geometry = {"layers": 2, "H": 2, "HV": 4, "K": 16, "V": 16, "conv_dim": 128, "W": 4}
header = {"specstate_trace": 2, "geometry": geometry, **header}
open(sys.argv[2], "w").write("\n".join([json.dumps(header)] + lines[1:]) + "\n")
PY
        expect 0 'format version 2' -- "$bin" validate custom.jsonl
        expect 0 'model +custom \(2 layers, H 2, HV 4, K 16, V 16, W 4\), TP 1' -- \
          "$bin" validate custom.jsonl
        expect 0 '^AGREE: 7 lanes' -- "$bin" replay custom.jsonl
        # The same geometry gives the preset's bytes, token by token.
        "$bin" dump tiny.jsonl --request 1001 -o preset-dump > /dev/null
        "$bin" dump custom.jsonl --request 1001 -o custom-dump > /dev/null
        expect 0 'max \|diff\| 0\)' -- "$bin" compare preset-dump custom-dump
        # A geometry the CPU kernels do not run: refused at the header, before any allocation.
        sed 's/"V": 16, "conv_dim": 128/"V": 12, "conv_dim": 112/' custom.jsonl > v12.jsonl
        expect 2 "^v12\.jsonl:1: backend 'cpu': unsupported geometry" -- "$bin" replay v12.jsonl
        expect 2 "^v12\.jsonl:1: backend 'cpu': unsupported geometry" -- \
          "$bin" dump v12.jsonl --request 1001 -o v12-dump
        [ ! -e v12-dump ] || { echo "FAIL: a refused dump left v12-dump"; exit 1; }
        sed 's/"specstate_trace": 2/"specstate_trace": 1/' custom.jsonl > v1.jsonl
        expect 2 "^v1\.jsonl:1: field 'geometry' in header needs format version 2" -- \
          "$bin" validate v1.jsonl ;;
  progress-terminal)  # a bar on a terminal's stderr, --json or not; none when stderr is a file
        "$bin" generate --preset qwen3-next-80b-a3b --tp 8 --requests 4 --steps 60 --seed 3 \
          -o t.jsonl > /dev/null
        # script(1) runs the command on a pseudo-terminal: stderr is the terminal, stdout a file.
        script -qec "'$bin' replay t.jsonl --layers 0-11 --json > report.json" transcript > /dev/null
        grep -qE '\[#* *\] +[0-9]+%  7 lanes, [0-9]+/71 events' transcript ||
          { echo "FAIL: no progress bar on the terminal:"; cat -v transcript; exit 1; }
        "$bin" replay t.jsonl --layers 0 --json > plain.json 2> plain.err
        [ ! -s plain.err ] || { echo "FAIL: stderr is not a terminal but got:"; cat -v plain.err; exit 1; }
        "$python" -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); \
names = lambda r: [l["lane"] for l in r["lanes"]]; \
assert a["agree"] and b["agree"] and len(names(a)) == 7 and names(a) == names(b), (a, b)' \
          report.json plain.json ;;
  dump-on-divergence)  # replay --dump-on-divergence, then compare of the two lanes' dumps
        scenario="$source/tests/scenarios/ring-stale-accepted.jsonl"
        expect 0 '^AGREE' -- "$bin" replay "$scenario" --dump-on-divergence clean
        [ ! -e clean ] || { echo "FAIL: an agreeing replay made clean/"; exit 1; }
        expect 1 "^DIVERGENCE at $scenario:10: verify" -- \
          "$bin" replay "$scenario" --inject ring-stale-accepted --dump-on-divergence d
        for lane in cpu-scatter cpu-ring+ring-stale-accepted; do
          [ -f "d/$lane/meta.json" ] && [ -f "d/$lane/layer01/ssm_state.npy" ] \
            || { echo "FAIL: no dump d/$lane"; ls -R d; exit 1; }
        done
        [ "$(ls d | wc -l)" = 2 ] || { echo "FAIL: d/ holds $(ls d)"; exit 1; }
        grep -q "^  compare them: specstate compare d/cpu-scatter d/cpu-ring+ring-stale-accepted$" \
          <<<"$out" || { echo "FAIL: no compare command in: $out"; exit 1; }
        grep -q "^  d/cpu-ring+ring-stale-accepted: 12 tokens, the lane differs from the recorder first at $scenario:10: request 1: live state" \
          <<<"$out" || { echo "FAIL: the faulty lane's line: $out"; exit 1; }
        # compare finds the divergence at the replay's trace line, and the stale state.
        expect 1 "^DIVERGENCE: d/cpu-scatter vs d/cpu-ring\+ring-stale-accepted at token 10 \(position 10\), trace line 10: verify" -- \
          "$bin" compare d/cpu-scatter d/cpu-ring+ring-stale-accepted
        grep -qE "^  forensics: d/cpu-ring\+ring-stale-accepted's state at token 10 among d/cpu-scatter's states at tokens 6 to 11: stale by 3 tokens: token 7 \(position 7\), trace line 9: extend, step 7, accepted \(distance 0 vs [0-9.]+ to token 10's state\)$" \
          <<<"$out" || { echo "FAIL: forensics: $out"; exit 1; }
        "$bin" compare d/cpu-scatter d/cpu-ring+ring-stale-accepted --json > compare.json || true
        "$bin" replay "$scenario" --inject ring-stale-accepted --dump-on-divergence j --json \
          > replay.json || true
        "$python" - compare.json replay.json <<'PY'
import json, sys
c, r = (json.load(open(f)) for f in sys.argv[1:])
f = c["forensics"]
assert f["matched"] and f["examined"] == "d/cpu-ring+ring-stale-accepted", f
assert f["candidates"][0]["offset"] == -3 and f["candidates"][0]["distance"] == 0, f
assert f["verdict"].startswith("stale by 3 tokens: token 7 (position 7)"), f["verdict"]
d = r["dumps"]
assert (d["dir"], d["request"], d["until_line"]) == ("j", 1, 10), d
assert [l["dir"] for l in d["lanes"]] == ["j/cpu-scatter", "j/cpu-ring+ring-stale-accepted"], d
assert d["lanes"][0]["differs"] is None and d["lanes"][1]["tokens"] == 12, d
PY
        # DIR is checked before the replay runs.
        touch file
        expect 2 '^--dump-on-divergence file: exists and is not a directory$' -- \
          "$bin" replay "$scenario" --inject ring-stale-accepted --dump-on-divergence file
        expect 2 '^--dump-on-divergence d: exists and is not empty$' -- \
          "$bin" replay "$scenario" --inject ring-stale-accepted --dump-on-divergence d
        expect 2 '^--dump-on-divergence none/d: its parent none is not a directory$' -- \
          "$bin" replay "$scenario" --inject ring-stale-accepted --dump-on-divergence none/d
        mkdir empty
        expect 1 '^  empty/cpu-scatter: 12 tokens' -- \
          "$bin" replay "$scenario" --inject ring-stale-accepted --dump-on-divergence empty ;;
  report)  # specstate report and replay --html: the page, the verdict, refusals before the replay
        scenario="$source/tests/scenarios/ring-stale-accepted.jsonl"
        expect 0 "^$scenario: DIVERGENCE at line 10, 7 lanes, [0-9]+ events; wrote r\.html$" -- \
          "$bin" report "$scenario" --inject ring-stale-accepted -o r.html
        expect 0 "^$scenario: AGREE, 7 lanes, [0-9]+ events; wrote a\.html$" -- \
          "$bin" report "$scenario" -o a.html
        expect 1 "^DIVERGENCE at $scenario:10: verify" -- \
          "$bin" replay "$scenario" --inject ring-stale-accepted --html h.html
        "$bin" generate --preset tiny --requests 8 --steps 200 --seed 4 -o long.jsonl > /dev/null
        expect 0 "AGREE, 7 lanes, [0-9]+ events; wrote w\.html$" -- \
          "$bin" report long.jsonl --window 50 -o w.html
        "$python" - r.html a.html h.html w.html <<'PY'
import re, sys
r, a, h, w = (open(f).read() for f in sys.argv[1:])
for page in (r, a, h, w):
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http://" not in page.replace('http://www.w3.org', '') and "https://" not in page
    assert page.count('<svg class="timeline"') == 7
assert r.count('class="divergence-marker') == 7 and 'id="heat-map"' in r
assert all('<section id="footprint">' in page and "GDN recurrent-state memory" in page
           for page in (r, a, h, w))
assert h.count('class="divergence-marker') == 7
assert 'class="divergence-marker' not in a and "AGREE" in a
m = re.search(r"The last (\d+) of the (\d+) events", w)
assert m and m.group(1) == "50" and int(m.group(2)) > 50, m
PY
        # Refused before the replay runs, nothing written.
        mkdir dir
        expect 2 '^-o dir: is a directory$' -- "$bin" report "$scenario" -o dir
        expect 2 '^-o missing/r\.html: cannot create' -- "$bin" report "$scenario" -o missing/r.html
        printf '{"bad": 1}\n' > bad.jsonl
        expect 2 '^bad\.jsonl:1: ' -- "$bin" report bad.jsonl -o bad.html
        expect 2 'window: Value 0 not in range' -- "$bin" report "$scenario" --window 0 -o z.html
        test ! -e bad.html && test ! -e z.html && [ -z "$(ls -A dir)" ] ;;
  *) echo "unknown case $case_name"; exit 1 ;;
esac
echo "cli $case_name: passed"
