#!/usr/bin/env bash
# cmake --install of this build into a fresh prefix, then a project outside the tree configured
# with find_package(specstate) against it, built and run.
set -euo pipefail
build="$1" source="$2" cxx="$3" cxxflags="${4:-}" ldflags="${5:-}"  # the build's (sanitizers)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log"
test -x "$tmp/prefix/bin/specstate"
test -f "$tmp/prefix/include/specstate/sim/simulator.h"
test ! -e "$tmp/prefix/include/sim"  # headers live under the include prefix
"$tmp/prefix/bin/specstate" --version
cmake -S "$source/tests/install/consumer" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$cxxflags" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" \
  -DCMAKE_BUILD_TYPE=Release > "$tmp/configure.log" \
  || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/build" -j 2 > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
"$tmp/build/consumer"
