"""The trace rules, shared by the writer and the Python checker: the twin of the C++ reader
(core/trace/format.cpp: fields, types, bounds) and schedule tracker (core/trace/tracker.cpp),
check for check and message for message. The bounds come from core/trace/rules.json
(`_rules.py`, generated); tests/trace_rules holds bad traces that both sides must refuse at the
same line with the same message.

An event is checked as an object, the one that goes on disk: first its fields, then the
schedule. `TraceState.prepare(obj, line)` checks it completely and returns the normalised event
and a function that applies it; a rejected event raises ValueError and leaves the state as it
was.
"""

from ._fields import Fields, NegativeZero, _is_integer, describe_type, printable
from ._rules import (FORMAT_VERSION, GEOMETRY_FIELDS, MAX_LENGTH, MAX_ROWS, MAX_TOKENS,
                     MAX_OVERLAP_DEPTH, MAX_TOKENS_PER_VERIFY, MAX_TP, MAX_TREE_NODES,
                     OLDEST_FORMAT_VERSION, PRESET_HEADS, RECURRENCES)

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
HEADER_KEYS = ("specstate_trace", "preset", "geometry", "tp", "rank", "ssm_dtype",
               "draft_tokens", "pool_rows", "max_requests", "page_size", "seed", "tree_nodes",
               "overlap", "host_slots", "prefill_tp")
GEOMETRY_KEYS = tuple(name for name, _, _ in GEOMETRY_FIELDS) + ("recurrence",)
SSM_DTYPE_ALIASES = {"fp32": "f32", "float32": "f32", "bfloat16": "bf16"}  # writer convenience

RUNNING, RETRACTED, FINISHED = "running", "retracted", "finished"


def parse_header(obj):
    """The header object checked as the C++ reader checks it; raises ValueError."""
    if not isinstance(obj, dict) or "specstate_trace" not in obj:
        raise ValueError('missing header: a trace starts with {"specstate_trace": 1, '
                         '"preset": ...}')
    version = obj["specstate_trace"]
    if not _is_integer(version):
        raise ValueError(f"field 'specstate_trace' in header must be an integer, got "
                         f"{describe_type(version)}")
    if isinstance(version, NegativeZero):
        raise ValueError("field 'specstate_trace' in header is -0, a negative zero; write 1")
    if not OLDEST_FORMAT_VERSION <= version <= FORMAT_VERSION:
        raise ValueError(f"unsupported trace format version {printable(int(version))} "
                         f"(this build reads versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})")
    f = Fields(obj, "header", HEADER_KEYS)
    geometry = None
    if "geometry" in obj:
        if version < 2:
            raise ValueError(f"field 'geometry' in header needs format version 2 (this header "
                             f"says {int(version)})")
        if "preset" in obj:
            raise ValueError("a header gives 'preset' or 'geometry', not both")
        g = Fields(obj["geometry"], "geometry", GEOMETRY_KEYS)
        geometry = {name: g.integer(name, lo, hi) for name, lo, hi in GEOMETRY_FIELDS}
        if "recurrence" in obj["geometry"]:
            recurrence = g.string("recurrence")
            if recurrence not in RECURRENCES:
                raise ValueError(f"unknown recurrence '{printable(recurrence)}' in geometry "
                                 f"(known: {', '.join(RECURRENCES)})")
            if recurrence != RECURRENCES[0]:  # the default is not written
                geometry["recurrence"] = recurrence
    else:
        preset = f.string("preset")
    tp = f.integer("tp", 1, MAX_TP)
    rank = {}
    if "rank" in obj:
        if version < 2:
            raise ValueError(f"field 'rank' in header needs format version 2 (this header "
                             f"says {int(version)})")
        rank = f.integer("rank", 0, MAX_TP - 1)
        rank = {"rank": rank} if rank > 0 else {}
    dtype = f.string("ssm_dtype")
    if dtype not in ("f32", "bf16"):
        raise ValueError(f"field 'ssm_dtype' in header is '{printable(dtype)}', "
                         f"expected f32 or bf16")
    model = {"geometry": geometry} if geometry else {"preset": preset}
    header = {"specstate_trace": OLDEST_FORMAT_VERSION, **model, "tp": tp, **rank,
              "ssm_dtype": dtype,
              "draft_tokens": f.integer("draft_tokens", 0, MAX_TOKENS_PER_VERIFY - 1),
              "pool_rows": f.integer("pool_rows", 1, MAX_ROWS),
              "max_requests": f.integer("max_requests", 1, MAX_ROWS),
              "page_size": f.integer("page_size", 0, MAX_ROWS),
              "seed": f.unsigned("seed")}
    if "tree_nodes" in obj:  # after the seed, where the C++ reader checks it
        if version < 2:
            raise ValueError(f"field 'tree_nodes' in header needs format version 2 (this header "
                             f"says {int(version)})")
        header["tree_nodes"] = f.integer("tree_nodes", 1, MAX_TREE_NODES)
    if "overlap" in obj:
        if version < 2:
            raise ValueError(f"field 'overlap' in header needs format version 2 (this header "
                             f"says {int(version)})")
        depth = f.integer("overlap", 0, MAX_OVERLAP_DEPTH)
        if depth > 0:
            if "tree_nodes" in header:
                raise ValueError("a header gives 'overlap' or 'tree_nodes', not both (overlap "
                                 "scheduling of draft trees is not modelled)")
            header["overlap"] = depth
    if "host_slots" in obj:
        if version < 2:
            raise ValueError(f"field 'host_slots' in header needs format version 2 (this header "
                             f"says {int(version)})")
        header["host_slots"] = f.integer("host_slots", 1, MAX_ROWS)
    if "prefill_tp" in obj:
        if version < 2:
            raise ValueError(f"field 'prefill_tp' in header needs format version 2 (this header "
                             f"says {int(version)})")
        header["prefill_tp"] = f.integer("prefill_tp", 1, MAX_TP)
    # The lowest version that expresses the header (core/trace/events.h lowest_version).
    if geometry or any(key in header for key in ("rank", "tree_nodes", "overlap", "host_slots",
                                                 "prefill_tp")):
        header = {"specstate_trace": 2, **{k: v for k, v in header.items() if k != "specstate_trace"}}
    # core/trace/format.cpp check_header: the geometry, the rank, the prefill instance.
    if geometry:
        _check_geometry(geometry, tp)
    else:
        name = printable(preset)  # make_geometry sees the printable, cut form
        if name not in PRESET_HEADS:
            raise ValueError(f"unknown preset '{name}' (known: {', '.join(PRESET_HEADS)})")
        h, hv = PRESET_HEADS[name]
        if h % tp or hv % tp:
            raise ValueError(f"tensor-parallel degree {tp} does not divide the {name} head counts "
                             f"(H={h}, HV={hv})")
    if header.get("rank", 0) >= tp:
        raise ValueError(f"rank {header['rank']} outside 0..{tp - 1} (tensor-parallel degree "
                         f"{tp})")
    prefill = header.get("prefill_tp", 0)
    if prefill and geometry and prefill != 1:
        raise ValueError(f"prefill_tp {prefill} with a custom geometry: the geometry gives one "
                         f"rank's heads, so the prefill instance's TP is 1")
    if prefill and not geometry and (h % prefill or hv % prefill):
        raise ValueError(f"prefill_tp: tensor-parallel degree {prefill} does not divide the {name} "
                         f"head counts (H={h}, HV={hv})")
    return header


def _check_geometry(g, tp):
    """core/trace/format.cpp header_geometry and core/geometry.cpp make_custom_geometry."""
    if tp != 1:
        raise ValueError(f"tp {tp} with a custom geometry: the geometry gives one rank's heads, "
                         f"so tp is 1")
    if g["HV"] % g["H"]:
        raise ValueError(f"custom geometry: HV {g['HV']} is not a multiple of H {g['H']}")
    if g["K"] % 8:
        raise ValueError(f"custom geometry: K {g['K']} is not a multiple of 8 (the reductions "
                         f"over K run as that many chains, docs/numerics.md)")
    conv_dim = 2 * g["H"] * g["K"] + g["HV"] * g["V"]
    if g["conv_dim"] != conv_dim:
        raise ValueError(f"custom geometry: conv_dim {g['conv_dim']} is not 2*H*K + HV*V = "
                         f"{conv_dim}")


def make_header(preset=None, draft_tokens=None, pool_rows=None, max_requests=None, page_size=0,
                tp=1, ssm_dtype="f32", seed=0, geometry=None, tree_nodes=0, overlap=False,
                host_slots=0, rank=0, prefill_tp=0):
    """The header object, checked; raises ValueError with the C++ reader's message. `geometry`
    (a dict of layers, H, HV, K, V, conv_dim, W: one rank's heads, and optionally the
    recurrence: "gated-deltanet", the default) instead of `preset`,
    `tree_nodes` > 0 (verifies may run draft trees of that many nodes), or `overlap` (True or a
    depth d of 1..4: up to d steps in flight, each prepared before the results of those before
    it reached the host; verify entries may be discarded, accepted 0), or `host_slots` > 0 (a
    host tier that offload events save cache rows into and restore events load them from), or
    `rank` > 0 (which of the tp ranks the trace records), or `prefill_tp` > 0 (the TP degree of
    the prefill instance that handoff events bring requests from) writes format version 2."""
    dtype = SSM_DTYPE_ALIASES.get(ssm_dtype, ssm_dtype) if isinstance(ssm_dtype, str) else ssm_dtype
    model = {key: value for key, value in (("preset", preset), ("geometry", geometry))
             if value is not None}
    trees = {} if tree_nodes in (0, None) else {"tree_nodes": tree_nodes}
    if overlap:
        trees["overlap"] = int(overlap)
    if host_slots not in (0, None):
        trees["host_slots"] = host_slots
    if prefill_tp not in (0, None):
        trees["prefill_tp"] = prefill_tp
    ranks = {} if rank in (0, None) else {"rank": rank}
    v2 = geometry is not None or bool(trees) or bool(ranks)
    return parse_header({"specstate_trace": 2 if v2 else 1, **model, "tp": tp, **ranks,
                         "ssm_dtype": dtype, "draft_tokens": draft_tokens,
                         "pool_rows": pool_rows, "max_requests": max_requests,
                         "page_size": page_size, "seed": seed, **trees})


# ---- fields of an event (core/trace/format.cpp parse_event) ------------------------------------

def _track(value, what):
    f = Fields(value, what, ("length", "row"))
    return {"length": f.integer("length", 1, MAX_LENGTH), "row": f.integer("row", 0, INT32_MAX)}


def _node_list(f, key, lo):
    values = f.array(key)
    if len(values) > MAX_TREE_NODES:
        raise ValueError(f"{f.field(key)} has {len(values)} entries, more than the "
                         f"{MAX_TREE_NODES} nodes of a tree")
    return [f._integer(f"{key}[{i}]", v, lo, MAX_TREE_NODES - 1) for i, v in enumerate(values)]


def _tree(value, what):
    f = Fields(value, what, ("parents", "path"))
    return {"parents": _node_list(f, "parents", -1), "path": _node_list(f, "path", 0)}


def _step(f, name):
    batch = []
    for i, value in enumerate(f.array("batch")):
        what = f"batch[{i}] of the {name} event"
        if name == "verify":
            e = Fields(value, what, ("request", "accepted", "track", "tree"))
            entry = {"request": e.unsigned("request"),
                     "accepted": e.integer("accepted", INT32_MIN, INT32_MAX)}
        else:
            e = Fields(value, what, ("request", "track"))
            entry = {"request": e.unsigned("request")}
        if e.has("track"):
            entry["track"] = _track(e.obj["track"], f"track of {what}")
        if name == "verify" and e.has("tree"):
            entry["tree"] = _tree(e.obj["tree"], f"tree of {what}")
        batch.append(entry)
    return {"event": name, "batch": batch,
            "padding": f.optional_integer("padding", 0, MAX_TOKENS, 0)}


def parse_event(obj):
    """The event's fields checked and normalised (absent optional rows as -1); ValueError."""
    if not isinstance(obj, dict):
        raise ValueError(f"an event must be a JSON object, got {describe_type(obj)}")
    if "specstate_trace" in obj:
        raise ValueError("a second header; a trace has one, on its first line")
    if "event" not in obj:
        raise ValueError("missing field 'event'")
    kind = obj["event"]
    if not isinstance(kind, str):
        raise ValueError(f"field 'event' must be a string, got {describe_type(kind)}")
    if kind == "extend":
        f = Fields(obj, "extend event", ("event", "request", "req_row", "working_row", "tokens",
                                         "prefix_len", "cow_src_row", "track"))
        e = {"event": "extend", "request": f.unsigned("request"),
             "req_row": f.optional_integer("req_row", 0, INT32_MAX, -1),
             "working_row": f.optional_integer("working_row", 0, INT32_MAX, -1),
             "tokens": f.integer("tokens", 1, MAX_TOKENS),
             "prefix_len": f.optional_integer("prefix_len", 0, MAX_LENGTH, 0),
             "cow_src_row": f.optional_integer("cow_src_row", 0, INT32_MAX, -1), "track": []}
        if f.has("track"):
            e["track"] = [_track(t, f"track[{i}] of the extend event")
                          for i, t in enumerate(f.array("track"))]
        return e
    if kind in ("verify", "decode"):
        return _step(Fields(obj, f"{kind} event", ("event", "batch", "padding")), kind)
    if kind in ("retract", "finish"):
        return {"event": kind,
                "request": Fields(obj, f"{kind} event", ("event", "request")).unsigned("request")}
    if kind == "resume":
        f = Fields(obj, "resume event", ("event", "request", "req_row", "working_row"))
        return {"event": "resume", "request": f.unsigned("request"),
                "req_row": f.integer("req_row", 0, INT32_MAX),
                "working_row": f.integer("working_row", 0, INT32_MAX)}
    if kind == "check":
        Fields(obj, "check event", ("event",))
        return {"event": "check"}
    if kind == "offload":
        f = Fields(obj, "offload event", ("event", "row", "slot"))
        return {"event": "offload", "row": f.integer("row", 0, INT32_MAX),
                "slot": f.integer("slot", 0, INT32_MAX)}
    if kind == "restore":
        f = Fields(obj, "restore event", ("event", "slot", "row"))
        slot = f.integer("slot", 0, INT32_MAX)
        return {"event": "restore", "slot": slot, "row": f.integer("row", 0, INT32_MAX)}
    if kind == "handoff":
        f = Fields(obj, "handoff event", ("event", "request", "length", "row"))
        return {"event": "handoff", "request": f.unsigned("request"),
                "length": f.integer("length", 1, MAX_LENGTH), "row": f.integer("row", 0, INT32_MAX)}
    raise ValueError(f"unknown event '{printable(kind)}' (expected extend, verify, decode, "
                     f"retract, resume, finish, check, offload, restore or handoff)")


def _depth(parents, node):
    d = 0
    while parents[node] >= 0:
        node, d = parents[node], d + 1
    return d


def tree_error(parents, path, accepted, max_nodes, T):
    """What is wrong with a draft tree, as core/draft_tree.cpp says it; "" when nothing is."""
    n = len(parents)
    if not 1 <= n <= max_nodes:
        return f"a tree of {n} nodes; this trace's trees have 1..{max_nodes} (header tree_nodes)"
    if parents[0] != -1:
        return f"node 0 is the root: its parent is -1, not {parents[0]}"
    for i in range(1, n):
        p = parents[i]
        if not 0 <= p < i:
            return (f"the parent of node {i} is {p}; a node's parent is an earlier node "
                    f"(0..{i - 1})")
        if _depth(parents, i) > T - 1:
            return (f"node {i} is at depth {_depth(parents, i)}, deeper than the {T - 1} draft "
                    f"tokens of a verify")
    a = len(path)
    if not 1 <= a <= T:
        return f"an accepted path of {a} nodes, outside 1..{T}"
    if path[0] != 0:
        return f"the accepted path starts at the root, node 0, not {path[0]}"
    for k in range(1, a):
        node = path[k]
        if not 0 <= node < n or parents[node] != path[k - 1]:
            return (f"path[{k}] = {node} is not a child of node {path[k - 1]}: the accepted path "
                    f"runs from the root along the parents")
    if accepted != a:
        return f"accepted length {accepted} but the path has {a} nodes"
    return ""


# ---- the schedule (core/trace/tracker.cpp) -----------------------------------------------------

class _Request:
    __slots__ = ("status", "req_row", "working_row", "length", "first_line", "status_line",
                 "discarded_line")

    def __init__(self, req_row, working_row, length, line):
        self.status = RUNNING
        self.req_row, self.working_row, self.length = req_row, working_row, length
        self.first_line = self.status_line = line
        self.discarded_line = 0  # overlap: its entry of this step was discarded


class TraceState:
    """Scheduler bookkeeping implied by the events so far: requests, row owners, cache rows."""

    def __init__(self, header):
        self.header = header
        self.T = header["draft_tokens"] + 1
        self.pool_rows = header["pool_rows"]
        self.max_requests = header["max_requests"]
        self.page_size = header["page_size"]
        self._requests = {}       # request id -> _Request
        self._row_owner = {}      # working row -> running request id
        self._req_row_owner = {}  # request row -> running request id
        self._cache = {}          # row -> tokens of the prefix snapshot it holds
        self.host_slots = header.get("host_slots", 0)
        self.prefill_tp = header.get("prefill_tp", 0)
        self._slots = {}          # host slot -> tokens of the snapshot it holds

    def prepare(self, obj, line):
        """(event, commit): the event object `obj` on line `line` checked completely, in its
        on-disk form, and a function that applies it. Nothing changes until commit() runs."""
        return self.prepare_parsed(parse_event(obj), line)

    def prepare_parsed(self, event, line):
        """prepare() of an event parse_event() has checked already (the reader's second pass)."""
        return getattr(self, "_" + event["event"])(dict(event), line)

    def apply(self, obj, line):
        event, commit = self.prepare(obj, line)
        commit()
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

    def host_slot_lengths(self):
        """{slot: length} of the host slots an offload has filled."""
        return dict(self._slots)

    # ---- checks ----------------------------------------------------------------------------
    def _known(self, request):
        r = self._requests.get(request)
        if r is None:
            raise ValueError(f"request {request} does not exist (no extend has started it)")
        if r.status == FINISHED:
            raise ValueError(f"request {request} finished at line {r.status_line}")
        return r

    def _running(self, request):
        r = self._known(request)
        if r.status == RETRACTED:
            raise ValueError(f"request {request} is not running: retracted at line "
                             f"{r.status_line} and not resumed")
        if r.discarded_line:
            raise ValueError(f"request {request}: its entry at line {r.discarded_line} was "
                             f"discarded (accepted 0), so the next event naming it must be its "
                             f"finish")
        return r

    def _row_range(self, field, row):
        if not 0 <= row < self.pool_rows:
            raise ValueError(f"{field} {row} out of range 0..{self.pool_rows - 1} "
                             f"(pool_rows {self.pool_rows})")

    def _new_rows(self, req_row, working_row):
        if not 0 <= req_row < self.max_requests:
            raise ValueError(f"req_row {req_row} out of range 0..{self.max_requests - 1} "
                             f"(max_requests {self.max_requests})")
        owner = self._req_row_owner.get(req_row)
        if owner is not None:
            raise ValueError(f"req_row {req_row} is in use by request {owner}")
        self._row_range("working_row", working_row)
        self._not_working("working_row", working_row)

    def _not_working(self, field, row):
        """`row` (named `field` in the message) is no running request's working row."""
        owner = self._row_owner.get(row)
        if owner is not None:
            raise ValueError(f"{field} {row} is the working row of live request {owner}")

    def _track_write(self, t, old, new, own_row, written):
        """A snapshot of the state after t["length"] tokens of a request going from `old` to
        `new` tokens in this event; `written` collects the rows this event writes."""
        length, row = t["length"], t["row"]
        what = f"track row {row}"
        self._row_range("track row", row)
        if self.page_size == 0:
            raise ValueError("track write, but page_size is 0 (no snapshots)")
        if length % self.page_size:
            raise ValueError(f"track length {length} is not a page boundary (page_size "
                             f"{self.page_size})")
        if not old < length <= new:
            raise ValueError(f"track length {length} is not a page boundary crossed by this "
                             f"event (the request goes from {old} to {new} tokens)")
        if row == own_row:
            raise ValueError(f"{what} is the request's own working row")
        self._not_working("track row", row)
        if row in written:
            raise ValueError(f"{what} is written twice in this event")
        written.add(row)

    # ---- events ----------------------------------------------------------------------------
    def _extend(self, e, line):
        request, r = e["request"], self._requests.get(e["request"])
        old, working_row, cow = e["prefix_len"], e["working_row"], e["cow_src_row"]
        if r is not None:  # chunked prefill of a running request
            r = self._running(request)
            if e["req_row"] >= 0 and e["req_row"] != r.req_row:
                raise ValueError(f"req_row {e['req_row']} does not match request {request}'s "
                                 f"req_row {r.req_row}")
            if working_row >= 0 and working_row != r.working_row:
                raise ValueError(f"working_row {working_row} does not match request {request}'s "
                                 f"working_row {r.working_row}")
            if e["prefix_len"] != 0 or cow >= 0:
                raise ValueError(f"prefix_len and cow_src_row belong on a request's first extend "
                                 f"only (request {request} started at line {r.first_line})")
            old, working_row = r.length, r.working_row
        else:  # a new request
            if e["req_row"] < 0 or working_row < 0:
                raise ValueError(f"the first extend of request {request} must name req_row and "
                                 f"working_row")
            self._new_rows(e["req_row"], working_row)
            if e["prefix_len"] > 0 and cow < 0:
                raise ValueError(f"prefix_len {e['prefix_len']} without cow_src_row")
            if e["prefix_len"] == 0 and cow >= 0:
                raise ValueError(f"cow_src_row {cow} without prefix_len")
            if cow >= 0:
                self._row_range("cow_src_row", cow)
                held = self._snapshot_length("cow_src_row", cow)
                if held != e["prefix_len"]:
                    raise ValueError(f"cow_src_row {cow} holds a snapshot of {held} tokens, not "
                                     f"prefix_len {e['prefix_len']}")
                if cow == working_row:
                    raise ValueError(f"cow_src_row {cow} is also the working_row; a prefix hit "
                                     f"copies into another row")
        new = old + e["tokens"]
        if new > MAX_LENGTH:
            raise ValueError(f"request {request} would exceed {MAX_LENGTH} tokens")
        written, lengths = set(), set()
        for t in e["track"]:
            self._track_write(t, old, new, working_row, written)
            if t["row"] == cow:
                raise ValueError(f"track row {t['row']} is this extend's cow_src_row")
            if t["length"] in lengths:
                raise ValueError(f"track length {t['length']} is written twice in this event")
            lengths.add(t["length"])
        req_row = e["req_row"] if r is None else r.req_row
        event = {"event": "extend", "request": request, "req_row": req_row,
                 "working_row": working_row, "tokens": e["tokens"]}
        if e["prefix_len"] > 0:
            event["prefix_len"], event["cow_src_row"] = e["prefix_len"], cow
        if e["track"]:
            event["track"] = e["track"]

        def commit():
            req = self._requests.get(request)
            if req is None:
                req = self._requests[request] = _Request(req_row, working_row, old, line)
                self._take_rows(request, req_row, working_row)
            req.length = new
            for t in e["track"]:
                self._cache[t["row"]] = t["length"]
        return event, commit

    def _verify(self, e, line):
        return self._step_event(e, self.T, line)

    def _decode(self, e, line):
        return self._step_event(e, self.T, line)

    def _step_event(self, e, T, line):
        batch = e["batch"]
        if not batch:
            raise ValueError("a step with an empty batch")
        seen, written = set(), set()
        for entry in batch:
            request = entry["request"]
            if request in seen:
                raise ValueError(f"request {request} appears twice in the batch")
            seen.add(request)
            r = self._running(request)
            accepted = entry.get("accepted", 1)  # a decode accepts its one token
            if accepted == 0 and self.header.get("overlap") and "tree" not in entry:
                if "track" in entry:
                    raise ValueError(f"a discarded entry (accepted 0) carries no track "
                                     f"(request {request})")
                continue
            if not 1 <= accepted <= T:
                hint = ("; only an overlap trace (header overlap 1) has discarded entries"
                        if accepted == 0 else "")
                raise ValueError(f"accepted length {accepted} outside 1..{T} "
                                 f"(request {request}){hint}")
            if "tree" in entry:
                self._check_tree(entry["tree"], accepted, request)
            if "track" in entry:
                # Only accepted tokens count: a snapshot of a rejected draft's state is the bug
                # of vLLM #43559.
                self._track_write(entry["track"], r.length, r.length + accepted, r.working_row,
                                  written)

        def commit():
            for entry in batch:
                self._requests[entry["request"]].length += entry.get("accepted", 1)
                if entry.get("accepted", 1) == 0:
                    self._requests[entry["request"]].discarded_line = line
                if "track" in entry:
                    self._cache[entry["track"]["row"]] = entry["track"]["length"]
        return e, commit

    def _check_tree(self, tree, accepted, request):
        """core/trace/tracker.cpp check_tree and core/draft_tree.cpp tree_error."""
        max_nodes = self.header.get("tree_nodes", 0)
        if not max_nodes:
            raise ValueError(f"a tree verify (request {request}) in a trace whose header declares "
                             f"no tree_nodes")
        error = tree_error(tree["parents"], tree["path"], accepted, max_nodes, self.T)
        if error:
            raise ValueError(f"{error} (request {request})")

    def _retract(self, e, line):
        r = self._running(e["request"])

        def commit():
            self._release_rows(r)
            r.status, r.status_line = RETRACTED, line
        return e, commit

    def _resume(self, e, line):
        request = e["request"]
        r = self._known(request)
        if r.status != RETRACTED:
            raise ValueError(f"request {request} is not retracted (it is running); only a "
                             f"retracted request resumes")
        self._new_rows(e["req_row"], e["working_row"])

        def commit():
            r.status, r.status_line = RUNNING, line
            r.req_row, r.working_row = e["req_row"], e["working_row"]
            self._take_rows(request, e["req_row"], e["working_row"])
        return e, commit

    def _finish(self, e, line):
        r = self._known(e["request"])

        def commit():
            if r.status == RUNNING:
                self._release_rows(r)
            r.status, r.status_line = FINISHED, line
        return e, commit

    def _check(self, e, line):
        return e, lambda: None

    def _snapshot_length(self, field, row):
        """The length of the snapshot `row` holds; ValueError when it holds none."""
        held = self._cache.get(row)
        if held is None:
            owner = self._row_owner.get(row)
            where = (f" (it is the working row of live request {owner})"
                     if owner is not None else " (it is free)")
            raise ValueError(f"{field} {row} holds no snapshot{where}")
        return held

    def _slot_range(self, event, slot):
        if self.host_slots == 0:
            raise ValueError(f"{event} event, but the header has no host_slots (no host tier)")
        if not 0 <= slot < self.host_slots:
            raise ValueError(f"slot {slot} out of range 0..{self.host_slots - 1} "
                             f"(host_slots {self.host_slots})")

    def _offload(self, e, line):
        row, slot = e["row"], e["slot"]
        self._slot_range("offload", slot)
        self._row_range("offload row", row)
        held = self._snapshot_length("offload row", row)

        def commit():
            self._slots[slot] = held
        return e, commit

    def _restore(self, e, line):
        slot, row = e["slot"], e["row"]
        self._slot_range("restore", slot)
        self._row_range("restore row", row)
        held = self._slots.get(slot)
        if held is None:
            raise ValueError(f"slot {slot} holds nothing (no offload has filled it)")
        self._not_working("restore row", row)

        def commit():
            self._cache[row] = held
        return e, commit

    def _handoff(self, e, line):
        request, length, row = e["request"], e["length"], e["row"]
        if not self.prefill_tp:
            raise ValueError("handoff event, but the header has no prefill_tp (no prefill instance)")
        self._row_range("handoff row", row)
        known = self._requests.get(request)
        if known is not None:
            raise ValueError(f"handoff of request {request}, which started here at line "
                             f"{known.first_line}")
        self._not_working("handoff row", row)

        def commit():
            self._cache[row] = length
        return e, commit

    # ---- bookkeeping -----------------------------------------------------------------------
    def _take_rows(self, request, req_row, working_row):
        self._row_owner[working_row] = request
        self._req_row_owner[req_row] = request
        self._cache.pop(working_row, None)  # a working row evicts the snapshot it held

    def _release_rows(self, r):
        del self._row_owner[r.working_row]
        del self._req_row_owner[r.req_row]
        r.req_row = r.working_row = None
