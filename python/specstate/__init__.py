"""specstate from Python: the bit-exact reference for the recurrent state of Gated DeltaNet
layers under speculative decoding, and a harness that tests an engine against it.

    import specstate
    ref = specstate.Reference("run.trace", strategy="inline")   # follows the trace
    ref.step()                                                   # one event
    state = ref.state(7)                                         # ssm, conv as NumPy arrays
    specstate.compare(my_state, state, rtol=1e-5)                # names layer, head, element

    tolerance = specstate.calibrate(MyEngine, "run.trace")      # the engine's own drift
    print(specstate.check_engine("run.trace", MyEngine, tolerance=tolerance))
    # AGREE, or DIVERGENCE at FILE:LINE with what the engine holds instead ("stale by one token")

docs/engine-testing.md has the protocol, the calibration, the forensics and two worked examples;
the trace writer for recording an engine's schedule is the standard-library package
specstate_trace.
"""

from ._core import InputError, backends, cuda_compiled, presets
from ._tensors import as_array, bf16_to_float, float_to_bf16
from .compare import Comparison, Mismatch, compare
from .forensics import Candidate, Forensics
from .harness import EngineCheck, EngineError, Setup, check_engine
from .reference import (Event, Inputs, Reference, State, custom_geometry, digest, geometry,
                        reslice, sent_states)
from .tolerance import Tolerance, calibrate

__all__ = ["Candidate", "Comparison", "EngineCheck", "EngineError", "Event", "Forensics",
           "InputError", "Inputs", "Mismatch", "Reference", "Setup", "State", "Tolerance",
           "as_array", "backends", "bf16_to_float", "calibrate", "check_engine", "compare",
           "cuda_compiled", "custom_geometry", "digest", "float_to_bf16", "geometry", "presets",
           "reslice", "sent_states"]
