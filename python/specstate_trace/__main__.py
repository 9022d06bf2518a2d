"""python3 -m specstate_trace demo -o FILE | check FILE"""

import argparse
import sys

from .demo import write_demo
from .reader import TraceError, read_trace


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m specstate_trace",
                                     description="Record and check specstate traces.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write a small realistic trace through TraceWriter")
    demo.add_argument("-o", "--output", required=True, help="trace file to write")
    demo.add_argument("--seed", type=int, default=1, help="header seed (default 1)")
    check = sub.add_parser("check", help="read a trace and check it with the writer's rules "
                                         "(the C++ `specstate validate` is the reference)")
    check.add_argument("trace")
    args = parser.parse_args(argv)

    if args.command == "demo":
        w = write_demo(args.output, seed=args.seed)
        print(f"wrote {args.output}: preset {w.header['preset']}, T = {w.tokens_per_verify}")
        return 0
    try:
        header, events = read_trace(args.trace)
    except TraceError as e:
        print(e, file=sys.stderr)  # FILE:LINE: message, as `specstate validate` prints it
        return 2
    except OSError as e:
        print(f"specstate_trace: {e}", file=sys.stderr)
        return 2
    model = f"preset {header['preset']}" if "preset" in header else "a custom geometry"
    print(f"{args.trace}: OK, {len(events)} events, {model}, T = {header['draft_tokens'] + 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
