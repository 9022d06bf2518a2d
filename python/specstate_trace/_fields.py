"""One JSON object of a trace read field by field: the twin of `Fields` in core/trace/format.cpp,
with its messages word for word ("field 'tokens' in extend event is 0, outside 1..16777216").

The writer's arguments go through the same checks as a file's lines, so a bad call and a bad
line get the same message, and both are the message `specstate validate` prints.
"""

import operator

from ._rules import MAX_ECHOED

UINT64_MAX = (1 << 64) - 1


class NegativeZero(int):
    """The integer a JSON "-0" parses to (the reader refuses it, naming the field)."""


def printable(text):
    """`text` with control and non-ASCII characters shown as '?' and cut to MAX_ECHOED
    characters ("..." marks a cut), as the C++ reader quotes a value."""
    text = str(text)
    out = "".join(c if 0x20 <= ord(c) < 0x7f else "?" for c in text[:MAX_ECHOED])
    return out + ("..." if len(text) > MAX_ECHOED else "")


def _is_integer(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    try:
        operator.index(value)  # numpy / torch integer scalars
        return not isinstance(value, (str, bytes))
    except TypeError:
        return False


def describe_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_integer(value):
        return "an integer"
    if isinstance(value, float):
        return "a non-integer number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unsupported value"


class Fields:
    """Checks `obj` is an object holding only `allowed` keys; then reads them one by one."""

    def __init__(self, obj, what, allowed):
        self.what = what
        if not isinstance(obj, dict):
            raise ValueError(f"{what} must be a JSON object, got {describe_type(obj)}")
        for key in sorted(obj):  # the C++ reader's objects iterate in key order
            if key not in allowed:
                raise ValueError(f"unknown field '{printable(key)}' in {what} "
                                 f"(expected {', '.join(allowed)})")
        self.obj = obj

    def field(self, key):
        return f"field '{key}' in {self.what}"

    def has(self, key):
        return key in self.obj

    def require(self, key):
        if key not in self.obj:
            raise ValueError(f"missing field '{key}' in {self.what}")
        return self.obj[key]

    def _integer(self, key, value, lo, hi):
        if isinstance(value, NegativeZero):
            raise ValueError(f"{self.field(key)} is -0, a negative zero; write 0")
        if not _is_integer(value):
            raise ValueError(f"{self.field(key)} must be an integer, got {describe_type(value)}")
        value = operator.index(value)
        if not lo <= value <= hi:
            raise ValueError(f"{self.field(key)} is {value}, outside {lo}..{hi}")
        return value

    def integer(self, key, lo, hi):
        return self._integer(key, self.require(key), lo, hi)

    def optional_integer(self, key, lo, hi, default=None):
        return default if key not in self.obj else self._integer(key, self.obj[key], lo, hi)

    def unsigned(self, key):
        return self._integer(key, self.require(key), 0, UINT64_MAX)

    def string(self, key):
        value = self.require(key)
        if not isinstance(value, str):
            raise ValueError(f"{self.field(key)} must be a string, got {describe_type(value)}")
        return value

    def array(self, key):
        value = self.require(key)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{self.field(key)} must be an array, got {describe_type(value)}")
        return value
