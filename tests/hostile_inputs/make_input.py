"""Writes one hostile input of tests/hostile_inputs: `make_input.py CASE FILE`.

Each case is a trace (or part of one) that an attack on the reader, the validator or the
simulator used against specstate (an attack on every input class)."""

import sys

TINY = ('{"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", '
        '"draft_tokens": %d, "pool_rows": %d, "max_requests": %d, "page_size": %d, "seed": 1}')


def header(pool_rows=8, max_requests=4, page_size=16, draft_tokens=3, preset="tiny"):
    return (TINY % (draft_tokens, pool_rows, max_requests, page_size)).replace(
        '"tiny"', '"%s"' % preset).encode() + b"\n"


def start(request=1, req_row=0, working_row=0, tokens=5):
    return (b'{"event": "extend", "request": %d, "req_row": %d, "working_row": %d, '
            b'"tokens": %d}\n' % (request, req_row, working_row, tokens))


def tracks(n):
    """One extend carrying n track writes (page_size 1: lengths 1..n in rows 1..n)."""
    writes = ", ".join('{"length": %d, "row": %d}' % (i, i) for i in range(1, n + 1))
    return (header(pool_rows=n + 1, max_requests=1, page_size=1, draft_tokens=0) +
            ('{"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": %d, '
             '"track": [%s]}\n' % (n, writes)).encode())


def retract_finish(n, preset):
    """n requests, each extended, retracted and finished while swapped out."""
    out = [header(pool_rows=1, max_requests=1, page_size=0, draft_tokens=0, preset=preset)]
    for r in range(n):
        out.append(start(request=r, tokens=1))
        out.append(b'{"event": "retract", "request": %d}\n' % r)
        out.append(b'{"event": "finish", "request": %d}\n' % r)
    return b"".join(out)


CASES = {
    # defect 3: 2^24 CUDA-graph padding rows (the format's maximum) in one verify
    "padding": lambda: header() + start() +
    b'{"event": "verify", "batch": [{"request": 1, "accepted": 2}], "padding": 16777216}\n',
    # round 3, defect 1: one extend past 2^15 tokens (a crash at 32,766; wrong states at 32,768)
    "extend-32766": lambda: header(page_size=0) + start(tokens=32766),
    "extend-2e17": lambda: header(page_size=1 << 15) +
    b'{"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": 131075, '
    b'"track": [{"length": 32768, "row": 1}, {"length": 131072, "row": 2}]}\n' +
    b'{"event": "verify", "batch": [{"request": 1, "accepted": 3}]}\n',
    # defect 4: retract then finish, many times
    "retract-finish": lambda: retract_finish(60, "qwen3.5-2b"),
    # defect 8: one extend with many track writes
    "tracks-10k": lambda: tracks(10_000),
    "tracks-300k": lambda: tracks(300_000),
    # defect 7: a NUL byte in the middle of a line
    "nul": lambda: header() + b'{"event":"check"}\0{"event":"finish","request":1}\n',
    # defect 11: a 10 MB number, CR-only line endings, a BOM on line 2, negative zero, 2^64
    "long-number": lambda: header() + b'{"event": "retract", "request": ' + b"9" * 10_000_000 +
    b"}\n",
    "cr-only": lambda: header().rstrip(b"\n") + b"\r" + start().rstrip(b"\n") + b"\r",
    "bom-mid": lambda: header() + b"\xef\xbb\xbf" + start(),
    "bom-comment": lambda: b"\xef\xbb\xbf# recorded\n" + header() + start(),
    "negative-zero": lambda: header() + b'{"event": "retract", "request": -0}\n',
    "two-to-64": lambda: header() + b'{"event": "retract", "request": 18446744073709551616}\n',
    # defect 12: a duplicate key
    "duplicate-key": lambda: header() + b'{"event":"extend","event":"check"}\n',
}

if __name__ == "__main__":
    case, path = sys.argv[1], sys.argv[2]
    with open(path, "wb") as f:
        f.write(CASES[case]())
