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


# On a device with the quirk select_drops_signed_zero, floats pick the bits of
# a or b with integer masks, not `cond ? a : b`: over an f16 input, Intel's CPU runtime compiled where(x < 0, 0, x) as if zeros had
# no sign (it narrows the select to the half's bits and widens the condition
# to x <= 0), so -0.0 gave +0.0 (see activations' `_float_clamp`). The mask
# `-((M)(cond) & 1)` is all ones for a true cond, scalar (1) or vector (-1).
_MASK = "(-(({M})({cond}) & ({M})(1)))"
_FLOAT_WHERE = f"as_{{T}}((as_{{M}}({{a}}) & {_MASK}) | (as_{{M}}({{b}}) & ~{_MASK}))"

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
        {
            "float": "({cond} ? {a} : {b})",
            "float@select_drops_signed_zero": _FLOAT_WHERE,
            "int": "({cond} ? {a} : {b})",
        },
        _where,
        dtype_rule="where",
        backward={"a": "where(cond, g, 0)", "b": "where(cond, 0, g)"},  # cond is bool: none
        doc="cond ? a : b, all three broadcast together; cond is read as bool",
    ),
]:
    register(entry)
