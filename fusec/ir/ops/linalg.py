"""Linear algebra: `linear(x, w[, b])` (PyTorch's layout, x @ wᵀ + b),
`matmul(a, b)`, and `gemm(a, b, ta=, tb=)` (either operand transposed, read
in place: autodiff's, and the torch front end's `mm(t(a), b)`).

A GEMM starts a fusion group: the elementwise ops on its result run in its
kernel's epilogue. `linear(x, w, b)` is written as `linear(x, w) + b`, so the
bias is one more epilogue op. Operands are read as 2-D: every dimension but
the last folded into rows (x[..., K] is [rows, K]).
"""

from __future__ import annotations

import math

import numpy as np

from ..registry import Primitive, register


def gemm_dims(a_shape, b_shape, ta: bool, tb: bool):
    """(rows, cols, inner) of op(a) @ op(b) as tuples of dims (their products are M, N, K)."""
    a_rows, a_cols = tuple(a_shape[:-1]), (a_shape[-1],)
    b_rows, b_cols = tuple(b_shape[:-1]), (b_shape[-1],)
    m, k_a = (a_cols, a_rows) if ta else (a_rows, a_cols)
    k_b, n = (b_cols, b_rows) if tb else (b_rows, b_cols)
    return m, n, k_a, k_b


def _gemm_shape(a_shape, b_shape, ta=False, tb=False):
    if not a_shape or not b_shape:
        raise ValueError("operands must have at least one dimension")
    m, n, k_a, k_b = gemm_dims(a_shape, b_shape, ta, tb)
    if k_a != k_b:
        raise ValueError(f"inner dimensions differ: {list(k_a)} and {list(k_b)}")
    return m + n


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


def _matmul_shape(a_shape, b_shape):
    if len(a_shape) < 1 or len(b_shape) != 2:
        raise ValueError(f"b must be [K, N] (2 dimensions), got {len(b_shape)}")
    if a_shape[-1] != b_shape[0]:
        raise ValueError(f"a's last dimension ({a_shape[-1]}) must equal b's first ({b_shape[0]})")
    return tuple(a_shape[:-1]) + (b_shape[1],)


def _as_2d(x):
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _np_gemm(a, b, ta=False, tb=False):
    a2, b2 = _as_2d(a), _as_2d(b)
    m, n, _, _ = gemm_dims(a.shape, b.shape, ta, tb)
    return ((a2.T if ta else a2) @ (b2.T if tb else b2)).reshape(m + n)


# op(a) @ op(b) for each (ta, tb): da and db as GEMMs that read g, a, b in place
GEMM_BACKWARD = {
    "a|ta=False,tb=False": "gemm(g, b, tb=true)",
    "a|ta=False,tb=True": "gemm(g, b)",
    "a|ta=True,tb=False": "gemm(b, g, tb=true)",
    "a|ta=True,tb=True": "gemm(b, g, ta=true, tb=true)",
    "b|ta=False,tb=False": "gemm(a, g, ta=true)",
    "b|ta=False,tb=True": "gemm(g, a, ta=true)",
    "b|ta=True,tb=False": "gemm(a, g)",
    "b|ta=True,tb=True": "gemm(g, a, ta=true, tb=true)",
}

for entry in [
    Primitive(
        "linear",
        ("x", "w", "b"),
        "",
        lambda x, w: np.matmul(x, w.T),
        kind="gemm",
        optional_inputs=("b",),
        lowering={3: "linear(x, w) + b"},
        gemm_shape=_linear_shape,
        gemm_transposed=(False, True),
        # dx = g·w, dw = gᵀ·x; db comes from the add's broadcast (a sum over rows)
        backward={"x": "gemm(g, w)", "w": "gemm(g, x, ta=true)"},
        doc="torch.nn.functional.linear: x[..., K] @ w[N, K]ᵀ (+ b[N])",
    ),
    Primitive(
        "matmul",
        ("a", "b"),
        "",
        np.matmul,
        kind="gemm",
        gemm_shape=_matmul_shape,
        backward={"a": "gemm(g, b, tb=true)", "b": "gemm(a, g, ta=true)"},
        doc="a[..., M, K] @ b[K, N]",
    ),
    Primitive(
        "gemm",
        ("a", "b"),
        "",
        _np_gemm,
        kind="gemm",
        attrs={"ta": False, "tb": False},
        gemm_shape=_gemm_shape,
        backward=GEMM_BACKWARD,
        doc="op(a) @ op(b), each operand 2-D (leading dimensions folded into rows), ta/tb: transposed",
    ),
]:
    register(entry)
