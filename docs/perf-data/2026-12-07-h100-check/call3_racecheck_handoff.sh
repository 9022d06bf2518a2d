#!/bin/bash
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=.device:${LD_LIBRARY_PATH:-}
start=$(date +%s)
timeout 270 compute-sanitizer --tool racecheck --error-exitcode 9 .device/specstate_cuda_tests --gtest_filter="$(cat .device/race_rest.filter)" > $OUT/san_racecheck_rest.log 2>&1; echo "racecheck rest rc=$? $(grep -c 'OK \]' $OUT/san_racecheck_rest.log) ok; $(tail -2 $OUT/san_racecheck_rest.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
timeout $(( 560 - ($(date +%s)-start) )) .device/specstate_sim_cuda_tests --gtest_filter='SimulatorCuda.Handoff*' > $OUT/sim_handoff.log 2>&1; echo "handoff rc=$? $(grep -E '^\[  (PASSED|FAILED)|OK \]' $OUT/sim_handoff.log | tr '\n' ' ') t=$(( $(date +%s)-start ))"
