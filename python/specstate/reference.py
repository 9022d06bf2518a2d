"""Geometry, inputs and the reference that follows a trace event by event."""

import json
import os
from dataclasses import dataclass

import numpy as np

from . import _core
from ._tensors import bf16_to_float, float_to_bf16


def geometry(preset, tp=1, layers=None, rank=0):
    """The GDN geometry of a preset on rank `rank` of a TP-way split (`specstate.presets()` lists
    them); `layers` ("0,17,35", "0-3" or a list of indices) keeps only those model layers. A
    rank's inputs and parameters are its slice of the whole model's (docs/numerics.md)."""
    g = _core.preset_geometry(preset, tp, rank)
    return g if layers is None else _core.with_layers(g, _layer_text(layers))


def custom_geometry(layers, H, HV, K, V, W, conv_dim=None, recurrence="gated-deltanet"):
    """A geometry that is not a preset; conv_dim, when given, must be 2*H*K + HV*V, and
    `recurrence` names what its layers run (presets() lists each preset's)."""
    return _core.custom_geometry(layers, H, HV, K, V, W, conv_dim or 0, recurrence)


def _layer_text(layers):
    if layers is None:
        return ""
    if isinstance(layers, str):
        return layers
    return ",".join(str(int(l)) for l in layers)


class Inputs:
    """The deterministic inputs and parameters of a seed, as the reference generates them:
    every value is a function of (seed, request, position, model layer, index). Values are
    float32 (exact bf16 values) unless bits=True asks for the uint16 bf16 bit patterns."""

    def __init__(self, geometry, seed):
        self._core = _core.Inputs(geometry, seed)
        self.geometry = geometry
        self.seed = seed

    def tokens(self, request, position, layer, count=None, bits=False):
        """(x, a, b) of positions position .. position+count-1 in model layer `layer`:
        x [count, conv_dim] (channels q | k | v), a and b [count, HV] (a [count, HV, K] for
        kimi-delta-attention); without count, one token: x [conv_dim], a [HV] (or [HV, K]) and
        b [HV]."""
        x, a, b = self._core.tokens(request, position, layer, 1 if count is None else count)
        out = tuple(t if bits else bf16_to_float(t) for t in (x, a, b))
        return tuple(t[0] for t in out) if count is None else out

    def x(self, request, position, layer, count=None, bits=False):
        return self.tokens(request, position, layer, count, bits)[0]

    def a(self, request, position, layer, count=None, bits=False):
        return self.tokens(request, position, layer, count, bits)[1]

    def b(self, request, position, layer, count=None, bits=False):
        return self.tokens(request, position, layer, count, bits)[2]

    def parameters(self, layer, bits=False):
        """{"conv_weight": [conv_dim, W] (oldest input's tap first), "A_log": [HV],
        "dt_bias": [HV] ([HV, K] for kimi-delta-attention: one per key channel)} of model
        layer `layer`."""
        p = self._core.parameters(layer)
        return p if bits else {k: bf16_to_float(v) for k, v in p.items()}

    def derive(self, request, position, layer, window=None):
        """What the step computes from the token before the recurrence, by its own functions:
        {"conv_out": [conv_dim] (after SiLU, rounded to bf16), "q_hat", "k_hat": [H, K],
        "alpha", "beta": [HV]}, all float32 (kimi-delta-attention: "alpha" [HV, K], a decay per
        key channel). `window` is the conv state before the token,
        [conv_dim, W-1] bf16 bits; by default the request's own inputs at the W-1 positions
        before (zeros before position 0), as for a request that started from the zero state."""
        if window is not None:
            window = np.ascontiguousarray(window, dtype=np.uint16)
        return self._core.derive(request, position, layer, window)

    def advance(self, state, request, position, count):
        """The states after each of `count` tokens of `request` from `position`, starting from
        `state` (a State or an (ssm, conv) pair of every layer held): a list of `count` States,
        bit for bit those the reference computes when one call (an extend, a verify) runs these
        tokens from `state`. The state stays float32 from token to token, as inside one call,
        and each result is stored in the pool dtype of `state.ssm` (uint16: a bf16 pool)."""
        ssm, conv = (state.ssm, state.conv) if hasattr(state, "ssm") else state
        bf16_pool = np.asarray(ssm).dtype == np.uint16
        values = bf16_to_float(ssm) if bf16_pool else np.asarray(ssm, dtype=np.float32)
        layers = [self._core.advance(request, position, layer, count, values[i],
                                     np.ascontiguousarray(conv[i], dtype=np.uint16))
                  for i, layer in enumerate(self.geometry.layer_ids)]
        ssm_all = np.stack([s for s, _ in layers], axis=1)    # [count, layers, HV, K, V] fp32
        conv_all = np.stack([w for _, w in layers], axis=1)   # [count, layers, C, W-1] bf16
        if bf16_pool:
            ssm_all = float_to_bf16(ssm_all)
        ids = tuple(self.geometry.layer_ids)
        return [State(ssm_all[t], conv_all[t], self.geometry, ids) for t in range(count)]


@dataclass
class State:
    """A request's recurrent state in every layer held. ssm [layers, HV, K, V] in the pool
    dtype (float32, or uint16 bf16 bits for a bf16 pool); conv [layers, conv_dim, W-1] bf16 bits,
    oldest column first. The arrays own the bytes read from the backend; nothing is copied."""
    ssm: np.ndarray
    conv: np.ndarray
    geometry: object = None
    layer_ids: tuple = ()

    @property
    def ssm_values(self):
        return bf16_to_float(self.ssm) if self.ssm.dtype == np.uint16 else self.ssm

    @property
    def conv_values(self):
        return bf16_to_float(self.conv)

    def digest(self):
        """The digest the reference computes of the same bytes (`Reference.digest`)."""
        return _core.digest_state(self.geometry, self.ssm, self.conv)


def sent_states(geometry, ssm_dtype, seed, request, length, prefill_tp):
    """The prefill instance's side of a prefill/decode handoff (a `handoff` event of a trace with
    `prefill_tp`): the state after `request`'s first `length` tokens on each of its `prefill_tp`
    ranks, as the reference computes it from the seed's inputs, for the model and layers of
    `geometry` (the receiving rank's). A list of State, rank by rank, each of its rank's
    geometry. An adapter gives them to its engine's reslicing (its PD connector) and compares
    what lands with `reslice`."""
    sent = _core.sent_states(geometry, ssm_dtype, seed, request, length, prefill_tp)
    return [State(ssm, conv, g, tuple(g.layer_ids)) for ssm, conv, g in sent]


def reslice(states, geometry):
    """The state the rank of `geometry` receives from `states` (a State of every rank of the
    sending instance, in rank order, as `sent_states` gives them): the SSM gathered by value
    heads, the conv window by the heads' channels of each group q | k | v (docs/numerics.md)."""
    ssm, conv = _core.reslice(geometry, states[0].geometry,
                              [(np.ascontiguousarray(s.ssm), np.ascontiguousarray(s.conv))
                               for s in states])
    return State(ssm, conv, geometry, tuple(geometry.layer_ids))


def digest(geometry, ssm, conv):
    """The reference's digest of a state given as arrays: ssm float32 (f32 pool) or uint16 bf16
    bits (bf16 pool), conv uint16 bf16 bits. Equal digests mean equal bytes, so an engine that
    claims to be bit-exact can be checked by 8 bytes per request."""
    return _core.digest_state(geometry, np.ascontiguousarray(ssm), np.ascontiguousarray(conv))


@dataclass(frozen=True)
class Event:
    """One trace event: its index among the events, its line in the trace file, its kind
    ("extend", "verify", "decode", "retract", "resume", "finish", "check", "offload",
    "restore", "handoff") and its fields as on disk (docs/trace-format.md)."""
    index: int
    line: int
    kind: str
    fields: dict

    def describe(self):
        """A short description: "verify [request 2 a=2, request 5 a=1]"."""
        f = self.fields
        if self.kind in ("verify", "decode"):
            parts = [f"request {e['request']}" + (f" a={e['accepted']}" if "accepted" in e else "")
                     for e in f.get("batch", [])]
            return f"{self.kind} [{', '.join(parts)}]"
        if self.kind == "handoff":
            return f"handoff [request {f['request']}, {f['length']} tokens, row {f['row']}]"
        if "request" in f:
            extra = f" +{f['tokens']} tokens" if self.kind == "extend" else ""
            return f"{self.kind} [request {f['request']}{extra}]"
        if self.kind in ("offload", "restore"):
            return f"{self.kind} [row {f['row']}, slot {f['slot']}]"
        return self.kind


class Reference:
    """A trace followed event by event through one specstate lane (backend x strategy), exactly
    as `specstate replay` drives its lanes; the state of any request that is running or swapped
    out can be read after any event.

        ref = specstate.Reference("run.trace", backend="cpu", strategy="inline")
        while (event := ref.step()) is not None:
            state = ref.state(7)          # State: ssm [layers, HV, K, V], conv [layers, C, W-1]

    The trace is read and validated first (an invalid one raises specstate.InputError naming
    FILE:LINE). `layers` keeps a subset of the model's layers ("0,17,35", "0-3" or a list);
    `geometry` (custom_geometry) replaces the header's preset. Only the rows the trace touches
    are stored. A geometry the backend does not run, or pools larger than the memory, raise
    InputError at the header's FILE:LINE before anything is allocated, as `specstate replay`.

    One Reference may be shared by threads: its methods run one at a time (each holds a lock,
    with the GIL released while it waits), so every call sees whole events.
    """

    def __init__(self, trace, backend="cpu", strategy="inline", layers=None, geometry=None):
        self._core = _core.Reference(os.fspath(trace), backend, strategy, _layer_text(layers),
                                     geometry)
        self.header = json.loads(self._core.header_json)
        self.geometry = self._core.geometry
        self.ssm_dtype = self._core.ssm_dtype
        self.file = self._core.file
        self.header_line = self._core.header_line
        self.lane = self._core.lane
        self.tokens_per_verify = self.header["draft_tokens"] + 1
        self.inputs = Inputs(self.geometry, self.header["seed"])
        self.events = [self._event(i) for i in range(self._core.num_events)]

    def _event(self, i):
        fields = json.loads(self._core.event_json(i))
        return Event(i, self._core.event_line(i), fields.pop("event"), fields)

    @property
    def next_event(self):
        """The event step() runs next, or None at the end."""
        i = self._core.next
        return self.events[i] if i < len(self.events) else None

    def step(self):
        """Runs the next event and returns it; None at the end of the trace. Threads that share
        a Reference run each event once: every call runs and returns a different event."""
        index = self._core.step()
        return None if index is None else self.events[index]

    def run(self, until_line=None):
        """Runs the remaining events, or those on lines up to `until_line`."""
        limit = -1 if until_line is None else max(int(until_line), 0)
        while self._core.step(limit) is not None:
            pass

    def requests(self):
        """{request id: "running" | "retracted"} after the events run so far."""
        return self._core.requests()

    def state(self, request):
        """The live state of a running request, or the saved state of a retracted one."""
        ssm, conv = self._core.state(request)
        return State(ssm, conv, self.geometry, tuple(self.geometry.layer_ids))

    def digest(self, request):
        """The digest of state(request), computed where the state lives."""
        return self._core.digest(request)

    def outputs(self):
        """o of every token of the last verify or decode: ([tasks, tokens, layers, HV, V] uint16
        bf16 bits, [request of each task, None for the padding task])."""
        return self._core.outputs()
