"""Comments: the writer writes only what its reader (and the C++ reader) reads back. A comment
line is `# text`; no line holds a NUL byte or more than MAX_LINE_BYTES bytes before its newline
(core/trace/rules.json), so a comment that would break either rule is refused at write time,
with the writer still usable and the file unchanged."""

import io

import pytest

from specstate_trace import TraceError, TraceWriter, read_trace
from specstate_trace._rules import MAX_LINE_BYTES

# The largest comment text that fits: "# " + text is exactly MAX_LINE_BYTES bytes.
LARGEST = MAX_LINE_BYTES - 2


def new_writer(target):
    return TraceWriter(target, preset="tiny", draft_tokens=3, pool_rows=16, max_requests=4,
                       seed=1)


def round_trip(path, text):
    with new_writer(str(path)) as w:
        w.comment(text)
        w.extend(5, 8, req_row=0, working_row=2)
    header, events = read_trace(str(path))
    assert len(events) == 1
    return path.read_bytes().split(b"\n")[1]


def test_a_comment_of_the_longest_line_is_written_and_read_back(tmp_path):
    line = round_trip(tmp_path / "edge.jsonl", "x" * LARGEST)
    assert len(line) == MAX_LINE_BYTES


def test_the_limit_counts_utf8_bytes(tmp_path):
    # "é" is 2 bytes: LARGEST // 2 of them fit, one more byte does not.
    line = round_trip(tmp_path / "utf8.jsonl", "é" * (LARGEST // 2))
    assert len(line) == 2 + 2 * (LARGEST // 2)
    w = new_writer(io.StringIO())
    with pytest.raises(TraceError, match=f"longer than {MAX_LINE_BYTES} bytes"):
        w.comment("é" * (LARGEST // 2 + 1))


@pytest.mark.parametrize("text, message", [
    ("x" * (LARGEST + 1), f":2: comment: the line would be {MAX_LINE_BYTES + 1} bytes, longer "
                          f"than {MAX_LINE_BYTES} bytes"),
    ("step 3\0", ":2: comment: NUL character at index 6"),
    ("\0", ":2: comment: NUL character at index 0"),
    ("a\nb", ":2: comment: text must be one line"),
    ("a\rb", ":2: comment: text must be one line"),
    ("\ud800", ":2: comment: text is not valid Unicode"),
], ids=["over-limit", "nul", "only-nul", "newline", "carriage-return", "lone-surrogate"])
def test_a_comment_the_reader_would_refuse_is_refused_and_nothing_is_written(tmp_path, text,
                                                                           message):
    path = tmp_path / "refused.jsonl"
    w = new_writer(str(path))
    before = path.read_bytes()
    with pytest.raises(TraceError) as caught:
        w.comment(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}:2: ")
    assert path.read_bytes() == before
    w.comment("still usable")
    w.extend(5, 8, req_row=0, working_row=2)
    w.close()
    header, events = read_trace(str(path))
    assert [line for line, _ in events] == [3]


def test_a_refused_comment_on_a_stream_writes_nothing():
    buf = io.StringIO()
    w = new_writer(buf)
    before = buf.getvalue()
    with pytest.raises(TraceError, match="NUL"):
        w.comment("a\0b")
    assert buf.getvalue() == before


def test_an_event_line_longer_than_the_readers_take_is_refused_and_not_recorded(monkeypatch):
    """No event of a sane schedule comes near 16 MiB (a verify of some 400,000 requests
    would), so the limit is lowered here to reach the check: the event is refused at its line
    and not recorded, and the writer goes on."""
    from specstate_trace import writer as writer_module
    buf = io.StringIO()
    w = new_writer(buf)
    w.extend(5, 8, req_row=0, working_row=2)
    monkeypatch.setattr(writer_module, "MAX_LINE_BYTES", 60)
    before = buf.getvalue()
    with pytest.raises(TraceError, match=r":3: the line would be \d+ bytes, longer than 60"):
        w.extend(6, 8, req_row=1, working_row=3)  # 78 bytes of JSON
    assert buf.getvalue() == before
    monkeypatch.setattr(writer_module, "MAX_LINE_BYTES", 78)
    w.extend(6, 8, req_row=1, working_row=3)  # request 6 was not started by the refused line
    assert buf.getvalue().count("\n") == 3
