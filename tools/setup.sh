# Shared by tools/demo and tools/test: install what is missing from Debian's packages, then
# configure and build the release preset. Sourced, not run. The caller sets:
#   SPECSTATE_TARGETS  the targets to build; empty: everything
#   SPECSTATE_PROFILE  demo: only what the command line needs (no tests, benchmarks or Python
#                      package, and none of their packages); test: everything
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# What the command line needs, then what the tests, benchmarks and the Python package add.
command_line_packages=(build-essential cmake libeigen3-dev libcli11-dev nlohmann-json3-dev
                       libtbb-dev)
test_packages=(libgtest-dev libbenchmark-dev python3 python3-dev python3-numpy python3-pytest
               pybind11-dev python3-pybind11 python3-torch python3-setuptools python3-pip
               python3-wheel python3-venv)

# install_missing WHY PACKAGE...: installs the packages not yet installed, saying which and why.
install_missing() {
  local why=$1 p
  shift
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "specstate: installing ${missing[*]} ($why) with apt-get" >&2
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
}

install_missing "to build the command line" "${command_line_packages[@]}"
build_extras=OFF
if [ "${SPECSTATE_PROFILE:-test}" = test ]; then
  install_missing "for the tests, benchmarks and Python package" "${test_packages[@]}"
  build_extras=ON
fi

# nvcc is often installed outside PATH; CMake only needs to be told where.
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi

# The Python package and tests: for the Python the packages above went into, unless
# SPECSTATE_PYTHON names another (a plain cmake configure takes the first on PATH instead).
python_option=()
[ "$build_extras" = OFF ] || python_option=("-DSPECSTATE_PYTHON=${SPECSTATE_PYTHON:-/usr/bin/python3}")
cmake --preset release -DSPECSTATE_BUILD_TESTS=$build_extras -DSPECSTATE_BUILD_BENCH=$build_extras \
  -DSPECSTATE_BUILD_PYTHON=$build_extras "${python_option[@]}" >/dev/null
cmake --build --preset release -j "$(nproc)" ${SPECSTATE_TARGETS:+--target ${SPECSTATE_TARGETS}}
