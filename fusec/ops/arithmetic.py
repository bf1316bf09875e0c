"""Arithmetic ops: add sub mul div pow neg abs reciprocal square maximum minimum."""

from __future__ import annotations

import numpy as np

from ..registry import Primitive, register


def _nan_max(a, b):
    return np.maximum(a, b)  # NumPy's maximum propagates NaN, like torch.maximum


for entry in [
    Primitive("add", ("a", "b"), "({a} + {b})", np.add, infix="+", backward={"a": "g", "b": "g"}),
    Primitive("sub", ("a", "b"), "({a} - {b})", np.subtract, infix="-", backward={"a": "g", "b": "-g"}),
    Primitive("mul", ("a", "b"), "({a} * {b})", np.multiply, infix="*", backward={"a": "g * b", "b": "g * a"}),
    # True division, as torch.div: integers divide as floats.
    Primitive("div", ("a", "b"), "({a} / {b})", np.true_divide, dtype_rule="float", infix="/"),
    Primitive(
        "pow",
        ("a", "b"),
        {
            "float": "pow({a}, {b})",
            # integer power by repeated squaring is not expressible as one
            # expression; go through double, exact for results below 2^53
            "int": "convert_{T}(pow(convert_double{W}({a}), convert_double{W}({b})))",
        },
        np.power,
        infix="**",
        # PoCL 3.0's double8 pow is wrong in ~3% of lanes whenever other lanes
        # hold special cases (pow(0, 0) in lane 5 corrupted lane 2:
        # pow(6.04e-7, -0.892) gave 0, pow(1.99e5, -882) gave 1.7e105); double4
        # and scalar are right, float8 too. The int template goes through double.
        max_width={"f64": 4, "i32": 4, "i64": 4},
    ),
    Primitive("neg", ("x",), "(-{x})", np.negative, infix="neg"),
    Primitive(
        "abs", ("x",), {"float": "fabs({x})", "int": "(({x}) < {ZERO} ? -({x}) : ({x}))"}, np.abs
    ),
    Primitive("reciprocal", ("x",), "({ONE} / {x})", np.reciprocal, dtype_rule="float"),
    Primitive("square", ("x",), "({x} * {x})", np.square),
    # fmax/fmin drop NaN; torch.maximum propagates it.
    Primitive(
        "maximum",
        ("a", "b"),
        {
            "float": "(isnan({a}) || isnan({b}) ? ({a} + {b}) : fmax({a}, {b}))",
            "int": "max({a}, {b})",
        },
        _nan_max,
    ),
    Primitive(
        "minimum",
        ("a", "b"),
        {
            "float": "(isnan({a}) || isnan({b}) ? ({a} + {b}) : fmin({a}, {b}))",
            "int": "min({a}, {b})",
        },
        np.minimum,
    ),
    # The gradient of a float parameter that no differentiable path reaches.
    Primitive(
        "zeros_like", ("x",), "{ZERO}", np.zeros_like, internal=True,
        doc="zeros of x's dtype and shape (autodiff's, not written in IR)",
    ),
]:
    register(entry)
