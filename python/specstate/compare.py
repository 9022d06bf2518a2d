"""Element-wise comparison of an engine's state with the reference's, within a tolerance."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _core
from ._tensors import as_array, bf16_to_float, float_to_bf16


@dataclass(frozen=True)
class Mismatch:
    """One element outside the tolerance."""
    tensor: str        # "conv" or "ssm"
    layer: int         # the model's layer index
    index: tuple       # conv: (channel, col); ssm: (head, k, v)
    where: str         # the index in words: "head 3, k 5, v 9", "channel 40 (k head 0, i 8), col 2"
    engine: float
    reference: float
    ulp: Optional[int]  # distance in units of the reference dtype's last place
    allowed: Optional[float] = None  # the |diff| a per-head tolerance allowed here (Tolerance)

    def __str__(self):
        ulp = "" if self.ulp is None else f", {self.ulp} ulp"
        allowed = "" if self.allowed is None else f", allowed {self.allowed:.3g}"
        return (f"{self.tensor} layer {self.layer} [{self.where}]: engine {self.engine:.9g} vs "
                f"reference {self.reference:.9g} (|diff| {abs(self.engine - self.reference):.3g}"
                f"{ulp}{allowed})")


@dataclass(frozen=True)
class Comparison:
    """The result of compare(): truthy when every element is within the tolerance."""
    ok: bool
    elements: int            # elements compared
    outside: int             # elements outside the tolerance
    first: Optional[Mismatch]  # the first of them: lowest layer, conv before ssm, C order
    worst: Optional[Mismatch]  # the one with the largest |diff|
    max_abs: float           # largest |engine - reference| over all elements
    max_ulp: int             # largest distance in reference ulps (huge across zero: see atol)
    tolerance: str
    used: Optional[float] = None  # per-head tolerance only: largest |diff| / allowed

    def __bool__(self):
        return self.ok

    def __str__(self):
        if self.ok:
            used = "" if self.used is None else f", {self.used:.2g} of the allowed"
            return (f"agree within {self.tolerance}: {self.elements} elements, max |diff| "
                    f"{self.max_abs:.3g}{used}")
        text = (f"{self.outside} of {self.elements} elements outside {self.tolerance}; first: "
                f"{self.first}")
        if self.worst != self.first:
            text += f"; largest: {self.worst}"
        return text


def _parts(state):
    """(ssm, conv, geometry, layer_ids) of a State, a pair or a mapping; TypeError for anything
    else."""
    if hasattr(state, "ssm") and hasattr(state, "conv"):
        return (as_array(state.ssm), as_array(state.conv), getattr(state, "geometry", None),
                getattr(state, "layer_ids", None))
    if isinstance(state, Mapping):
        if "ssm" not in state or "conv" not in state:
            raise TypeError(f"a state mapping needs the keys 'ssm' and 'conv', got "
                            f"{sorted(map(str, state))}")
        return as_array(state["ssm"]), as_array(state["conv"]), None, None
    if isinstance(state, (tuple, list)) and len(state) == 2:
        return as_array(state[0]), as_array(state[1]), None, None
    raise TypeError(f"a state is a specstate.State, an (ssm, conv) pair or a mapping "
                    f"{{'ssm': ..., 'conv': ...}}, got {_describe(state)}")


def _describe(value):
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return "None" if value is None else f"a {type(value).__qualname__}"


def _values(a):
    """float64 values; uint16 arrays are bf16 bits."""
    if a.dtype == np.uint16:
        return bf16_to_float(a).astype(np.float64)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"cannot compare an array of {a.dtype} (float or integer values are "
                        f"compared; uint16 arrays are bf16 bits)")
    return a.astype(np.float64)


# The layout of each tensor of a state: compare names a mismatch by these axes.
_LAYOUT = {"ssm": "[layers, HV, K, V]", "conv": "[layers, conv_dim, W-1]"}


def _check_layout(name, engine, reference):
    """ValueError unless both arrays have the state's layout and the same, non-empty shape."""
    for whose, a in (("engine", engine), ("reference", reference)):
        ndim = _LAYOUT[name].count(",") + 1
        if a.ndim != ndim:
            raise ValueError(f"{name}: the {whose}'s array has {a.ndim} dimensions "
                             f"(shape {tuple(a.shape)}); a state's {name} is {ndim}-d, "
                             f"{_LAYOUT[name]}")
    if engine.shape != reference.shape:
        raise ValueError(f"{name}: the engine's shape {tuple(engine.shape)} is not the "
                         f"reference's {tuple(reference.shape)} {_LAYOUT[name]}")
    if reference.size == 0:
        # Every axis of a geometry is at least 1: an empty array is no state, and comparing
        # nothing must not pass for agreement.
        raise ValueError(f"{name}: empty arrays (shape {tuple(reference.shape)}): nothing to "
                         f"compare")


def check_tolerances(rtol, atol, ulp):
    """ValueError naming the argument unless rtol and atol are finite numbers >= 0 and ulp an
    integer >= 0 (a NaN tolerance would pass or fail everything without saying so)."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if isinstance(ulp, bool) or not isinstance(ulp, (int, np.integer)) or ulp < 0:
        raise ValueError(f"ulp must be an integer >= 0, got {ulp!r}")


def _ordered(bits, width):
    """Float bit patterns mapped to integers that count ulps (sign-magnitude to two's
    complement), so that |ordered(a) - ordered(b)| is the distance in ulps."""
    bits = bits.astype(np.int64)
    magnitude = bits & ((1 << (width - 1)) - 1)
    return np.where(bits >> (width - 1) & 1, -magnitude, magnitude)


def _ulps(engine, reference):
    """Distance in ulps of the reference's dtype: bf16 for uint16 arrays, else float32."""
    if reference.dtype == np.uint16:
        e = engine if engine.dtype == np.uint16 else float_to_bf16(_values(engine).astype(np.float32))
        return np.abs(_ordered(e, 16) - _ordered(reference, 16))
    e = _values(engine).astype(np.float32).view(np.uint32)
    r = _values(reference).astype(np.float32).view(np.uint32)
    return np.abs(_ordered(e, 32) - _ordered(r, 32))


def _describe_conv(channel, col, geometry):
    if geometry is None:
        return f"channel {channel}, col {col}"
    return f"{_core.conv_channel_text(geometry, channel)}, col {col}"


def compare(engine, reference, *, rtol=0.0, atol=0.0, ulp=0):
    """Compares two states element by element.

    `engine` and `reference` are `specstate.State`s, (ssm, conv) pairs or {"ssm", "conv"}
    mappings of arrays (NumPy, torch, DLPack, buffer protocol): ssm [layers, HV, K, V], conv
    [layers, conv_dim, W-1]; uint16 arrays are bf16 bits. An element agrees when
    |engine - reference| <= atol + rtol * |reference|, or when it is at most `ulp` units in the
    last place of the reference's dtype away (bf16 for the conv window and bf16 pools, float32
    otherwise); NaN agrees only with NaN. The defaults demand equal values.

    Raises ValueError for a negative or NaN tolerance (naming the argument), for arrays of
    another number of dimensions than the layouts above, of different shapes, or empty; TypeError
    for arrays of neither floats nor integers.
    """
    check_tolerances(rtol, atol, ulp)

    def within(name, diff, rv, ulps):
        return (diff <= atol + rtol * np.abs(rv)) | (ulps <= ulp), None

    return compare_within(engine, reference, within, f"rtol {rtol:g}, atol {atol:g}, {ulp} ulp")


def compare_within(engine, reference, within, tolerance):
    """compare() with the criterion given: within(name, diff, reference_values, ulps) returns
    (agree, allowed) for the tensor `name` ("conv", "ssm"): `agree` a boolean array of its
    shape, `allowed` None or an array broadcastable to it (the |diff| allowed per element, named
    in mismatches). `tolerance` describes the criterion in the result."""
    e_ssm, e_conv, _, _ = _parts(engine)
    r_ssm, r_conv, geometry, layer_ids = _parts(reference)
    elements, outside, max_abs, max_ulp, used = 0, 0, 0.0, 0, None
    candidates = []  # per tensor with mismatches: (first layer, name, first, worst, |diff|, ...)
    for name, e, r in (("conv", e_conv, r_conv), ("ssm", e_ssm, r_ssm)):
        _check_layout(name, e, r)
        ev, rv = _values(e), _values(r)
        diff = np.abs(ev - rv)
        both_nan = np.isnan(ev) & np.isnan(rv)
        diff = np.where(both_nan, 0.0, diff)
        ulps = np.where(both_nan, 0, _ulps(e, r))
        agree, allowed = within(name, diff, rv, ulps)
        bad = ~(agree | both_nan)
        elements += bad.size
        outside += int(bad.sum())
        finite = np.where(np.isnan(diff), np.inf, diff)
        max_abs = max(max_abs, float(finite.max()))  # not empty: _check_layout
        max_ulp = max(max_ulp, int(ulps.max()))
        if allowed is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(finite > 0, finite / allowed, 0.0)
            used = max(used or 0.0, float(ratio.max()))
        if bad.any():
            flat = bad.reshape(bad.shape[0], -1)
            first_layer = int(np.argmax(flat.any(axis=1)))
            first = first_layer * flat.shape[1] + int(np.argmax(flat[first_layer]))
            worst = int(np.argmax(np.where(bad, finite, -1.0)))
            allowed = None if allowed is None else np.broadcast_to(allowed, ev.shape)
            candidates.append((first_layer, name, first, worst, finite, ev, rv, ulps, allowed))

    def mismatch(name, flat_index, ev, rv, ulps, allowed):
        index = np.unravel_index(flat_index, ev.shape)
        layer = int(index[0]) if layer_ids is None else int(layer_ids[index[0]])
        rest = tuple(int(i) for i in index[1:])
        if name == "ssm":
            head = (f"head {rest[0]}" if geometry is None
                    else _core.value_head_text(geometry, rest[0]))
            where = f"{head}, k {rest[1]}, v {rest[2]}"
        else:
            where = _describe_conv(rest[0], rest[1], geometry)
        return Mismatch(name, layer, rest, where, float(ev.flat[flat_index]),
                        float(rv.flat[flat_index]), int(ulps.flat[flat_index]),
                        None if allowed is None else float(allowed[index]))

    first = worst = None
    if candidates:
        c = min(candidates, key=lambda c: (c[0], c[1] != "conv"))
        first = mismatch(c[1], c[2], *c[5:])
        w = max(candidates, key=lambda c: c[4].flat[c[3]])
        worst = mismatch(w[1], w[3], *w[5:])
    return Comparison(outside == 0, elements, outside, first, worst, max_abs, max_ulp, tolerance,
                      used)
