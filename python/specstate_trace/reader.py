"""Read a trace back and check it with the writer's rules (a Python twin of the first pass of
`specstate validate`; the C++ validator is the reference)."""

import json
import os
import re

from ._state import FORMAT_VERSION, TraceState, cut as _cut, make_header

_HEADER_KEYS = ("specstate_trace", "preset", "tp", "ssm_dtype", "draft_tokens", "pool_rows",
                "max_requests", "page_size", "seed")
_EVENT_KEYS = {
    "extend": ({"request", "tokens"},
               {"req_row", "working_row", "prefix_len", "cow_src_row", "track"}),
    "verify": ({"batch"}, {"padding"}),
    "decode": ({"batch"}, {"padding"}),
    "retract": ({"request"}, set()),
    "resume": ({"request", "req_row", "working_row"}, set()),
    "finish": ({"request"}, set()),
    "check": (set(), set()),
}


class TraceError(ValueError):
    """A bad trace: `str()` is `file:line: message`."""

    def __init__(self, file, line, message):
        super().__init__(f"{quote_file_name(file)}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


def _keys(obj, required, optional, where):
    missing = required - set(obj)
    if missing:
        raise ValueError(f"{where}missing {', '.join(sorted(missing))}")
    extra = set(obj) - required - optional
    if extra:
        raise ValueError(f"{where}unknown key(s) {_cut(', '.join(sorted(extra)))}")


def _apply(state, obj):
    kind = obj.get("event")
    if not isinstance(kind, str) or kind not in _EVENT_KEYS:
        raise ValueError(f"unknown event {_cut(repr(kind))} (known: {', '.join(_EVENT_KEYS)})")
    required, optional = _EVENT_KEYS[kind]
    _keys(obj, required | {"event"}, optional, f"{kind}: ")
    if kind == "extend":
        track = obj.get("track", [])
        if not isinstance(track, list):
            raise ValueError(f"extend: request {obj['request']}: track must be a list")
        return state.extend(obj["request"], obj["tokens"], req_row=obj.get("req_row"),
                            working_row=obj.get("working_row"),
                            prefix_len=obj.get("prefix_len", 0),
                            cow_src_row=obj.get("cow_src_row"), track=track)
    if kind in ("verify", "decode"):
        batch = obj["batch"]
        if not isinstance(batch, list):
            raise ValueError(f"{kind}: batch must be a list")
        entries = []
        for e in batch:
            if not isinstance(e, dict):
                raise ValueError(f"{kind}: batch entry must be an object, got {_cut(repr(e))}")
            if kind == "verify":
                _keys(e, {"request", "accepted"}, {"track"}, "verify: batch entry: ")
                entries.append((e["request"], e["accepted"], e.get("track")))
            else:
                _keys(e, {"request"}, {"track"}, "decode: batch entry: ")
                entries.append((e["request"], e.get("track")))
        return getattr(state, kind)(entries, padding=obj.get("padding", 0))
    if kind == "resume":
        return state.resume(obj["request"], req_row=obj["req_row"],
                            working_row=obj["working_row"])
    if kind == "check":
        return state.check()
    return getattr(state, kind)(obj["request"])


MAX_LINE_BYTES = 1 << 24  # core/trace/format.h kMaxLineBytes
_BOM = b"\xef\xbb\xbf"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._\-/+@%,=~]+")


def quote_file_name(file):
    """`file` as it goes before ":LINE:" (core/errors.h quote_file_name): as it is when plain,
    else in double quotes with escapes, so that no name can fake a location."""
    file = os.fsdecode(file)
    if _PLAIN_NAME.fullmatch(file):
        return file
    out = []
    for ch in file:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _no_duplicates(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {_cut(key)!r} in an object")
        seen.add(key)
    return dict(pairs)


def _no_negative_zero(text):
    if text == "-0":
        raise ValueError("-0 is a negative zero; write 0")
    return int(text)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _parse_line(data):
    """The JSON value of one line's bytes (the rules of the C++ reader); raises ValueError."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"invalid UTF-8 at byte {e.start + 1}") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_no_negative_zero,
                          parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} (column {e.colno})") from None
    except RecursionError:
        raise ValueError("not JSON: nested too deeply") from None


def _check_bytes(data, number):
    """Bytes no line of a trace holds (as core/trace/format.cpp refuses them)."""
    if data.startswith(_BOM):
        if number != 1:
            raise ValueError("byte order mark (U+FEFF) at the start of a line; only the "
                             "file's first line may begin with one")
        data = data[len(_BOM):]
    nul = data.find(b"\0")
    if nul >= 0:
        raise ValueError(f"NUL byte at column {nul + 1}")
    cr = data.find(b"\r")
    if 0 <= cr < len(data) - 1:
        raise ValueError(f"CR line endings: carriage return at column {cr + 1} not followed "
                         f"by a newline")
    return data


def _lines(f):
    """(number, bytes without the newline) of every physical line; ValueError past the limit."""
    number = 0
    while True:
        data = f.readline(MAX_LINE_BYTES + 1)
        if not data:
            return
        number += 1
        if data.endswith(b"\n"):
            data = data[:-1]
        elif len(data) > MAX_LINE_BYTES:
            raise TraceError(f.name, number, f"line longer than {MAX_LINE_BYTES} bytes")
        yield number, data


def read_trace(path):
    """(header, [(line, event), ...]) of a trace file, checked; raises TraceError."""
    header, state, events = None, None, []
    number = 0
    with open(path, "rb") as f:
        for number, data in _lines(f):
            try:
                data = _check_bytes(data, number)
                stripped = data.lstrip(b" \t\r")
                if not stripped or stripped.startswith(b"#"):
                    continue
                obj = _parse_line(data)
                if not isinstance(obj, dict):
                    raise ValueError("expected a JSON object")
                if header is None:
                    if "specstate_trace" not in obj:
                        raise ValueError("first line must be the header "
                                         "({\"specstate_trace\": 1, ...})")
                    version = obj["specstate_trace"]
                    if type(version) is not int or version != FORMAT_VERSION:
                        raise ValueError(f"header: specstate_trace {_cut(repr(version))} "
                                         f"unsupported (expected the integer {FORMAT_VERSION})")
                    _keys(obj, set(_HEADER_KEYS), set(), "header: ")
                    header = make_header(**{k: obj[k] for k in _HEADER_KEYS[1:]})
                    state = TraceState(header)
                else:
                    events.append((number, _apply(state, obj)))
            except ValueError as e:
                raise TraceError(path, number, str(e)) from None
    if header is None:
        raise TraceError(path, max(number, 1), "empty trace (no header)")
    return header, events
