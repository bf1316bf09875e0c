"""NumPy's functions and numexpr's function names, as fusec ops.

One table per fact: `UFUNCS` maps a ufunc name (also numexpr's function names,
which are NumPy's) to a function of traced operands that emits IR; `FUNCTIONS`
does the same for the NumPy functions that reach `__array_function__`.
A name fusec cannot express is absent, and its use is a TraceError.
"""

from __future__ import annotations

import math

import numpy as np

from .locate import trace_error
from .transposed import Transposed, transposed_matmul


def _op(name):
    return lambda *xs: _emit(name, xs)


def _emit(name, operands, attrs=None):
    tracer = next(o.tracer for o in operands if hasattr(o, "tracer"))
    return tracer.emit(name, operands, attrs)


def _tan(x):
    return _emit("div", (_emit("sin", (x,)), _emit("cos", (x,))))


def _sinh(x):  # expm1 keeps sinh accurate near 0, where exp(x) - exp(-x) cancels
    return _emit(
        "mul", (_emit("sub", (_emit("expm1", (x,)), _emit("expm1", (_emit("neg", (x,)),)))), 0.5)
    )


def _cosh(x):
    return _emit(
        "mul", (_emit("add", (_emit("exp", (x,)), _emit("exp", (_emit("neg", (x,)),)))), 0.5)
    )


def _arctanh(x):  # atanh(x) = log1p(2x / (1 - x)) / 2, accurate near 0
    return _emit(
        "mul", (_emit("log1p", (_emit("div", (_emit("mul", (x, 2)), _emit("sub", (1, x)))),)), 0.5)
    )


def _arcsinh(x):
    # sign(x) * log1p(|x| + x^2 / (1 + sqrt(x^2 + 1))), accurate near 0, with the
    # fraction as |x| / (t + sqrt(1 + t^2)), t = 1 / |x|: x^2 overflows past 1.8e19 (f32)
    a = _emit("abs", (x,))
    t = _emit("reciprocal", (a,))
    root = _emit("add", (t, _emit("sqrt", (_emit("add", (_emit("mul", (t, t)), 1)),))))
    inner = _emit("log1p", (_emit("add", (a, _emit("div", (a, root)))),))
    # past 2^60, log(2|x|) exactly (the 1 / 4x^2 left is below every float's eps): 2|x| overflows
    huge = _emit("add", (_emit("log", (a,)), math.log(2.0)))
    return _emit(
        "mul", (_emit("sign", (x,)), _emit("where", (_emit("gt", (a, 2.0**60)), huge, inner)))
    )


def _arccosh(x):  # t = x - 1: log1p(t + sqrt(t) * sqrt(t + 2)), accurate near 1
    t = _emit("sub", (x, 1))
    root = _emit("mul", (_emit("sqrt", (t,)), _emit("sqrt", (_emit("add", (t, 2)),))))
    near = _emit("log1p", (_emit("add", (t, root)),))
    huge = _emit("add", (_emit("log", (x,)), math.log(2.0)))  # as arcsinh's: 2x overflows
    return _emit("where", (_emit("gt", (t, 2.0**60)), huge, near))


def _scaled_log(factor):
    return lambda x: _emit("mul", (_emit("log", (x,)), factor))


def _is_two(value) -> bool:
    """`x ** 2` is `x * x` (numexpr rewrites it too): exact, where `pow` is a libm call."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 2


def _bool_only(name, fusec_op):
    """numexpr's `&`, `|`, `~` (and NumPy's bitwise ufuncs) on bools; fusec has no bitwise ints."""

    def apply(*xs):
        for x in xs:
            if getattr(x, "dtype", np.dtype(bool)) != np.dtype(bool) and not isinstance(x, bool):
                raise trace_error(
                    f"{name} of {x.dtype} arrays: fusec has bitwise operations on bool only"
                )
        return _emit(fusec_op, xs)

    return apply


def _floats_only(name, compose):
    """`%` and `//` of floats, composed of fusec's ops; fusec has no integer division."""

    def apply(a, b):
        if all(
            (x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype).kind in "iub" for x in (a, b)
        ):
            raise trace_error(
                f"{name} of integers: fusec has no integer division ({name} of floats works)"
            )
        return compose(a, b)

    return apply


def _floor_div(a, b):
    return _emit("floor", (_emit("div", (a, b)),))


UFUNCS = {
    # numexpr's formula, the sign of b as Python's (NumPy's np.mod is exact where a / b is huge)
    "remainder": _floats_only(
        "%", lambda a, b: _emit("sub", (a, _emit("mul", (_floor_div(a, b), b))))
    ),
    "floor_divide": _floats_only("//", _floor_div),
    "add": _op("add"),
    "subtract": _op("sub"),
    "multiply": _op("mul"),
    "divide": _op("div"),
    "true_divide": _op("div"),
    "power": lambda a, b: _emit("square", (a,)) if _is_two(b) else _emit("pow", (a, b)),
    "negative": _op("neg"),
    "positive": lambda x: x,
    "absolute": _op("abs"),
    "abs": _op("abs"),
    "reciprocal": _op("reciprocal"),
    "square": _op("square"),
    "sqrt": _op("sqrt"),
    "exp": _op("exp"),
    "expm1": _op("expm1"),
    "exp2": lambda x: _emit("exp", (_emit("mul", (x, math.log(2.0))),)),
    "log": _op("log"),
    "log1p": _op("log1p"),
    "log10": _scaled_log(1.0 / math.log(10.0)),
    "log2": _scaled_log(1.0 / math.log(2.0)),
    "sin": _op("sin"),
    "cos": _op("cos"),
    "tan": _tan,
    "sinh": _sinh,
    "cosh": _cosh,
    "tanh": _op("tanh"),
    "arctan": _op("atan"),
    "arcsin": _op("asin"),
    "arccos": _op("acos"),
    "arctan2": _op("atan2"),
    "arcsinh": _arcsinh,
    "arccosh": _arccosh,
    "arctanh": _arctanh,
    "sign": _op("sign"),
    "floor": _op("floor"),
    "ceil": _op("ceil"),
    "rint": _op("round"),
    "maximum": _op("maximum"),
    "minimum": _op("minimum"),
    "greater": _op("gt"),
    "greater_equal": _op("ge"),
    "less": _op("lt"),
    "less_equal": _op("le"),
    "equal": _op("eq"),
    "not_equal": _op("ne"),
    "logical_and": _op("logical_and"),
    "logical_or": _op("logical_or"),
    "logical_not": _op("logical_not"),
    "bitwise_and": _bool_only("&", "logical_and"),
    "bitwise_or": _bool_only("|", "logical_or"),
    "bitwise_xor": _bool_only("^", "ne"),  # of bools, xor is !=
    "logical_xor": lambda a, b: _emit(
        "ne", (_emit("logical_not", (a,)), _emit("logical_not", (b,)))
    ),
    "invert": _bool_only("~", "logical_not"),
    "isnan": lambda x: _emit("ne", (x, x)),
    "isinf": lambda x: _emit("eq", (_emit("abs", (x,)), math.inf)),
    "isfinite": lambda x: _emit("lt", (_emit("abs", (x,)), math.inf)),
    "matmul": lambda a, b: _matmul(a, b),
    "fabs": _op("abs"),
    "trunc": lambda x: _emit(
        "where", (_emit("lt", (x, 0)), _emit("ceil", (x,)), _emit("floor", (x,)))
    ),
    "logaddexp": lambda a, b: _logaddexp(a, b),
}


def _logaddexp(a, b):
    """max + log1p(exp(-|a - b|)): no overflow; equal infinities have no difference."""
    spread = _emit("exp", (_emit("neg", (_emit("abs", (_emit("sub", (a, b)),)),)),))
    apart = _emit("add", (_emit("maximum", (a, b)), _emit("log1p", (spread,))))
    return _emit("where", (_emit("eq", (a, b)), _emit("add", (a, math.log(2.0))), apart))


def _matmul(a, b):
    """NumPy's matmul with a 1-D operand: a vector is a [K, 1] column (or a
    [1, K] row) for the product, and that axis is dropped again."""
    if isinstance(a, Transposed) or isinstance(b, Transposed):
        return transposed_matmul(a, b)
    a_vec, b_vec = getattr(a, "ndim", 0) == 1, getattr(b, "ndim", 0) == 1
    if a_vec and b_vec:
        return _emit("sum", (_emit("mul", (a, b)),), {"axis": 0})
    if b_vec:
        product = _emit("matmul", (a, _emit("unsqueeze", (b,), {"axis": 1})))
        return _emit("squeeze", (product,), {"axis": -1})
    if a_vec:
        product = _emit("matmul", (_emit("unsqueeze", (a,), {"axis": 0}), b))
        return _emit("squeeze", (product,), {"axis": -2})
    return _emit("matmul", (a, b))


def _axes(x, axis) -> list[int]:
    """Axes to reduce, from the last: NumPy's None (all), an int, or a tuple."""
    ndim = x.ndim
    axes = range(ndim) if axis is None else axis if isinstance(axis, tuple | list) else (axis,)
    out = []
    for a in axes:
        if not isinstance(a, int | np.integer) or not -ndim <= a < ndim:
            raise trace_error(f"axis {a!r} is out of bounds for an array of rank {ndim}")
        out.append(int(a) % ndim)
    return sorted(set(out), reverse=True)


def reduction(op):
    def reduce(x, axis=None, keepdims=False, **unsupported):
        bad = {
            k: v
            for k, v in unsupported.items()
            if v is not None and k != "out" and v is not np._NoValue
        }
        if bad or unsupported.get("out") is not None:
            raise trace_error(f"{op}: fusec does not support {', '.join(bad) or 'out'}=")
        if not hasattr(x, "tracer"):
            raise trace_error(f"{op} of a {type(x).__name__}: only traced arrays can be reduced")
        for a in _axes(x, axis):
            x = x.tracer.emit(op, (x,), {"axis": a, "keepdim": bool(keepdims)})
        return x

    return reduce


def _where(cond, a=None, b=None):
    if a is None or b is None:
        raise trace_error("where(cond) with one argument (nonzero) has a data-dependent shape")
    return _emit("where", (cond, a, b))


def _clip(x, a_min=None, a_max=None, **kwargs):
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if kwargs:
        raise trace_error(f"clip: fusec does not support {', '.join(kwargs)}=")
    if all(isinstance(v, int | float | type(None)) for v in (a_min, a_max)):
        return _emit("clamp", (x,), {"min": a_min, "max": a_max})
    if a_min is not None:
        x = _emit("maximum", (x, a_min))
    return x if a_max is None else _emit("minimum", (x, a_max))


def _round(x, decimals=0, out=None):
    if decimals != 0 or out is not None:
        raise trace_error("round: fusec rounds to integers only (decimals=0)")
    return _emit("round", (x,))


def _dot(a, b):
    if a.ndim not in (1, 2) or getattr(b, "ndim", 0) not in (1, 2):
        raise trace_error("dot: fusec traces dot of matrices and vectors only (use matmul)")
    return _matmul(a, b)


def _var(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **unsupported):
    """NumPy's var: the mean of squared deviations, times n / (n - ddof)."""
    if (
        dtype is not None
        or out is not None
        or any(v is not np._NoValue for v in unsupported.values())
    ):
        raise trace_error("var/std: fusec supports axis=, ddof= and keepdims= only")
    centered = _emit("sub", (x, reduction("mean")(x, axis, True)))
    var = reduction("mean")(_emit("square", (centered,)), axis, keepdims)
    if ddof:
        n = reduction("sum")(_filled(1)(centered), axis, keepdims)
        var = _emit("div", (_emit("mul", (var, n)), _emit("sub", (n, ddof))))
    return var


def _bool_reduction(kind):
    """any/all as a count of true (or false) values, as NumPy's over an empty axis too."""

    def reduce(x, axis=None, out=None, keepdims=False, **unsupported):
        if out is not None or any(v is not np._NoValue for v in unsupported.values()):
            raise trace_error(f"{kind}: fusec supports axis= and keepdims= only")
        flags = _emit("ne", (x, 0)) if x.dtype != np.bool_ else x
        if kind == "all":
            flags = _emit("logical_not", (flags,))
        count = reduction("sum")(_emit("cast", (flags,), {"dtype": "i64"}), axis, keepdims)
        return _emit("gt" if kind == "any" else "eq", (count, 0))

    return reduce


def _filled(value):
    """zeros_like/ones_like/full_like: a constant of x's shape, from x's truth values
    combined with a constant (so NaN and infinities make no difference)."""

    def like(x, *args, dtype=None, **kwargs):
        fill = args[0] if value is None and args else kwargs.pop("fill_value", value)
        if kwargs.get("shape") is not None or not isinstance(fill, bool | int | float):
            raise trace_error("*_like: fusec takes a number to fill and no shape=")
        target = dtype if dtype is not None else x.dtype
        truth = _emit("cast", (x,), {"dtype": np.bool_})
        if not fill:
            return _emit("cast", (_emit("logical_and", (truth, False)),), {"dtype": target})
        ones = _emit("cast", (_emit("logical_or", (truth, True)),), {"dtype": target})
        return (
            ones if fill == 1 else _emit("cast", (_emit("mul", (ones, fill)),), {"dtype": target})
        )

    return like


FUNCTIONS = {
    "sum": reduction("sum"),
    "mean": reduction("mean"),
    "max": reduction("max"),
    "amax": reduction("max"),
    "min": reduction("min"),
    "amin": reduction("min"),
    "where": _where,
    "clip": _clip,
    "round": _round,
    "around": _round,
    "dot": _dot,
    "matmul": UFUNCS["matmul"],
    "var": _var,
    "std": lambda x, *args, **kwargs: _emit("sqrt", (_var(x, *args, **kwargs),)),
    "any": _bool_reduction("any"),
    "all": _bool_reduction("all"),
    "zeros_like": _filled(0),
    "ones_like": _filled(1),
    "full_like": _filled(None),
    "ndim": lambda x: x.ndim,
}
