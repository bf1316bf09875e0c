"""`TracedArray`: what a `@fusec.jit` function receives in place of an array
while it is traced. Python operators, NumPy ufuncs (`__array_ufunc__`) and
NumPy functions (`__array_function__`) on it write IR; anything that needs the
array's values (`if x > 0:`, `float(x)`, indexing) is a TraceError at that line.
"""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as dt
from .locate import trace_error
from .numpy_ops import FUNCTIONS, UFUNCS, reduction
from .transposed import Transposed


def _binary(op, swap=False):
    def apply(self, other):
        if not isinstance(other, TracedArray | bool | int | float | np.generic):
            return NotImplemented
        return self.tracer.emit(op, (other, self) if swap else (self, other))

    return apply


def _ufunc(name, swap=False):
    def apply(self, other):
        if not isinstance(other, TracedArray | bool | int | float | np.generic):
            return NotImplemented
        return UFUNCS[name](*((other, self) if swap else (self, other)))

    return apply


class TracedArray:
    """An array of a known dtype and rank, with symbolic sizes, inside a trace."""

    __array_priority__ = 1000  # NumPy defers to our reflected operators

    def __init__(self, tracer, name: str, dtype: str, shape: tuple):
        self.tracer, self.name, self._dtype, self.shape_symbols = tracer, name, dtype, shape

    @property
    def dtype(self) -> np.dtype:
        return dt.NUMPY[dt.concrete(self._dtype)]

    @property
    def ndim(self) -> int:
        return len(self.shape_symbols)

    @property
    def shape(self):
        raise trace_error(
            "the shape of a traced array is symbolic (its sizes are not known while tracing);"
            " use .ndim, or reductions such as mean"
        )

    def __repr__(self) -> str:
        return f"<traced {self.name}: {dt.concrete(self._dtype)}[{', '.join(map(str, self.shape_symbols))}]>"

    # -- Python operators --------------------------------------------------------
    __add__, __radd__ = _binary("add"), _binary("add", swap=True)
    __sub__, __rsub__ = _binary("sub"), _binary("sub", swap=True)
    __mul__, __rmul__ = _binary("mul"), _binary("mul", swap=True)
    __truediv__, __rtruediv__ = _binary("div"), _binary("div", swap=True)
    __rpow__ = _binary("pow", swap=True)
    __mod__, __rmod__ = _ufunc("remainder"), _ufunc("remainder", swap=True)
    __floordiv__, __rfloordiv__ = _ufunc("floor_divide"), _ufunc("floor_divide", swap=True)

    def __pow__(self, other):
        if not isinstance(other, TracedArray | bool | int | float | np.generic):
            return NotImplemented
        return UFUNCS["power"](self, other)

    __matmul__, __rmatmul__ = _ufunc("matmul"), _ufunc("matmul", swap=True)
    __lt__, __le__ = _binary("lt"), _binary("le")
    __gt__, __ge__ = _binary("gt"), _binary("ge")
    __eq__, __ne__ = _binary("eq"), _binary("ne")
    __hash__ = object.__hash__

    def __and__(self, other):
        return UFUNCS["bitwise_and"](self, other)

    def __or__(self, other):
        return UFUNCS["bitwise_or"](self, other)

    def __xor__(self, other):
        return UFUNCS["bitwise_xor"](self, other)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __divmod__(self, other):
        return self // other, self % other

    def _no_shift(self, other):
        raise trace_error("<< and >>: fusec has no bitwise operations on integers")

    __lshift__ = __rlshift__ = __rshift__ = __rrshift__ = _no_shift

    def __invert__(self):
        return UFUNCS["invert"](self)

    def __neg__(self):
        return self.tracer.emit("neg", (self,))

    def __pos__(self):
        return self

    def __abs__(self):
        return self.tracer.emit("abs", (self,))

    # -- what needs values -------------------------------------------------------
    def __bool__(self):
        hint = (
            "; a number argument is traced too: name it in fusec.jit(..., static_argnames=...)"
            " to branch on its value"
            if not self.shape_symbols
            else ""
        )
        raise trace_error(
            "the truth value of a traced array is not known while tracing (an `if`, `while`, `and`,"
            f" `or` or `not` on an array); use np.where or fusec.where{hint}"
        )

    def _value(self, what):
        raise trace_error(
            f"{what} of a traced array needs its values, which are not known while tracing"
        )

    def __float__(self):
        self._value("float()")

    def __int__(self):
        self._value("int()")

    def __index__(self):
        self._value("using it as an index")

    def __len__(self):
        self._value("len()")

    def __iter__(self):
        self._value("iterating")

    def __getitem__(self, key):
        """`x[:, None]`, `x[None]`, `x[..., None]`: new axes of length 1 (IR
        `unsqueeze` views); any other index needs values or a slice fusec lacks."""
        key = key if isinstance(key, tuple) else (key,)
        full = slice(None)
        if not all(k is None or k is Ellipsis or k == full for k in key) or key.count(...) > 1:
            raise trace_error(
                "indexing and slicing a traced array: fusec graphs have no indexing"
                " (only new axes: x[:, None], x[None], x[..., None])"
            )
        if len(key) - key.count(None) - key.count(...) > self.ndim:
            raise trace_error(f"too many indices for a traced array of {self.ndim} dimension(s)")
        if ... in key:  # the axes the ellipsis stands for
            i = key.index(...)
            rest = self.ndim - (len(key) - key.count(None) - 1)
            key = key[:i] + (full,) * rest + key[i + 1 :]
        new_axes = [i for i, k in enumerate(key) if k is None]
        out = self
        for axis in new_axes:  # in increasing order: each is its axis in the result
            out = self.tracer.emit("unsqueeze", (out,), {"axis": axis})
        return out

    def __setitem__(self, key, value):
        raise trace_error("assigning into a traced array: fusec graphs have no in-place updates")

    def __array__(self, *args, **kwargs):
        raise trace_error(
            "converting a traced array to a NumPy array needs its values (np.asarray, np.array)"
        )

    @property
    def T(self):
        """NumPy's transpose: itself for rank 0 and 1; of a matrix, a gemm operand."""
        if self.ndim <= 1:
            return self
        if self.ndim > 2:
            raise trace_error(".T of a traced array of rank 3 or more: fusec's IR has no transpose")
        return Transposed(self)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise trace_error(f"traced arrays have no method or attribute {name!r} in fusec")

    # -- methods -----------------------------------------------------------------
    def sum(self, axis=None, keepdims=False, **kw):
        return reduction("sum")(self, axis, keepdims, **kw)

    def mean(self, axis=None, keepdims=False, **kw):
        return reduction("mean")(self, axis, keepdims, **kw)

    def max(self, axis=None, keepdims=False, **kw):
        return reduction("max")(self, axis, keepdims, **kw)

    def min(self, axis=None, keepdims=False, **kw):
        return reduction("min")(self, axis, keepdims, **kw)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return FUNCTIONS["var"](self, axis, dtype, out, ddof, keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return FUNCTIONS["std"](self, axis, dtype, out, ddof, keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return FUNCTIONS["any"](self, axis, out, keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return FUNCTIONS["all"](self, axis, out, keepdims)

    def clip(self, min=None, max=None):
        return FUNCTIONS["clip"](self, min, max)

    def astype(self, dtype, copy=True):
        return self.tracer.emit("cast", (self,), {"dtype": dtype})

    # -- NumPy's protocols -------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        if method != "__call__" or ufunc.__name__ not in UFUNCS:
            raise trace_error(f"{name} is not supported by fusec's tracer")
        bad = [
            k
            for k, v in kwargs.items()
            if v is not None and not (k == "casting" and v == "same_kind")
        ]
        if bad:
            raise trace_error(f"{name}: fusec does not support {', '.join(f'{k}=' for k in bad)}")
        return UFUNCS[ufunc.__name__](*inputs)

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ not in FUNCTIONS or func.__module__ not in (
            "numpy",
            "numpy.core.fromnumeric",
        ):
            raise trace_error(
                f"{func.__module__}.{func.__name__} is not supported by fusec's tracer"
            )
        return FUNCTIONS[func.__name__](*args, **kwargs)
