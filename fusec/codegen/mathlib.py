"""Inline math for kernels: exp and tanh written in arithmetic; integer pow.

PoCL calls OpenCL builtins out of line, and a call stops the vectoriser; a
transcendental chain ran 1.7x faster with these written inline (see
shared/notes/opencl-facts.md). Templates name a helper with the value's type
(`fu_exp_{T}({x})`); code generation emits the definitions a kernel uses, for
exactly the types it uses them at. Only float gets the inline version: double
keeps the builtins, whose accuracy the f64 tests pin. A device whose builtin
is both accurate and fast takes it at float too (DeviceInfo.fast_builtins:
Intel's CPU runtime's exp and tanh: as accurate, 1.5x and 1.2x as fast).

Accuracy (float, checked in tests against float64 NumPy): exp within 2 ulp
over its range, subnormal results included; tanh within 3 ulp.

`fu_ipow_{T}(a, b)` (T int or long, scalar or vector) is integer pow as
torch computes it: exact, wrapping around on overflow; a negative exponent
gives 0 except for a base of 1 or -1. It takes two operands, the others one.
"""

from __future__ import annotations

import re

_HELPER = re.compile(r"\bfu_(exp|tanh|ipow)_(float|double|int|long)(\d*)\b")

# Cody-Waite reduction x = k*ln2 + r, then Cephes' expf polynomial on r; 2^k
# is applied in two halves so that results down to the subnormals are exact
# and the bit patterns stay in range. 12582912 = 1.5 * 2^23 rounds to nearest.
_EXP_FLOAT = """\
static inline {T} fu_exp_{T}(const {T} x)
{{
    const {T} xc = x < ({T})(-104.0f) ? ({T})(-104.0f) : (x > ({T})(89.0f) ? ({T})(89.0f) : x);
    const {T} kf = (xc * ({T})(1.44269504088896341f) + ({T})(12582912.0f)) - ({T})(12582912.0f);
    const {T} r = (xc - kf * ({T})(0.693359375f)) - kf * ({T})(-2.12194440e-4f);
    const {T} r2 = r * r;
    const {T} p = ((((({T})(1.9875691500e-4f) * r + ({T})(1.3981999507e-3f)) * r
        + ({T})(8.3334519073e-3f)) * r + ({T})(4.1665795894e-2f)) * r
        + ({T})(1.6666665459e-1f)) * r + ({T})(5.0000001201e-1f);
    const {T} e = p * r2 + r + ({T})(1.0f);
    const {I} k = as_{I}(kf + ({T})(12582912.0f)) - ({I})(0x4B400000);
    const {I} k1 = k >> 1;
    const {T} s1 = as_{T}((k1 + ({I})(127)) << 23);
    const {T} s2 = as_{T}((k - k1 + ({I})(127)) << 23);
    const {T} y = e * s1 * s2;
    return x != x ? x : (x > ({T})(88.7228394f) ? ({T})(INFINITY) : (x < ({T})(-103.972084f) ? ({T})(0.0f) : y));
}}
"""

# Cephes' tanhf: an odd polynomial below 0.625, 1 - 2/(e^2|x| + 1) above it.
_TANH_FLOAT = """\
static inline {T} fu_tanh_{T}(const {T} x)
{{
    const {I} bits = as_{I}(x);
    const {T} ax = as_{T}(bits & ({I})(0x7fffffff));
    const {T} z = x * x;
    // x * (1 + z*P) rather than x + x*z*P: keeps tanh(-0.0) = -0.0
    const {T} small = x * (({T})(1.0f) + ((((({T})(-5.70498872745e-3f) * z + ({T})(2.06390887954e-2f)) * z
        + ({T})(-5.37397155531e-2f)) * z + ({T})(1.33314422036e-1f)) * z
        + ({T})(-3.33332819422e-1f)) * z);
    const {T} big = ({T})(1.0f) - ({T})(2.0f) / (fu_exp_{T}(ax + ax) + ({T})(1.0f));
    const {T} signed_big = as_{T}(as_{I}(big) | (bits & ({I})(0x80000000)));
    return ax < ({T})(0.625f) ? small : signed_big;
}}
"""

# Repeated squaring in the unsigned type: its products wrap (signed overflow is
# undefined in C), and the low bits are those of the wrapped signed product.
# The loop runs while any lane has exponent bits left (at most 63 times).
_IPOW = """\
static inline {T} fu_ipow_{T}(const {T} a, const {T} b)
{{
    {U} base = as_{U}(a), r = ({U})(1);
    {U} e = as_{U}(b < ({T})(0) ? ({T})(0) : b);
    while ({ANY}) {{
        r = (e & ({U})(1)) != ({U})(0) ? r * base : r;
        base *= base;
        e >>= ({U})(1);
    }}
    const {T} tiny = a == ({T})(1) ? ({T})(1) : (a == ({T})(-1) ? (((b & ({T})(1)) != ({T})(0)) ? ({T})(-1) : ({T})(1)) : ({T})(0));
    return b < ({T})(0) ? tiny : as_{T}(r);
}}
"""

_BUILTIN = """\
static inline {T} fu_{name}_{T}(const {T} x)
{{
    return {name}(x);
}}
"""

_DEPENDS = {"tanh": ["exp"]}


def _definition(name: str, scalar: str, width: str, builtin: frozenset = frozenset()) -> str:
    t = f"{scalar}{width}"
    if name == "ipow":
        u = f"u{scalar}{width}"
        return _IPOW.format(T=t, U=u, ANY=f"any(e != ({u})(0))" if width else "e != 0")
    if scalar == "float" and name not in builtin:
        template = {"exp": _EXP_FLOAT, "tanh": _TANH_FLOAT}[name]
        return template.format(T=t, I=f"int{width}")
    return _BUILTIN.format(T=t, name=name)


def helpers_for(source: str, builtin: frozenset = frozenset()) -> str:
    """Definitions of the helpers `source` calls, dependencies first; those
    named in `builtin` call the driver's builtin at float too (its `fast_builtins`)."""
    wanted = sorted(set(_HELPER.findall(source)))
    done, out = set(), []

    def emit(name, scalar, width):
        if (name, scalar, width) in done:
            return
        for dep in _DEPENDS.get(name, []):
            if scalar == "float":
                emit(dep, scalar, width)
        done.add((name, scalar, width))
        out.append(_definition(name, scalar, width, builtin))

    for name, scalar, width in wanted:
        emit(name, scalar, width)
    return "\n".join(out)
