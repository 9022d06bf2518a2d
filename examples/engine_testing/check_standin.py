"""Runs the stand-in engine against the reference on a trace (docs/engine-testing.md).

    python3 examples/engine_testing/check_standin.py TRACE [--plant-stale-flush]
                                                           [--plant-conv-one-block]

Prints AGREE or the first divergence (FILE:LINE, the event, the request, the layer, head and
element, both values) and exits 0 or 1, as `specstate replay` does.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import specstate  # noqa: E402
from standin_engine import StandinEngine  # noqa: E402

# The stand-in's kernels run in float32 in another operation order than specstate's, and round
# conv outputs to bf16 as engines store activations: now and then one activation rounds the
# other way (1 bf16 ulp, 2^-8 of it), which moves the state by up to ~1e-3. Over 2,400-3,000
# states compared per generated trace (docs/engine-testing.md) the largest |diff| measured is
# 1.4e-3 on f32 pools and 1.2e-2 on bf16 pools, which also round the state to bf16. States are
# of order 1, so the tolerance is absolute, with a margin; a bookkeeping bug moves whole rows.
TOLERANCE = {"f32": dict(atol=5e-3), "bf16": dict(atol=3e-2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--plant-stale-flush", action="store_true",
                        help="plant the stale draft->working flush (tokenspeed #159 review)")
    parser.add_argument("--plant-conv-one-block", action="store_true",
                        help="plant the handoff's conv cut as one block of q | k | v "
                             "(SGLang #30997)")
    parser.add_argument("--strategy", default="inline", help="the reference's strategy")
    args = parser.parse_args()
    header = specstate.Reference(args.trace).header
    plants = (args.plant_stale_flush, args.plant_conv_one_block)
    result = specstate.check_engine(
        args.trace, lambda setup: StandinEngine(setup, *plants),
        strategy=args.strategy, **TOLERANCE[header["ssm_dtype"]])
    print(result)
    return 0 if result else 1


if __name__ == "__main__":
    sys.exit(main())
