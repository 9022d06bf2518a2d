#!/usr/bin/env bash
# specstate compare's exit codes and output: 0 AGREE, 1 DIVERGENCE naming the token and the
# file, 2 for a directory that is not a dump, an unknown option value or a hostile dump folder
# ("FILE: message"), and memory bounded whatever the size of the files.
set -euo pipefail
bin="$1" trace="$2" python="$3"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin" dump "$trace" --request 10 --out "$tmp/a" >/dev/null
"$bin" dump "$trace" --request 10 --out "$tmp/b" --strategy scatter >/dev/null
expect() {  # expect CODE PATTERN -- command...
  local code="$1" pattern="$2"; shift 3
  set +e; out="$("$@" 2>&1)"; rc=$?; set -e
  if [ "$rc" != "$code" ] || ! grep -q -- "$pattern" <<<"$out"; then
    echo "FAIL: $* -> exit $rc, wanted $code and /$pattern/:"; echo "$out"; exit 1
  fi
}
expect 0 "^AGREE: $tmp/a and $tmp/b: 24 files, 29 tokens" -- "$bin" compare "$tmp/a" "$tmp/b"
"$python" - "$tmp/b/layer00/conv_out.npy" <<'PY'
import sys, numpy as np
a = np.load(sys.argv[1]); a[7, 100] += 0.125; np.save(sys.argv[1], a)
PY
expect 1 "^DIVERGENCE: $tmp/a vs $tmp/b at token 7 (position 7), trace line 9: extend" -- \
  "$bin" compare "$tmp/a" "$tmp/b"
expect 1 "layer00/conv_out.npy \[channel 100 (v head 2, i 4)\]" -- "$bin" compare "$tmp/a" "$tmp/b"
expect 0 "^AGREE" -- "$bin" compare "$tmp/a" "$tmp/b" --atol 0.126
# Forensics: b's per-token states shifted by one token (token t holds a's token t-1), as an
# engine whose states lag one token dumps them: stale by one token, in text and JSON.
cp -r "$tmp/b" "$tmp/stale"
"$python" - "$tmp/stale" <<'PY'
import glob, sys, numpy as np
for f in glob.glob(sys.argv[1] + "/layer*/*_state.npy"):
    x = np.load(f); x[1:] = x[:-1].copy(); np.save(f, x)
PY
expect 1 "^  forensics: $tmp/stale's state at token 1 among $tmp/a's states at tokens 0 to 5: stale by one token: token 0 (position 0), trace line 9: extend, step 0, accepted (distance 0 vs " -- \
  "$bin" compare "$tmp/a" "$tmp/stale"
expect 1 "^             0          0          0  token 0 (position 0), trace line 9: extend, step 0, accepted, one token before$" -- \
  "$bin" compare "$tmp/a" "$tmp/stale"
"$bin" compare "$tmp/a" "$tmp/stale" --json > "$tmp/stale.json" || true
"$python" - "$tmp/stale.json" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))["forensics"]
assert f["matched"] and f["row"] == 1 and f["verdict"].startswith("stale by one token: token 0"), f
best, same = f["candidates"][0], [c for c in f["candidates"] if c["row"] == 1][0]
assert best["offset"] == -1 and best["distance"] == 0 and same["distance"] > 0.1, f["candidates"]
PY
expect 2 "$tmp/none: not a directory" -- "$bin" compare "$tmp/a" "$tmp/none"
expect 2 "rtol" -- "$bin" compare "$tmp/a" "$tmp/b" --rtol -1
expect 2 "^--rtol: nan is not a finite number >= 0" -- "$bin" compare "$tmp/a" "$tmp/b" --rtol nan
expect 2 "^--atol: inf is not a finite number >= 0" -- "$bin" compare "$tmp/a" "$tmp/b" --atol inf

# Hostile folders: a copy of dump A with one thing changed, compared under a time limit (a hang
# is exit 124). Each once crashed, hung, exhausted memory or ended as an internal error (exit 3).
hostile() {  # hostile NAME: a fresh copy of dump A as $tmp/NAME
  rm -rf "$tmp/$1"; cp -r "$tmp/a" "$tmp/$1"
}
edit_meta() {  # edit_meta DIR PYTHON-STATEMENT (on m, the meta.json object)
  "$python" - "$1/meta.json" "$2" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1])); exec(sys.argv[2]); json.dump(m, open(sys.argv[1], "w"))
EOF
}
npy() {  # npy FILE DESCR SHAPE DATA_BYTES: an .npy header and DATA_BYTES of zeros (sparse)
  "$python" - "$@" <<'EOF'
import sys, numpy as np
path, descr, shape, data = sys.argv[1], sys.argv[2], eval(sys.argv[3]), int(sys.argv[4])
with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
    f.truncate(f.tell() + data)
EOF
}
# The address space a case that once exhausted memory runs in (AddressSanitizer's shadow memory
# cannot start under a limit: none then).
vlimit=unlimited
if (ulimit -v 4000000 && "$bin" --help >/dev/null 2>&1); then vlimit=4000000; fi
hostile v0; edit_meta "$tmp/v0" 'm["model"]["V"] = 0'
cp -r "$tmp/v0" "$tmp/v0b"
cp "$tmp/b/layer00/conv_out.npy" "$tmp/v0b/layer00/conv_out.npy"  # channel 100 differs: c / V
expect 2 "^$tmp/v0/meta.json: model.V 0 is outside 1..1024" -- \
  timeout 20 "$bin" compare "$tmp/v0" "$tmp/v0b"
hostile fifo; rm "$tmp/fifo/layer00/x.npy"; mkfifo "$tmp/fifo/layer00/x.npy"
expect 2 "^$tmp/fifo/layer00/x.npy: not a regular file (a FIFO)$" -- \
  timeout 20 "$bin" compare "$tmp/a" "$tmp/fifo"
rm "$tmp/fifo/meta.json"; mkfifo "$tmp/fifo/meta.json"
expect 2 "^$tmp/fifo/meta.json: not a regular file (a FIFO)$" -- \
  timeout 20 "$bin" compare "$tmp/a" "$tmp/fifo"
hostile layers; edit_meta "$tmp/layers" 'del m["model"]["layer_ids"]; m["model"]["layers"] = 1 << 62'
expect 2 "^$tmp/layers/meta.json: model.layers 4611686018427387904 is outside 1..1024" -- \
  bash -c 'ulimit -v "$3" && exec timeout 20 "$0" compare "$1" "$2"' "$bin" "$tmp/layers" "$tmp/a" \
  "$vlimit"
hostile type; edit_meta "$tmp/type" 'm["tokens"][7]["row"] = "7"'
expect 2 "^$tmp/type/meta.json: tokens\[7\].row must be an integer" -- \
  timeout 20 "$bin" compare "$tmp/type" "$tmp/b"
hostile dir; rm "$tmp/dir/meta.json"; mkdir "$tmp/dir/meta.json"
expect 2 "^$tmp/dir/meta.json: is a directory$" -- timeout 20 "$bin" compare "$tmp/a" "$tmp/dir"
hostile loop; rm "$tmp/loop/meta.json"; ln -s meta.json "$tmp/loop/meta.json"
expect 2 "^$tmp/loop/meta.json: cannot open for reading: Too many levels of symbolic links$" -- \
  timeout 20 "$bin" compare "$tmp/a" "$tmp/loop"
hostile wrap; npy "$tmp/wrap/layer00/A_log.npy" '<f4' '(1 << 32, 1 << 32)' 0
expect 2 "^$tmp/wrap/layer00/A_log.npy: shape (4294967296, 4294967296) overflows" -- \
  timeout 20 "$bin" compare "$tmp/wrap" "$tmp/wrap"
hostile huge; npy "$tmp/huge/layer00/A_log.npy" '<f4' '(1 << 62,)' 0
expect 2 "^$tmp/huge/layer00/A_log.npy: shape (4611686018427387904,) overflows" -- \
  timeout 20 "$bin" compare "$tmp/huge" "$tmp/huge"

# A directory name that is not UTF-8 under --json: the error object and the report are written
# (the JSON library threw: abort in the error handler, exit 3 for a report).
bad=$'\xff'
expect 2 '^{"error":' -- "$bin" compare "$tmp/$bad" "$tmp/b" --json
cp -r "$tmp/a" "$tmp/$bad"
expect 0 '"agree": true' -- "$bin" compare "$tmp/$bad" "$tmp/a" --json

# Memory: a file without a token axis (512 MiB of float32) and a token file (29 rows of 16 MiB),
# sparse, in both dumps, compared under 1 GiB of address space: the first file read whole as
# doubles needed 1.5 GiB. The files are streamed in pieces of bounded size.
if (ulimit -v 1048576 && "$bin" --help >/dev/null 2>&1); then
  hostile big; npy "$tmp/big/layer00/A_log.npy" '<f4' '(1 << 27,)' $((1 << 29))
  npy "$tmp/big/layer01/o.npy" '<f4' '(29, 1 << 22)' $((29 << 24))
  rm -rf "$tmp/big2"; cp -r --sparse=always "$tmp/big" "$tmp/big2"
  expect 0 "^AGREE: $tmp/big and $tmp/big2: 24 files, 29 tokens, 2" -- \
    bash -c 'ulimit -v 1048576 && exec "$0" compare "$1" "$2"' "$bin" "$tmp/big" "$tmp/big2"
else
  echo "compare CLI: memory case skipped (the binary does not start under ulimit -v: ASan?)"
fi
echo "compare CLI: all cases passed"
