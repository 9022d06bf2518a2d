#!/bin/sh
# One failure-class scenario (docs/failure-classes.md), run by CTest:
#   run_scenario.sh SPECSTATE TRACE FAULT LINE STRATEGIES EXPECTED...
# The clean replay (all strategies) must exit 0. The replay with --inject FAULT must exit 1
# and report "DIVERGENCE at TRACE:LINE:" followed by every EXPECTED text (the request,
# the row, the lanes). Each strategy of the comma list STRATEGIES must catch the fault alone.
set -u
specstate=$1 trace=$2 fault=$3 line=$4 strategies=$5
shift 5
fail() { echo "FAIL: $*"; exit 1; }

"$specstate" replay "$trace" >clean.out 2>&1
rc=$?
cat clean.out
[ $rc -eq 0 ] || fail "clean replay exited $rc, expected 0"

"$specstate" replay "$trace" --inject "$fault" >injected.out 2>&1
rc=$?
cat injected.out
[ $rc -eq 1 ] || fail "replay --inject $fault exited $rc, expected 1"
grep -qF "DIVERGENCE at $trace:$line: " injected.out || fail "no divergence at line $line"
for expected in "$@"; do
  grep -qF "$expected" injected.out || fail "the report does not say: $expected"
done

for strategy in $(echo "$strategies" | tr ',' ' '); do
  "$specstate" replay "$trace" --inject "$fault" --strategy "$strategy" >one.out 2>&1
  rc=$?
  [ $rc -eq 1 ] || { cat one.out; fail "--strategy $strategy: exited $rc, expected 1"; }
  grep -qF "DIVERGENCE at $trace:$line: " one.out ||
    { cat one.out; fail "--strategy $strategy: no divergence at line $line"; }
done
echo "PASS: clean exit 0; --inject $fault exit 1 at line $line"
