"""Arrays in and out: NumPy, anything with the buffer protocol or DLPack, torch tensors.

NumPy has no bf16, so bf16 values travel as uint16 bit patterns: the conv window always, the SSM
state of a bf16 pool, the token inputs and parameters when asked for bits. `bf16_to_float` and
`float_to_bf16` convert; a torch bfloat16 tensor is taken as its bits.
"""

import sys

import numpy as np


def bf16_to_float(bits):
    """float32 values of bf16 bit patterns (exact: bf16 is a truncated float32)."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float_to_bf16(values):
    """bf16 bit patterns of float32 values, rounded to nearest even (NaN stays NaN)."""
    u = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (u + (np.uint32(0x7FFF) + ((u >> 16) & 1))) >> 16
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, (u >> 16) | 0x40, rounded).astype(np.uint16)


def as_array(value):
    """`value` as a NumPy array: NumPy arrays as they are; torch tensors (on any device, moved
    to the host; bfloat16 as its uint16 bits); other objects through DLPack, then the buffer
    protocol or __array__."""
    if isinstance(value, np.ndarray):
        return value
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if t.dtype == torch.bfloat16:
            return t.contiguous().view(torch.int16).numpy().view(np.uint16)
        return t.numpy()
    if hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (TypeError, RuntimeError, BufferError):
            pass  # a device or dtype NumPy cannot take: try the host paths below
    return np.asarray(value)
