"""One record per op: how the op tests check it against PyTorch (CPU).

Three test files read this table, each for its own check:

- tests/test_op_references.py: the registry's NumPy reference against torch
  (every registered op, internal ones included);
- tests/test_ops_opencl.py: the generated OpenCL kernel against torch (the
  elementwise ops IR text can call);
- tests/test_grad_ops.py: the backward templates against torch.autograd (the
  elementwise ops with a float result).

Which of the three applies to an op follows from its registry entry; an op of
the registry without a record here, or a record for an op that is not
registered, fails a test in each file. torch is the independent oracle: the
registry's own NumPy references are checked here, never used as one.

Attribute values are written as in IR text (a dtype as its name, "f32").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

F = torch.nn.functional

INF, NAN = float("inf"), float("nan")
DTYPES = ("f16", "f32", "f64", "i32", "i64", "bool")
TORCH_DTYPES = {"f16": torch.float16, "f32": torch.float32, "f64": torch.float64,
                "i32": torch.int32, "i64": torch.int64, "bool": torch.bool}  # fmt: skip

# -- tolerances ------------------------------------------------------------------

# The NumPy reference against torch, both on the CPU: a float op, to the ulp or so.
REF_RTOL = {"f32": 1e-5, "f64": 1e-12}
# The kernel against torch, per dtype of the result; f16 is always within an
# f16 ulp of the rounded f32 answer (see tests/test_ops_opencl.py).
RTOL = {"f16": 2e-3, "f32": 1e-5, "f64": 1e-12}
TRANSCENDENTAL = {"f32": 2e-5, "f64": 1e-12}
# Gradients. f32: a few ulps (2^-23 is 1.2e-7) relative; f64 likewise.
# `grad_atol` is per unit of cotangent. Where a derivative subtracts numbers
# near 1 (tanh's 1 - out^2 at out = tanh(6), sigmoid's 1 - out, expm1's out + 1
# at out = -1 + 6e-17, gelu's and mish's terms) the error is a rounding of
# those numbers, an ulp of 1, whatever the result's size; torch's tanh and
# ours differ by an ulp there, and ours fuses 1 - out * out into one rounding:
# 2 ulps of 1.
GRAD_RTOL = {"f32": 5e-7, "f64": 1e-15}
GRAD_ATOL = {"f32": 0.0, "f64": 0.0}
GRAD_TRANSCENDENTAL = {"f32": 2e-6, "f64": 4e-15}
GRAD_CANCELS = {"f32": 2.4e-7, "f64": 4.5e-16}


@dataclass(frozen=True)
class OpSpec:
    """How to check one op against torch.

    `torch`: the oracle, fn(*tensors, **attrs) with the registry's input order
    and attribute names. test_op_references passes every attribute (the
    registry's defaults filled in); the other two pass only a variant's, so
    the oracle's defaults are torch's and those tests pin the registry's
    defaults to them.
    `ints`: what integer inputs give: None (floats only), "int" (an integer
    result, as in torch; the NumPy reference is checked on integers too) or
    "float" (they compute in f32, as torch.exp(int) does).
    `bools`: also checked on bool operands.
    `int_exponent`: the second operand is an exponent: integer cases raise to
    small non-negative powers (NumPy raises on negative ones), the kernels
    also to negative ones and up to 63.
    `variants`: attribute sets checked, each a dict over the defaults: on float
    and bool inputs, and on integer ones unless `int_variants` is given.
    `defined`: fn(x, **attrs) -> mask of the elements whose result is defined
    (float -> int casts: only in range); the rest are not compared.
    `make`: for ops that are not elementwise (reductions, GEMMs) or whose
    attributes fix a shape: fn(numpy dtype) -> the input arrays.
    `rtol`, `atol`: the kernel against torch, per result dtype, over RTOL.
    `ref_atol`: the NumPy reference against torch, per dtype.
    `kinks`: x values worth hitting in the gradient check (unary ops), beside
    the special values and the variant's bounds.
    `grad_rtol`, `grad_atol`: the gradient against torch.autograd, over
    GRAD_RTOL and GRAD_ATOL: the error allowed is
    grad_atol * |g| + grad_rtol * max(|torch's|, the smallest normal number).
    `inf_from_f64`: at x = +inf, torch's f64 answer (see gelu).
    """

    torch: Callable
    ints: str | None = None
    bools: bool = False
    int_exponent: bool = False
    variants: tuple[dict, ...] = ({},)
    int_variants: tuple[dict, ...] | None = None
    defined: Callable | None = None
    make: Callable | None = None
    rtol: dict = field(default_factory=dict)
    atol: dict = field(default_factory=dict)
    ref_atol: dict = field(default_factory=dict)
    kinks: tuple[float, ...] = ()
    grad_rtol: dict = field(default_factory=dict)
    grad_atol: dict = field(default_factory=dict)
    inf_from_f64: bool = False

    def __post_init__(self):
        assert self.ints in (None, "int", "float"), self.ints
        if self.int_variants is None:
            object.__setattr__(self, "int_variants", self.variants)


# -- oracles and inputs ----------------------------------------------------------------


def _clamp(x, min=-INF, max=INF):
    # An absent bound is +-inf, as in the registry; on an int tensor torch
    # needs None (inf would make the result float).
    if not x.is_floating_point():
        min, max = (None if abs(v) == INF else v for v in (min, max))
    return torch.clamp(x, min=min, max=max)


def _prelu(x, w):
    # torch's weight is per channel (dim 1): lay x out as [1, C] to pair elementwise
    return F.prelu(x.reshape(1, -1), w.reshape(-1)).reshape(-1)


def _cast_defined(x, dtype):
    """float -> int is undefined in C out of range (inf, nan, 1e30)."""
    if dtype not in ("i32", "i64") or x.dtype.kind != "f":
        return np.ones(x.shape, dtype=bool)
    x = x.astype(np.float64)
    return np.isfinite(x) & (np.abs(x) < 2**31)


def _quarters(dtype, shape, seed):
    """Multiples of 1/4 in [-3, 3]: sums and products of a few are exact in any
    order, so a reduction or GEMM matches torch's whatever order each adds in."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-12, 13, shape)
    return q.astype(dtype) if np.issubdtype(dtype, np.integer) else (q / 4).astype(dtype)


def _rows(dtype):
    """A [5, 8] matrix; float rows 1-3 hold NaN, inf and inf beside -inf."""
    x = _quarters(dtype, (5, 8), 3)
    if np.issubdtype(dtype, np.floating):
        x[1, 3], x[2, 5], x[3, 0], x[3, 6] = NAN, INF, INF, -INF
    return [x]


def _with_ones(dtype):
    """A [1, 5, 1, 8, 1] tensor: squeeze takes a dimension of size 1."""
    return [_rows(dtype)[0].reshape(1, 5, 1, 8, 1)]


def _square_pair(dtype):
    return [_quarters(dtype, (6, 6), 4), _quarters(dtype, (6, 6), 5)]


def _gemm(a, b, ta, tb):
    return (a.T if ta else a) @ (b.T if tb else b)


def _axis_variants(keepdim=True):
    extra = ({"axis": 0, "keepdim": True}, {"axis": 1}) if keepdim else ({"axis": 0},)
    return ({}, *extra)


def _reduction(fn, **kw):
    return OpSpec(
        lambda x, axis, keepdim: fn(x, dim=axis, keepdim=keepdim),
        make=_rows,
        variants=_axis_variants(),
        **kw,
    )


# -- the table -------------------------------------------------------------------------

_TRANSCENDENTAL = dict(rtol=TRANSCENDENTAL, grad_rtol=GRAD_TRANSCENDENTAL)

SPECS: dict[str, OpSpec] = {
    # arithmetic
    "add": OpSpec(torch.add, ints="int", bools=True),
    "sub": OpSpec(torch.sub, ints="int"),
    "mul": OpSpec(torch.mul, ints="int", bools=True),
    "div": OpSpec(torch.div, ints="float"),
    "pow": OpSpec(
        torch.pow, ints="int", int_exponent=True, rtol={"f32": 2e-5}, grad_rtol=GRAD_TRANSCENDENTAL
    ),
    "neg": OpSpec(torch.neg, ints="int"),
    "abs": OpSpec(torch.abs, ints="int"),
    "reciprocal": OpSpec(torch.reciprocal, ints="float"),
    "square": OpSpec(torch.square, ints="int"),
    "maximum": OpSpec(torch.maximum, ints="int", bools=True),
    "minimum": OpSpec(torch.minimum, ints="int", bools=True),
    # math
    "exp": OpSpec(torch.exp, ints="float", **_TRANSCENDENTAL),
    "log": OpSpec(torch.log, ints="float", rtol=TRANSCENDENTAL),
    "log1p": OpSpec(torch.log1p, ints="float", rtol=TRANSCENDENTAL),
    "expm1": OpSpec(torch.expm1, ints="float", grad_atol=GRAD_CANCELS, **_TRANSCENDENTAL),
    "sqrt": OpSpec(torch.sqrt, ints="float"),
    "rsqrt": OpSpec(torch.rsqrt, ints="float", grad_rtol=GRAD_TRANSCENDENTAL),
    # sin/cos of 1e30 depend on the argument reduction: an absolute tolerance.
    "sin": OpSpec(
        torch.sin,
        ints="float",
        atol={"f32": 1e-6, "f64": 1e-13},
        grad_atol=GRAD_CANCELS,
        **_TRANSCENDENTAL,
    ),
    "cos": OpSpec(
        torch.cos,
        ints="float",
        atol={"f32": 1e-6, "f64": 1e-13},
        grad_atol=GRAD_CANCELS,
        **_TRANSCENDENTAL,
    ),
    "tanh": OpSpec(torch.tanh, ints="float", grad_atol=GRAD_CANCELS, **_TRANSCENDENTAL),
    "atan": OpSpec(torch.atan, ints="float", **_TRANSCENDENTAL),
    "asin": OpSpec(torch.asin, ints="float", **_TRANSCENDENTAL),
    "acos": OpSpec(torch.acos, ints="float", **_TRANSCENDENTAL),
    "atan2": OpSpec(torch.atan2, ints="float", **_TRANSCENDENTAL),
    "sigmoid": OpSpec(torch.sigmoid, ints="float", grad_atol=GRAD_CANCELS, **_TRANSCENDENTAL),
    "erf": OpSpec(torch.erf, ints="float", **_TRANSCENDENTAL),
    "floor": OpSpec(torch.floor, ints="int"),
    "ceil": OpSpec(torch.ceil, ints="int"),
    "round": OpSpec(torch.round, ints="int"),
    "sign": OpSpec(torch.sign, ints="int"),
    # activations
    "relu": OpSpec(F.relu, ints="int"),
    "relu6": OpSpec(F.relu6, ints="int"),
    "hardtanh": OpSpec(
        lambda x, min_val=-1.0, max_val=1.0: F.hardtanh(x, min_val, max_val),
        ints="int",
        variants=({}, {"min_val": -2.0, "max_val": 3.0}, {"min_val": 0.0, "max_val": 0.0}),
        # integer bounds for integer inputs (a float bound would promote)
        int_variants=(
            {},
            {"min_val": -3, "max_val": 5},
            {"min_val": -2, "max_val": 3},
            {"min_val": 0, "max_val": 0},
        ),
        kinks=(-2.0, 3.0),
    ),
    "clamp": OpSpec(
        _clamp,
        ints="int",
        variants=(
            {},
            {"min": 0.0},
            {"max": 1.0},
            {"min": -1.0, "max": 2.0},
            {"min": 2.0, "max": -1.0},
            {"min": 0.0, "max": 0.0},
        ),
        int_variants=(
            {"min": 0},
            {"max": 1},
            {"min": -1, "max": 2},
            {"min": 2, "max": -1},
            {"min": -3, "max": 5},
            {"max": 2},
            {"min": 4, "max": 1},
        ),
    ),
    "leaky_relu": OpSpec(
        lambda x, alpha=0.01: F.leaky_relu(x, alpha), variants=({}, {"alpha": 0.2})
    ),
    "elu": OpSpec(
        lambda x, alpha=1.0: F.elu(x, alpha), variants=({}, {"alpha": 0.5}), **_TRANSCENDENTAL
    ),
    "selu": OpSpec(F.selu, **_TRANSCENDENTAL),
    "celu": OpSpec(
        lambda x, alpha=1.0: F.celu(x, alpha), variants=({}, {"alpha": 2.0}), **_TRANSCENDENTAL
    ),
    # torch's vectorised f32 gelu gives nan at +inf (its scalar path and f64
    # give inf): there the consistent answer, inf, is pinned instead. In f32,
    # 1 + erf(x) cancels for x < -3: an absolute tolerance there, for f16 too,
    # as it computes in f32 (torch's oracle as well): gelu(-5.47) came out
    # -0.0 here and -2e-7 (3 f16 subnormal steps) from torch.
    "gelu": OpSpec(
        lambda x, approximate="none": F.gelu(x, approximate=approximate),
        variants=({}, {"approximate": "tanh"}),
        rtol={"f32": 2e-5, "f64": 1e-12},
        atol={"f16": 1e-6, "f32": 1e-6, "f64": 1e-15},
        ref_atol={"f32": 1e-6},
        kinks=(-5.0, -4.0, 4.0, 10.0, -10.0, -13.2),
        grad_rtol=GRAD_TRANSCENDENTAL,
        # the tanh form's derivative multiplies tanh's rounding by up to
        # |x| sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2: 5 at x = -4, 22 at -7
        grad_atol={"f32": 5e-6, "f64": 2e-14},
        inf_from_f64=True,
    ),
    "silu": OpSpec(F.silu, kinks=(-30.0, 30.0, -90.0), grad_atol=GRAD_CANCELS, **_TRANSCENDENTAL),
    "mish": OpSpec(F.mish, kinks=(-30.0, 30.0, -90.0), grad_atol=GRAD_CANCELS, **_TRANSCENDENTAL),
    "softplus": OpSpec(
        lambda x, beta=1.0, threshold=20.0: F.softplus(x, beta, threshold),
        variants=({}, {"beta": 2.0, "threshold": 10.0}, {"beta": 0.5, "threshold": 5.0}),
        kinks=(19.99, 20.01, 5.0, 4.99, 5.01, 10.0, 9.99, 10.01),
        **_TRANSCENDENTAL,
    ),
    # torch multiplies by 1/6 rounded to float even in f64 (0.16666667163...,
    # 3e-8 above 1/6); fusec's is 1/6 in the compute type
    "hardsigmoid": OpSpec(F.hardsigmoid, kinks=(2.99, -2.99), grad_rtol={"f64": 4e-8}),
    "hardswish": OpSpec(F.hardswish, kinks=(2.99, -2.99)),
    "prelu": OpSpec(_prelu),
    # made by autodiff: the gradient of a parameter no output depends on
    "zeros_like": OpSpec(torch.zeros_like, ints="int"),
    # softmax's lowering: the row max it subtracts carries no gradient
    "stop_gradient": OpSpec(torch.Tensor.detach, ints="int"),
    # reductions (not elementwise: a [5, 8] matrix in, rows or columns out)
    "sum_to": OpSpec(
        lambda x, shape: x.sum_to_size(shape),
        make=lambda dtype: [_quarters(dtype, (4, 7), 6)],
        variants=({"shape": (7,)}, {"shape": (1, 7)}, {"shape": (4, 1)}, {"shape": (4, 7)}),
    ),
    "sum": _reduction(torch.sum, ints="int"),
    "mean": _reduction(torch.mean),
    "max": _reduction(torch.amax, ints="int"),
    "min": _reduction(torch.amin, ints="int"),
    # autodiff's: an axis' length (mean's gradient), a reduced axis restored
    "axis_count": _reduction(
        lambda x, dim, keepdim: torch.ones_like(x).sum(dim=dim, keepdim=keepdim)
    ),
    "unsqueeze": OpSpec(
        lambda x, axis: torch.unsqueeze(x, axis),
        make=_rows,
        variants=({"axis": 0}, {"axis": 1}, {"axis": -1}, {"axis": 2}),
    ),
    "squeeze": OpSpec(
        lambda x, axis: torch.squeeze(x, axis),
        make=_with_ones,
        variants=({"axis": 0}, {"axis": 2}, {"axis": -1}),
    ),
    "softmax": OpSpec(
        lambda x, axis: torch.softmax(x, dim=axis),
        make=_rows,
        variants=_axis_variants(keepdim=False),
    ),
    "log_softmax": OpSpec(
        lambda x, axis: torch.log_softmax(x, dim=axis),
        make=_rows,
        variants=_axis_variants(keepdim=False),
    ),
    # GEMMs, on square matrices so that every transposition fits
    "linear": OpSpec(lambda x, w: F.linear(x, w), make=_square_pair),
    "matmul": OpSpec(torch.matmul, make=_square_pair),
    "gemm": OpSpec(
        _gemm,
        make=_square_pair,
        variants=tuple({"ta": ta, "tb": tb} for ta in (False, True) for tb in (False, True)),
    ),
    # logic
    **{
        name: OpSpec(getattr(torch, name), ints="int", bools=True)
        for name in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not")
    },
    "where": OpSpec(torch.where, ints="int", bools=True),  # cond is read as bool
    # conversion: to every dtype; float -> int compared only in range. The
    # gradient is the cotangent cast back; none through an integer or bool result.
    "cast": OpSpec(
        lambda x, dtype: x.to(TORCH_DTYPES[dtype]),
        ints="int",
        bools=True,
        variants=tuple({"dtype": d} for d in DTYPES),
        defined=_cast_defined,
    ),
}
