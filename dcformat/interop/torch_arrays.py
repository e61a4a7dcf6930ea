"""Exact conversion between numpy arrays and torch tensors (BF16 and float8 included).

numpy has no bfloat16 of its own; dcformat holds it as ``ml_dtypes.bfloat16``. Both
directions go through an unsigned-integer view of the same bits, so no value is rounded.
torch is imported inside the functions: a numpy user who imports this module (as
:mod:`dcformat.safe_open` does) never imports torch.

The one table between wire dtypes and torch dtypes is :func:`torch_dtype` and
:func:`wire_name` (safetensors' ``_TYPES``).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UnsupportedDType, UsageError
from ..format.dtypes import dtype_of, numpy_dtype, storage_dtype, wire_dtype

if TYPE_CHECKING:
    import torch

__all__ = ["torch_dtype", "wire_name", "to_torch", "to_numpy", "numpy_view", "from_bits"]

#: Bit-carrier dtypes that torch.from_numpy accepts, by element width.
_CARRIER_NP = {1: np.uint8, 2: np.int16, 4: np.int32, 8: np.int64}


@cache
def _tables() -> tuple[dict, dict, dict]:
    """(wire name -> torch dtype, torch dtype -> wire name, width -> torch carrier dtype)."""
    import torch

    to_pt = {
        "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
        "U16": torch.uint16, "I32": torch.int32, "U32": torch.uint32, "I64": torch.int64,
        "U64": torch.uint64, "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32,
        "F64": torch.float64, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    }
    carrier = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    return to_pt, {v: k for k, v in to_pt.items()}, carrier


def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype of a wire dtype (a DType or its name)."""
    return _tables()[0][wire_dtype(dtype).name]


def wire_name(dtype: torch.dtype) -> str | None:
    """The wire dtype name of a torch dtype (``"F32"``), or None where the format has none."""
    return _tables()[1].get(dtype)


def to_torch(array: np.ndarray) -> torch.Tensor:
    """A torch tensor with the same dtype and bits as ``array`` (shares memory when it can)."""
    dtype = dtype_of(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return from_bits(array, dtype)


def to_numpy(tensor: torch.Tensor, name: str = "") -> np.ndarray:
    """A numpy array with the same dtype and bits as ``tensor`` (dense, on the CPU)."""
    import torch

    if wire_name(tensor.dtype) is None:
        raise UnsupportedDType(tensor.dtype, name)
    tensor = tensor.detach().to("cpu").resolve_conj().resolve_neg()
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    return numpy_view(tensor.contiguous(), name).copy()


def numpy_view(tensor: torch.Tensor, name: str = "", bits: bool = False) -> np.ndarray:
    """A numpy array over ``tensor``'s own memory, in its dtype: what is written there lands in it.

    ``bits``: in the unsigned integer dtype of its width instead (its storage dtype), as
    ``ContainerFile.decode(..., bits=True)`` writes; no ml_dtypes for a BF16 tensor.

    The tensor must be dense, contiguous and on the CPU (a GPU tensor has no memory numpy
    can see); autograd is bypassed, as ``load_state_dict`` bypasses it.
    """
    import torch

    wire = wire_name(tensor.dtype)
    if wire is None:
        raise UnsupportedDType(tensor.dtype, name)
    if tensor.device.type != "cpu" or tensor.layout != torch.strided or not tensor.is_contiguous():
        raise UsageError(f"out for {name!r} must be a contiguous CPU tensor, got a "
                         f"{'non-contiguous ' if not tensor.is_contiguous() else ''}{tensor.device} {tensor.layout} one")
    flat = tensor.detach().reshape(-1)
    carrier = _tables()[2][flat.element_size()]
    carried = flat.view(carrier) if flat.dtype != carrier else flat
    view = carried.numpy()
    return view.view(storage_dtype(wire_dtype(wire)) if bits else numpy_dtype(wire)).reshape(tuple(tensor.shape))


def from_bits(array: np.ndarray, dtype) -> torch.Tensor:
    """The torch tensor of wire dtype ``dtype`` whose bits are ``array``'s, a little-endian
    array of any dtype of that width (its storage dtype, as ``decode(..., bits=True)``
    gives, or the dtype itself); it shares ``array``'s memory when it can."""
    import torch

    target = torch_dtype(dtype)
    if array.ndim == 0:  # np.ascontiguousarray would make it 1-d
        return from_bits(array.reshape(1), dtype).reshape(())
    if not array.flags.writeable:  # torch would share memory it may not write
        array = array.copy()
    array = np.ascontiguousarray(array)
    carrier = torch.from_numpy(array.view(_CARRIER_NP[array.dtype.itemsize]))
    return carrier if carrier.dtype == target else carrier.view(target)
