"""`x.T` of a traced matrix: the IR has no transpose of a value, but `gemm`
reads an operand transposed in place, so `a.T @ b`, `a @ b.T`, `a.T @ b.T`
(and through np.matmul/np.dot) trace; any other use is a TraceError."""

from __future__ import annotations

import numpy as np

from .locate import trace_error

_ONLY = (
    "x.T of a traced matrix is only traced as an operand of @, np.matmul or np.dot"
    " (fusec's IR has no transpose of a value; its gemm reads operands transposed)"
)


def transposed_matmul(a, b):
    """a @ b where a or b is a Transposed matrix: one gemm, transposes in place."""
    ops = [(v.base, True) if isinstance(v, Transposed) else (v, False) for v in (a, b)]
    if any(getattr(v, "ndim", None) != 2 or not hasattr(v, "tracer") for v, _ in ops):
        raise trace_error(_ONLY + "; both operands must be traced matrices")
    (x, ta), (w, tb) = ops
    return x.tracer.emit("gemm", (x, w), {"ta": ta, "tb": tb})


class Transposed:
    """The transpose of a traced [M, N] matrix, waiting to be a gemm operand."""

    __array_priority__ = 1001  # NumPy and TracedArray defer to our reflected operators
    ndim = 2

    def __init__(self, base):
        self.base, self.T, self.dtype = base, base, base.dtype

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
        raise AttributeError(name) if name.startswith("_") else trace_error(_ONLY)

    def _refuse(self, *args):
        raise trace_error(_ONLY)

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _refuse
    __rtruediv__ = __pow__ = __neg__ = __getitem__ = __bool__ = __lt__ = __gt__ = _refuse
