"""Issue 19, Python side: the writer never records an event it failed to write, nor leaves a
half line; `check` gives a located error (never a traceback) on hostile bytes; and the
checker refuses what `specstate validate` refuses."""

import errno
import io
import os
import subprocess
import sys

import pytest

from specstate_trace import TraceWriter
from specstate_trace import writer as writer_module
from specstate_trace.reader import TraceError, read_trace

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
HEADER = ('{"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", '
          '"draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, "seed": 1}')
START = '{"event": "extend", "request": 5, "req_row": 0, "working_row": 1, "tokens": 4}'


def _writer(file):
    return TraceWriter(file, preset="tiny", draft_tokens=3, pool_rows=8, max_requests=4,
                       page_size=16, seed=1)


# ---- the writer on a failing file -----------------------------------------------------------

def test_disk_full_records_nothing_and_leaves_no_half_line(tmp_path, monkeypatch):
    path = tmp_path / "full.jsonl"
    w = _writer(path)
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.os, "write", half_then_full)
    with pytest.raises(OSError):
        w.extend(5, 4, req_row=0, working_row=1)
    assert w.state.status(5) is None  # not recorded
    monkeypatch.setattr(writer_module.os, "write", real_write)
    assert path.read_bytes() == (HEADER + "\n").encode()  # the half line is cut off again
    w.extend(5, 4, req_row=0, working_row=1)  # the same event goes through once there is room
    w.close()
    header, events = read_trace(str(path))
    assert [e["event"] for _, e in events] == ["extend"]


class _FullAfter(io.StringIO):
    """A text file that accepts `room` characters, then fails like a full disk."""

    def __init__(self, room):
        super().__init__()
        self.room = room

    def write(self, text):
        if self.tell() + len(text) > self.room:
            super().write(text[: self.room - self.tell()])
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(text)


def test_failing_text_file_records_nothing():
    f = _FullAfter(len(HEADER) + 1 + 10)
    w = _writer(f)
    with pytest.raises(OSError):
        w.extend(5, 4, req_row=0, working_row=1)
    assert w.state.status(5) is None
    assert f.getvalue() == HEADER + "\n"
    with pytest.raises(ValueError):
        w.retract(5)  # still unknown to the state
    assert w.state.status(5) is None


def test_rejected_event_writes_nothing(tmp_path):
    path = tmp_path / "t.jsonl"
    w = _writer(path)
    with pytest.raises(ValueError):
        w.verify([(5, 1)])
    w.close()
    assert path.read_bytes() == (HEADER + "\n").encode()


# ---- `python3 -m specstate_trace check` on hostile bytes -----------------------------------

def _check(path):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(os.path.join(REPO, "python")))
    return subprocess.run([sys.executable, "-m", "specstate_trace", "check", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("name, data, message", [
    ("deep", (HEADER + "\n").encode() + b"[" * 100_000 + b"]" * 100_000 + b"\n",
     ":2: invalid JSON: nested deeper than 64 arrays and objects"),
    ("latin1", (HEADER + "\n").encode() + b'{"event": "check", "x": "\xe9"}\n',
     ":2: invalid JSON: column 26: invalid UTF-8"),
    ("latin1-header", b'{"specstate_trace": 1, "preset": "t\xefny"}\n', ":1: invalid JSON: column 36: invalid UTF-8"),
], ids=["deep", "latin1", "latin1-header"])
def test_check_gives_a_located_error(tmp_path, name, data, message):
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(data)
    out = _check(path)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"{path}{message}" in out.stderr


def test_check_quotes_a_file_name_with_a_newline(tmp_path):
    path = tmp_path / "a\nfake.jsonl:1: ok"
    path.write_bytes(b"")
    out = _check(path)
    assert out.returncode == 2
    assert '\\nfake.jsonl:1: ok":1: empty trace' in out.stderr
    assert len(out.stderr.splitlines()) == 1


def test_a_bom_comment_and_crlf_are_fine(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_bytes(b"\xef\xbb\xbf# recorded\r\n" + (HEADER + "\r\n" + START + "\r\n").encode())
    header, events = read_trace(str(path))
    assert len(events) == 1


# ---- one rule set: what C++ refuses, Python refuses ----------------------------------------

REFUSED = {
    "cr-only": (HEADER + "\r" + START + "\r").encode(),
    "form-feed-line": (HEADER + "\n\f\n" + START + "\n").encode(),
    "negative-zero": (HEADER + "\n" + START.replace('"request": 5', '"request": -0') +
                      "\n").encode(),
    "version-float": HEADER.replace('"specstate_trace": 1', '"specstate_trace": 1.0').encode() +
    b"\n",
    "duplicate-key": (HEADER + '\n{"event": "extend", "event": "check"}\n').encode(),
    "nul": (HEADER + "\n").encode() + b'{"event": "check"}\0{"event": "finish"}\n',
    "bom-mid": (HEADER + "\n").encode() + b"\xef\xbb\xbf" + START.encode() + b"\n",
    "nan": (HEADER + "\n").encode() + b'{"event": "extend", "request": NaN}\n',
    "two-to-64": (HEADER + '\n{"event": "retract", "request": 18446744073709551616}\n').encode(),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_python_checker_refuses(tmp_path, name):
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(REFUSED[name])
    with pytest.raises(TraceError):
        read_trace(str(path))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_cpp_validator_refuses_the_same(tmp_path, name, specstate_validate):
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(REFUSED[name])
    out = specstate_validate(path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{path}:" in out.stderr


def test_line_length_is_bounded(tmp_path):
    path = tmp_path / "long.jsonl"
    with open(path, "wb") as f:
        f.write((HEADER + "\n").encode())
        f.write(b" " * ((1 << 24) + 1) + b"\n")
    with pytest.raises(TraceError, match=r":2: line longer than 16777216 bytes"):
        read_trace(str(path))
