"""Linear algebra: `linear(x, w[, b])`, PyTorch's layout (x @ wᵀ + b).

A GEMM starts a fusion group: the elementwise ops on its result run in its
kernel's epilogue. `linear(x, w, b)` is written as `linear(x, w) + b`, so the
bias is one more epilogue op. `matmul` comes later.
"""

from __future__ import annotations

import numpy as np

from ..registry import Primitive, register


def _linear_shape(x_shape, w_shape):
    """x[..., K] and w[N, K] give [..., N]; a ValueError names the mismatch."""
    if len(x_shape) < 1:
        raise ValueError("x must have at least one dimension ([..., in_features])")
    if len(w_shape) != 2:
        raise ValueError(f"w must be [out_features, in_features], got {len(w_shape)} dimensions")
    if x_shape[-1] != w_shape[1]:
        raise ValueError(
            f"x's last dimension ({x_shape[-1]}) must equal w's second ({w_shape[1]}): "
            "w is [out_features, in_features], as in torch.nn.functional.linear"
        )
    return tuple(x_shape[:-1]) + (w_shape[0],)


def _np_linear(x, w):
    return np.matmul(x, w.T)


for entry in [
    Primitive(
        "linear",
        ("x", "w", "b"),
        "",
        _np_linear,
        kind="gemm",
        optional_inputs=("b",),
        lowering="linear(x, w) + b",
        gemm_shape=_linear_shape,
        doc="torch.nn.functional.linear: x[..., K] @ w[N, K]ᵀ (+ b[N])",
    ),
]:
    register(entry)
