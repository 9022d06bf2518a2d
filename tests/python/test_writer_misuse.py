"""Each misuse raises TraceError (a ValueError) at the offending call with the location and the
message `specstate validate` gives the line it would have been, and writes nothing: the file is
unchanged and the writer goes on accepting valid events."""

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


# (setup, misuse, the end of the message: ":LINE: " and what `specstate validate` prints for the
# line the event would have been)
CASES = {
    "accepted 0": (base, lambda w: w.verify([(5, 0)]),
                   [":4: accepted length 0 outside 1..4 (request 5); only an overlap trace (header overlap 1) has discarded entries"]),
    "accepted T+1": (base, lambda w: w.verify([(6, 1), (5, 5)]),
                     [":4: accepted length 5 outside 1..4 (request 5)"]),
    "accepted bool": (base, lambda w: w.verify([(5, True)]),
                      [":4: field 'accepted' in batch[0] of the verify event must be an integer, "
                       "got a boolean"]),
    "accepted float": (base, lambda w: w.verify([(5, 2.0)]),
                       [":4: field 'accepted' in batch[0] of the verify event must be an integer, "
                        "got a non-integer number"]),
    "verify unknown request": (base, lambda w: w.verify([(5, 1), (9, 1)]),
                               [":4: request 9 does not exist (no extend has started it)"]),
    "decode unknown request": (base, lambda w: w.decode([9]),
                               [":4: request 9 does not exist (no extend has started it)"]),
    "retract unknown request": (base, lambda w: w.retract(9),
                                [":4: request 9 does not exist (no extend has started it)"]),
    "finish unknown request": (base, lambda w: w.finish(9),
                               [":4: request 9 does not exist (no extend has started it)"]),
    "resume unknown request": (base, lambda w: w.resume(9, req_row=2, working_row=4),
                               [":4: request 9 does not exist (no extend has started it)"]),
    "working_row owned": (base, lambda w: w.extend(7, 8, req_row=2, working_row=2),
                          [":4: working_row 2 is the working row of live request 5"]),
    "req_row owned": (base, lambda w: w.extend(7, 8, req_row=1, working_row=4),
                      [":4: req_row 1 is in use by request 6"]),
    "resume into owned working_row": (retracted,
                                      lambda w: w.resume(5, req_row=0, working_row=3),
                                      [":5: working_row 3 is the working row of live request 6"]),
    "resume into owned req_row": (retracted, lambda w: w.resume(5, req_row=1, working_row=2),
                                  [":5: req_row 1 is in use by request 6"]),
    "working_row out of range": (base, lambda w: w.extend(7, 8, req_row=2, working_row=16),
                                 [":4: working_row 16 out of range 0..15 (pool_rows 16)"]),
    "negative working_row": (base, lambda w: w.extend(7, 8, req_row=2, working_row=-1),
                             [":4: field 'working_row' in extend event is -1, outside "
                              "0..2147483647"]),
    "req_row out of range": (base, lambda w: w.extend(7, 8, req_row=4, working_row=4),
                             [":4: req_row 4 out of range 0..3 (max_requests 4)"]),
    "first extend without working_row": (base, lambda w: w.extend(7, 8, req_row=2),
                                         [":4: the first extend of request 7 must name req_row "
                                          "and working_row"]),
    "first extend without req_row": (base, lambda w: w.extend(7, 8, working_row=4),
                                     [":4: the first extend of request 7 must name req_row and "
                                      "working_row"]),
    "extend zero tokens": (base, lambda w: w.extend(7, 0, req_row=2, working_row=4),
                           [":4: field 'tokens' in extend event is 0, outside 1..16777216"]),
    "extend working_row mismatch": (base, lambda w: w.extend(5, 8, working_row=4),
                                    [":4: working_row 4 does not match request 5's working_row 2"]),
    "extend req_row mismatch": (base, lambda w: w.extend(5, 8, req_row=3),
                                [":4: req_row 3 does not match request 5's req_row 0"]),
    "verify after finish": (finished, lambda w: w.verify([(5, 1)]),
                            [":5: request 5 finished at line 4"]),
    "decode after finish": (finished, lambda w: w.decode([5]),
                            [":5: request 5 finished at line 4"]),
    "extend after finish": (finished, lambda w: w.extend(5, 4, req_row=2, working_row=4),
                            [":5: request 5 finished at line 4"]),
    "retract after finish": (finished, lambda w: w.retract(5),
                             [":5: request 5 finished at line 4"]),
    "finish after finish": (finished, lambda w: w.finish(5),
                            [":5: request 5 finished at line 4"]),
    "resume after finish": (finished, lambda w: w.resume(5, req_row=2, working_row=4),
                            [":5: request 5 finished at line 4"]),
    "resume running": (base, lambda w: w.resume(5, req_row=2, working_row=4),
                       [":4: request 5 is not retracted (it is running); only a retracted request "
                        "resumes"]),
    "retract retracted": (retracted, lambda w: w.retract(5),
                          [":5: request 5 is not running: retracted at line 4 and not resumed"]),
    "verify retracted": (retracted, lambda w: w.verify([(5, 1)]),
                         [":5: request 5 is not running: retracted at line 4 and not resumed"]),
    "extend retracted": (retracted, lambda w: w.extend(5, 3),
                         [":5: request 5 is not running: retracted at line 4 and not resumed"]),
    "duplicate in batch": (base, lambda w: w.verify([(5, 1), (6, 2), (5, 3)]),
                           [":4: request 5 appears twice in the batch"]),
    "duplicate in decode batch": (base, lambda w: w.decode([6, 6]),
                                  [":4: request 6 appears twice in the batch"]),
    "empty batch": (base, lambda w: w.verify([]), [":4: a step with an empty batch"]),
    "negative padding": (base, lambda w: w.verify([(5, 1)], padding=-1),
                         [":4: field 'padding' in verify event is -1, outside 0..16777216"]),
    "track length not a page multiple": (
        base, lambda w: w.verify([(5, 4, (42, 11))]),
        [":4: track length 42 is not a page boundary (page_size 16)"]),
    "verify track past accepted": (
        base, lambda w: w.verify([(6, 4, (32, 11))]),
        [":4: track length 32 is not a page boundary crossed by this event (the request goes from "
         "20 to 24 tokens)"]),
    "verify track at or below old length": (
        base, lambda w: w.verify([(5, 4, (32, 11))]),
        [":4: track length 32 is not a page boundary crossed by this event (the request goes from "
         "40 to 44 tokens)"]),
    "extend track not crossed": (
        base, lambda w: w.extend(6, 4, track=[(16, 11)]),
        [":4: track length 16 is not a page boundary crossed by this event (the request goes from "
         "20 to 24 tokens)"]),
    "decode track not at old+1": (
        lambda w: (base(w), w.extend(6, 10)), lambda w: w.decode([(6, (32, 11))]),
        [":5: track length 32 is not a page boundary crossed by this event (the request goes from "
         "30 to 31 tokens)"]),
    "track row is a live working row": (
        base, lambda w: w.extend(6, 20, track=[(32, 2)]),
        [":4: track row 2 is the working row of live request 5"]),
    "track row is own new working row": (
        base, lambda w: w.extend(7, 20, req_row=2, working_row=4, track=[(16, 4)]),
        [":4: track row 4 is the request's own working row"]),
    "track row out of range": (
        base, lambda w: w.extend(6, 20, track=[(32, 99)]),
        [":4: track row 99 out of range 0..15 (pool_rows 16)"]),
    "track with page_size 0": (
        lambda w: None, lambda w: w.extend(1, 20, req_row=0, working_row=0, track=[(16, 1)]),
        [":2: track write, but page_size is 0 (no snapshots)"]),
    "malformed track": (base, lambda w: w.verify([(5, 1, 7)]),
                        [":4: track of batch[0] of the verify event must be a JSON object, got an "
                         "integer"]),
    "prefix without cow_src_row": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=4, prefix_len=32),
        [":4: prefix_len 32 without cow_src_row"]),
    "cow_src_row without prefix": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=4, cow_src_row=10),
        [":4: cow_src_row 10 without prefix_len"]),
    "cow_src_row not a cache row": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=4, prefix_len=32, cow_src_row=11),
        [":4: cow_src_row 11 holds no snapshot (it is free)"]),
    "cow_src_row wrong length": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=4, prefix_len=16, cow_src_row=10),
        [":4: cow_src_row 10 holds a snapshot of 32 tokens, not prefix_len 16"]),
    "cow_src_row taken as a working row since": (
        lambda w: (base(w), w.extend(8, 3, req_row=3, working_row=10)),
        lambda w: w.extend(7, 8, req_row=2, working_row=4, prefix_len=32, cow_src_row=10),
        [":5: cow_src_row 10 holds no snapshot (it is the working row of live request 8)"]),
    "cow_src_row is the working row": (
        base, lambda w: w.extend(7, 8, req_row=2, working_row=10, prefix_len=32, cow_src_row=10),
        [":4: cow_src_row 10 is also the working_row; a prefix hit copies into another row"]),
    "prefix on a running request": (
        base, lambda w: w.extend(5, 8, prefix_len=32, cow_src_row=10),
        [":4: prefix_len and cow_src_row belong on a request's first extend only (request 5 "
         "started at line 2)"]),
    "request id not an int": (base, lambda w: w.finish("abc"),
                              [":4: field 'request' in finish event must be an integer, got a "
                               "string"]),
    "negative request id": (base, lambda w: w.retract(-1), [":4: field 'request' in retract event "
                                                            "is -1, outside "
                                                            "0..18446744073709551615"]),
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
        assert str(err.value) == '"<stream>"' + text, f"{name}: {err.value!s}"
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
    with pytest.raises(ValueError, match=r':4: track row 9 is written twice in this event$'):
        w.verify([(5, 3, (32, 9)), (6, 3, (32, 9))])


def test_extend_track_same_length_twice():
    w, _ = new_writer()
    with pytest.raises(ValueError, match=r':2: track length 16 is written twice in this event$'):
        w.extend(1, 40, req_row=0, working_row=0, track=[(16, 5), (16, 6)])


def test_track_row_is_cow_source():
    w, _ = new_writer()
    w.extend(1, 32, req_row=0, working_row=0, track=[(32, 5)])
    with pytest.raises(ValueError, match=r":3: track row 5 is this extend's cow_src_row$"):
        w.extend(2, 20, req_row=1, working_row=1, prefix_len=32, cow_src_row=5, track=[(48, 5)])


@pytest.mark.parametrize("field,value,text", [
    ("draft_tokens", 16, "field 'draft_tokens' in header is 16, outside 0..15"),
    ("draft_tokens", -1, "field 'draft_tokens' in header is -1, outside 0..15"),
    ("tp", 3, "tensor-parallel degree 3 does not divide the tiny head counts (H=2, HV=4)"),
    ("preset", "gpt-2", "unknown preset 'gpt-2' (known: qwen3-next-80b-a3b, qwen3.5-397b-a17b, "
                        "qwen3.5-122b-a10b, qwen3.5-35b-a3b, qwen3.5-27b, qwen3.5-9b, qwen3.5-2b, "
                        "kimi-linear-48b-a3b, tiny)"),
    ("ssm_dtype", "f16", "field 'ssm_dtype' in header is 'f16', expected f32 or bf16"),
    ("pool_rows", 0, "field 'pool_rows' in header is 0, outside 1..16777216"),
    ("max_requests", 0, "field 'max_requests' in header is 0, outside 1..16777216"),
    ("page_size", -16, "field 'page_size' in header is -16, outside 0..16777216"),
    ("seed", -1, "field 'seed' in header is -1, outside 0..18446744073709551615"),
    ("pool_rows", (1 << 24) + 1, "field 'pool_rows' in header is 16777217, outside 1..16777216"),
])
def test_header_misuse(field, value, text):
    buf = io.StringIO()
    header = dict(preset="tiny", draft_tokens=3, pool_rows=16, max_requests=4)
    header[field] = value
    with pytest.raises(ValueError) as err:
        TraceWriter(buf, **header)
    assert str(err.value) == '"<stream>":1: ' + text
    assert buf.getvalue() == ""


def test_the_bounds_are_those_of_the_cpp_reader():
    """2^24 rows and tokens: the largest values core/trace/rules.json allows, on both sides."""
    buf = io.StringIO()
    w = TraceWriter(buf, preset="tiny", draft_tokens=3, pool_rows=1 << 24, max_requests=1 << 24)
    w.extend(1, 1 << 24, req_row=0, working_row=0)
    w.verify([(1, 1)], padding=1 << 24)
    assert w.state.length(1) == (1 << 24) + 1


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
