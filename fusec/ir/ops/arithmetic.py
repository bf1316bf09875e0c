"""Arithmetic ops: add sub mul div pow neg abs reciprocal square maximum minimum."""

from __future__ import annotations

import numpy as np

from ..registry import Primitive, register


def _nan_max(a, b):
    return np.maximum(a, b)  # NumPy's maximum propagates NaN, like torch.maximum


# torch: a tie splits g in halves; the operand that lost gets 0; where either
# is NaN, both get all of g (every comparison is false).
_MAX_MIN_BACKWARD = {
    op: {
        "a": f"where(b {op} a, 0, where(a == b, g / 2, g))",
        "b": f"where(a {op} b, 0, where(a == b, g / 2, g))",
    }
    for op in (">", "<")
}

for entry in [
    Primitive("add", ("a", "b"), "({a} + {b})", np.add, infix="+", backward={"a": "g", "b": "g"}),
    Primitive(
        "sub",
        ("a", "b"),
        "({a} - {b})",
        np.subtract,
        infix="-",
        backward={"a": "g", "b": "-g"},
        bool_operands=False,
    ),
    Primitive(
        "mul",
        ("a", "b"),
        "({a} * {b})",
        np.multiply,
        infix="*",
        backward={"a": "g * b", "b": "g * a"},
    ),
    # True division, as torch.div: integers divide as floats.
    Primitive(
        "div",
        ("a", "b"),
        "({a} / {b})",
        np.true_divide,
        dtype_rule="float",
        infix="/",
        # torch: -g * ((a / b) / b); a / b is the result
        backward={"a": "g / b", "b": "-g * (out / b)"},
    ),
    Primitive(
        "pow",
        ("a", "b"),
        # integers: repeated squaring with wrap-around, as torch (mathlib's
        # fu_ipow); through double pow, Intel's CPU runtime gave 676**2 = 456975
        {"float": "pow({a}, {b})", "int": "fu_ipow_{T}({a}, {b})"},
        np.power,
        infix="**",
        # torch's pow_backward_self / pow_backward_exponent: zero where the
        # exponent is 0 (even for an infinite or NaN g), and for the exponent
        # where a is 0 and b >= 0 (0 ** b is flat in b there)
        backward={
            "a": "where(b == 0, 0, g * (b * a ** (b - 1)))",
            "b": "g * where(logical_and(a == 0, b >= 0), 0, out * log(a))",
        },
        # PoCL 3.0's double8 pow is wrong in ~3% of lanes whenever other lanes
        # hold special cases (pow(0, 0) in lane 5 corrupted lane 2:
        # pow(6.04e-7, -0.892) gave 0, pow(1.99e5, -882) gave 1.7e105); double4
        # and scalar are right, float8 too.
        max_width={"f64": 4},
        int_nonnegative=("b",),
    ),
    Primitive(
        "neg", ("x",), "(-{x})", np.negative, infix="neg", backward={"x": "-g"}, bool_operands=False
    ),
    Primitive(
        "abs",
        ("x",),
        {"float": "fabs({x})", "int": "(({x}) < {ZERO} ? -({x}) : ({x}))"},
        np.abs,
        backward={"x": "g * sign(x)"},  # torch: g * sgn(x); 0 at 0 and at NaN
    ),
    Primitive(
        "reciprocal",
        ("x",),
        "({ONE} / {x})",
        np.reciprocal,
        dtype_rule="float",
        backward={"x": "-g * (out * out)"},
    ),
    # torch: square is pow(x, 2), whose gradient is g * (2 * x ** 1)
    Primitive("square", ("x",), "({x} * {x})", np.square, backward={"x": "g * (2 * x)"}),
    # NaN propagates (fmax/fmin drop it) and a tie gives the second operand,
    # as torch.maximum/minimum on CPU for a tensor of at least one SIMD vector
    # (maximum(0.0, -0.0) is -0.0, maximum(-0.0, 0.0) is 0.0; its scalar loop,
    # under 16 f32 elements on AVX-512, gives the first one). OpenCL's fmax
    # leaves the sign of a tied zero to the driver: Intel's CPU runtime gives
    # the first operand. isgreater/isless are exactly `>`/`<`.
    Primitive(
        "maximum",
        ("a", "b"),
        {"float": "((isgreater({a}, {b}) || isnan({a})) ? {a} : {b})", "int": "max({a}, {b})"},
        _nan_max,
        backward=_MAX_MIN_BACKWARD[">"],
    ),
    Primitive(
        "minimum",
        ("a", "b"),
        {"float": "((isless({a}, {b}) || isnan({a})) ? {a} : {b})", "int": "min({a}, {b})"},
        np.minimum,
        backward=_MAX_MIN_BACKWARD["<"],
    ),
    # The gradient of a float parameter that no differentiable path reaches.
    Primitive(
        "zeros_like",
        ("x",),
        "{ZERO}",
        np.zeros_like,
        internal=True,
        doc="zeros of x's dtype and shape (autodiff's, not written in IR)",
    ),
]:
    register(entry)
