"""Reductions. `sum_to` is autodiff's: the gradient of a broadcast operand is
the cotangent summed back to the operand's own shape (NumPy broadcasting run
backwards). The spec's `sum mean max min softmax log_softmax` come later.
"""

from __future__ import annotations

import numpy as np

from ..registry import REQUIRED, Primitive, register


def sum_to_axes(shape, target) -> tuple[int, ...]:
    """The axes of `shape` that summing down to `target` removes or sets to 1."""
    lead = len(shape) - len(target)
    return tuple(
        i for i, d in enumerate(shape) if i < lead or (target[i - lead] == 1 and d != 1)
    )


def _np_sum_to(x, shape):
    axes = sum_to_axes(x.shape, tuple(shape))
    out = np.sum(x, axis=axes, keepdims=True, dtype=x.dtype)
    return out.reshape(shape)


for entry in [
    Primitive(
        "sum_to",
        ("x",),
        "({acc} + {x})",
        _np_sum_to,
        kind="reduction",
        reduce_init="{ZERO}",
        attrs={"shape": REQUIRED},
        internal=True,
        doc="x summed over its broadcast axes down to `shape` (autodiff's, not written in IR)",
    ),
]:
    register(entry)
