"""Math ops: exp log log1p expm1 sqrt rsqrt sin cos tanh atan asin acos atan2 sigmoid erf floor
ceil round sign.

The transcendental ops are float-only (dtype_rule "float": exp of an int tensor
is f32, as in PyTorch). floor/ceil/round/sign keep their operand's dtype; on
integers the first three are the identity.

The NumPy references compute in the dtype of the arrays they are given and are
checked against PyTorch by tests/test_op_references.py.
"""

from __future__ import annotations

import math  # the standard library's (absolute import), not this module

import numpy as np

from ..registry import Primitive, register


def _float_only(fn):
    """A reference for a float op: NumPy's ufunc, kept in the input dtype."""

    def ref(x):
        with np.errstate(all="ignore"):
            return np.asarray(fn(x)).astype(x.dtype, copy=False)

    ref.__name__ = getattr(fn, "__name__", "ref")
    return ref


def _float_only2(fn):
    """A reference for a binary float op, in the operands' promoted float dtype."""

    def ref(a, b):
        dtype = np.result_type(a, b)
        dtype = dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float32)
        with np.errstate(all="ignore"):
            return np.asarray(fn(a.astype(dtype), b.astype(dtype))).astype(dtype, copy=False)

    ref.__name__ = fn.__name__
    return ref


def _rsqrt(x):
    with np.errstate(all="ignore"):
        return (x.dtype.type(1) / np.sqrt(x)).astype(x.dtype, copy=False)


def _sigmoid(x):
    # torch: 1 / (1 + exp(-x)); exp overflow to inf gives exactly 0.
    with np.errstate(all="ignore"):
        one = x.dtype.type(1)
        return (one / (one + np.exp(-x))).astype(x.dtype, copy=False)


_erf_scalar = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x):
    # math.erf is correctly rounded in double; rounding to f32 after is within
    # an ulp of torch's f32 erf.
    return _erf_scalar(x.astype(np.float64)).astype(x.dtype, copy=False)


def _rounding(fn):
    """floor/ceil/round: identity on integers (NumPy would return float64)."""

    def ref(x):
        if not np.issubdtype(x.dtype, np.floating):
            return x.copy()
        return fn(x).astype(x.dtype, copy=False)

    ref.__name__ = fn.__name__
    return ref


def _sign(x):
    # torch.sign(nan) is 0 and torch.sign(-0.0) is +0 (np.sign gives nan, -0).
    if x.dtype == np.bool_:
        return x.copy()  # torch.sign of a bool tensor is the tensor
    one, zero = x.dtype.type(1), x.dtype.type(0)
    return np.where(x > zero, one, np.where(x < zero, -one, zero)).astype(x.dtype, copy=False)


def _unary_float(name, template, ref, doc="", backward=None):
    return Primitive(
        name, ("x",), template, ref, dtype_rule="float", doc=doc, backward=backward or {}
    )


for entry in [
    _unary_float("exp", "fu_exp_{T}({x})", _float_only(np.exp), backward={"x": "g * out"}),
    _unary_float("log", "log({x})", _float_only(np.log), backward={"x": "g / x"}),
    _unary_float("log1p", "log1p({x})", _float_only(np.log1p), backward={"x": "g / (x + 1)"}),
    _unary_float("expm1", "expm1({x})", _float_only(np.expm1), backward={"x": "g * (out + 1)"}),
    _unary_float("sqrt", "sqrt({x})", _float_only(np.sqrt), backward={"x": "g / (2 * out)"}),
    # torch: -0.5 * g * out ** 3, its cube being out * out * out
    _unary_float(
        "rsqrt",
        "rsqrt({x})",
        _rsqrt,
        doc="1 / sqrt(x)",
        backward={"x": "-0.5 * g * (out * out * out)"},
    ),
    # On a device with the quirk vector_trig_inexact (PoCL's CPU device), float8
    # sin/cos go wrong in every lane with a small argument (sin(1e-30) = 0.0099,
    # cos(1e-3) = 0.99997) when another lane holds a huge one (1e30, inf); double8
    # and scalar are correct there, so they compute through double. For a double T
    # the conversions are no-ops.
    # On one with sincos_vectorizer_crash (Intel's CPU runtime), an identity
    # conversion around the call keeps its vectorizer from crashing.
    _unary_float(
        "sin",
        {
            "float": "sin({x})",
            "float@vector_trig_inexact": "convert_{T}(sin(convert_double{W}({x})))",
            "float@sincos_vectorizer_crash": "convert_{T}(sin(convert_{T}({x})))",
        },
        _float_only(np.sin),
        backward={"x": "g * cos(x)"},
    ),
    _unary_float(
        "cos",
        {
            "float": "cos({x})",
            "float@vector_trig_inexact": "convert_{T}(cos(convert_double{W}({x})))",
            "float@sincos_vectorizer_crash": "convert_{T}(cos(convert_{T}({x})))",
        },
        _float_only(np.cos),
        backward={"x": "g * -sin(x)"},
    ),
    _unary_float(
        "tanh", "fu_tanh_{T}({x})", _float_only(np.tanh), backward={"x": "g * (1 - out * out)"}
    ),
    # the inverse trigonometric functions (numexpr's arcsin, arccos, arctan,
    # arctan2); backward as torch's: g / (1 + x^2), g * rsqrt(1 - x^2), ...
    _unary_float("atan", "atan({x})", _float_only(np.arctan), backward={"x": "g / (1 + x * x)"}),
    _unary_float(
        "asin", "asin({x})", _float_only(np.arcsin), backward={"x": "g * rsqrt(1 - x * x)"}
    ),
    _unary_float(
        "acos", "acos({x})", _float_only(np.arccos), backward={"x": "-g * rsqrt(1 - x * x)"}
    ),
    Primitive(
        "atan2",
        ("a", "b"),
        "atan2({a}, {b})",
        _float_only2(np.arctan2),
        dtype_rule="float",
        doc="the angle of (b, a), as torch.atan2",
        # torch's atan2_backward: 1 / (a^2 + b^2), but 0 where that is infinite
        backward={
            "a": "g * b * where(a * a + b * b == 0, 0, 1 / (a * a + b * b))",
            "b": "g * -a * where(a * a + b * b == 0, 0, 1 / (a * a + b * b))",
        },
    ),
    # Written as torch does; -x large makes exp overflow to inf and the result 0.
    # torch's sigmoid_backward: g * (1 - out) * out
    _unary_float(
        "sigmoid",
        "({ONE} / ({ONE} + fu_exp_{T}(-({x}))))",
        _sigmoid,
        backward={"x": "g * (1 - out) * out"},
    ),
    # torch: 2 / sqrt(pi) * exp(-(x ** 2)) * g
    _unary_float("erf", "erf({x})", _erf, backward={"x": "1.1283791670955126 * exp(-(x * x)) * g"}),
    # floor, ceil, round and sign: a zero gradient, as PyTorch declares it
    Primitive(
        "floor",
        ("x",),
        {"float": "floor({x})", "int": "({x})"},
        _rounding(np.floor),
        backward={"x": "0"},
    ),
    Primitive(
        "ceil",
        ("x",),
        {"float": "ceil({x})", "int": "({x})"},
        _rounding(np.ceil),
        backward={"x": "0"},
    ),
    # torch.round rounds half to even, as OpenCL's rint (not round, which goes away from 0).
    Primitive(
        "round",
        ("x",),
        {"float": "rint({x})", "int": "({x})"},
        _rounding(np.rint),
        doc="round half to even, like torch.round",
        backward={"x": "0"},
    ),
    # One template for all categories: comparisons are false for NaN, so
    # sign(nan) = 0 and sign(-0.0) = +0, exactly as torch.sign.
    Primitive(
        "sign",
        ("x",),
        "(({x}) > {ZERO} ? {ONE} : (({x}) < {ZERO} ? (-{ONE}) : {ZERO}))",
        _sign,
        doc="-1, 0 or 1; sign(nan) is 0 as in torch.sign",
        backward={"x": "0"},
    ),
]:
    register(entry)
