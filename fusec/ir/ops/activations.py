"""Activation ops, numerics as torch.nn.functional (NaN in, NaN out; -0.0 kept).

Conventions that matter here:
- Kinks are written as ternaries whose comparison is *false* for NaN, and
  whose false branch carries `{x}` through, so NaN propagates (fmax/fmin
  would drop it) and -0.0 stays -0.0, as in PyTorch (for a comparison with
  zero in relu and the clamps, see `_float_clamp`).
- relu, relu6, hardtanh and clamp work on integers too: each has a float
  template (see `_float_clamp`) and an integer one (no float literals in it).
- Constants are written `(({T})(c))` so the same text serves float and double.
"""

from __future__ import annotations

import numpy as np

from ..registry import Primitive, register
from .math import _erf

SELU_ALPHA = "1.6732632423543772848170429916717"
SELU_SCALE = "1.0507009873554804934193349852946"
SELU_ALPHA_SCALE = "1.7580993408473768599402175208123"  # SELU_ALPHA * SELU_SCALE
SQRT1_2 = "0.70710678118654752440"  # 1 / sqrt(2)
SQRT_2_OVER_PI = "0.79788456080286535588"  # sqrt(2 / pi)
TWO_SQRT_2_OVER_PI = "1.59576912160573071176"  # 2 sqrt(2 / pi)


def _c(value: str) -> str:
    """A constant of the compute type, valid for scalar and vector T."""
    return "(({T})(" + value + "))"


# min(max(v, lo), hi) with NaN propagating, in torch.clamp's order (if lo > hi
# the result is hi). {v} is repeated; the OpenCL compiler folds the copies.
def _int_clamp(v: str, lo: str, hi: str) -> str:
    low = f"({v} < {lo} ? {lo} : {v})"
    return f"({low} > {hi} ? {hi} : {low})"


# Floats: the same selects (NaN stays NaN, -0.0 stays -0.0 on a tie). On a
# device with the quirk select_drops_signed_zero, a comparison with a bound
# that is zero (relu, relu6, clamp(min=0), hardtanh(0, ...)) is made on the
# bits. Why: Intel's CPU runtime compiled `v < 0 ? 0 : v` over an f16 input, in some mixes of ops
# (relu with relu6; clamp(min=0) with elu and hardtanh(0, 0)), as if zeros had
# no sign: it narrowed the select to the half's bits and widened the condition
# to v <= 0, so relu(-0.0) gave +0.0 (torch keeps v on a tie: -0.0). isless,
# select() and selects of the bits went just as wrong; fmax with the sign
# fixed after it was right but made relu 1.7x slower. Widening the condition
# is harmless for a non-zero bound (equal values have equal bits there), and
# a bound is a literal, so `{lo} == 0 ? bits : float` folds at compile time.
#   v < 0 (v < -0 alike): the bits less (-0.0's bits + 1) are below +inf's
#     (unsigned, wrapping): the negative numbers from -denorm_min to -inf.
#   v > 0: the bits less 1 are below +inf's: +denorm_min to +inf.
def _below_zero(v: str) -> str:
    return f"((as_u{{M}}({v}) - as_u{{M}}(-{{ZERO}}) - (u{{M}})(1)) < as_u{{M}}(({{T}})(INFINITY)))"


def _above_zero(v: str) -> str:
    return f"((as_u{{M}}({v}) - (u{{M}})(1)) < as_u{{M}}(({{T}})(INFINITY)))"


def _float_clamp(v: str, lo: str, hi: str | None) -> str:
    low = f"(({lo} == {{ZERO}} ? {_below_zero(v)} : {v} < {lo}) ? {lo} : {v})"
    if hi is None:
        return low
    return f"(({hi} == {{ZERO}} ? {_above_zero(low)} : {low} > {hi}) ? {hi} : {low})"


def _clamp_templates(v: str, lo: str, hi: str | None) -> dict[str, str]:
    plain = _int_clamp(v, lo, hi) if hi is not None else f"({v} < {lo} ? {lo} : {v})"
    return {"float": plain, "float@select_drops_signed_zero": _float_clamp(v, lo, hi), "int": plain}


GELU_EXACT = f"({_c('0.5')} * {{x}} * ({{ONE}} + erf({{x}} * {_c(SQRT1_2)})))"
# torch's tanh form is x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
# Written here as the identity 1 + tanh(u) = 2 / (1 + exp(-2u)): PoCL's tanh
# does not reach -1 exactly (tanh(-100) = -1 + 6e-8 in f32), so the torch form
# gave gelu(-1e30) = -3e22 and gelu(-inf) = -inf instead of -0 and nan. This
# form saturates (exp(+inf) = inf), keeps NaN, -0.0 and gelu(-inf) = nan, and
# has no cancellation for negative x.
GELU_TANH = (
    f"({{x}} / ({{ONE}} + fu_exp_{{T}}({_c('-' + TWO_SQRT_2_OVER_PI)} * "
    f"({{x}} + {_c('0.044715')} * {{x}} * {{x}} * {{x}}))))"
)
# Backward templates (IR), torch's formulas. Where torch's CPU kernels differ
# between their scalar loop (tensors shorter than one SIMD vector) and their
# vector loop, these follow the vector loop: at NaN, elu/selu/celu and
# hardswish give NaN and hardtanh/relu6 give 0 (the scalar loop gives g).
#
# gelu_backward: g (cdf + x pdf), cdf = (1 + erf(x / sqrt 2)) / 2,
# pdf = exp(-x^2 / 2) / sqrt(2 pi).
GELU_BACKWARD = (
    f"g * (0.5 * (1 + erf(x * {SQRT1_2})) + x * (0.39894228040143267794 * exp(x * x * -0.5)))"
)
# tanh form: t = tanh(sqrt(2/pi) (x + 0.044715 x^3));
# g ((1 + t) / 2 + (x / 2) (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))
_GELU_T = f"tanh({SQRT_2_OVER_PI} * (x + 0.044715 * (x * x * x)))"
GELU_TANH_BACKWARD = (
    f"g * (0.5 * (1 + {_GELU_T}) + 0.5 * x * (1 - {_GELU_T} * {_GELU_T})"
    f" * ({SQRT_2_OVER_PI} * (1 + 3 * 0.044715 * (x * x))))"
)
# mish_backward: g (t + x sigmoid(x) (1 - t^2)), t = tanh(softplus(x)), no threshold
_MISH_T = "tanh(log1p(exp(x)))"
MISH_BACKWARD = f"g * ({_MISH_T} + x * sigmoid(x) * (1 - {_MISH_T} * {_MISH_T}))"

# relu6(x + 3), shared by hardsigmoid and hardswish.
# x + 3 is never -0.0 and the bounds 0 and 6 meet no tie of zeros: the plain
# form is exact here.
_RELU6_X3 = _int_clamp(f"({{x}} + {_c('3')})", "{ZERO}", _c("6"))


# --- NumPy references (compute in x.dtype; attributes cast to it, as codegen
# renders them as literals of the compute type) ----------------------------


def _k(x, value):
    return x.dtype.type(value)


def _np_clamp(x, min=float("-inf"), max=float("inf")):
    y = x
    integer = not np.issubdtype(x.dtype, np.floating)
    if not (integer and np.isinf(min)):  # -inf on an int tensor: no lower bound
        y = np.where(y < min, _k(x, min), y)
    if not (integer and np.isinf(max)):
        y = np.where(y > max, _k(x, max), y)
    return y.astype(x.dtype, copy=False)


def _np_relu(x):
    return _np_clamp(x, 0, float("inf"))


def _np_relu6(x):
    return _np_clamp(x, 0, 6)


def _np_hardtanh(x, min_val=-1.0, max_val=1.0):
    return _np_clamp(x, min_val, max_val)


def _np_leaky_relu(x, alpha=0.01):
    return np.where(x > 0, x, x * _k(x, alpha))


def _np_elu(x, alpha=1.0):
    with np.errstate(all="ignore"):
        return np.where(x > 0, x, _k(x, alpha) * np.expm1(x))


def _np_selu(x):
    with np.errstate(all="ignore"):
        neg = _k(x, float(SELU_ALPHA)) * np.expm1(x)
        return _k(x, float(SELU_SCALE)) * np.where(x > 0, x, neg)


def _np_celu(x, alpha=1.0):
    a = _k(x, alpha)
    with np.errstate(all="ignore"):
        return np.where(x > 0, x, a * np.expm1(x / a))


def _np_gelu(x, approximate="none"):
    half, one = _k(x, 0.5), _k(x, 1)
    with np.errstate(all="ignore"):
        if approximate == "tanh":
            inner = _k(x, float(SQRT_2_OVER_PI)) * (x + _k(x, 0.044715) * x * x * x)
            return half * x * (one + np.tanh(inner))
        return half * x * (one + _erf(x * _k(x, float(SQRT1_2))))


def _np_silu(x):
    with np.errstate(all="ignore"):
        return x / (_k(x, 1) + np.exp(-x))


def _np_mish(x):
    with np.errstate(all="ignore"):
        return x * np.tanh(np.log1p(np.exp(x)))


def _np_softplus(x, beta=1.0, threshold=20.0):
    b = _k(x, beta)
    with np.errstate(all="ignore"):
        return np.where(x * b > _k(x, threshold), x, np.log1p(np.exp(x * b)) / b)


def _np_hardsigmoid(x):
    with np.errstate(all="ignore"):
        return _np_relu6(x + _k(x, 3)) / _k(x, 6)


def _np_hardswish(x):
    with np.errstate(all="ignore"):
        return x * _np_relu6(x + _k(x, 3)) / _k(x, 6)


def _np_prelu(x, weight):
    with np.errstate(all="ignore"):
        return np.where(x > 0, x, weight * x)


for entry in [
    Primitive(
        "relu",
        ("x",),
        _clamp_templates("{x}", "{ZERO}", None),
        _np_relu,
        backward={"x": "where(out <= 0, 0, g)"},  # torch's threshold_backward: 0 at 0
    ),
    # torch's relu6 is hardtanh(x, 0, 6): no gradient at either bound
    Primitive(
        "relu6",
        ("x",),
        _clamp_templates("{x}", "{ZERO}", _c("6")),
        _np_relu6,
        backward={"x": "where(logical_and(x > 0, x < 6), g, 0)"},
    ),
    Primitive(
        "hardtanh",
        ("x",),
        _clamp_templates("{x}", "{min_val}", "{max_val}"),
        _np_hardtanh,
        attrs={"min_val": -1.0, "max_val": 1.0},
        backward={"x": "where(logical_and(x > min_val, x < max_val), g, 0)"},
    ),
    Primitive(
        "clamp",
        ("x",),
        _clamp_templates("{x}", "{min}", "{max}"),
        _np_clamp,
        attrs={"min": float("-inf"), "max": float("inf")},
        dtype_rule="bounds",  # clamp(k, min=1.5) of an integer k is f32, as torch's
        # torch's clamp_backward: the gradient passes at the bounds (unlike
        # hardtanh's) and is 0 at NaN; an infinite (absent) bound passes all
        backward={"x": "where(logical_and(x >= min, x <= max), g, 0)"},
        doc=(
            "torch.clamp(x, min, max). An absent bound defaults to -inf/+inf, "
            "which leaves NaN and every float in place; for integer compute "
            "types codegen must render an infinite bound as the type's min/max."
        ),
    ),
    Primitive(
        "leaky_relu",
        ("x",),
        "({x} > {ZERO} ? {x} : {x} * {alpha})",
        _np_leaky_relu,
        dtype_rule="float",
        attrs={"alpha": 0.01},
        backward={"x": "where(x > 0, g, g * alpha)"},
    ),
    Primitive(
        "elu",
        ("x",),
        "({x} > {ZERO} ? {x} : {alpha} * expm1({x}))",
        _np_elu,
        dtype_rule="float",
        attrs={"alpha": 1.0},
        # torch's elu_backward from x (not from the result: that is elu_'s)
        backward={"x": "where(x > 0, g, g * alpha * exp(x))"},
    ),
    Primitive(
        "selu",
        ("x",),
        f"({_c(SELU_SCALE)} * ({{x}} > {{ZERO}} ? {{x}} : {_c(SELU_ALPHA)} * expm1({{x}})))",
        _np_selu,
        dtype_rule="float",
        # elu_backward with alpha * scale and scale
        backward={"x": f"where(x > 0, g * {SELU_SCALE}, g * {SELU_ALPHA_SCALE} * exp(x))"},
    ),
    Primitive(
        "celu",
        ("x",),
        "({x} > {ZERO} ? {x} : {alpha} * expm1({x} / {alpha}))",
        _np_celu,
        dtype_rule="float",
        attrs={"alpha": 1.0},
        # torch's celu is elu(x, alpha, input_scale=1/alpha): its elu_backward
        backward={"x": "where(x > 0, g, g * (1 / alpha) * alpha * exp(x * (1 / alpha)))"},
    ),
    # The template depends on a string attribute: the key "float|approximate=tanh"
    # holds the tanh form; codegen picks it for approximate="tanh".
    Primitive(
        "gelu",
        ("x",),
        {"float": GELU_EXACT, "float|approximate=tanh": GELU_TANH},
        _np_gelu,
        dtype_rule="float",
        attrs={"approximate": "none"},
        attr_choices={"approximate": ("none", "tanh")},
        backward={"x": GELU_BACKWARD, "x|approximate=tanh": GELU_TANH_BACKWARD},
        doc="exact: x/2 (1 + erf(x/sqrt 2)); tanh: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
    ),
    # x / (1 + exp(-x)) as torch: silu(-inf) is nan, silu(inf) is inf.
    Primitive(
        "silu",
        ("x",),
        "({x} / ({ONE} + fu_exp_{T}(-({x}))))",
        _np_silu,
        dtype_rule="float",
        backward={"x": "g * sigmoid(x) * (1 + x * (1 - sigmoid(x)))"},
    ),
    # torch's mish has no softplus threshold: exp overflows to inf and tanh(inf) = 1.
    Primitive(
        "mish",
        ("x",),
        "({x} * fu_tanh_{T}(log1p(fu_exp_{T}({x}))))",
        _np_mish,
        dtype_rule="float",
        backward={"x": MISH_BACKWARD},
    ),
    Primitive(
        "softplus",
        ("x",),
        "({x} * {beta} > {threshold} ? {x} : log1p(exp({x} * {beta})) / {beta})",
        _np_softplus,
        dtype_rule="float",
        attrs={"beta": 1.0, "threshold": 20.0},
        # torch's softplus_backward: g above the threshold, else g z / (z + 1), z = e^(beta x)
        backward={"x": "where(x * beta > threshold, g, g * exp(x * beta) / (exp(x * beta) + 1))"},
    ),
    # torch: g / 6 strictly inside (-3, 3), 0 at and beyond +-3 and at NaN. torch
    # multiplies by 1/6 rounded to float, in f64 too (0.1666666716...); here it
    # is 1/6 in the compute type.
    Primitive(
        "hardsigmoid",
        ("x",),
        f"({_RELU6_X3} / {_c('6')})",
        _np_hardsigmoid,
        dtype_rule="float",
        backward={"x": "where(logical_and(x > -3, x < 3), g * 0.16666666666666666, 0)"},
    ),
    # x * relu6(x + 3) / 6 in torch's order: hardswish(-inf) is nan, x < -3 gives -0.
    Primitive(
        "hardswish",
        ("x",),
        f"({{x}} * {_RELU6_X3} / {_c('6')})",
        _np_hardswish,
        dtype_rule="float",
        # torch's hardswish_backward: 0 up to -3 (included), g (x/3 + 1/2) below 3, g from 3 on
        backward={"x": "where(x <= -3, 0, where(x >= 3, g, g * (x / 3 + 0.5)))"},
    ),
    Primitive(
        "prelu",
        ("x", "weight"),
        "({x} > {ZERO} ? {x} : {weight} * {x})",
        _np_prelu,
        dtype_rule="float",
        backward={"x": "where(x > 0, g, weight * g)", "weight": "where(x > 0, 0, x * g)"},
        doc=(
            "x > 0 ? x : weight * x. Unlike torch's per-channel (dim 1) weight, "
            "weight broadcasts against x by NumPy rules; give it shape [C, 1, 1] "
            "for an NCHW x to get torch's behaviour."
        ),
    ),
]:
    register(entry)
