"""The warm call with PyTorch CPU tensors, as cheap as one with NumPy arrays.

A tensor reaches the checked path through DLPack and comes back through
DLPack, and every call of it was checked (light chain at 2^10: 19 us a call
with tensors, 6.5 with NumPy arrays). Here a tensor is recognised by its type
and viewed with `Tensor.numpy()` (no capsule, no copy); the views look up the
record a checked call left (fast_calls.py) and replay it; the outputs become
tensors over fusec's new arrays (`torch.from_numpy`), or are the caller's own
`out=` tensors. torch is never imported here: without it in `sys.modules` no
tensor exists. Anything else (another device, a tensor subclass, a conjugate
view, strides unlike the record's) misses and takes the checked path.
"""

from __future__ import annotations

import sys

import numpy as np

from . import fast_calls


def numpy_views(args) -> list | None:
    """NumPy views of the call's arrays when each is a NumPy array or a plain
    CPU tensor (a tensor that requires grad too: the same memory), else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    kinds = (torch.Tensor, torch.nn.Parameter)
    views = []
    try:
        for a in args:
            if type(a) is np.ndarray:
                views.append(a)
            elif type(a) in kinds:
                views.append((a.detach() if a.requires_grad else a).numpy())
            else:
                return None
    except (RuntimeError, TypeError):  # not on the CPU, a conjugate or negative view
        return None
    return views


def run(fast: fast_calls.FastCall, args, views, queue, out=None):
    """The outputs of a recorded call with tensors among `args` (their `views`),
    as the first argument's kind; None where the checked path must run."""
    outs = None if out is None else tuple(out) if isinstance(out, tuple | list) else (out,)
    out_views = None if outs is None else numpy_views(outs)
    if outs is not None and out_views is None:
        return None
    result = fast_calls.run(fast, views, queue, out_views)
    if result is None or outs is not None:  # out=: the caller's own arrays, as the checked path
        return None if result is None else outs[0] if len(outs) == 1 else outs
    if type(args[0]) is np.ndarray:
        return result
    from_numpy = sys.modules["torch"].from_numpy
    return tuple(map(from_numpy, result)) if isinstance(result, tuple) else from_numpy(result)
