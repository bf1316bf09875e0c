"""`x.T` of a traced matrix: fusec's IR has no transpose of a value, but its
`gemm` reads an operand transposed in place, so `a.T @ b`, `a @ b.T` and
`a.T @ b.T` (also through `np.matmul`/`np.dot`) trace; any other use of
`x.T` is a TraceError saying so."""

from __future__ import annotations

import numpy as np

from .locate import trace_error

_ONLY = (
    "x.T of a traced matrix is only traced as an operand of @, np.matmul or np.dot"
    " (fusec's IR has no transpose of a value; its gemm reads operands transposed)"
)


def _operand(value):
    """(array, transposed) for a matmul operand, or None for anything else."""
    if isinstance(value, Transposed):
        return value.base, True
    if getattr(value, "ndim", None) == 2 and hasattr(value, "tracer"):
        return value, False
    return None


def transposed_matmul(a, b):
    """a @ b where a or b is a Transposed matrix: one gemm, transposes in place."""
    left, right = _operand(a), _operand(b)
    if left is None or right is None:
        raise trace_error(_ONLY + "; both operands must be traced matrices")
    (x, ta), (w, tb) = left, right
    return x.tracer.emit("gemm", (x, w), {"ta": ta, "tb": tb})


class Transposed:
    """The transpose of a traced [M, N] matrix, waiting to be a gemm operand."""

    __array_priority__ = 1001  # NumPy and TracedArray defer to our reflected operators

    def __init__(self, base):
        self.base = base

    @property
    def T(self):
        return self.base

    ndim = 2

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    def __matmul__(self, other):
        return transposed_matmul(self, other)

    def __rmatmul__(self, other):
        return transposed_matmul(other, self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is np.matmul and method == "__call__" and not kwargs and len(inputs) == 2:
            return transposed_matmul(*inputs)
        raise trace_error(_ONLY)

    def __array_function__(self, func, types, args, kwargs):
        if func in (np.matmul, np.dot) and len(args) == 2 and not kwargs:
            return transposed_matmul(*args)
        raise trace_error(_ONLY)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise trace_error(_ONLY)

    def _refuse(self, *args, **kwargs):
        raise trace_error(_ONLY)

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __pow__ = __neg__ = __getitem__ = __bool__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = _refuse
