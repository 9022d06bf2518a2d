"""check_engine and compare: an adapter's failure is an EngineError at the trace's FILE:LINE
naming what was asked, never a raw exception; a run that compared nothing is no agreement; a
bad tolerance or array is a ValueError naming it, never an IndexError."""

import re

import numpy as np
import pytest

import specstate
from conftest import source_path

SCENARIO = source_path("tests", "scenarios", "stale-flush-after-reuse.jsonl")
RETRACT = source_path("examples", "retract-resume.jsonl")
RETRACT_HEADER_LINE = 6  # comment lines come before the header


class Adapter:
    """A stand-in adapter that answers with the reference's own states (so it agrees), with
    hooks to break one call."""

    def __init__(self, setup, trace, state=None):
        self.ref = specstate.Reference(trace)
        self.broken_state = state

    def apply(self, event):
        self.ref.step()

    def state(self, request):
        if self.broken_state is not None:
            return self.broken_state(self, request)
        return self.ref.state(request)


def check(make_engine, trace=SCENARIO, **kwargs):
    return specstate.check_engine(trace, make_engine, **kwargs)


# ---- check_engine: the adapter's state() ------------------------------------------------------

def test_an_adapter_that_follows_the_reference_agrees():
    result = check(lambda setup: Adapter(setup, SCENARIO))
    assert result and result.compared > 0 and str(result).startswith("AGREE")


def test_an_exception_in_state_is_an_engine_error_at_the_event_line():
    def fail(adapter, request):
        raise KeyError(f"no row for {request}")

    with pytest.raises(specstate.EngineError) as caught:
        check(lambda setup: Adapter(setup, SCENARIO, state=fail))
    message = str(caught.value)
    line = specstate.Reference(SCENARIO).events[0].line
    assert message.startswith(f"{SCENARIO}:{line}: after extend [request 1 +8 tokens]: "
                              f"state(1) of the running request raised KeyError")
    assert "no row for 1" in message
    assert isinstance(caught.value.__cause__, KeyError)


@pytest.mark.parametrize("value, detail", [
    (lambda s: (s.ssm[:, :, :, :-1], s.conv), r"ssm: the engine's shape \(2, 4, 16, 15\) is not "
                                              r"the reference's \(2, 4, 16, 16\)"),
    (lambda s: (s.ssm[0], s.conv), r"ssm: the engine's array has 3 dimensions"),
    (lambda s: (s.ssm, s.conv.astype(object)), r"cannot compare an array of object"),
    (lambda s: (s.ssm, s.conv, s.conv), r"a state is a specstate.State, an \(ssm, conv\) pair or "
                                        r"a mapping .*, got a tuple of 3 items"),
    (lambda s: {"ssm": s.ssm}, r"needs the keys 'ssm' and 'conv'"),
    (lambda s: 7, r"got a int"),
    (lambda s: (np.float32(1.0), s.conv), r"ssm: the engine's array has 0 dimensions"),
], ids=["shape", "ndim", "dtype", "three-items", "missing-key", "int", "0-d"])
def test_a_state_of_the_wrong_shape_or_dtype_is_an_engine_error(value, detail):
    def wrong(adapter, request):
        return value(adapter.ref.state(request))

    with pytest.raises(specstate.EngineError) as caught:
        check(lambda setup: Adapter(setup, SCENARIO, state=wrong))
    message = str(caught.value)
    line = specstate.Reference(SCENARIO).events[0].line
    assert message.startswith(f"{SCENARIO}:{line}: after extend [request 1 +8 tokens]: state(1) "
                              f"of the running request returned no state of the reference's "
                              f"shape: "), message
    assert re.search(detail, message), message
    assert isinstance(caught.value.__cause__, (TypeError, ValueError))


def test_an_exception_in_make_engine_names_the_header_line():
    def make(setup):
        raise RuntimeError("no GPU")

    with pytest.raises(specstate.EngineError,
                       match=rf"^{re.escape(RETRACT)}:{RETRACT_HEADER_LINE}: make_engine\(setup\) "
                             rf"raised RuntimeError: no GPU"):
        check(make, trace=RETRACT)


def test_an_adapter_that_compares_nothing_does_not_agree():
    result = check(lambda setup: Adapter(setup, SCENARIO, state=lambda a, r: None))
    assert not result
    assert result.compared == 0 and result.nothing_compared and result.event is None
    assert str(result).startswith(f"NOTHING COMPARED: {SCENARIO}, ")
    assert "returned None for every request at every event" in str(result)


# ---- tolerances -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(rtol=float("nan")), "rtol must be a finite number >= 0, got nan"),
    (dict(atol=-1e-3), "atol must be a finite number >= 0, got -0.001"),
    (dict(atol=float("inf")), "atol must be a finite number >= 0, got inf"),
    (dict(rtol="0.1"), "rtol must be a number >= 0, got '0.1'"),
    (dict(ulp=-1), "ulp must be an integer >= 0, got -1"),
    (dict(ulp=1.5), "ulp must be an integer >= 0, got 1.5"),
    (dict(ulp=True), "ulp must be an integer >= 0, got True"),
], ids=["nan-rtol", "negative-atol", "inf-atol", "string-rtol", "negative-ulp", "float-ulp",
        "bool-ulp"])
def test_a_bad_tolerance_is_refused_naming_the_argument(kwargs, message):
    ref = specstate.Reference(SCENARIO)
    ref.step()
    state = ref.state(1)
    with pytest.raises(ValueError, match=re.escape(message)):
        specstate.compare(state, state, **kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        check(lambda setup: Adapter(setup, SCENARIO), **kwargs)


def test_numpy_scalars_are_tolerances():
    ref = specstate.Reference(SCENARIO)
    ref.step()
    state = ref.state(1)
    assert specstate.compare(state, state, rtol=np.float32(1e-3), atol=np.float64(0),
                             ulp=np.int64(2))


# ---- compare: 0-d and empty arrays ----------------------------------------------------------

def test_compare_refuses_0d_and_empty_arrays():
    ssm, conv = np.zeros((1, 1, 8, 8), np.float32), np.zeros((1, 4, 2), np.uint16)
    other = ssm.copy()
    other[0, 0, 0, 0] = 1
    assert not specstate.compare((other, conv), (ssm, conv))
    with pytest.raises(ValueError, match=r"ssm: the engine's array has 0 dimensions \(shape \(\)\); "
                                         r"a state's ssm is 4-d, \[layers, HV, K, V\]"):
        specstate.compare((np.float32(1), conv), (np.float32(0), conv))
    with pytest.raises(ValueError, match=r"conv: the reference's array has 0 dimensions"):
        specstate.compare((ssm, conv), (ssm, np.uint16(0)))
    empty = np.zeros((0, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"ssm: empty arrays \(shape \(0, 1, 8, 8\)\): nothing to "
                                         r"compare"):
        specstate.compare((empty, conv), (empty, conv))
