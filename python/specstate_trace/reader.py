"""Read a trace back and check it with the writer's rules (a Python twin of the first pass of
`specstate validate`; the C++ validator is the reference)."""

import json

from ._state import FORMAT_VERSION, TraceState, make_header

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
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


def _keys(obj, required, optional, where):
    missing = required - set(obj)
    if missing:
        raise ValueError(f"{where}missing {', '.join(sorted(missing))}")
    extra = set(obj) - required - optional
    if extra:
        raise ValueError(f"{where}unknown key(s) {', '.join(sorted(extra))}")


def _apply(state, obj):
    kind = obj.get("event")
    if kind not in _EVENT_KEYS:
        raise ValueError(f"unknown event {kind!r} (known: {', '.join(_EVENT_KEYS)})")
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
                raise ValueError(f"{kind}: batch entry must be an object, got {e!r}")
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


def read_trace(path):
    """(header, [(line, event), ...]) of a trace file, checked; raises TraceError."""
    header, state, events = None, None, []
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            stripped = text.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                try:
                    obj = json.loads(stripped)
                except json.JSONDecodeError as e:
                    raise ValueError(f"not JSON: {e.msg} (column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise ValueError("expected a JSON object")
                if header is None:
                    if "specstate_trace" not in obj:
                        raise ValueError("first line must be the header "
                                         "({\"specstate_trace\": 1, ...})")
                    if obj["specstate_trace"] != FORMAT_VERSION:
                        raise ValueError(f"header: specstate_trace {obj['specstate_trace']!r} "
                                         f"unsupported (expected {FORMAT_VERSION})")
                    _keys(obj, set(_HEADER_KEYS), set(), "header: ")
                    header = make_header(**{k: obj[k] for k in _HEADER_KEYS[1:]})
                    state = TraceState(header)
                else:
                    events.append((number, _apply(state, obj)))
            except ValueError as e:
                raise TraceError(path, number, str(e)) from None
    if header is None:
        raise TraceError(path, 1, "empty trace (no header)")
    return header, events
