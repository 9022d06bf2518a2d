"""Runs the torch engine against the reference on a trace (docs/engine-testing.md).

    python3 examples/engine_testing/check_torch.py TRACE [--device cuda] [--plant stale-flush]

Calibrates the tolerance from the engine's own kernels first (specstate.calibrate: one request
at a time, every draft accepted), prints it, then runs the trace through check_engine with it;
prints AGREE or the first divergence with its forensics, and exits 0 or 1 as `specstate replay`
does (2: the device asked for is not there). --atol X uses a fixed absolute tolerance instead.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import specstate  # noqa: E402
from torch_engine import PLANTS, TorchEngine  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--device", default="cpu", help="the engine's torch device (cpu, cuda)")
    parser.add_argument("--plant", choices=[p for p in PLANTS if p], help="plant a known bug")
    parser.add_argument("--atol", type=float, help="a fixed absolute tolerance, no calibration")
    parser.add_argument("--layers", help="model layers to test (\"0,17,35\"); default all")
    parser.add_argument("--strategy", default="inline", help="the reference's strategy")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"check_torch.py: --device {args.device}: torch {torch.__version__} sees no CUDA "
              f"device", file=sys.stderr)
        return 2
    options = dict(layers=args.layers, strategy=args.strategy)
    if args.atol is None:
        clean = lambda setup: TorchEngine(setup, args.device)  # noqa: E731
        tolerance = specstate.calibrate(clean, args.trace, layers=args.layers)
        print(tolerance)
        options["tolerance"] = tolerance
    else:
        options["atol"] = args.atol
    result = specstate.check_engine(
        args.trace, lambda setup: TorchEngine(setup, args.device, args.plant), **options)
    print(result)
    return 0 if result else 1


if __name__ == "__main__":
    sys.exit(main())
