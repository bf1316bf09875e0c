"""OpenCL C spelling shared by every kernel generator: the C type each dtype
computes and is stored in, identifiers, literals, conversions, and an op's
template rendered over a vector width."""

from __future__ import annotations

import math
import re
import string

from ..ir import dtypes as dt

# Register type each dtype computes in: f16 is carried in f32 and rounded once
# when stored (the spec's rule); bool is an int mask (scalar 0/1, vector 0/-1,
# OpenCL's own convention for comparisons).
COMPUTE = {
    "f16": "float",
    "f32": "float",
    "f64": "double",
    "i32": "int",
    "i64": "long",
    "bool": "int",
}
STORAGE = {
    "f16": "half",
    "f32": "float",
    "f64": "double",
    "i32": "int",
    "i64": "long",
    "bool": "uchar",
}
MASK = {"float": "int", "double": "long", "int": "int", "long": "long"}
CTYPE_BYTES = {"char": 1, "uchar": 1, "half": 2, "int": 4, "float": 4, "long": 8, "double": 8}


# argument kinds passed as `long` by value: extents, element counts


def vec(t: str, w: int) -> str:
    return t if w == 1 else f"{t}{w}"


def c_name(param: str) -> str:
    """The C identifier of a parameter. IR names may be anything C spells an
    identifier: `i`, `n`, `p0`, `out0` (the kernel's own names), `float`,
    `half`, `global` (OpenCL C keywords), `NAN`, `fmax`, `vload8` (its macros
    and builtins); a parameter named `i` broke the build. A fixed prefix is
    injective and none of those start with it."""
    return f"in_{param}"


def temp_name(node: int) -> str:
    """The buffer holding a stored value (a reduction's result) between kernels."""
    return f"tmp_{node}"


def composed_vector(ctype: str, w: int, ptr: str) -> str:
    """w consecutive values at `ptr` (any alignment) as one vector, spelled as
    scalar loads compilers merge into one: PoCL 3.0 calls vloadN out of line,
    and every call spills the registers in use (DeviceInfo.compose_vector_access)."""
    return f"(({ctype}{w})({', '.join(f'({ptr})[{k}]' for k in range(w))}))"


def literal(value, ctype: str, w: int) -> str:
    """A literal of the compute type (scalar type name), splatted for vectors."""
    if ctype in ("float", "double"):
        v = float(value)
        if math.isnan(v):
            s = "NAN"
        elif math.isinf(v):
            s = "INFINITY" if v > 0 else "(-INFINITY)"
        elif ctype == "float":
            s = f"{v:.9g}" + ("" if any(c in f"{v:.9g}" for c in ".en") else ".0") + "f"
        else:
            s = f"{v:.17g}" + ("" if any(c in f"{v:.17g}" for c in ".en") else ".0")
        if s in ("NAN", "INFINITY", "(-INFINITY)") and ctype == "double":
            s = f"(double){s}"
    else:
        v = value
        if isinstance(v, float) and math.isinf(v):
            s = {"int": "INT_MAX", "long": "LONG_MAX"}[ctype]
            s = s if v > 0 else f"({s.replace('MAX', 'MIN')})"
        else:
            v = int(v)
            s = str(v) + ("L" if ctype == "long" else "")
            if v < 0:
                s = f"({s})"
    return s if w == 1 else f"(({ctype}{w})({s}))"


def convert(expr: str, src: str, dst: str, w: int) -> str:
    """Convert a register value between dtypes (dtypes, not C types)."""
    s, d = COMPUTE[dt.concrete(src)], COMPUTE[dt.concrete(dst)]
    src_bool, dst_bool = dt.concrete(src) == "bool", dt.concrete(dst) == "bool"
    if src_bool == dst_bool and s == d:
        return expr
    if dst_bool:  # numeric -> mask
        if w == 1:
            return f"(int)(({expr}) != {literal(0, s, 1)})"
        return f"convert_int{w}(({expr}) != {literal(0, s, w)})"
    if src_bool:  # mask -> 0/1 number
        return f"(({d})({expr}))" if w == 1 else f"convert_{d}{w}(-({expr}))"
    return f"(({d})({expr}))" if w == 1 else f"convert_{d}{w}({expr})"


def to_mask(expr: str, value_ctype: str, w: int) -> str:
    """A bool mask as the integer vector type that `?:` needs beside `value_ctype`."""
    m = MASK[value_ctype]
    if w == 1 or m == "int":
        return expr
    return f"convert_{m}{w}({expr})"


def _width_fields(ct: str, attrs: dict, w: int) -> dict:
    """The placeholders of a template that depend on the vector width."""
    fields = {"T": vec(ct, w), "S": ct, "M": vec(MASK[ct], w), "W": "" if w == 1 else str(w)}
    fields["ONE"], fields["ZERO"] = literal(1, ct, w), literal(0, ct, w)
    # the identities of max and min: -inf and inf, or an integer type's extremes
    fields["LOWEST"], fields["HIGHEST"] = (
        literal(float("-inf"), ct, w),
        literal(float("inf"), ct, w),
    )
    for k, v in attrs.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            fields[k] = literal(v, ct, w)
    return fields


def render(
    template: str, operands: dict, ct: str, attrs: dict, w: int, cap: int, result_ct: str
) -> str:
    """The template over `w` lanes, as halves while `w` exceeds the op's `cap`."""
    if w <= cap or w == 1:
        return string.Formatter().vformat(template, (), {**_width_fields(ct, attrs, w), **operands})
    h = w // 2
    lo, hi = (
        render(
            template,
            {k: f"({e}).{part}" for k, e in operands.items()},
            ct,
            attrs,
            h,
            cap,
            result_ct,
        )
        for part in ("lo", "hi")
    )
    return f"(({vec(result_ct, w)})({lo}, {hi}))"


# calls that are an instruction or two, not a math library routine
_CHEAP_CALL = re.compile(
    r"(vload|vstore|convert_|as_|select|isnan|isinf|isfinite|fabs|floor|ceil|rint|trunc|round"
    r"|min|max|fmin|fmax|clamp|copysign|any|all)"
)


def math_calls(lines: list[str]) -> int:
    """Calls of math routines (exp, tanh, erf, pow, fusec's helpers) in C code."""
    names = re.findall(r"\b([a-z_][a-z0-9_]*)\(", "\n".join(lines))
    return sum(1 for name in names if not _CHEAP_CALL.match(name))
