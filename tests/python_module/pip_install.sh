#!/usr/bin/env bash
# `pip install` from the source tree, offline, with Debian's setuptools (no build isolation:
# nothing is downloaded), into a fresh target directory; the installed packages then work
# from another directory. CUDA is left out to keep the build short; setup.py builds it when
# nvcc is found and SPECSTATE_WITH_CUDA is not OFF.
set -euo pipefail
python="$1" source="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
SPECSTATE_WITH_CUDA=OFF "$python" -m pip install --no-build-isolation --no-deps --no-index \
  --target "$tmp/site" "$source" >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log"; exit 1; }
cd "$tmp"
PYTHONPATH="$tmp/site" "$python" - "$source/examples/retract-resume.jsonl" "$tmp/site" <<'PY'
import os, sys
import specstate, specstate_trace
for package in (specstate, specstate_trace):
    assert os.path.dirname(package.__file__).startswith(sys.argv[2]), package.__file__
ref = specstate.Reference(sys.argv[1], strategy="replay")
ref.run(until_line=20)
assert ref.requests() == {10: "retracted", 11: "running", 12: "running"}, ref.requests()
print("pip install: specstate", specstate.__file__, "follows", ref.file)
PY
