"""Divergence forensics: when an engine's state leaves the tolerance, which state it holds
instead (docs/engine-testing.md, "Forensics").

The reference can build every state a bookkeeping bug could leave in a row: the same request a
few tokens earlier or later (a stale row, a rejected draft), another request's state, the state
of the row's last owner, zeros, or the request's last step run from one of those instead of its
own state (the wrong input row). check_engine keeps a bounded History of the trace while it runs
(only references to reference states it reads anyway) and calls investigate() once, after the
first divergence, so the passing path pays nothing but that memory.

Distances are relative, per head: max |engine - candidate| over the head's block divided by max
|live reference| over the same block, the largest over every SSM head and conv layer. A state
that matches a candidate up to the engine's drift is at about the drift (0.002 to 0.01 for
kernels with bf16 activations, 1e-7 for float32 ones), a state one token away at 0.1 to 2.
"""

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .compare import _parts, _values
from .reference import State
from .tolerance import head_scales

# Candidates nearer than this fraction of the distance to the live state explain the divergence;
# a bookkeeping bug moves a state by 0.1 or more, the drift of a match stays near 1e-3.
MATCH_RATIO = 0.1
# The same request's states are listed up to EARLIER tokens before its live state; they are
# rebuilt from a kept state at most ADVANCE_LIMIT tokens back (one canonical step per token and
# layer, after a divergence only).
EARLIER = 16
ADVANCE_LIMIT = 4096


def _count(k, unit="token"):
    return f"one {unit}" if k == 1 else f"{k} {unit}s"


@dataclass(frozen=True)
class Candidate:
    """A state the engine might hold instead of the live one."""
    kind: str            # live, earlier, draft, ahead, other, owner, finished, zeros, from
    description: str     # what it is, in words
    ssm: float           # relative distance over the SSM heads (module docstring)
    conv: float          # over the conv layers
    request: Optional[int] = None  # whose state it is
    tokens: int = 0      # earlier/ahead/draft: how many tokens from the live state

    @property
    def distance(self):
        return max(self.ssm, self.conv)

    def __str__(self):
        return f"{self.distance:10.2g} {self.ssm:10.2g} {self.conv:10.2g}  {self.description}"


@dataclass(frozen=True)
class Forensics:
    """The candidates, nearest first, and what the nearest says."""
    request: int
    live: Candidate
    candidates: tuple    # every Candidate, nearest first (the live state among them)

    @property
    def best(self):
        return self.candidates[0]

    @property
    def matched(self):
        """True when a candidate other than the live state explains the engine's state."""
        return self.best.kind != "live" and self.best.distance <= MATCH_RATIO * self.live.distance

    @property
    def verdict(self):
        best, live = self.best, self.live
        versus = f"distance {best.distance:.2g} vs {live.distance:.2g} to the live state"
        if best.kind == "live":
            return (f"closest to its own live state (distance {live.distance:.2g}): drift "
                    f"beyond the tolerance, or a state none of the candidates describes")
        if not self.matched:
            return (f"no candidate explains it; the nearest: {best.description} ({versus})")
        return f"{_name(best)}: {best.description} ({versus})"

    def __str__(self):
        return self.report()

    def report(self, shown=6):
        """The verdict and the `shown` nearest candidates (and the live state), one a line."""
        lines = [f"forensics: {self.verdict}",
                 "    distance        ssm       conv  candidate (relative, per head)"]
        shown_ones = list(self.candidates[:shown])
        if self.live not in shown_ones:
            shown_ones.append(self.live)
        lines += [f"  {c}" for c in shown_ones]
        if len(self.candidates) > len(shown_ones):
            lines.append(f"  ... {len(self.candidates) - len(shown_ones)} more")
        return "\n".join(lines)


def _name(c):
    """The verdict's first words for candidate c."""
    return {"earlier": f"stale by {_count(c.tokens)}",
            "draft": f"ahead by {_count(c.tokens)}, a rejected draft",
            "ahead": f"ahead by {_count(c.tokens)}",
            "other": "another request's state",
            "owner": "the previous owner's state",
            "finished": "a finished request's state",
            "zeros": "a zeroed state",
            "from": "the right tokens run from the wrong state"}[c.kind]


class History:
    """What forensics needs of the past, bounded, kept while check_engine runs:

    - per request held: its length, its working row, its last call (the extend, verify or
      decode that ran its latest tokens) and the reference's states at its last `depth` lengths
      (references to the states check_engine read to compare, no copies);
    - per row: its last owner (the trace's working rows; track rows are not followed);
    - the final states of the last `keep_finished` finished requests.
    """

    def __init__(self, tokens_per_verify, depth=3, keep_finished=8):
        self.T = tokens_per_verify
        self.depth, self.keep_finished = depth, keep_finished
        self.length = {}          # request -> tokens seen
        self.row = {}             # request -> its working row
        self.owner = {}           # row -> the last request whose working row it was
        self.previous_owner = {}  # request -> (request, row): who held its row before it
        self.last_call = {}       # request -> (kind, line, start length, tokens run)
        self.snapshots = {}       # request -> deque of (length, State, line)
        self.finished = OrderedDict()  # request -> (State, length, line, row)

    def tokens(self, request):
        return self.length[request]

    def after(self, event):
        """Follows `event` (already run): lengths, rows, owners, calls, finished requests."""
        f = event.fields
        if event.kind == "extend":
            r = f["request"]
            if r not in self.length:
                self.length[r] = f.get("prefix_len", 0)
                self._take_row(r, f["working_row"])
            self._ran(r, "extend", event.line, f["tokens"], f["tokens"])
        elif event.kind in ("verify", "decode"):
            for e in f["batch"]:
                accepted = e.get("accepted", 1)
                if accepted > 0:  # 0: a discarded entry of an overlap trace, nothing kept
                    run = self.T if event.kind == "verify" and "tree" not in e else accepted
                    self._ran(e["request"], event.kind, event.line, run, accepted)
        elif event.kind == "resume":
            self._take_row(f["request"], f["working_row"])
        elif event.kind == "finish":
            self._finish(f["request"], event.line)

    def record(self, request, state, line):
        """Keeps the reference's state of `request` after the event at `line`, once per length."""
        kept = self.snapshots.setdefault(request, deque(maxlen=self.depth))
        length = self.length[request]
        if not kept or kept[-1][0] != length:
            kept.append((length, state, line))

    def _ran(self, request, kind, line, run, accepted):
        start = self.length[request]
        self.last_call[request] = (kind, line, start, run)
        self.length[request] = start + accepted

    def _take_row(self, request, row):
        prev = self.owner.get(row)
        if prev is not None and prev != request:
            self.previous_owner[request] = (prev, row)
        else:
            self.previous_owner.pop(request, None)
        self.owner[row] = request
        self.row[request] = row

    def _finish(self, request, line):
        kept = self.snapshots.pop(request, None)
        if kept:
            length, state, _ = kept[-1]
            self.finished[request] = (state, length, line, self.row.get(request))
            while len(self.finished) > self.keep_finished:
                self.finished.popitem(last=False)
        for table in (self.length, self.row, self.last_call, self.previous_owner):
            table.pop(request, None)


class _Scorer:
    """Distances from the engine's state, relative to the live state's head scales."""

    def __init__(self, engine, live):
        e_ssm, e_conv, _, _ = _parts(engine)
        self.ssm, self.conv = _values(e_ssm), _values(e_conv)
        self.s_scale, self.c_scale = head_scales(live)

    def __call__(self, kind, description, state, request=None, tokens=0):
        """The Candidate `state` is, with its distances (NaN counts as infinitely far)."""
        c_ssm, c_conv, _, _ = _parts(state)
        s = np.abs(self.ssm - _values(c_ssm)).max(axis=(2, 3)) / self.s_scale
        c = np.abs(self.conv - _values(c_conv)).max(axis=(1, 2)) / self.c_scale
        s, c = (float(np.nan_to_num(np.max(x), nan=np.inf)) for x in (s, c))
        return Candidate(kind, description, s, c, request, tokens)


def _zeros(like):
    return State(np.zeros_like(like.ssm), np.zeros_like(like.conv), like.geometry,
                 like.layer_ids)


def _earlier(history, inputs, request):
    """{k: State} of the request k tokens before its live length, 1 <= k <= EARLIER, from its
    snapshots: each kept state, and the states between it and the next one rebuilt by running
    the tokens between them from it."""
    L = history.tokens(request)
    kept = [(n, state) for n, state, _ in history.snapshots.get(request, ()) if n < L]
    out = {}
    for i, (start, state) in enumerate(kept):
        end = kept[i + 1][0] if i + 1 < len(kept) else L
        if end <= L - EARLIER or end - start > ADVANCE_LIMIT:
            continue
        out[L - start] = state
        if end - start > 1:
            for j, s in enumerate(inputs.advance(state, request, start, end - start - 1)):
                out[L - start - 1 - j] = s
    return {k: s for k, s in out.items() if k <= EARLIER}


def _own_states(history, inputs, request, live, earlier, score):
    """Candidates of the request at other lengths: `earlier` ones ({k: State}), the rejected
    drafts of its last verify (rebuilt from the state it started from), the next T-1 tokens
    ahead."""
    L = history.tokens(request)
    found = [score("earlier", f"request {request} at length {L - k}, {_count(k)} before the "
                              f"live state", s, request, k)
             for k, s in sorted(earlier.items())]
    kind, line, start, run = history.last_call.get(request, (None, 0, 0, 0))
    base = next((s for n, s, _ in history.snapshots.get(request, ()) if n == start), None)
    drafts = set()
    if kind == "verify" and base is not None and start + run > L:
        states = inputs.advance(base, request, start, run)
        for j in range(L - start, run):
            k = start + j + 1 - L
            drafts.add(k)
            found.append(score("draft", f"request {request} at length {L + k}, draft token "
                                        f"{j + 1} of the verify at line {line}, rejected",
                               states[j], request, k))
    ahead = inputs.advance(live, request, L, history.T - 1) if history.T > 1 else []
    for i, s in enumerate(ahead):
        if i + 1 not in drafts:
            found.append(score("ahead", f"request {request} at length {L + i + 1}, "
                                        f"{_count(i + 1)} past the live state", s, request,
                               i + 1))
    return found


def _foreign_states(history, ref, request):
    """(kind, request, State, description) of states that are not the request's: other running
    and retracted requests, recently finished ones; the last owner of its row named so."""
    prev, row = history.previous_owner.get(request, (None, None))
    out = []
    for q, status in ref.requests().items():
        if q != request:
            what = f"request {q} ({status}) at length {history.length.get(q, '?')}"
            if q == prev:
                out.append(("owner", q, ref.state(q), f"{what}, the last owner of row {row}"))
            else:
                out.append(("other", q, ref.state(q), what))
    for q, (state, length, line, _) in history.finished.items():
        what = f"request {q} at length {length}, finished at line {line}"
        if q == prev:
            out.append(("owner", q, state, f"{what}, the last owner of row {row}"))
        else:
            out.append(("finished", q, state, what))
    return out


def _wrong_inputs(history, inputs, request, score, earlier, foreign, zeros):
    """The request's last call (its tokens since its previous length) run from a state that is
    not the one it should have read: another request's, a finished one's, zeros, or its own
    a few tokens stale (an engine that reads the wrong input row)."""
    kind, line, start, _ = history.last_call.get(request, (None, 0, 0, 0))
    n = history.tokens(request) - start
    if kind is None or n < 1 or n > ADVANCE_LIMIT:
        return []
    sources = [(state, f"the state of {text}") for _, _, state, text in foreign]
    sources.append((zeros, "zeros"))
    sources += [(earlier[n + j], f"its own state at length {start - j}, {_count(j)} stale")
                for j in range(1, history.T) if n + j in earlier]
    return [score("from", f"its {kind} at line {line} ran its {_count(n)} from {what}",
                  inputs.advance(state, request, start, n)[-1], request, n)
            for state, what in sources]


def investigate(history, ref, request, engine_state):
    """Forensics of `request`, whose engine state `engine_state` left the tolerance after the
    event just run: every candidate with its distances, nearest first."""
    live = ref.state(request)
    score = _Scorer(engine_state, live)
    itself = score("live", f"request {request} at length {history.tokens(request)}: the live "
                           f"state", live, request)
    earlier = _earlier(history, ref.inputs, request)
    found = [itself] + _own_states(history, ref.inputs, request, live, earlier, score)
    foreign = _foreign_states(history, ref, request)
    found += [score(kind, text, state, q) for kind, q, state, text in foreign]
    zeros = _zeros(live)
    found.append(score("zeros", "zeros, as a fresh row", zeros))
    found += _wrong_inputs(history, ref.inputs, request, score, earlier, foreign, zeros)
    found.sort(key=lambda c: c.distance)
    return Forensics(request, itself, tuple(found))
