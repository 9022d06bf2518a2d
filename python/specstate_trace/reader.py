"""Read a trace back and check it as `specstate validate` does: the same passes (every line's
syntax and fields, then the schedule), the same locations, the same messages; only the detail of
a JSON syntax error after "invalid JSON: column N: " is Python's own."""

import json
import os
import re

from ._fields import NegativeZero, printable
from ._rules import MAX_LINE_BYTES
from ._state import TraceState, parse_event, parse_header


class TraceError(ValueError):
    """A bad trace: `str()` is `file:line: message`, as `specstate validate` prints it."""

    def __init__(self, file, line, message):
        super().__init__(f"{quote_file_name(file)}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


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


class _OutOfRange(int):
    """An integer the C++ reader refuses (beyond 64 bits), or a float it refuses (beyond
    double), kept as a marker until the key it belongs to is known."""
    text = ""


def _no_duplicates(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key '{printable(key)}' in an object")
        seen.add(key)
    return dict(pairs)


def _integer(text):
    if text == "-0":
        return NegativeZero(0)
    value = int(text)
    if not -(1 << 63) <= value < (1 << 64):
        marker = _OutOfRange(0)
        marker.text = f"integer {printable(text)} does not fit in 64 bits (integers are " \
                      f"-9223372036854775808..18446744073709551615)"
        return marker
    return value


def _float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        marker = _OutOfRange(0)
        marker.text = f"number {printable(text)} is out of range"
        return marker
    return value


class _Constant(ValueError):
    """NaN, Infinity or -Infinity: not JSON."""


def _no_constant(name):
    raise _Constant(name)


def _refused(value, key="", depth=0):
    """The message of the first value the C++ reader refuses while parsing (depth, range)."""
    if isinstance(value, (dict, list)):
        if depth + 1 > 64:
            return "nested deeper than 64 arrays and objects"
        items = value.items() if isinstance(value, dict) else ((key, v) for v in value)
        for k, v in items:
            found = _refused(v, k, depth + 1)
            if found:
                return found
    elif isinstance(value, _OutOfRange):
        return (f"field '{printable(key)}': " if key else "") + value.text
    return None


def _parse_line(data, complete):
    """The JSON value of one line's bytes (the rules of the C++ reader); raises ValueError."""
    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_integer,
                           parse_float=_float, parse_constant=_no_constant)
    except UnicodeDecodeError as e:
        detail = f"column {e.start + 1}: invalid UTF-8"
    except json.JSONDecodeError as e:
        detail = f"column {e.colno}: {e.msg}"
    except _Constant as e:
        detail = f"column {text.find(str(e)) + 1}: syntax error while parsing value - invalid literal"
    except RecursionError:
        raise ValueError("invalid JSON: nested deeper than 64 arrays and objects") from None
    except ValueError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    else:
        refused = _refused(value)
        if refused:
            raise ValueError(f"invalid JSON: {refused}")
        return value
    if not complete:
        raise ValueError(f"truncated last line: no newline at the end and not valid JSON "
                         f"({detail})")
    raise ValueError(f"invalid JSON: {detail}")


def _check_bytes(data, number):
    """Bytes no line of a trace holds (as core/trace/format.cpp refuses them)."""
    if data.startswith(_BOM):
        if number != 1:
            raise ValueError("byte order mark (U+FEFF) at the start of a line; only the "
                             "file's first line may begin with one")
        data = data[len(_BOM):]
    nul = data.find(b"\0")
    if nul >= 0:
        raise ValueError(f"invalid JSON: column {nul + 1}: NUL byte (a trace holds none; a "
                         f"string writes it as \\u0000)")
    cr = data.find(b"\r")
    if 0 <= cr < len(data) - 1:
        raise ValueError(f"CR line endings: carriage return at column {cr + 1} not followed "
                         f"by a newline (lines end with \\n or \\r\\n)")
    return data


def _lines(f):
    """(number, bytes without the newline, ended by a newline) of every physical line;
    TraceError past the length limit."""
    number = 0
    while True:
        data = f.readline(MAX_LINE_BYTES + 1)
        if not data:
            return
        number += 1
        complete = data.endswith(b"\n")
        if complete:
            data = data[:-1]
        elif len(data) > MAX_LINE_BYTES:
            raise TraceError(f.name, number, f"line longer than {MAX_LINE_BYTES} bytes (a trace "
                                             f"line is one event; see docs/trace-format.md)")
        yield number, data, complete


def read_trace(path):
    """(header, [(line, event), ...]) of a trace file, checked as `specstate validate` checks
    it: every line's syntax and fields first, then the schedule; raises TraceError with the
    same location and message."""
    header, parsed = None, []
    number = 0
    with open(path, "rb") as f:
        for number, data, complete in _lines(f):
            try:
                data = _check_bytes(data, number)
                if data.lstrip(b" \t\r")[:1] in (b"", b"#"):
                    continue
                obj = _parse_line(data, complete)
                if header is None:
                    header = parse_header(obj)
                else:
                    parsed.append((number, parse_event(obj)))
            except ValueError as e:
                raise TraceError(path, number, str(e)) from None
    if header is None:
        raise TraceError(path, max(number, 1),
                         'empty trace: no header line {"specstate_trace": 1, ...}')
    state, events = TraceState(header), []
    for number, event in parsed:
        try:
            e, commit = state.prepare_parsed(event, number)
        except ValueError as err:
            raise TraceError(path, number, str(err)) from None
        commit()
        events.append((number, e))
    return header, events
