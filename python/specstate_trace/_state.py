"""The trace rules as a state machine, shared by the writer and the Python checker.

Each public method of `TraceState` checks one event completely, raises `ValueError` naming the
event, the request and the field, and only then changes the state and returns the event as the
JSON object that goes on disk. A rejected event leaves the state unchanged.

The rules mirror the C++ validator (`specstate validate`, core/trace/); where the format
leaves a corner open, this side is the stricter one, so that what it accepts validates.
"""

import operator

FORMAT_VERSION = 1
MAX_TOKENS_PER_VERIFY = 16  # T = draft_tokens + 1 in 1..16
UINT64_LIMIT = 1 << 64
# Mirror core/trace/format.h: sizes a reader refuses up front (kept one below the C++ limits).
MAX_ROWS = (1 << 24) - 1     # pool_rows, max_requests, page_size
MAX_TOKENS = (1 << 24) - 1   # tokens of one extend, padding
MAX_LENGTH = (1 << 48) - 1   # tokens of one request

# Mirrors core/geometry.cpp presets(): name -> (H, HV), the head counts a TP degree must divide.
PRESET_HEADS = {
    "qwen3-next-80b-a3b": (16, 32),
    "qwen3.5-397b-a17b": (16, 64),
    "qwen3.5-122b-a10b": (16, 64),
    "qwen3.5-35b-a3b": (16, 32),
    "qwen3.5-27b": (16, 48),
    "qwen3.5-9b": (16, 32),
    "qwen3.5-2b": (16, 16),
    "tiny": (2, 4),
}
SSM_DTYPES = {"f32": "f32", "fp32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16"}

RUNNING, RETRACTED, FINISHED = "running", "retracted", "finished"


MAX_ECHOED = 64  # characters of a value quoted in a message, as the C++ reader


def cut(text):
    """`text` cut to MAX_ECHOED characters ("..." marks a cut)."""
    text = str(text)
    return text if len(text) <= MAX_ECHOED else text[:MAX_ECHOED] + "..."


def as_int(value, where, field):
    """`value` as a Python int (bools refused; numpy / torch integer scalars accepted)."""
    if isinstance(value, bool):
        raise ValueError(f"{where}{field} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{where}{field} must be an integer, got {cut(repr(value))}") from None


def make_header(preset, draft_tokens, pool_rows, max_requests, page_size=0, tp=1,
                ssm_dtype="f32", seed=0):
    """The header object, checked; raises ValueError naming the field."""
    w = "header: "
    if not isinstance(preset, str) or preset not in PRESET_HEADS:
        raise ValueError(f"{w}preset {cut(repr(preset))} unknown (known: {', '.join(PRESET_HEADS)})")
    tp = as_int(tp, w, "tp")
    heads = PRESET_HEADS[preset]
    if tp < 1 or heads[0] % tp or heads[1] % tp:
        raise ValueError(f"{w}tp {tp} must be >= 1 and divide the {preset} head counts "
                         f"(H={heads[0]}, HV={heads[1]})")
    if not isinstance(ssm_dtype, str) or ssm_dtype not in SSM_DTYPES:
        raise ValueError(f"{w}ssm_dtype {cut(repr(ssm_dtype))} unknown (expected f32 or bf16)")
    draft_tokens = as_int(draft_tokens, w, "draft_tokens")
    if not 0 <= draft_tokens <= MAX_TOKENS_PER_VERIFY - 1:
        raise ValueError(f"{w}draft_tokens {draft_tokens} outside 0..{MAX_TOKENS_PER_VERIFY - 1} "
                         f"(T = draft_tokens + 1 tokens per verify, 1..{MAX_TOKENS_PER_VERIFY})")
    pool_rows = as_int(pool_rows, w, "pool_rows")
    if not 1 <= pool_rows <= MAX_ROWS:
        raise ValueError(f"{w}pool_rows {pool_rows} outside 1..{MAX_ROWS}")
    max_requests = as_int(max_requests, w, "max_requests")
    if not 1 <= max_requests <= MAX_ROWS:
        raise ValueError(f"{w}max_requests {max_requests} outside 1..{MAX_ROWS}")
    page_size = as_int(page_size, w, "page_size")
    if not 0 <= page_size <= MAX_ROWS:
        raise ValueError(f"{w}page_size {page_size} outside 0..{MAX_ROWS} "
                         f"(0 = no prefix-cache snapshots)")
    seed = as_int(seed, w, "seed")
    if not 0 <= seed < UINT64_LIMIT:
        raise ValueError(f"{w}seed {seed} outside 0..2^64-1")
    return {"specstate_trace": FORMAT_VERSION, "preset": preset, "tp": tp,
            "ssm_dtype": SSM_DTYPES[ssm_dtype], "draft_tokens": draft_tokens,
            "pool_rows": pool_rows, "max_requests": max_requests, "page_size": page_size,
            "seed": seed}


class _Request:
    __slots__ = ("status", "req_row", "working_row", "length")

    def __init__(self, req_row, working_row, length):
        self.status = RUNNING
        self.req_row = req_row
        self.working_row = working_row
        self.length = length


def _track_pair(track, where):
    """(length, row) from a (length, row) pair or a {"length", "row"} mapping."""
    if isinstance(track, dict):
        extra = set(track) - {"length", "row"}
        if extra or "length" not in track or "row" not in track:
            raise ValueError(f"{where}track must have exactly the keys length and row, got "
                             f"{cut(sorted(track))}")
        return track["length"], track["row"]
    try:
        length, row = track
    except (TypeError, ValueError):
        raise ValueError(f"{where}track must be a (length, row) pair or "
                         f"{{'length': ..., 'row': ...}}, got {cut(repr(track))}") from None
    return length, row


class TraceState:
    """Scheduler bookkeeping implied by the events so far: requests, row owners, cache rows."""

    def __init__(self, header):
        self.header = header
        self.T = header["draft_tokens"] + 1
        self.pool_rows = header["pool_rows"]
        self.max_requests = header["max_requests"]
        self.page_size = header["page_size"]
        self._requests = {}      # request id -> _Request
        self._row_owner = {}     # working row -> running request id
        self._req_row_owner = {}  # request row -> running request id
        self._cache = {}         # row -> tokens of the prefix snapshot it holds
        self._held = None        # prepare(): the checked event's state changes, not yet applied

    def prepare(self, method, *args, **kwargs):
        """(event, commit) for `method` ("extend", "verify", ...) called with the arguments:
        the event checked completely, and a function that applies it. Nothing changes until
        `commit()` runs, so a writer can put the whole line on disk first."""
        self._held = []
        try:
            event = getattr(self, method)(*args, **kwargs)
            changes = self._held
        finally:
            self._held = None

        def commit():
            for change in changes:
                change()
        return event, commit

    def _done(self, event, change):
        """Applies `change` (or holds it for prepare()) and returns `event`."""
        if self._held is not None:
            self._held.append(change)
        else:
            change()
        return event

    # ---- queries ---------------------------------------------------------------------------
    def status(self, request):
        """'running', 'retracted', 'finished', or None for a request never extended."""
        r = self._requests.get(request)
        return r.status if r else None

    def length(self, request):
        """Tokens the request's state has absorbed (prefix + extends + accepted)."""
        return self._requests[request].length

    def rows(self, request):
        """(req_row, working_row) of a running request."""
        r = self._requests[request]
        if r.status != RUNNING:
            raise KeyError(f"request {request} is {r.status}")
        return r.req_row, r.working_row

    def running(self):
        return [k for k, r in self._requests.items() if r.status == RUNNING]

    def retracted(self):
        return [k for k, r in self._requests.items() if r.status == RETRACTED]

    def row_owner(self, row):
        """The running request whose working row `row` is, or None."""
        return self._row_owner.get(row)

    def req_row_owner(self, req_row):
        return self._req_row_owner.get(req_row)

    def cache_rows(self):
        """{row: length} of the rows that hold a prefix snapshot."""
        return dict(self._cache)

    # ---- checks ----------------------------------------------------------------------------
    def _request_id(self, request, event):
        request = as_int(request, f"{event}: ", "request")
        if not 0 <= request < UINT64_LIMIT:
            raise ValueError(f"{event}: request {request} outside 0..2^64-1")
        return request

    def _existing(self, request, where, allowed):
        r = self._requests.get(request)
        if r is None:
            raise ValueError(f"{where}unknown request (never extended)")
        if r.status == FINISHED:
            raise ValueError(f"{where}request already finished (no events after finish)")
        if r.status not in allowed:
            hint = " (resume it first)" if r.status == RETRACTED else ""
            raise ValueError(f"{where}request is {r.status}, expected {' or '.join(allowed)}{hint}")
        return r

    def _check_row(self, row, where, field):
        row = as_int(row, where, field)
        if not 0 <= row < self.pool_rows:
            raise ValueError(f"{where}{field} {row} outside 0..{self.pool_rows - 1} (pool_rows)")
        return row

    def _check_new_rows(self, req_row, working_row, where):
        if req_row is None:
            raise ValueError(f"{where}req_row is required")
        if working_row is None:
            raise ValueError(f"{where}working_row is required")
        req_row = as_int(req_row, where, "req_row")
        if not 0 <= req_row < self.max_requests:
            raise ValueError(f"{where}req_row {req_row} outside 0..{self.max_requests - 1} "
                             f"(max_requests)")
        owner = self._req_row_owner.get(req_row)
        if owner is not None:
            raise ValueError(f"{where}req_row {req_row} is in use by request {owner}")
        working_row = self._check_row(working_row, where, "working_row")
        owner = self._row_owner.get(working_row)
        if owner is not None:
            raise ValueError(f"{where}working_row {working_row} is in use by request {owner} "
                             f"(its working row)")
        return req_row, working_row

    def _check_track(self, track, old, lo_hi, where, used_rows, busy_rows):
        """One track write: (length, row), with `length` a page boundary in lo_hi."""
        length, row = _track_pair(track, where)
        length = as_int(length, where, "track.length")
        row = self._check_row(row, where, "track.row")
        if self.page_size == 0:
            raise ValueError(f"{where}track write, but page_size is 0 (no prefix-cache snapshots)")
        lo, hi = lo_hi
        if length % self.page_size:
            raise ValueError(f"{where}track.length {length} is not a multiple of page_size "
                             f"{self.page_size}")
        if not lo <= length <= hi:
            raise ValueError(f"{where}track.length {length} is not crossed by this event "
                             f"(request length {old} -> {hi})")
        owner = busy_rows.get(row)
        if owner is not None:
            raise ValueError(f"{where}track.row {row} is the working row of request {owner}")
        if row in used_rows:
            raise ValueError(f"{where}track.row {row} is written twice in this event")
        used_rows.add(row)
        return {"length": length, "row": row}

    # ---- events ----------------------------------------------------------------------------
    def extend(self, request, tokens, req_row=None, working_row=None, prefix_len=0,
               cow_src_row=None, track=()):
        request = self._request_id(request, "extend")
        w = f"extend: request {request}: "
        r = self._requests.get(request)
        if r is not None:
            self._existing(request, w, (RUNNING,))
        tokens = as_int(tokens, w, "tokens")
        if not 1 <= tokens <= MAX_TOKENS:
            raise ValueError(f"{w}tokens {tokens} outside 1..{MAX_TOKENS}")
        prefix_len = as_int(0 if prefix_len is None else prefix_len, w, "prefix_len")
        if r is None:
            req_row, working_row = self._check_new_rows(req_row, working_row, w)
            if not 0 <= prefix_len <= MAX_LENGTH:
                raise ValueError(f"{w}prefix_len {prefix_len} outside 0..{MAX_LENGTH}")
            if prefix_len > 0:
                if cow_src_row is None:
                    raise ValueError(f"{w}cow_src_row is required with prefix_len {prefix_len}")
                cow_src_row = self._check_row(cow_src_row, w, "cow_src_row")
                held = self._cache.get(cow_src_row)
                if held is None:
                    raise ValueError(f"{w}cow_src_row {cow_src_row} holds no prefix snapshot")
                if held != prefix_len:
                    raise ValueError(f"{w}cow_src_row {cow_src_row} holds a snapshot of {held} "
                                     f"tokens, not prefix_len {prefix_len}")
                if cow_src_row == working_row:
                    raise ValueError(f"{w}cow_src_row {cow_src_row} is also the working row "
                                     f"(copy-on-write needs a separate row)")
            elif cow_src_row is not None:
                raise ValueError(f"{w}cow_src_row {cow_src_row} given without prefix_len > 0")
            old = prefix_len
        else:
            if req_row is not None and as_int(req_row, w, "req_row") != r.req_row:
                raise ValueError(f"{w}req_row {req_row} does not match the request's "
                                 f"req_row {r.req_row}")
            if working_row is not None and as_int(working_row, w, "working_row") != r.working_row:
                raise ValueError(f"{w}working_row {working_row} does not match the request's "
                                 f"working_row {r.working_row}")
            if prefix_len != 0 or cow_src_row is not None:
                raise ValueError(f"{w}prefix_len / cow_src_row only on the first extend of a "
                                 f"request (it is running, length {r.length})")
            req_row, working_row = r.req_row, r.working_row
            old = r.length
        if old + tokens > MAX_LENGTH:
            raise ValueError(f"{w}tokens {tokens} take the request past {MAX_LENGTH} tokens")
        busy = dict(self._row_owner)
        busy[working_row] = request
        used = set()
        lo = old + 1
        written = []
        lengths = set()
        for t in (track or ()):
            tw = self._check_track(t, old, (lo, old + tokens), w, used, busy)
            if tw["row"] == cow_src_row:
                raise ValueError(f"{w}track.row {tw['row']} is the cow_src_row of this extend")
            if tw["length"] in lengths:
                raise ValueError(f"{w}track.length {tw['length']} is written twice in this event")
            lengths.add(tw["length"])
            written.append(tw)
        event = {"event": "extend", "request": request, "req_row": req_row,
                 "working_row": working_row, "tokens": tokens}
        if prefix_len > 0:
            event["prefix_len"] = prefix_len
            event["cow_src_row"] = cow_src_row
        if written:
            event["track"] = written

        def change():
            req = r
            if req is None:
                req = self._requests[request] = _Request(req_row, working_row, old)
                self._row_owner[working_row] = request
                self._req_row_owner[req_row] = request
                self._cache.pop(working_row, None)
            req.length = old + tokens
            for tw in written:
                self._cache[tw["row"]] = tw["length"]
        return self._done(event, change)

    def _step(self, name, entries, padding):
        """Shared check of a verify / decode batch; entries are (request, accepted, track)."""
        padding = as_int(0 if padding is None else padding, f"{name}: ", "padding")
        if not 0 <= padding <= MAX_TOKENS:
            raise ValueError(f"{name}: padding {padding} outside 0..{MAX_TOKENS}")
        if not entries:
            raise ValueError(f"{name}: batch is empty")
        seen = set()
        used = set()
        out = []
        for request, accepted, track in entries:
            request = self._request_id(request, name)
            w = f"{name}: request {request}: "
            if request in seen:
                raise ValueError(f"{w}request appears twice in the batch")
            seen.add(request)
            r = self._existing(request, w, (RUNNING,))
            accepted = as_int(accepted, w, "accepted")
            if not 1 <= accepted <= self.T:
                raise ValueError(f"{w}accepted {accepted} outside 1..{self.T}")
            tw = None
            if track is not None:
                lo = r.length + accepted if name == "decode" else r.length + 1
                tw = self._check_track(track, r.length, (lo, r.length + accepted), w, used,
                                       self._row_owner)
            out.append((request, accepted, tw))
        return out, padding

    def _apply_step(self, out):
        for request, accepted, tw in out:
            self._requests[request].length += accepted
            if tw:
                self._cache[tw["row"]] = tw["length"]

    def verify(self, entries, padding=0):
        """entries: iterable of (request, accepted, track-or-None)."""
        out, padding = self._step("verify", list(entries), padding)
        batch = []
        for request, accepted, tw in out:
            e = {"request": request, "accepted": accepted}
            if tw:
                e["track"] = tw
            batch.append(e)
        return self._done({"event": "verify", "batch": batch, "padding": padding},
                          lambda: self._apply_step(out))

    def decode(self, entries, padding=0):
        """entries: iterable of (request, track-or-None)."""
        out, padding = self._step("decode", [(q, 1, t) for q, t in entries], padding)
        batch = []
        for request, _, tw in out:
            e = {"request": request}
            if tw:
                e["track"] = tw
            batch.append(e)
        return self._done({"event": "decode", "batch": batch, "padding": padding},
                          lambda: self._apply_step(out))

    def retract(self, request):
        request = self._request_id(request, "retract")
        r = self._existing(request, f"retract: request {request}: ", (RUNNING,))

        def change():
            del self._row_owner[r.working_row]
            del self._req_row_owner[r.req_row]
            r.status, r.req_row, r.working_row = RETRACTED, None, None
        return self._done({"event": "retract", "request": request}, change)

    def resume(self, request, req_row=None, working_row=None):
        request = self._request_id(request, "resume")
        w = f"resume: request {request}: "
        r = self._existing(request, w, (RETRACTED,))
        req_row, working_row = self._check_new_rows(req_row, working_row, w)

        def change():
            r.status, r.req_row, r.working_row = RUNNING, req_row, working_row
            self._row_owner[working_row] = request
            self._req_row_owner[req_row] = request
            self._cache.pop(working_row, None)
        return self._done({"event": "resume", "request": request, "req_row": req_row,
                           "working_row": working_row}, change)

    def finish(self, request):
        request = self._request_id(request, "finish")
        r = self._existing(request, f"finish: request {request}: ", (RUNNING, RETRACTED))

        def change():
            if r.status == RUNNING:
                del self._row_owner[r.working_row]
                del self._req_row_owner[r.req_row]
            r.status, r.req_row, r.working_row = FINISHED, None, None
        return self._done({"event": "finish", "request": request}, change)

    def check(self):
        return self._done({"event": "check"}, lambda: None)
