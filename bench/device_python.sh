#!/bin/bash
# The Python module on the GPU machine (bench/device_run.sh runs the C++ executables), whose Python (3.12 there) is not the one the module was
# built for here: compiles python/src against that Python's headers and the static libraries
# built here (copied with pybind11's headers into $BIN/pybuild), then runs the module's tests,
# its CUDA Reference among them. From the repository root, after the libraries are copied:
#   mkdir -p .device/pybuild/include && cp build/release/{sim,backends,backends/cuda}/lib*.a \
#     build/release/core/{,trace/,strategy/}lib*.a .device/pybuild/ && \
#     cp -r /usr/include/pybind11 .device/pybuild/include/
set -u
PYINC=$(python3 -c "import sysconfig;print(sysconfig.get_paths()['include'])"); ls $PYINC/Python.h || exit 3
EXT=$(python3 -c "import sysconfig;print(sysconfig.get_config_var('EXT_SUFFIX'))")
g++ --version | head -1
D=/tmp/pym/specstate; mkdir -p $D; cp python/specstate/*.py $D/
P=${BIN:-.device}/pybuild
CUDALIB=$(dirname $(find /usr/local/cuda*/ -name libcudart_static.a | head -1))
g++ -std=c++20 -O2 -fPIC -shared -ffp-contract=off -march=x86-64-v3 -I. -I$P/include -I$PYINC \
  python/src/module.cpp python/src/reference.cpp $P/libspecstate_sim.a $P/libspecstate_policy.a \
  $P/libspecstate_trace.a $P/libspecstate_numerics.a $P/libspecstate_backends.a \
  $P/libspecstate_cuda.a $P/libspecstate_backends.a $P/libspecstate_cuda.a $P/libspecstate_core.a \
  -L$CUDALIB -lcudart_static .device/libtbb.so.12 -lrt -lpthread -ldl -o $D/_core$EXT || exit 4
export LD_LIBRARY_PATH=$PWD/.device
PYTHONPATH=/tmp/pym SPECSTATE_BIN=.device/specstate SPECSTATE_SOURCE=$PWD python3 -m pytest -q -rs -p no:cacheprovider tests/python_module/test_module.py 2>&1 | tail -8
PYTHONPATH=/tmp/pym python3 -c "import specstate; print(specstate.backends())"
# The torch engine of docs/engine-testing.md on the GPU: its pool and kernels on cuda, its states
# copied to the host for the harness; calibrated, clean, then with the planted bugs named.
T=/tmp/pym/traces; mkdir -p $T
for dtype in f32 bf16; do
  .device/specstate generate --preset qwen3-next-80b-a3b --tp 8 --requests 8 --steps 200 --seed 1 \
    --pool-rows 6 --ssm-dtype $dtype -o $T/tp8-$dtype.jsonl > /dev/null
  for plant in "" "--plant stale-flush" "--plant off-by-one"; do
    echo "== check_torch.py tp8-$dtype --layers 0 --device cuda $plant"
    PYTHONPATH=/tmp/pym python3 examples/engine_testing/check_torch.py $T/tp8-$dtype.jsonl \
      --layers 0 --device cuda $plant > $T/log 2>&1
    echo "rc=$?"; head -6 $T/log
  done
done
PYTHONPATH=/tmp/pym SPECSTATE_SOURCE=$PWD python3 -m pytest -q -rs -p no:cacheprovider \
  tests/python_module/test_engine_torch.py -k cuda 2>&1 | tail -3
