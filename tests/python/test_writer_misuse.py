"""Each misuse raises ValueError at the offending call, names the request and the field, and
writes nothing: the file is unchanged and the writer goes on accepting valid events."""

import io
import json

import pytest

from specstate_trace import TraceWriter


def new_writer(**overrides):
    header = dict(preset="tiny", draft_tokens=3, pool_rows=16, max_requests=4, page_size=16,
                  seed=1)
    header.update(overrides)
    buf = io.StringIO()
    return TraceWriter(buf, **header), buf


def base(w):
    """Request 5 running in req_row 0 / working row 2, 40 tokens, a 32-token snapshot in
    row 10; request 6 running in req_row 1 / working row 3, 20 tokens."""
    w.extend(5, 40, req_row=0, working_row=2, track=[(32, 10)])
    w.extend(6, 20, req_row=1, working_row=3)


def finished(w):
    base(w)
    w.finish(5)


def retracted(w):
    base(w)
    w.retract(5)


# (setup, misuse, substrings the message must contain)
CASES = {
    "accepted 0": (base, lambda w: w.verify([(5, 0)]),
                   ["verify: request 5: accepted 0 outside 1..4"]),
    "accepted T+1": (base, lambda w: w.verify([(6, 1), (5, 5)]),
                     ["verify: request 5: accepted 5 outside 1..4"]),
    "accepted bool": (base, lambda w: w.verify([(5, True)]),
                      ["verify: request 5: accepted must be an integer"]),
    "accepted float": (base, lambda w: w.verify([(5, 2.0)]),
                       ["verify: request 5: accepted must be an integer"]),
    "verify unknown request": (base, lambda w: w.verify([(5, 1), (9, 1)]),
                               ["verify: request 9: unknown request"]),
    "decode unknown request": (base, lambda w: w.decode([9]),
                               ["decode: request 9: unknown request"]),
    "retract unknown request": (base, lambda w: w.retract(9),
                                ["retract: request 9: unknown request"]),
    "finish unknown request": (base, lambda w: w.finish(9),
                               ["finish: request 9: unknown request"]),
    "resume unknown request": (base, lambda w: w.resume(9, req_row=2, working_row=4),
                               ["resume: request 9: unknown request"]),
    "working_row owned": (base, lambda w: w.extend(7, 8, req_row=2, working_row=2),
                          ["extend: request 7: working_row 2 is in use by request 5"]),
    "req_row owned": (base, lambda w: w.extend(7, 8, req_row=1, working_row=4),
                      ["extend: request 7: req_row 1 is in use by request 6"]),
    "resume into owned working_row": (retracted,
                                      lambda w: w.resume(5, req_row=0, working_row=3),
                                      ["resume: request 5: working_row 3 is in use by request 6"]),
    "resume into owned req_row": (retracted, lambda w: w.resume(5, req_row=1, working_row=2),
                                  ["resume: request 5: req_row 1 is in use by request 6"]),
    "working_row out of range": (base, lambda w: w.extend(7, 8, req_row=2, working_row=16),
                                 ["extend: request 7: working_row 16 outside 0..15"]),
    "negative working_row": (base, lambda w: w.extend(7, 8, req_row=2, working_row=-1),
                             ["extend: request 7: working_row -1 outside 0..15"]),
    "req_row out of range": (base, lambda w: w.extend(7, 8, req_row=4, working_row=4),
                             ["extend: request 7: req_row 4 outside 0..3"]),
    "first extend without working_row": (base, lambda w: w.extend(7, 8, req_row=2),
                                         ["extend: request 7: working_row is required"]),
    "first extend without req_row": (base, lambda w: w.extend(7, 8, working_row=4),
                                     ["extend: request 7: req_row is required"]),
    "extend zero tokens": (base, lambda w: w.extend(7, 0, req_row=2, working_row=4),
                           ["extend: request 7: tokens 0"]),
    "extend working_row mismatch": (base, lambda w: w.extend(5, 8, working_row=4),
                                    ["extend: request 5: working_row 4 does not match"]),
    "extend req_row mismatch": (base, lambda w: w.extend(5, 8, req_row=3),
                                ["extend: request 5: req_row 3 does not match"]),
    "verify after finish": (finished, lambda w: w.verify([(5, 1)]),
                            ["verify: request 5: request already finished"]),
    "decode after finish": (finished, lambda w: w.decode([5]),
                            ["decode: request 5: request already finished"]),
    "extend after finish": (finished, lambda w: w.extend(5, 4, req_row=2, working_row=4),
                            ["extend: request 5: request already finished"]),
    "retract after finish": (finished, lambda w: w.retract(5),
                             ["retract: request 5: request already finished"]),
    "finish after finish": (finished, lambda w: w.finish(5),
                            ["finish: request 5: request already finished"]),
    "resume after finish": (finished, lambda w: w.resume(5, req_row=2, working_row=4),
                            ["resume: request 5: request already finished"]),
    "resume running": (base, lambda w: w.resume(5, req_row=2, working_row=4),
                       ["resume: request 5: request is running, expected retracted"]),
    "retract retracted": (retracted, lambda w: w.retract(5),
                          ["retract: request 5: request is retracted"]),
    "verify retracted": (retracted, lambda w: w.verify([(5, 1)]),
                         ["verify: request 5: request is retracted", "resume it first"]),
    "extend retracted": (retracted, lambda w: w.extend(5, 3),
                         ["extend: request 5: request is retracted"]),
    "duplicate in batch": (base, lambda w: w.verify([(5, 1), (6, 2), (5, 3)]),
                           ["verify: request 5: request appears twice in the batch"]),
    "duplicate in decode batch": (base, lambda w: w.decode([6, 6]),
                                  ["decode: request 6: request appears twice in the batch"]),
    "empty batch": (base, lambda w: w.verify([]), ["verify: batch is empty"]),
    "negative padding": (base, lambda w: w.verify([(5, 1)], padding=-1),
                         ["verify: padding -1"]),
    "track length not a page multiple": (
        base, lambda w: w.verify([(5, 4, (42, 11))]),
        ["verify: request 5: track.length 42 is not a multiple of page_size 16"]),
    "verify track past accepted": (
        base, lambda w: w.verify([(6, 4, (32, 11))]),
        ["verify: request 6: track.length 32 is not crossed by this event"]),
    "verify track at or below old length": (
        base, lambda w: w.verify([(5, 4, (32, 11))]),
        ["verify: request 5: track.length 32 is not crossed by this event"]),
    "extend track not crossed": (
        base, lambda w: w.extend(6, 4, track=[(16, 11)]),
        ["extend: request 6: track.length 16 is not crossed by this event"]),
    "decode track not at old+1": (
        lambda w: (base(w), w.extend(6, 10)), lambda w: w.decode([(6, (32, 11))]),
        ["decode: request 6: track.length 32 is not crossed by this event"]),
    "track row is a live working row": (
        base, lambda w: w.extend(6, 20, track=[(32, 2)]),
        ["extend: request 6: track.row 2 is the working row of request 5"]),
    "track row is own new working row": (
        base, lambda w: w.extend(7, 20, req_row=2, working_row=4, track=[(16, 4)]),
        ["extend: request 7: track.row 4 is the working row of request 7"]),
    "track row out of range": (
        base, lambda w: w.extend(6, 20, track=[(32, 99)]),
        ["extend: request 6: track.row 99 outside 0..15"]),
    "track with page_size 0": (
        lambda w: None, lambda w: w.extend(1, 20, req_row=0, working_row=0, track=[(16, 1)]),
        ["extend: request 1: track write, but page_size is 0"]),
    "malformed track": (base, lambda w: w.verify([(5, 1, 7)]),
                        ["verify: request 5: track must be a (length, row) pair"]),
    "prefix without cow_src_row": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=4, prefix_len=32),
        ["extend: request 7: cow_src_row is required with prefix_len 32"]),
    "cow_src_row without prefix": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=4, cow_src_row=10),
        ["extend: request 7: cow_src_row 10 given without prefix_len"]),
    "cow_src_row not a cache row": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=4, prefix_len=32, cow_src_row=11),
        ["extend: request 7: cow_src_row 11 holds no prefix snapshot"]),
    "cow_src_row wrong length": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=4, prefix_len=16, cow_src_row=10),
        ["extend: request 7: cow_src_row 10 holds a snapshot of 32 tokens, not prefix_len 16"]),
    "cow_src_row taken as a working row since": (
        lambda w: (base(w), w.extend(8, 3, req_row=3, working_row=10)),
        lambda w: w.extend(7, 8, req_row=2, working_row=4, prefix_len=32, cow_src_row=10),
        ["extend: request 7: cow_src_row 10 holds no prefix snapshot"]),
    "cow_src_row is the working row": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=10, prefix_len=32, cow_src_row=10),
        ["extend: request 7: cow_src_row 10 is also the working row"]),
    "prefix on a running request": (
        base, lambda w: w.extend(5, 8, prefix_len=32, cow_src_row=10),
        ["extend: request 5: prefix_len / cow_src_row only on the first extend"]),
    "request id not an int": (base, lambda w: w.finish("abc"),
                              ["finish: request must be an integer"]),
    "negative request id": (base, lambda w: w.retract(-1), ["retract: request -1 outside"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_misuse_raises_at_the_call(name):
    setup, misuse, expected = CASES[name]
    w, buf = new_writer(page_size=0) if name == "track with page_size 0" else new_writer()
    setup(w)
    before = buf.getvalue()
    with pytest.raises(ValueError) as err:
        misuse(w)
    for text in expected:
        assert text in str(err.value), f"{name}: {err.value!s} lacks {text!r}"
    assert buf.getvalue() == before, "a rejected call must write nothing"
    # The writer stays usable and its bookkeeping unchanged.
    w.check()
    assert buf.getvalue().endswith('{"event": "check"}\n')


def test_rejected_event_leaves_state_unchanged():
    w, buf = new_writer()
    base(w)
    with pytest.raises(ValueError):
        w.verify([(5, 2), (6, 9)])  # request 5 is fine, 6 is not: nothing of it applies
    assert w.state.length(5) == 40 and w.state.length(6) == 20
    w.verify([(5, 4)])
    assert w.state.length(5) == 44


def test_track_row_twice_in_one_batch():
    w, _ = new_writer()
    w.extend(5, 30, req_row=0, working_row=0)
    w.extend(6, 30, req_row=1, working_row=1)
    with pytest.raises(ValueError, match=r"verify: request 6: track\.row 9 is written twice"):
        w.verify([(5, 3, (32, 9)), (6, 3, (32, 9))])


def test_extend_track_same_length_twice():
    w, _ = new_writer()
    with pytest.raises(ValueError, match=r"extend: request 1: track\.length 16 is written twice"):
        w.extend(1, 40, req_row=0, working_row=0, track=[(16, 5), (16, 6)])


def test_track_row_is_cow_source():
    w, _ = new_writer()
    w.extend(1, 32, req_row=0, working_row=0, track=[(32, 5)])
    with pytest.raises(ValueError, match=r"extend: request 2: track\.row 5 is the cow_src_row"):
        w.extend(2, 20, req_row=1, working_row=1, prefix_len=32, cow_src_row=5, track=[(48, 5)])


@pytest.mark.parametrize("field,value,text", [
    ("draft_tokens", 16, "header: draft_tokens 16 outside 0..15"),
    ("draft_tokens", -1, "header: draft_tokens -1 outside 0..15"),
    ("tp", 3, "header: tp 3 must be >= 1 and divide the tiny head counts"),
    ("preset", "gpt-2", "header: preset 'gpt-2' unknown"),
    ("ssm_dtype", "f16", "header: ssm_dtype 'f16' unknown"),
    ("pool_rows", 0, "header: pool_rows 0 outside 1.."),
    ("max_requests", 0, "header: max_requests 0 outside 1.."),
    ("page_size", -16, "header: page_size -16 outside 0.."),
    ("seed", -1, "header: seed -1 outside"),
    ("pool_rows", 1 << 24, "header: pool_rows 16777216 outside 1..16777215"),
])
def test_header_misuse(field, value, text):
    buf = io.StringIO()
    header = dict(preset="tiny", draft_tokens=3, pool_rows=16, max_requests=4)
    header[field] = value
    with pytest.raises(ValueError) as err:
        TraceWriter(buf, **header)
    assert text in str(err.value)
    assert buf.getvalue() == ""


def test_closed_writer(tmp_path):
    path = tmp_path / "t.trace"
    with TraceWriter(path, preset="tiny", draft_tokens=3, pool_rows=8, max_requests=2) as w:
        w.extend(1, 4, req_row=0, working_row=0)
    with pytest.raises(ValueError, match="trace writer is closed"):
        w.finish(1)
    w.close()  # idempotent
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["specstate_trace"] == 1 and len(lines) == 2


def test_finish_frees_rows_at_once_and_retract_frees_rows():
    w, _ = new_writer()
    base(w)
    w.finish(5)
    w.extend(7, 8, req_row=0, working_row=2)  # request 5's rows, reused at once
    w.retract(6)
    w.extend(8, 8, req_row=1, working_row=3)  # request 6's rows, taken while it is retracted
    w.resume(6, req_row=2, working_row=4)
    w.finish(6)
    w.finish(7)
    w.finish(8)
