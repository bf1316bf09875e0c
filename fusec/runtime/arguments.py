"""A call's arguments: bound to parameters and checked against their types.

What a user passes reaches here first; every mistake becomes a CallError
naming the parameter, what it expected and what it got. Host arrays may be
NumPy arrays or any CPU array with DLPack or the array interface (a PyTorch
CPU tensor): they are viewed as NumPy arrays without a copy, and outputs come
back as the kind of array the first array argument was.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import pyopencl.array as cla

from ..diagnostics import CallError
from ..ir import dtypes as dt

# a scalar argument's value, as the kernel takes it (f16 and bool are computed as float and int)
SCALAR_ARG = {
    "f16": np.float32,
    "f32": np.float32,
    "f64": np.float64,
    "i32": np.int32,
    "i64": np.int64,
    "bool": np.int32,
}
_INT_RANGE = {"i32": (-(2**31), 2**31 - 1), "i64": (-(2**63), 2**63 - 1)}
_FLOAT_MAX = {
    "f16": 65504.0,
    "f32": float(np.finfo(np.float32).max),
    "f64": float(np.finfo(np.float64).max),
}
_SCALAR_KINDS = {
    "bool": "b",
    "i32": "biu",
    "i64": "biu",
}  # what a scalar parameter accepts; floats: "biuf"


@dataclass
class CallValues:
    """A call's checked values: arrays (NumPy views or device arrays) and the
    kernel's scalar values by parameter name, and the symbolic sizes they fix."""

    sizes: dict
    arrays: dict = field(default_factory=dict)
    result_kind: str = "numpy"  # "numpy", "device", or "foreign" (see `to_foreign`)
    to_foreign: object = None  # NumPy array -> the first argument's kind of array

    def convert_output(self, arr):
        return self.to_foreign(arr) if self.result_kind == "foreign" else arr


def check_arguments(params: list[dict], bound: dict, context, pinned=None) -> CallValues:
    values = CallValues(dict(pinned.sizes) if pinned is not None else {})
    kind = None
    scalar_array = (
        None  # the first 0-d array given for a scalar: its kind when no other array is given
    )
    for p in params:
        name = p["name"]
        if pinned is not None and name in pinned.values:
            continue
        value = bound[name]
        checked, arg_kind = check_argument(p, value, values.sizes, context)
        if kind is None and arg_kind is not None:
            kind = arg_kind
            if arg_kind == "foreign":
                values.to_foreign = _foreign_constructor(value)
        elif arg_kind is None and scalar_array is None and _is_foreign_array(value):
            scalar_array = value
        values.arrays[name] = checked
    if kind is None and pinned is not None:
        kind = pinned.result_kind
    if kind is None and scalar_array is not None:  # a graph of scalars called with 0-d tensors
        kind, values.to_foreign = "foreign", _foreign_constructor(scalar_array)
    values.result_kind = kind or "numpy"
    return values


def _is_array_like(value) -> bool:
    return any(hasattr(value, a) for a in ("__dlpack__", "__array_interface__", "__array_struct__"))


def _is_foreign_array(value) -> bool:
    return hasattr(value, "__dlpack__") and not isinstance(
        value, np.ndarray | np.generic | cla.Array
    )


def check_argument(p: dict, value, sizes: dict, context=None):
    """(value, kind) for parameter `p`: the checked value (a NumPy array, a device
    array, or a scalar as the kernel takes it) and its kind of array ("numpy",
    "device", "foreign"; None for a scalar); or a CallError naming the parameter.
    Symbolic sizes are bound in `sizes`."""
    name, dtype, shape = p["name"], p["dtype"], p["shape"]
    if not shape:
        return _check_scalar(name, dtype, value), None
    np_dtype = dt.NUMPY[dtype]
    if type(value) is np.ndarray:  # the common case first
        arr, kind = value, "numpy"
    elif isinstance(value, cla.Array):
        if context is not None and value.queue is not None and value.queue.context != context:
            raise CallError(f"parameter {name!r}: device array belongs to another OpenCL context")
        if not value.flags.c_contiguous:
            raise CallError(f"parameter {name!r}: device array must be C-contiguous")
        # a view into a larger buffer (a slice): kernels take whole buffers, so a copy
        arr, kind = (value.copy() if value.offset else value), "device"
    else:
        arr, kind = _host_view(name, value, _want(dtype, shape)), "foreign"
        if isinstance(value, np.ndarray):
            kind = "numpy"
    if arr.dtype != np_dtype:
        raise CallError(f"parameter {name!r} expects {_want(dtype, shape)}, got {arr.dtype} array")
    if arr.ndim != len(shape):
        raise CallError(
            f"parameter {name!r} expects {_want(dtype, shape)} ({len(shape)} dimensions), got shape {list(arr.shape)}"
        )
    for i, (d, got) in enumerate(zip(shape, arr.shape, strict=True)):
        if isinstance(d, int):
            if d != got:
                raise CallError(
                    f"parameter {name!r} expects {_want(dtype, shape)}, got shape {list(arr.shape)} (dimension {i})"
                )
        elif sizes.setdefault(d, got) != got:
            raise CallError(
                f"parameter {name!r} expects {_want(dtype, shape)}, got shape {list(arr.shape)}: "
                f"{d} is already {sizes[d]} from an earlier argument"
            )
    if kind != "device" and not arr.flags.c_contiguous:
        try:  # strided input: computed on a C-ordered copy
            arr = np.ascontiguousarray(arr)
        except MemoryError:
            raise CallError(
                f"parameter {name!r}: a strided array of shape {list(arr.shape)} cannot be copied "
                f"to C order ({arr.size * arr.itemsize:,} bytes)"
            ) from None
    return arr, kind


def _want(dtype: str, shape) -> str:
    # f32[3, N], not f32[3, 'N'] (a list's repr quotes the symbols)
    return f"{dtype}[{', '.join(str(d) for d in shape)}]" if shape else dtype


def _check_scalar(name: str, dtype: str, value):
    """A scalar parameter's value as the kernel takes it: in range, never wrapped."""
    if isinstance(value, cla.Array):
        raise CallError(f"parameter {name!r} expects a scalar {dtype}, got a device array")
    if isinstance(value, bool | int | float | np.generic):
        arr = value
        kind = (
            np.asarray(value).dtype.kind
            if isinstance(value, np.generic)
            else ("b" if isinstance(value, bool) else "i" if isinstance(value, int) else "f")
        )
    else:
        try:
            arr = np.asarray(
                _host_view(name, value, dtype) if not isinstance(value, np.ndarray) else value
            )
        except CallError:
            raise CallError(
                f"parameter {name!r} expects a scalar {dtype}, got {type(value).__name__}"
            ) from None
        if arr.shape != ():
            raise CallError(
                f"parameter {name!r} expects a scalar {dtype}, got shape {list(arr.shape)}"
            )
        kind = arr.dtype.kind
        arr = arr.item()
    if kind not in _SCALAR_KINDS.get(dtype, "biuf"):
        got = (
            type(value).__name__
            if not isinstance(value, np.generic | np.ndarray)
            else np.asarray(value).dtype
        )
        raise CallError(f"parameter {name!r} expects {dtype}, got {got}")
    if dtype in _INT_RANGE:
        lo, hi = _INT_RANGE[dtype]
        if not lo <= int(arr) <= hi:
            raise CallError(
                f"parameter {name!r}: {int(arr)} is out of range for {dtype} ({lo} to {hi})"
            )
        return SCALAR_ARG[dtype](int(arr))
    if dtype == "bool":
        return SCALAR_ARG[dtype](bool(arr))
    number = float(arr)
    if abs(number) > _FLOAT_MAX[dtype] and number == number and abs(number) != float("inf"):
        raise CallError(
            f"parameter {name!r}: {arr} is out of range for {dtype} (at most {_FLOAT_MAX[dtype]:g})"
        )
    return SCALAR_ARG[dtype](number)


def _host_view(name: str, value, want: str) -> np.ndarray:
    """A NumPy view of a CPU array that exposes DLPack or the array interface."""
    if isinstance(value, np.ndarray):
        return value
    if getattr(value, "requires_grad", False) and hasattr(value, "detach"):
        value = value.detach()  # a torch tensor that autograd tracks: the same memory
    if getattr(value, "is_neg", None) is not None and value.is_neg():
        value = value.resolve_neg()  # a lazily negated torch view: DLPack would drop the sign
    if hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (BufferError, RuntimeError, TypeError, ValueError) as e:
            of = f" of {value.dtype}" if hasattr(value, "dtype") else ""  # bfloat16, say
            raise CallError(
                f"parameter {name!r} expects {want}, got a {type(value).__name__}{of} "
                f"that cannot be used in place ({e})"
            ) from None
    if hasattr(value, "__array_interface__") or hasattr(value, "__array_struct__"):
        return np.asarray(value)
    raise CallError(f"parameter {name!r} expects an array {want}, got {type(value).__name__}")


def _foreign_constructor(example):
    """NumPy array -> an array of `example`'s kind, sharing memory (DLPack), or
    the NumPy array itself where the kind has no `from_dlpack`."""
    module = sys.modules.get(type(example).__module__.split(".")[0])
    from_dlpack = getattr(module, "from_dlpack", None)
    if from_dlpack is None or not hasattr(example, "__dlpack__"):
        return lambda arr: arr
    return from_dlpack


def check_out(out, shapes: list[tuple], dtypes: list) -> list:
    """The arrays a call writes into (`out=`), each checked against its output."""
    outs = out if isinstance(out, tuple | list) else (out,)
    if len(outs) != len(shapes):
        raise CallError(f"out= needs {len(shapes)} array(s), one per output, got {len(outs)}")
    checked = []
    for i, (o, shape, dtype) in enumerate(zip(outs, shapes, dtypes, strict=True)):
        if not isinstance(o, np.ndarray | cla.Array) and not _is_array_like(o):
            raise CallError(
                f"out[{i}] must be an array of shape {list(shape)}, got {type(o).__name__}"
            )
        arr = o if isinstance(o, np.ndarray | cla.Array) else _host_view(f"out[{i}]", o, "an array")
        if arr.dtype != dtype or tuple(arr.shape) != tuple(shape):
            raise CallError(
                f"out[{i}] must be a {np.dtype(dtype)} array of shape {list(shape)}, got {arr.dtype} {list(arr.shape)}"
            )
        if not arr.flags.c_contiguous:
            raise CallError(f"out[{i}] must be C-contiguous")
        if isinstance(arr, np.ndarray) and not arr.flags.writeable:
            raise CallError(f"out[{i}] is read-only")
        if isinstance(arr, cla.Array) and arr.offset:
            raise CallError(
                f"out[{i}] is a view into a larger device buffer (offset {arr.offset}); pass a whole array"
            )
        checked.append(arr)
    return checked
