"""Arrays in and out: NumPy, torch tensors and anything with DLPack (copied to the host when on a
device), the buffer protocol.

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
    """`value` as a NumPy array: NumPy arrays as they are; torch tensors and other objects with
    DLPack (__dlpack__) through numpy.from_dlpack, copied to host memory first when they live on
    a device; then the buffer protocol or __array__."""
    if isinstance(value, np.ndarray):
        return value
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return _from_torch(value, torch)
    if hasattr(value, "__dlpack__"):
        return _from_dlpack(value)
    return np.asarray(value)


def _from_torch(t, torch):
    """A torch tensor through DLPack. One on a device (cuda, ...) is copied to host memory first,
    explicitly: DLPack shares memory, it does not move it, and NumPy reads host memory only. The
    copy is synchronous (it waits for the kernels that write the tensor), one per state compared.
    bfloat16, which NumPy lacks, comes as its uint16 bits."""
    t = t.detach()
    if t.device.type != "cpu":
        t = t.to("cpu")  # the device-to-host copy
    if t.dtype == torch.bfloat16:
        return np.from_dlpack(t.contiguous().view(torch.int16)).view(np.uint16)
    return np.from_dlpack(t)


# DLPack device types whose memory NumPy reads in place: kDLCPU, kDLCUDAHost (pinned), kDLROCMHost.
_HOST_DEVICES = (1, 3, 11)


def _from_dlpack(value):
    """Any other DLPack producer (CuPy, JAX, ...). On the host it is read in place; on a device
    NumPy >= 2.1 asks the producer for a host copy (from_dlpack(device="cpu")), and an older
    NumPy or a producer that cannot copy is refused with what to do instead."""
    device = value.__dlpack_device__()[0] if hasattr(value, "__dlpack_device__") else 1
    if device in _HOST_DEVICES:
        try:
            return np.from_dlpack(value)
        except (TypeError, RuntimeError, BufferError):
            return np.asarray(value)  # a dtype DLPack cannot carry to NumPy (bf16): try __array__
    try:
        return np.from_dlpack(value, device="cpu", copy=True)
    except (TypeError, RuntimeError, BufferError, ValueError) as e:
        raise TypeError(f"a {type(value).__qualname__} on DLPack device type {int(device)} (not "
                        f"host memory), which NumPy {np.__version__} cannot copy to the host "
                        f"({e}): copy it to the host first (torch: .cpu(), CuPy: .get(), JAX: "
                        f"jax.device_get)") from e
