"""Conversion: cast(x, dtype=...), the spec's explicit dtype change.

The template is the identity: codegen computes in the operand's type (the
"cast" dtype rule) and its one conversion to the result dtype is the cast,
with C's semantics (float -> int truncates toward zero, as torch's `.to`;
anything -> bool is `!= 0`, so NaN is true).
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..registry import REQUIRED, Primitive, register


def _np_cast(x, dtype):
    # the attribute arrives as ("dtype", name), the parser's form for a dtype
    name = dtype[1] if isinstance(dtype, tuple) else dtype
    with np.errstate(all="ignore"):
        return np.asarray(x).astype(dt.NUMPY[name])


register(
    Primitive(
        "cast",
        ("x",),
        "({x})",
        _np_cast,
        dtype_rule="cast",
        attrs={"dtype": REQUIRED},
        # the parser gives a dtype attribute as ("dtype", name); a string or a
        # number here would be misread by infer, so only dtypes are accepted
        attr_choices={"dtype": tuple(("dtype", d) for d in dt.DTYPES)},
        # g, in the result's dtype; autodiff casts it back to the operand's
        backward={"x": "g"},
        doc="x converted to `dtype` (f16 f32 f64 i32 i64 bool)",
    )
)
