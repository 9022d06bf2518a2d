# Shared by tools/demo and tools/test: install what is missing from Debian's packages, then
# configure and build the release preset. Sourced, not run.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

packages=(build-essential cmake libeigen3-dev libcli11-dev nlohmann-json3-dev libgtest-dev
          libbenchmark-dev libtbb-dev python3 python3-dev python3-numpy python3-pytest
          pybind11-dev python3-pybind11 python3-torch python3-setuptools python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "specstate: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# nvcc is often installed outside PATH; CMake only needs to be told where.
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi

cmake --preset release >/dev/null
# SPECSTATE_TARGETS (set by the caller): build only those targets; empty: everything.
cmake --build --preset release -j "$(nproc)" ${SPECSTATE_TARGETS:+--target ${SPECSTATE_TARGETS}}
