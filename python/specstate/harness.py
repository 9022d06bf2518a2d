"""The engine differential harness (docs/engine-testing.md).

For each event of a trace, the engine's adapter runs the engine's own pool bookkeeping and
kernels on specstate's inputs; then the state of every request the reference holds (running,
or swapped out) is read from both and compared within the tolerance chosen for the engine's
kernels (fixed, or calibrated from the engine's own drift: tolerance.py). The first event where
they part is reported with its trace line, the request, the layer, head and element, and what
the engine holds instead (forensics.py).
"""

from dataclasses import dataclass
from typing import Optional

from .compare import Comparison, check_tolerances, compare
from .forensics import Forensics, History, investigate
from .reference import Event, Reference


@dataclass(frozen=True)
class Setup:
    """What an engine adapter is built from."""
    header: dict       # the trace header (pool_rows, max_requests, draft_tokens, ...)
    geometry: object   # the GDN geometry of the layers held
    layer_ids: tuple   # their indices in the model
    inputs: object     # specstate.Inputs of the trace's seed
    ssm_dtype: str     # "f32" | "bf16"


@dataclass(frozen=True)
class EngineCheck:
    """The result of check_engine(): truthy only when the engine followed the reference
    throughout and at least one request state was compared.

    Three outcomes: AGREE (ok, compared > 0); DIVERGENCE (not ok; `event`, `request`, `status`,
    `comparison` and `forensics` say where and what the engine holds instead); NOTHING COMPARED
    (not ok, `event` None, compared == 0: the adapter's state() returned None for every request
    at every event, or the trace holds no request), which shows nothing about the engine and so
    is no agreement."""
    ok: bool
    file: str
    events: int                  # events run
    event: Optional[Event] = None      # the event after which the states parted
    request: Optional[int] = None
    status: Optional[str] = None       # "running" | "retracted"
    comparison: Optional[Comparison] = None
    compared: int = 0            # request states compared
    max_abs: float = 0.0         # largest |engine - reference| over every state compared
    max_ulp: int = 0             # largest distance in reference ulps
    max_used: Optional[float] = None   # tolerance=: largest |diff| / allowed over every state
    forensics: Optional[Forensics] = None  # what the diverged state matches (forensics=True)
    tokens: Optional[int] = None       # tokens the diverged request had seen

    def __bool__(self):
        return self.ok

    @property
    def nothing_compared(self):
        return not self.ok and self.event is None

    def __str__(self):
        if self.ok:
            return (f"AGREE: the engine followed {self.file} for {self.events} events "
                    f"({self.compared} request states compared within {self._tolerance()}; "
                    f"max |diff| {self.max_abs:.3g}{self._used()})")
        if self.event is None:
            return (f"NOTHING COMPARED: {self.file}, {self.events} events: the engine's state() "
                    f"returned None for every request at every event (or the trace starts no "
                    f"request), so no state was checked")
        text = (f"DIVERGENCE at {self.file}:{self.event.line}: {self.event.describe()}\n"
                f"  request {self.request} ({self.status}): {self.comparison}")
        if self.forensics is not None:
            text += "\n  " + str(self.forensics).replace("\n", "\n  ")
        return text

    def _tolerance(self):
        return self.comparison.tolerance if self.comparison else "no state compared"

    def _used(self):
        return "" if self.max_used is None else f", at most {self.max_used:.2g} of the allowed"


class EngineError(RuntimeError):
    """The adapter failed: make_engine, apply or state raised, or state returned something that
    is no state of the reference's shape. The message starts with FILE:LINE (the header line for
    make_engine, else the event's line), says what was asked, and the original exception is
    chained (`__cause__`)."""


class EngineDriver:
    """Calls an engine adapter for a Reference and turns its failures into EngineError at the
    trace's FILE:LINE (check_engine and calibrate share it)."""

    def __init__(self, ref, make_engine):
        self.ref = ref
        try:
            self.engine = make_engine(Setup(ref.header, ref.geometry,
                                            tuple(ref.geometry.layer_ids), ref.inputs,
                                            ref.ssm_dtype))
        except Exception as e:
            raise EngineError(f"{ref.file}:{ref.header_line}: make_engine(setup) raised "
                              f"{type(e).__name__}: {e}") from e

    def apply(self, event):
        try:
            self.engine.apply(event)
        except Exception as e:
            raise EngineError(f"{self.ref.file}:{event.line}: {event.describe()}: the engine "
                              f"raised {type(e).__name__}: {e}") from e

    def _asked(self, event, request, status):
        return (f"{self.ref.file}:{event.line}: after {event.describe()}: "
                f"state({request}) of the {status} request")

    def state(self, event, request, status):
        """The engine's state of `request` (None: not compared now)."""
        try:
            return self.engine.state(request)
        except Exception as e:
            raise EngineError(f"{self._asked(event, request, status)} raised "
                              f"{type(e).__name__}: {e}") from e

    def compare(self, event, request, status, judge):
        """judge() (a comparison of the engine's state) with what compare refuses turned into
        EngineError: the reference's state and the tolerances are checked, so what is refused
        here is the engine's value (a wrong type, shape, dtype)."""
        try:
            return judge()
        except (TypeError, ValueError) as e:
            raise EngineError(f"{self._asked(event, request, status)} returned no state of the "
                              f"reference's shape: {e}") from e


def check_engine(trace, make_engine, *, rtol=0.0, atol=0.0, ulp=0, tolerance=None,
                 forensics=True, backend="cpu", strategy="inline", layers=None, geometry=None):
    """Runs `trace` through the reference and through the engine `make_engine(setup)` builds,
    comparing after every event; returns an EngineCheck (AGREE, DIVERGENCE or NOTHING
    COMPARED; only AGREE is truthy).

    The engine object has two methods:
      apply(event)     run the event (specstate.Event: kind, fields as on disk, line)
      state(request)   the request's state as (ssm, conv), a mapping or a State: its live state
                       if running, its saved state if retracted (or None: not compared now)
    The reference's strategy does not matter to the result (all seven strategies are
    bit-identical); it only chooses the code path that computes it.

    States agree within rtol, atol and ulp (compare()), or, with `tolerance` (a Tolerance from
    specstate.calibrate), within the drift the engine's arithmetic showed per head after as many
    tokens as the request has seen. With `forensics` (the default), a divergence also says which
    state the engine holds instead (EngineCheck.forensics): the reference's states at other
    lengths, of other requests, of the row's last owner, zeros.

    Raises ValueError for a negative or NaN tolerance, for a `tolerance` with rtol, atol or ulp,
    or calibrated for other layers, heads or pool dtype; specstate.InputError for a bad trace
    (FILE:LINE), and EngineError when the adapter raises or state() returns something that is
    no state of the reference's shape and dtype (FILE:LINE, the request).
    """
    check_tolerances(rtol, atol, ulp)
    if tolerance is not None and (rtol or atol or ulp):
        raise ValueError("give either tolerance= (calibrated) or rtol, atol and ulp, not both")
    ref = Reference(trace, backend=backend, strategy=strategy, layers=layers, geometry=geometry)
    if tolerance is not None:
        tolerance.check_matches(ref.ssm_dtype, ref.geometry.layer_ids, ref.geometry.HV)
    driver = EngineDriver(ref, make_engine)
    history = History(ref.tokens_per_verify)
    compared, last, max_abs, max_ulp, max_used = 0, None, 0.0, 0, None
    while (event := ref.step()) is not None:
        driver.apply(event)
        history.after(event)
        for request, status in ref.requests().items():
            got = driver.state(event, request, status)
            if got is None:
                continue
            expected = ref.state(request)
            tokens = history.tokens(request)
            if tolerance is None:
                judge = lambda: compare(got, expected, rtol=rtol, atol=atol, ulp=ulp)  # noqa: E731
            else:
                judge = lambda: tolerance.compare(got, expected, tokens)  # noqa: E731
            last = driver.compare(event, request, status, judge)
            compared += 1
            max_abs, max_ulp = max(max_abs, last.max_abs), max(max_ulp, last.max_ulp)
            if last.used is not None:
                max_used = max(max_used or 0.0, last.used)
            if not last:
                found = investigate(history, ref, request, got) if forensics else None
                return EngineCheck(False, ref.file, event.index + 1, event, request, status, last,
                                   compared, max_abs, max_ulp, max_used, found, tokens)
            if forensics:
                history.record(request, expected, event.line)
    return EngineCheck(compared > 0, ref.file, len(ref.events), comparison=last,
                       compared=compared, max_abs=max_abs, max_ulp=max_ulp, max_used=max_used)
