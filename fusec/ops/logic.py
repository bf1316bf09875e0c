"""Logic ops: eq ne lt le gt ge logical_and logical_or logical_not where.

Templates give OpenCL's natural comparison/logical result (scalar 0/1,
vector -1/0); codegen normalises that to the bool storage format. Logical
operands and where's `cond` arrive as masks of that same form, so `!`, `&&`,
`||` and `?:` apply to them directly (a vector `?:` selects per component on
the mask's sign bit, which -1/0 masks satisfy).

Comparisons with NaN are false except `!=`, as IEEE 754 and PyTorch have it.
"""

from __future__ import annotations

import numpy as np

from ..registry import Primitive, register


def _truth(a):
    """Any dtype read as bool (non-zero is true; NaN is true, as torch)."""
    return np.asarray(a) != 0


def _logical_and(a, b):
    return np.logical_and(_truth(a), _truth(b))


def _logical_or(a, b):
    return np.logical_or(_truth(a), _truth(b))


def _logical_not(x):
    return np.logical_not(_truth(x))


def _where(cond, a, b):
    return np.where(_truth(cond), a, b)


def _compare(name, infix, ufunc):
    return Primitive(
        name, ("a", "b"), f"({{a}} {infix} {{b}})", ufunc, dtype_rule="compare", infix=infix
    )


for entry in [
    _compare("eq", "==", np.equal),
    _compare("ne", "!=", np.not_equal),
    _compare("lt", "<", np.less),
    _compare("le", "<=", np.less_equal),
    _compare("gt", ">", np.greater),
    _compare("ge", ">=", np.greater_equal),
    Primitive("logical_and", ("a", "b"), "({a} && {b})", _logical_and, dtype_rule="logical"),
    Primitive("logical_or", ("a", "b"), "({a} || {b})", _logical_or, dtype_rule="logical"),
    Primitive("logical_not", ("x",), "(!{x})", _logical_not, dtype_rule="logical"),
    Primitive(
        "where",
        ("cond", "a", "b"),
        "({cond} ? {a} : {b})",
        _where,
        dtype_rule="where",
        doc="cond ? a : b, all three broadcast together; cond is read as bool",
    ),
]:
    register(entry)
