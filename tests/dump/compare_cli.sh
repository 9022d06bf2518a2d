#!/usr/bin/env bash
# specstate compare's exit codes and output: 0 AGREE, 1 DIVERGENCE naming the token and the
# file, 2 for a directory that is not a dump or an unknown option value.
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
expect 2 "$tmp/none: not a directory" -- "$bin" compare "$tmp/a" "$tmp/none"
expect 2 "rtol" -- "$bin" compare "$tmp/a" "$tmp/b" --rtol -1
echo "compare CLI: all cases passed"
