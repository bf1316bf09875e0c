"""Activation ops, numerics as torch.nn.functional (NaN in, NaN out; -0.0 kept).

Conventions that matter here:
- Kinks are written as ternaries whose comparison is *false* for NaN, and
  whose false branch carries `{x}` through, so NaN propagates (fmax/fmin
  would drop it) and -0.0 stays -0.0, as in PyTorch.
- relu, relu6, hardtanh and clamp work on integers too: their one template is
  valid for float and int T alike (no float literals in it).
- Constants are written `(({T})(c))` so the same text serves float and double.
"""

from __future__ import annotations

import numpy as np

from ..registry import Primitive, register
from .math import _erf

SELU_ALPHA = "1.6732632423543772848170429916717"
SELU_SCALE = "1.0507009873554804934193349852946"
SQRT1_2 = "0.70710678118654752440"  # 1 / sqrt(2)
SQRT_2_OVER_PI = "0.79788456080286535588"  # sqrt(2 / pi)
TWO_SQRT_2_OVER_PI = "1.59576912160573071176"  # 2 sqrt(2 / pi)


def _c(value: str) -> str:
    """A constant of the compute type, valid for scalar and vector T."""
    return "(({T})(" + value + "))"


# min(max(v, lo), hi) with NaN propagating, in torch.clamp's order (if lo > hi
# the result is hi). {v} is repeated; the OpenCL compiler folds the copies.
def _clamp_template(v: str, lo: str, hi: str) -> str:
    low = f"({v} < {lo} ? {lo} : {v})"
    return f"({low} > {hi} ? {hi} : {low})"


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
# relu6(x + 3), shared by hardsigmoid and hardswish.
_RELU6_X3 = _clamp_template(f"({{x}} + {_c('3')})", "{ZERO}", _c("6"))


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
    Primitive("relu", ("x",), "({x} < {ZERO} ? {ZERO} : {x})", _np_relu),
    Primitive("relu6", ("x",), _clamp_template("{x}", "{ZERO}", _c("6")), _np_relu6),
    Primitive(
        "hardtanh",
        ("x",),
        _clamp_template("{x}", "{min_val}", "{max_val}"),
        _np_hardtanh,
        attrs={"min_val": -1.0, "max_val": 1.0},
    ),
    Primitive(
        "clamp",
        ("x",),
        _clamp_template("{x}", "{min}", "{max}"),
        _np_clamp,
        attrs={"min": float("-inf"), "max": float("inf")},
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
    ),
    Primitive(
        "elu",
        ("x",),
        "({x} > {ZERO} ? {x} : {alpha} * expm1({x}))",
        _np_elu,
        dtype_rule="float",
        attrs={"alpha": 1.0},
    ),
    Primitive(
        "selu",
        ("x",),
        f"({_c(SELU_SCALE)} * ({{x}} > {{ZERO}} ? {{x}} : {_c(SELU_ALPHA)} * expm1({{x}})))",
        _np_selu,
        dtype_rule="float",
    ),
    Primitive(
        "celu",
        ("x",),
        "({x} > {ZERO} ? {x} : {alpha} * expm1({x} / {alpha}))",
        _np_celu,
        dtype_rule="float",
        attrs={"alpha": 1.0},
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
        doc="exact: x/2 (1 + erf(x/sqrt 2)); tanh: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
    ),
    # x / (1 + exp(-x)) as torch: silu(-inf) is nan, silu(inf) is inf.
    Primitive("silu", ("x",), "({x} / ({ONE} + fu_exp_{T}(-({x}))))", _np_silu, dtype_rule="float"),
    # torch's mish has no softplus threshold: exp overflows to inf and tanh(inf) = 1.
    Primitive("mish", ("x",), "({x} * fu_tanh_{T}(log1p(fu_exp_{T}({x}))))", _np_mish, dtype_rule="float"),
    Primitive(
        "softplus",
        ("x",),
        "({x} * {beta} > {threshold} ? {x} : log1p(exp({x} * {beta})) / {beta})",
        _np_softplus,
        dtype_rule="float",
        attrs={"beta": 1.0, "threshold": 20.0},
    ),
    Primitive(
        "hardsigmoid", ("x",), f"({_RELU6_X3} / {_c('6')})", _np_hardsigmoid, dtype_rule="float"
    ),
    # x * relu6(x + 3) / 6 in torch's order: hardswish(-inf) is nan, x < -3 gives -0.
    Primitive(
        "hardswish",
        ("x",),
        f"({{x}} * {_RELU6_X3} / {_c('6')})",
        _np_hardswish,
        dtype_rule="float",
    ),
    Primitive(
        "prelu",
        ("x", "weight"),
        "({x} > {ZERO} ? {x} : {weight} * {x})",
        _np_prelu,
        dtype_rule="float",
        doc=(
            "x > 0 ? x : weight * x. Unlike torch's per-channel (dim 1) weight, "
            "weight broadcasts against x by NumPy rules; give it shape [C, 1, 1] "
            "for an NCHW x to get torch's behaviour."
        ),
    ),
]:
    register(entry)
