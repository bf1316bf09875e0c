"""Dtypes of the IR and the promotion rules of the spec (PyTorch's, with weak literals)."""

from __future__ import annotations

import numpy as np

DTYPES = ("bool", "i32", "i64", "f16", "f32", "f64")
FLOATS = ("f16", "f32", "f64")
INTS = ("i32", "i64")

NUMPY = {
    "bool": np.dtype(np.bool_),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "f16": np.dtype(np.float16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
}
FROM_NUMPY = {v: k for k, v in NUMPY.items()}

# Weak (literal) dtypes: they adopt the dtype of the tensor they meet.
WEAK_BOOL, WEAK_INT, WEAK_FLOAT = "weak_bool", "weak_int", "weak_float"
WEAK_DEFAULT = {WEAK_BOOL: "bool", WEAK_INT: "i64", WEAK_FLOAT: "f32"}
DEFAULT_FLOAT = "f32"


def category(dtype: str) -> int:
    """0 bool, 1 integer, 2 floating; weak dtypes by their kind."""
    if dtype in ("bool", WEAK_BOOL):
        return 0
    if dtype in INTS or dtype == WEAK_INT:
        return 1
    return 2


def is_weak(dtype: str) -> bool:
    return dtype.startswith("weak_")


def is_float(dtype: str) -> bool:
    return category(dtype) == 2


def promote(*dtypes: str) -> str:
    """Result dtype of combining operands, PyTorch style.

    Tensors decide within the highest category they reach; a weak literal only
    lifts the category (an int tensor times 0.5 gives the default float).
    """
    strong = [d for d in dtypes if not is_weak(d)]
    weak = [d for d in dtypes if is_weak(d)]
    top = max(category(d) for d in dtypes)
    candidates = [d for d in strong if category(d) == top]
    if candidates:
        return max(candidates, key=DTYPES.index)
    top_weak = max(weak, key=category)
    if not strong:
        return top_weak  # a literal-only expression stays weak until it meets a tensor
    return WEAK_DEFAULT[top_weak]


def concrete(dtype: str) -> str:
    return WEAK_DEFAULT.get(dtype, dtype)


def to_float(dtype: str) -> str:
    """Dtype a float-only op computes in (PyTorch: exp of an int tensor is f32)."""
    return dtype if dtype in FLOATS else (DEFAULT_FLOAT if not is_weak(dtype) else WEAK_FLOAT)
