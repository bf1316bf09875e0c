"""A call's arguments: bound to parameters and checked against their types.

What a user passes reaches here first; every mistake becomes a CallError
naming the parameter, what it expected and what it got.
"""

from __future__ import annotations

import math

import numpy as np

from ..diagnostics import CallError
from ..ir import dtypes as dt


def bind_arguments(graph: str, names: list[str], args, kwargs) -> dict:
    """{parameter name: value} for a call, or a CallError naming what is wrong."""
    if len(args) > len(names):
        raise CallError(f"{graph}() takes {len(names)} arguments ({', '.join(names)}), got {len(args)}")
    bound = dict(zip(names, args, strict=False))
    for k, v in kwargs.items():
        if k not in names:
            raise CallError(f"{graph}() has no parameter {k!r} (parameters: {', '.join(names)})")
        if k in bound:
            raise CallError(f"{graph}() got parameter {k!r} twice")
        bound[k] = v
    missing = [n for n in names if n not in bound]
    if missing:
        raise CallError(f"{graph}() is missing {', '.join(repr(m) for m in missing)}")
    return bound


def check_argument(p: dict, value, sizes: dict, context):
    """The value a parameter `p` gets, checked (dtype, shape, symbolic sizes bound
    in `sizes`, a device array's context), or a CallError naming the parameter."""
    import pyopencl.array as cla

    name, dtype, shape = p["name"], p["dtype"], tuple(p["shape"])
    # f32[3, N], not f32[3, 'N'] (a list's repr quotes the symbols)
    want = f"{dtype}[{', '.join(str(d) for d in shape)}]" if shape else dtype
    np_dtype = dt.NUMPY[dtype]
    if not shape:  # a scalar parameter: Python and NumPy numbers, 0-d arrays
        if isinstance(value, cla.Array):
            raise CallError(f"parameter {name!r} expects a scalar {dtype}, got a device array")
        arr = np.asarray(value)
        if arr.shape != ():
            raise CallError(f"parameter {name!r} expects a scalar {dtype}, got shape {list(arr.shape)}")
        kind = arr.dtype.kind
        ok = {"bool": "b", "i32": "biu", "i64": "biu"}.get(dtype, "biuf")
        if kind not in ok:
            raise CallError(f"parameter {name!r} expects {want}, got {arr.dtype}")
        return arr.astype(np_dtype).item()
    if isinstance(value, cla.Array):
        if value.queue is not None and value.queue.context != context:
            raise CallError(f"parameter {name!r}: device array belongs to another OpenCL context")
        if not value.flags.c_contiguous:
            raise CallError(f"parameter {name!r}: device array must be C-contiguous")
        arr = value
    else:
        if not isinstance(value, np.ndarray):
            raise CallError(f"parameter {name!r} expects an array {want}, got {type(value).__name__}")
        arr = np.ascontiguousarray(value)  # strided input: computed on a C-ordered copy
    if arr.dtype != np_dtype:
        raise CallError(f"parameter {name!r} expects {want}, got {arr.dtype} array")
    if arr.ndim != len(shape):
        raise CallError(
            f"parameter {name!r} expects {want} ({len(shape)} dimensions), got shape {list(arr.shape)}"
        )
    for i, (d, got) in enumerate(zip(shape, arr.shape, strict=True)):
        if isinstance(d, int):
            if d != got:
                raise CallError(f"parameter {name!r} expects {want}, got shape {list(arr.shape)} (dimension {i})")
        elif sizes.setdefault(d, got) != got:
            raise CallError(
                f"parameter {name!r} expects {want}, got shape {list(arr.shape)}: "
                f"{d} is already {sizes[d]} from an earlier argument"
            )
    return arr


def aligned_empty(shape, dtype, alignment: int) -> np.ndarray:
    """An uninitialised C-ordered array whose data starts at a multiple of `alignment`."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if alignment <= 1 or nbytes == 0:
        return np.empty(shape, dtype)
    raw = np.empty(nbytes + alignment, np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def resolve(d, sizes):
    return d if isinstance(d, int) else sizes[d]
