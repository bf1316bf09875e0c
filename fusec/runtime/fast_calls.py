"""The warm call of a signature seen before, with nothing for Python to check.

A call whose arguments are all C-contiguous, writable, non-empty NumPy arrays,
on a device that reads host memory in place (fine-grained system SVM), returns
NumPy arrays and needs, once its shapes have been prepared, only this: new
output arrays (or the caller's `out=`), one argument set per array, the
launches, a wait. The first
such call of a signature goes the checked way (`Launcher.call`) and records
here what it bound; later calls with arrays of the same dtypes, shapes and
strides (which the checked call accepted: equal strides mean C-contiguous
again) look that up in a dict and skip the checks, the sizes' binding and the
per-argument dispatch. Anything else (a scalar parameter, another kind of
array, a read-only array, an `out=` that is not NumPy arrays of the outputs'
shapes, a copy-through-buffers device) misses and takes the checked path,
which stays the only place errors are raised.

The records are per thread, as the kernel objects they point at are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyopencl as cl

from ..codegen.kernel_args import Output, Param, Stored
from .memory import empty

FAST_PER_THREAD = 64  # exact signatures a thread remembers (each a few small tuples)


@dataclass(frozen=True)
class FastCall:
    """A prepared signature's launches with their per-call arguments resolved to
    positions: (kernel, global size, local size, ((arg index, is output, position), ...))."""

    launches: tuple
    outputs: tuple  # (shape, NumPy dtype) per graph output


def exact_key(arrays) -> tuple | None:
    """The lookup key of a call's arguments, or None when one is not a NumPy array
    (a pyopencl array has the same attributes: the type is checked)."""
    key = []
    for a in arrays:
        if type(a) is not np.ndarray:
            return None
        key.append((a.dtype, a.shape, a.strides))
    return tuple(key)


def remember(local, launcher, bound: dict, prepared, pinned) -> None:
    """After a checked call (`Launcher.call`, NumPy inputs): lets later
    calls with arrays like these in this thread (`local`) skip the checks."""
    params = [p for p in launcher.params if pinned is None or p["name"] not in pinned.values]
    arrays = [bound[p["name"]] for p in params]
    if not eligible(params, arrays, prepared.output_shapes):
        return
    if pinned is not None and any(
        launch.once not in pinned.done for launch in prepared.launches if launch.once
    ):
        return
    key = exact_key(arrays)
    if key in getattr(local, "fast", {}):  # a strided tensor's copy, checked again
        return
    names = [p["name"] for p in params]
    keep(local, key, record(prepared, names, launcher.output_index, launcher.output_dtypes))


def keep(local, key, fast_call: FastCall) -> None:
    """Store a thread's fast call under `key`, dropping its oldest beyond FAST_PER_THREAD."""
    fast = getattr(local, "fast", None)
    if fast is None:
        fast = local.fast = {}
    if len(fast) >= FAST_PER_THREAD:
        fast.pop(next(iter(fast)))
    fast[key] = fast_call


def eligible(params: list, arrays: list, output_shapes: list) -> bool:
    """Whether a checked call may be replayed by `run`: every argument a
    writable C-contiguous NumPy array for an array parameter, nothing empty."""
    for p, a in zip(params, arrays, strict=True):
        if not p["shape"] or type(a) is not np.ndarray:
            return False
        if not (a.size and a.flags.c_contiguous and a.flags.writeable):
            return False
    return all(0 not in shape for shape in output_shapes)


def record(prepared, names: list[str], output_index: dict, output_dtypes: list) -> FastCall:
    """A prepared signature's launches as `run` replays them; `names` are the
    call's parameters in argument order (bound ones left out)."""
    position = {name: i for i, name in enumerate(names)}
    launches = []
    for launch in prepared.launches:
        if launch.once is not None:  # a bound graph's first call ran it (the caller checks)
            continue
        sets = []
        for index, src in launch.per_call:
            if isinstance(src, Output):
                sets.append((index, True, src.index))
            elif isinstance(src, Stored):  # a graph output a later kernel reads
                sets.append((index, True, output_index[src.node]))
            elif isinstance(src, Param):
                sets.append((index, False, position[src.name]))
            else:  # nothing else is per call; a new kind of argument must be added here
                raise AssertionError(f"per-call argument {src!r} unknown to the fast path")
        launches.append((launch.kernel, launch.global_size, launch.local_size, tuple(sets)))
    shapes = prepared.output_shapes
    return FastCall(tuple(launches), tuple(zip(shapes, output_dtypes, strict=True)))


def run(fast: FastCall, arrays, queue, out=None) -> tuple | np.ndarray | None:
    """The call's outputs, or None (nothing enqueued) where the checked path must run."""
    outputs = None if out is None else _given_outputs(fast, out)
    if outputs is None and out is not None:
        return None  # not NumPy arrays exactly as the outputs: the checked path says why
    try:
        inputs = [cl.SVM(a) for a in arrays]
        if outputs is None:
            outputs = [empty(shape, dtype) for shape, dtype in fast.outputs]
    except (ValueError, MemoryError):  # read-only (the checked path passes an alias),
        return None  # or out of memory (the checked path says so as a CallError)
    # mirrors Launcher._array_arg's SVM case
    written = [cl.SVM(o) for o in outputs]
    for kernel, global_size, local_size, sets in fast.launches:
        for index, is_output, i in sets:
            kernel.set_arg(index, written[i] if is_output else inputs[i])
        cl.enqueue_nd_range_kernel(queue, kernel, global_size, local_size)
    queue.finish()  # the caller may read or reuse its host arrays now
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _given_outputs(fast: FastCall, out) -> list | None:
    """`out=` as a list of arrays when every one is a writable C-contiguous NumPy
    array of its output's shape and dtype (else None: the checked path decides)."""
    outs = list(out) if isinstance(out, tuple | list) else [out]
    if len(outs) != len(fast.outputs):
        return None
    for o, (shape, dtype) in zip(outs, fast.outputs, strict=True):
        if type(o) is not np.ndarray or o.shape != shape or o.dtype != dtype:
            return None
        if not (o.flags.c_contiguous and o.flags.writeable):
            return None
    return outs
