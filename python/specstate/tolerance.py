"""A tolerance measured from the engine's own arithmetic (docs/engine-testing.md, "Calibrating
the tolerance").

An engine with its own kernels moves every state by rounding: how far depends on its kernels,
on the head (the layer's decay and the inputs' scale) and on the tokens the state has seen. One
absolute tolerance for all of them is either too tight for the engine's drift or loose enough
to hide a state that is a token stale. `calibrate` runs the engine's kernels where bookkeeping
cannot be wrong (one request at a time, prefills, decodes and verifies that accept every token,
one row) and records, per head, the largest relative drift seen at each token count; a
`Tolerance` then judges each state against a multiple of the drift expected after the tokens
that state has seen.
"""

import json
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from .compare import _check_layout, _parts, _values, compare_within
from .reference import Reference

# A head's scale is max |reference| over its block; a block of zeros (never a real state) is
# given the smallest normal float so that a relative drift stays finite.
_TINY = float(np.finfo(np.float32).tiny)


def head_scales(reference):
    """max |value| per block of a state: ssm [layers, HV], conv [layers] (at least _TINY)."""
    ssm, conv, _, _ = _parts(reference)
    s = np.abs(_values(ssm)).max(axis=(2, 3))
    c = np.abs(_values(conv)).max(axis=(1, 2))
    return np.maximum(s, _TINY), np.maximum(c, _TINY)


def relative_drift(engine, reference):
    """max |engine - reference| / max |reference| per block: ssm [layers, HV], conv [layers]
    (NaN where either holds a NaN)."""
    e_ssm, e_conv, _, _ = _parts(engine)
    r_ssm, r_conv, _, _ = _parts(reference)
    _check_layout("ssm", e_ssm, r_ssm)
    _check_layout("conv", e_conv, r_conv)
    s_scale, c_scale = head_scales(reference)
    s = np.abs(_values(e_ssm) - _values(r_ssm)).max(axis=(2, 3)) / s_scale
    c = np.abs(_values(e_conv) - _values(r_conv)).max(axis=(1, 2)) / c_scale
    return s, c


@dataclass(frozen=True)
class Tolerance:
    """Per-head criterion from calibrate(): an element of SSM head h (conv: of layer l) of a
    state that has seen n tokens agrees when

        |engine - reference| <= (factor * drift_h(n) + floor) * max |reference over head h|

    drift_h(n) is the largest relative drift calibrate() saw in head h at any token count up to
    n (a non-decreasing envelope); beyond the longest calibrated sequence it grows as
    sqrt(n / longest), the growth of a random walk, since no measurement covers it."""
    ssm_dtype: str
    layer_ids: tuple
    heads: int                 # HV
    factor: float
    floor: float
    lengths: np.ndarray        # [P] token counts at which calibrate() compared states, ascending
    ssm_drift: np.ndarray      # [P, layers, HV] envelope of the relative drift
    conv_drift: np.ndarray     # [P, layers]
    states: int                # states compared by calibrate()
    requests: int
    tokens: int                # tokens per calibration request

    def drift(self, tokens):
        """The expected relative drift after `tokens` tokens: (ssm [layers, HV], conv [layers])."""
        i = max(int(np.searchsorted(self.lengths, tokens, side="right")) - 1, 0)
        grow = max(1.0, float(np.sqrt(tokens / self.lengths[-1])))
        return self.ssm_drift[i] * grow, self.conv_drift[i] * grow

    def allowed(self, reference, tokens):
        """The |diff| allowed per block of `reference` after `tokens` tokens: (ssm [layers, HV],
        conv [layers])."""
        s_scale, c_scale = head_scales(reference)
        s_drift, c_drift = self.drift(tokens)
        return ((self.factor * s_drift + self.floor) * s_scale,
                (self.factor * c_drift + self.floor) * c_scale)

    def compare(self, engine, reference, tokens):
        """A Comparison of `engine` with `reference`, a state that has seen `tokens` tokens, by
        the per-head criterion; its mismatches name the |diff| allowed there."""
        s_allowed, c_allowed = self.allowed(reference, tokens)
        bounds = {"ssm": s_allowed[:, :, None, None], "conv": c_allowed[:, None, None]}

        def within(name, diff, rv, ulps):
            return diff <= bounds[name], bounds[name]

        return compare_within(engine, reference, within, f"the calibrated tolerance "
                                                         f"({self.factor:g} x drift per head)")

    def check_matches(self, ssm_dtype, layer_ids, heads):
        """ValueError unless this tolerance was calibrated for the pool dtype, layers and heads
        of the trace under test (drift is a property of each head and of the pool dtype)."""
        mine = (self.ssm_dtype, tuple(self.layer_ids), self.heads)
        theirs = (ssm_dtype, tuple(layer_ids), heads)
        if mine != theirs:
            raise ValueError(f"the tolerance was calibrated for a {mine[0]} pool, layers "
                             f"{list(mine[1])}, {mine[2]} heads; the trace has a {theirs[0]} "
                             f"pool, layers {list(theirs[1])}, {theirs[2]} heads: calibrate "
                             f"with the trace (calibrate(make_engine, trace, layers=...))")

    def __str__(self):
        first_s, first_c = self.ssm_drift[0].max(), self.conv_drift[0].max()
        last_s, last_c = self.ssm_drift[-1].max(), self.conv_drift[-1].max()
        n0, n1 = int(self.lengths[0]), int(self.lengths[-1])
        return (f"calibrated on {self.requests} requests x {self.tokens} tokens ({self.states} "
                f"states, {self.ssm_dtype} pool, layers {list(self.layer_ids)}): relative drift "
                f"per SSM head {first_s:.2g} after {n0} token{'s' * (n0 != 1)}, {last_s:.2g} at "
                f"most up to {n1} tokens; conv {first_c:.2g} / {last_c:.2g}. Agree when |diff| "
                f"<= ({self.factor:g} x drift(tokens) + {self.floor:g}) x max|reference| per "
                f"head (drift grows as sqrt(tokens/{n1}) beyond {n1} tokens)")


# First prefill chunk of each calibration request, in turn: single tokens, short and long
# chunks, since an engine may run prefills of different lengths through different kernels.
_FIRST_CHUNKS = (1, 18, 5, 64, 3, 37)


def _calibration_events(requests, tokens, T):
    """The events of the calibration trace and the length of the request after each: for each
    request in turn, a prefill, a second prefill chunk, then verifies that accept all T tokens
    with a decode every eighth step, until `tokens`; then finish."""
    events, lengths = [], []
    for i in range(requests):
        request = i + 1
        first = min(_FIRST_CHUNKS[i % len(_FIRST_CHUNKS)], tokens)
        events.append({"event": "extend", "request": request, "req_row": 0, "working_row": 0,
                       "tokens": first})
        length = first
        lengths.append(length)
        if length < tokens:
            second = min(T + 2, tokens - length)
            events.append({"event": "extend", "request": request, "tokens": second})
            length += second
            lengths.append(length)
        step = 0
        while length < tokens:
            step += 1
            if step % 8 == 0:
                events.append({"event": "decode", "batch": [{"request": request}]})
                length += 1
            else:
                events.append({"event": "verify", "batch": [{"request": request, "accepted": T}]})
                length += T
            lengths.append(length)
        events.append({"event": "finish", "request": request})
        lengths.append(None)
    return events, lengths


def _calibration_header(like):
    """The header of the trace under test (a path or a header dict), with one request and one
    row, no prefix cache, chains, no overlap."""
    if isinstance(like, dict):
        header = dict(like)
    else:
        header = dict(Reference(like).header)
    for key in ("tree_nodes", "overlap"):
        header.pop(key, None)
    header.update(pool_rows=2, max_requests=1, page_size=0)
    return header


def _envelope(samples, layers, heads):
    """(lengths [P], ssm [P, layers, HV], conv [P, layers]): per token count, the largest drift
    seen at that count or any smaller one."""
    lengths = np.array(sorted({n for n, _, _ in samples}), dtype=np.int64)
    ssm = np.zeros((len(lengths), layers, heads))
    conv = np.zeros((len(lengths), layers))
    index = {int(n): i for i, n in enumerate(lengths)}
    for n, s, c in samples:
        i = index[n]
        ssm[i] = np.fmax(ssm[i], s)
        conv[i] = np.fmax(conv[i], c)
    return lengths, np.maximum.accumulate(ssm, axis=0), np.maximum.accumulate(conv, axis=0)


def _check_drift(ssm, conv, max_drift, layer_ids, event, request):
    """ValueError unless every head's relative drift is a number at most max_drift."""
    for name, drift in (("SSM", ssm), ("conv", conv)):
        bad = np.argwhere(~(drift <= max_drift))
        if len(bad):
            where = tuple(int(i) for i in bad[0])
            head = f", head {where[1]}" if name == "SSM" else ""
            raise ValueError(f"calibrate: after {event.describe()} (line {event.line} of the "
                             f"calibration trace) the engine's {name} state of layer "
                             f"{layer_ids[where[0]]}{head} is {drift[where]:.3g} away from the "
                             f"reference, relative to the head's largest value: more than "
                             f"max_drift {max_drift:g}, so no rounding drift but a kernel bug "
                             f"(or NaN); fix the kernel, a tolerance this loose would hide "
                             f"bookkeeping bugs")


def calibrate(make_engine, like, *, requests=4, tokens=256, factor=4.0, floor=1e-6,
              max_drift=0.05, layers=None, geometry=None, backend="cpu"):
    """Measures the engine's drift on bookkeeping-free sequences and returns a Tolerance for
    check_engine(..., tolerance=).

    `like` is the trace to be tested (or its header as a dict): the calibration runs its model
    geometry, pool dtype, T and seed (pass the same `layers` and `geometry` as to check_engine).
    `requests` requests of `tokens` tokens each run one at a time in one row: a prefill (1, 18,
    5, 64, ... tokens), a second chunk, then verifies that accept all T tokens with a decode
    every eighth step. After every event the engine's state is compared with the reference's,
    head by head: drift = max |engine - reference| / max |reference| of the head. `factor`
    multiplies the largest drift seen (the margin for requests and lengths the calibration did
    not see); `floor` is added, relative to the head's scale, so that a head that was exact
    allows a few float32 ulps.

    The calibration trusts the engine's kernels: whatever they do on these sequences becomes the
    tolerance. A relative drift above `max_drift` in any head is no rounding (bf16 activations
    drift by about 2^-8) but a kernel bug, and a tolerance built on it would hide bookkeeping
    bugs: calibrate raises ValueError naming the head, the tokens and the line instead.

    Raises EngineError as check_engine does when the adapter fails.
    """
    from .harness import EngineDriver  # the harness imports this module's Tolerance

    header = _calibration_header(like)
    T = header["draft_tokens"] + 1
    events, lengths = _calibration_events(requests, tokens, T)
    with tempfile.TemporaryDirectory(prefix="specstate-calibrate-") as folder:
        path = os.path.join(folder, "calibration.jsonl")
        with open(path, "w") as f:
            for obj in [header] + events:
                f.write(json.dumps(obj) + "\n")
        ref = Reference(path, backend=backend, layers=layers, geometry=geometry)
        driver = EngineDriver(ref, make_engine)
        samples = []
        while (event := ref.step()) is not None:
            driver.apply(event)
            for request, status in ref.requests().items():
                got = driver.state(event, request, status)
                if got is not None:
                    expected = ref.state(request)
                    s, c = driver.compare(event, request, status,
                                          lambda: relative_drift(got, expected))
                    _check_drift(s, c, max_drift, ref.geometry.layer_ids, event, request)
                    samples.append((lengths[event.index], s, c))
    if not samples:
        raise ValueError("calibrate: the engine's state() returned None for every state, so no "
                         "drift was measured")
    g = ref.geometry
    n, s, c = _envelope(samples, len(g.layer_ids), g.HV)
    return Tolerance(ref.ssm_dtype, tuple(g.layer_ids), g.HV, float(factor), float(floor), n, s,
                     c, len(samples), requests, tokens)
