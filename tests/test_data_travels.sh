#!/bin/sh
# The test binaries that read data files run without the source tree:
#   test_data_travels.sh SOURCE_DIR BINARY FILTER [BINARY FILTER ...]
# copies each BINARY with the test_data/ folder beside it into a fresh directory, hides
# SOURCE_DIR (an empty tmpfs over it, in a private mount namespace) and runs there the tests
# FILTER selects (those that read data). Exit 77 (skipped) where mount namespaces are refused.
set -eu
source=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=
while [ $# -ge 2 ]; do
  name=$(basename "$1")
  mkdir "$work/$name"
  cp "$1" "$work/$name/"
  cp -R "$(dirname "$1")/test_data" "$work/$name/"
  runs="$runs $work/$name/$name:$2"
  shift 2
done
unshare -rm true 2>/dev/null || { echo "SKIP: no mount namespace (unshare -rm)"; exit 77; }
# shellcheck disable=SC2086
unshare -rm sh -c '
  mount -t tmpfs none "$0" || exit 1
  for run in "$@"; do
    "${run%%:*}" --gtest_brief=1 --gtest_filter="${run#*:}" || exit 1
  done' "$source" $runs
