#!/usr/bin/env bash
# The documented install (README, docs/engine-testing.md), offline: a virtual environment made
# by PYTHON with --system-site-packages (Debian's NumPy and setuptools), `pip install
# --no-build-isolation --no-index` of a scratch copy of the source (the source tree's build/ is
# neither read nor written), then from another directory: the venv's interpreter imports the
# installed package and runs a trace. Then `pip wheel` of the same copy makes a wheel, which a
# second venv installs. The CUDA backend is left out (SPECSTATE_WITH_CUDA=OFF) to keep the build
# short; tests/python_module/test_setup_py.py checks that setup.py turns it on when nvcc is found.
set -euo pipefail
python="$1" source="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log() { echo "pip install: $*"; }
fail() { echo "FAIL: $*"; exit 1; }

mkdir "$tmp/src"
tar -C "$source" --exclude=./build --exclude=./.git -cf - . | tar -C "$tmp/src" -xf -
source_builds_before="$(ls -d "$source"/build/temp.* 2>/dev/null | sort || true)"

"$python" -m venv --system-site-packages "$tmp/venv"
venv_python="$tmp/venv/bin/python"
export SPECSTATE_WITH_CUDA=OFF PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv_python" -m pip install -v --no-build-isolation --no-index "$tmp/src" >"$tmp/pip.log" 2>&1 \
  || { cat "$tmp/pip.log"; fail "pip install"; }
log "$(grep -m1 '^Successfully installed' "$tmp/pip.log")"

# The build ran for the venv's interpreter (its path, not /usr/bin/python3), found its NumPy.
grep -q "specstate: building for $venv_python, CUDA backend OFF (SPECSTATE_WITH_CUDA=OFF)" \
  "$tmp/pip.log" || { cat "$tmp/pip.log"; fail "setup.py did not say it builds for $venv_python"; }
grep -q -- "-- specstate: Python package for $venv_python (Python 3\.[0-9]*\.[0-9]*, NumPy " \
  "$tmp/pip.log" || { cat "$tmp/pip.log"; fail "CMake did not build for $venv_python"; }
cache="$(ls "$tmp"/src/build/temp.*/cmake-*/CMakeCache.txt)"
grep -qx "_Python3_EXECUTABLE:INTERNAL=$venv_python" "$cache" \
  || fail "$cache: $(grep _Python3_EXECUTABLE "$cache")"
test "$(ls -d "$source"/build/temp.* 2>/dev/null | sort || true)" = "$source_builds_before" \
  || fail "the install wrote a build folder into $source/build"

check() {  # check PYTHON: imports the installed packages from elsewhere and follows a trace
  (cd "$tmp" && "$1" - "$source/examples/retract-resume.jsonl" "$(dirname "$(dirname "$1")")" <<'PY'
import os, sys
import numpy, specstate, specstate_trace
for package in (specstate, specstate_trace):
    assert package.__file__.startswith(sys.argv[2] + "/lib/"), package.__file__
assert not specstate.cuda_compiled()  # SPECSTATE_WITH_CUDA=OFF was honoured
ref = specstate.Reference(sys.argv[1], strategy="replay")
ref.run(until_line=20)
assert ref.requests() == {10: "retracted", 11: "running", 12: "running"}, ref.requests()
print(f"{sys.executable}: specstate from {os.path.dirname(specstate.__file__)}, NumPy "
      f"{numpy.__version__}, follows {os.path.basename(ref.file)} to line 20")
PY
  )
}
log "$(check "$venv_python")"

"$venv_python" -m pip wheel --no-build-isolation --no-index --no-deps -w "$tmp/dist" "$tmp/src" \
  >"$tmp/wheel.log" 2>&1 || { cat "$tmp/wheel.log"; fail "pip wheel"; }
wheel="$(ls "$tmp"/dist/specstate-*.whl)"
"$venv_python" - "$wheel" <<'PY' || fail "wheel contents"
import sys, sysconfig, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
suffix = sysconfig.get_config_var("EXT_SUFFIX")
for want in ("specstate/_core" + suffix, "specstate/__init__.py", "specstate/forensics.py",
             "specstate_trace/__init__.py"):
    assert want in names, (want, names)
PY
log "wheel $(basename "$wheel")"
"$python" -m venv --system-site-packages "$tmp/venv2"
"$tmp/venv2/bin/python" -m pip install --no-index "$wheel" >"$tmp/wheel-install.log" 2>&1 \
  || { cat "$tmp/wheel-install.log"; fail "pip install of the wheel"; }
log "$(check "$tmp/venv2/bin/python")"
