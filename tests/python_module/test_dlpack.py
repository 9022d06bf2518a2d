"""States handed over through DLPack: torch tensors and other producers are read with
numpy.from_dlpack, a tensor on a device is copied to the host first or refused with what to do."""

import numpy as np
import pytest

import specstate
from test_forensics import HEADER, ExactEngine, write

torch = pytest.importorskip("torch")


class Producer:
    """A DLPack producer that is not a torch tensor (as CuPy or JAX arrays are), claiming
    `device` (1: host memory, 2: a CUDA device)."""

    def __init__(self, tensor, device=1):
        self.tensor, self.device = tensor, device

    def __dlpack__(self, stream=None):
        return self.tensor.__dlpack__()

    def __dlpack_device__(self):
        return (self.device, 0)


class DLPackEngine(ExactEngine):
    def __init__(self, setup, wrap):
        super().__init__(setup)
        self.wrap = wrap

    def state(self, request):
        """float32 values (bf16 as its values: DLPack carries no bits NumPy reads as bf16)."""
        s = self.states[request]
        return tuple(self.wrap(torch.from_numpy(specstate.bf16_to_float(a) if a.dtype == np.uint16
                                                else a))
                     for a in (s.ssm, s.conv))


@pytest.fixture
def trace(tmp_path):
    return write(tmp_path / "t.jsonl", HEADER, [
        {"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": 5},
        {"event": "verify", "batch": [{"request": 1, "accepted": 2}]}])


def test_host_dlpack_producers_are_read_in_place(trace):
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    array = specstate.as_array(Producer(tensor))
    tensor[0, 0] = 7                                   # shared memory, not a copy
    assert array[0, 0] == 7 and array.shape == (2, 3)
    result = specstate.check_engine(trace, lambda s: DLPackEngine(s, Producer))
    assert result, str(result)


def test_a_producer_on_a_device_is_refused_with_what_to_do(trace):
    with pytest.raises(specstate.EngineError,
                       match=r"t.jsonl:2: after extend \[request 1 \+5 tokens\]: state\(1\) .* "
                             r"on DLPack device type 2 .* copy it to the host first"):
        specstate.check_engine(trace, lambda s: DLPackEngine(s, lambda t: Producer(t, 2)))


def test_torch_bfloat16_comes_as_its_bits_through_dlpack():
    values = np.array([[1.0, -2.5], [3.140625, 0.0]], np.float32)
    t = torch.from_numpy(values).to(torch.bfloat16).t()       # not contiguous
    got = specstate.as_array(t)
    assert got.dtype == np.uint16
    assert np.array_equal(got, specstate.float_to_bf16(values.T))
