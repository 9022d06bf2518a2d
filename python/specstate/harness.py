"""The engine differential harness (docs/engine-testing.md).

For each event of a trace, the engine's adapter runs the engine's own pool bookkeeping and
kernels on specstate's inputs; then the state of every request the reference holds (running,
or swapped out) is read from both and compared within the tolerance chosen for the engine's
kernels. The first event where they part is reported with its trace line, the request, and the
layer, head and element.
"""

from dataclasses import dataclass
from typing import Optional

from .compare import Comparison, check_tolerances, compare
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

    Three outcomes: AGREE (ok, compared > 0); DIVERGENCE (not ok; `event`, `request`, `status`
    and `comparison` say where); NOTHING COMPARED (not ok, `event` None, compared == 0: the
    adapter's state() returned None for every request at every event, or the trace holds no
    request), which shows nothing about the engine and so is no agreement."""
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

    def __bool__(self):
        return self.ok

    @property
    def nothing_compared(self):
        return not self.ok and self.event is None

    def __str__(self):
        if self.ok:
            return (f"AGREE: the engine followed {self.file} for {self.events} events "
                    f"({self.compared} request states compared within {self._tolerance()}; "
                    f"max |diff| {self.max_abs:.3g})")
        if self.event is None:
            return (f"NOTHING COMPARED: {self.file}, {self.events} events: the engine's state() "
                    f"returned None for every request at every event (or the trace starts no "
                    f"request), so no state was checked")
        return (f"DIVERGENCE at {self.file}:{self.event.line}: {self.event.describe()}\n"
                f"  request {self.request} ({self.status}): {self.comparison}")

    def _tolerance(self):
        return self.comparison.tolerance if self.comparison else "no state compared"


class EngineError(RuntimeError):
    """The adapter failed: make_engine, apply or state raised, or state returned something that
    is no state of the reference's shape. The message starts with FILE:LINE (the header line for
    make_engine, else the event's line), says what was asked, and the original exception is
    chained (`__cause__`)."""


def check_engine(trace, make_engine, *, rtol=0.0, atol=0.0, ulp=0, backend="cpu",
                 strategy="inline", layers=None, geometry=None):
    """Runs `trace` through the reference and through the engine `make_engine(setup)` builds,
    comparing after every event; returns an EngineCheck (AGREE, DIVERGENCE or NOTHING
    COMPARED; only AGREE is truthy).

    The engine object has two methods:
      apply(event)     run the event (specstate.Event: kind, fields as on disk, line)
      state(request)   the request's state as (ssm, conv), a mapping or a State: its live state
                       if running, its saved state if retracted (or None: not compared now)
    The reference's strategy does not matter to the result (all six strategies are
    bit-identical); it only chooses the code path that computes it.

    Raises ValueError for a negative or NaN tolerance, specstate.InputError for a bad trace
    (FILE:LINE), and EngineError when the adapter raises or state() returns something that is
    no state of the reference's shape and dtype (FILE:LINE, the request).
    """
    check_tolerances(rtol, atol, ulp)
    ref = Reference(trace, backend=backend, strategy=strategy, layers=layers, geometry=geometry)
    try:
        engine = make_engine(Setup(ref.header, ref.geometry, tuple(ref.geometry.layer_ids),
                                   ref.inputs, ref.ssm_dtype))
    except Exception as e:
        raise EngineError(f"{ref.file}:{ref.header_line}: make_engine(setup) raised "
                          f"{type(e).__name__}: {e}") from e
    compared, last, max_abs, max_ulp = 0, None, 0.0, 0
    while (event := ref.step()) is not None:
        try:
            engine.apply(event)
        except Exception as e:
            raise EngineError(f"{ref.file}:{event.line}: {event.describe()}: the engine raised "
                              f"{type(e).__name__}: {e}") from e
        for request, status in ref.requests().items():
            asked = (f"{ref.file}:{event.line}: after {event.describe()}: "
                     f"state({request}) of the {status} request")
            try:
                got = engine.state(request)
            except Exception as e:
                raise EngineError(f"{asked} raised {type(e).__name__}: {e}") from e
            if got is None:
                continue
            try:
                last = compare(got, ref.state(request), rtol=rtol, atol=atol, ulp=ulp)
            except (TypeError, ValueError) as e:
                # The reference's state and the tolerances are checked: what compare refuses
                # here is the engine's value (a wrong type, shape, dtype).
                raise EngineError(f"{asked} returned no state of the reference's shape: "
                                  f"{e}") from e
            compared += 1
            max_abs, max_ulp = max(max_abs, last.max_abs), max(max_ulp, last.max_ulp)
            if not last:
                return EngineCheck(False, ref.file, event.index + 1, event, request, status, last,
                                   compared, max_abs, max_ulp)
    return EngineCheck(compared > 0, ref.file, len(ref.events), comparison=last,
                       compared=compared, max_abs=max_abs, max_ulp=max_ulp)
