"""The registry's NumPy references agree with PyTorch (CPU) on awkward values.

Later tests check the generated OpenCL against these references, so here they
are pinned to PyTorch: signed zeros, infinities, NaN, tiny and huge values,
the thresholds of softplus (20/21) and relu6/hardsigmoid (3, 6), in f32 and
f64, and integers for the ops that keep integer dtypes. Reductions and GEMMs
take small matrices of multiples of 1/4 (exact in any order of summation).
Every registered op must have a spec below, so a new op cannot skip this check.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fusec.ir.registry import all_primitives, check_template  # noqa: E402

INF, NAN = float("inf"), float("nan")
VALUES = [0.0, -0.0, INF, -INF, NAN, 1e-30, -1e-30, 1e30, -1e30, 0.5, -0.5, 1.0, -1.0,
          0.1, 1.5, 2.5, -2.5, 3.0, -3.0, 4.5, 6.0, -6.0, 7.25, 20.0, 21.0, -20.0, -21.0,
          100.0, -100.0]  # fmt: skip
SMALL = [0.0, -0.0, INF, -INF, NAN, 1e-30, -1e-30, 0.5, -2.5, 3.0, 20.0, 21.0, -20.0, 1e30]
INTS = [-100, -7, -6, -3, -1, 0, 1, 2, 3, 5, 6, 7, 100]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


@dataclass(frozen=True)
class Spec:
    torch: Callable  # fn(*tensors, **attrs) with the registry's attribute names
    domain: str = "real"  # "real": float values; "logical": also read bools
    ints: bool | Callable = False  # test integer dtypes too (a callable gives the inputs)
    attrs: tuple = ({},)  # attribute cases, over the registry's defaults
    int_attrs: tuple = ({},)
    inf_from_f64: bool = False  # at x = +inf take torch's f64 answer (see gelu)
    atol_f32: float = 0.0
    # Ops that are not elementwise (reductions, GEMMs) or whose attributes fix
    # a shape: fn(dtype) -> the input arrays, used for every dtype tested.
    make: Callable | None = None


def _torch_clamp(x, min, max):
    # Our absent bound is +-inf; on an int tensor torch needs None (inf would
    # make the result float).
    if not x.is_floating_point():
        min, max = (None if abs(v) == INF else v for v in (min, max))
    return torch.clamp(x, min=min, max=max)


def _pow_ints():
    return list(itertools.product([-3, -1, 0, 1, 2, 5], [0, 1, 2, 3]))


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


def _square_pair(dtype):
    return [_quarters(dtype, (6, 6), 4), _quarters(dtype, (6, 6), 5)]


def _gemm(a, b, ta, tb):
    return (a.T if ta else a) @ (b.T if tb else b)


def _axis_variants(keepdim=True):
    extra = ({"axis": 0, "keepdim": True}, {"axis": 1}) if keepdim else ({"axis": 0},)
    return ({}, *extra)


_TORCH_DTYPES = {"f16": torch.float16, "f32": torch.float32, "f64": torch.float64,
                 "i32": torch.int32, "i64": torch.int64, "bool": torch.bool}  # fmt: skip

FLOAT_MATH = "exp log log1p expm1 sqrt rsqrt sin cos tanh sigmoid erf".split()

SPECS: dict[str, Spec] = {
    # arithmetic
    "add": Spec(torch.add, ints=True),
    "sub": Spec(torch.sub, ints=True),
    "mul": Spec(torch.mul, ints=True),
    "div": Spec(torch.div),
    "pow": Spec(torch.pow, ints=_pow_ints),
    "neg": Spec(torch.neg, ints=True),
    "abs": Spec(torch.abs, ints=True),
    "reciprocal": Spec(torch.reciprocal),
    "square": Spec(torch.square, ints=True),
    "maximum": Spec(torch.maximum, ints=True),
    "minimum": Spec(torch.minimum, ints=True),
    # math
    **{name: Spec(getattr(torch, name)) for name in FLOAT_MATH},
    **{name: Spec(getattr(torch, name), ints=True) for name in "floor ceil round sign".split()},
    # activations
    "relu": Spec(F.relu, ints=True),
    "relu6": Spec(F.relu6, ints=True),
    "hardtanh": Spec(
        lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val),
        ints=True,
        attrs=({}, {"min_val": -2.0, "max_val": 3.0}, {"min_val": 0.0, "max_val": 0.0}),
        int_attrs=({}, {"min_val": -3, "max_val": 5}),
    ),
    "clamp": Spec(
        _torch_clamp,
        ints=True,
        attrs=(
            {},
            {"min": 0.0},
            {"max": 1.0},
            {"min": -1.0, "max": 2.0},
            {"min": 2.0, "max": -1.0},
        ),
        int_attrs=({"min": -3, "max": 5}, {"min": 0}, {"max": 2}, {"min": 4, "max": 1}),
    ),
    "leaky_relu": Spec(lambda x, alpha: F.leaky_relu(x, alpha), attrs=({}, {"alpha": 0.2})),
    "elu": Spec(lambda x, alpha: F.elu(x, alpha), attrs=({}, {"alpha": 0.5})),
    "selu": Spec(F.selu),
    "celu": Spec(lambda x, alpha: F.celu(x, alpha), attrs=({}, {"alpha": 2.0})),
    # torch's vectorised f32 gelu gives nan at +inf (its scalar path and f64 give
    # inf): there, the consistent answer inf is pinned instead. In f32,
    # 1 + erf(x) cancels for x < -3: both sides lose relative accuracy there.
    "gelu": Spec(
        lambda x, approximate: F.gelu(x, approximate=approximate),
        attrs=({}, {"approximate": "tanh"}),
        inf_from_f64=True,
        atol_f32=1e-6,
    ),
    "silu": Spec(F.silu),
    "mish": Spec(F.mish),
    "softplus": Spec(
        lambda x, beta, threshold: F.softplus(x, beta, threshold),
        attrs=({}, {"beta": 2.0, "threshold": 10.0}, {"beta": 0.5, "threshold": 5.0}),
    ),
    "hardsigmoid": Spec(F.hardsigmoid),
    "hardswish": Spec(F.hardswish),
    # torch's weight is per channel (dim 1): lay x out as [1, C] to pair elementwise.
    "prelu": Spec(lambda x, w: F.prelu(x.reshape(1, -1), w.reshape(-1)).reshape(-1)),
    # made by autodiff: the gradient of a parameter no output depends on
    "zeros_like": Spec(torch.zeros_like, ints=True),
    # reductions (not elementwise: a [5, 8] matrix in, rows or columns out)
    "sum_to": Spec(
        lambda x, shape: x.sum_to_size(shape),
        make=lambda dtype: [_quarters(dtype, (4, 7), 6)],
        attrs=({"shape": (7,)}, {"shape": (1, 7)}, {"shape": (4, 1)}, {"shape": (4, 7)}),
    ),
    "sum": Spec(lambda x, axis, keepdim: torch.sum(x, dim=axis, keepdim=keepdim),
                make=_rows, ints=True, attrs=_axis_variants(), int_attrs=_axis_variants()),
    "mean": Spec(lambda x, axis, keepdim: torch.mean(x, dim=axis, keepdim=keepdim),
                 make=_rows, attrs=_axis_variants()),
    "max": Spec(lambda x, axis, keepdim: torch.amax(x, dim=axis, keepdim=keepdim),
                make=_rows, ints=True, attrs=_axis_variants(), int_attrs=_axis_variants()),
    "min": Spec(lambda x, axis, keepdim: torch.amin(x, dim=axis, keepdim=keepdim),
                make=_rows, ints=True, attrs=_axis_variants(), int_attrs=_axis_variants()),
    # autodiff's: an axis' length (mean's gradient), a reduced axis restored
    "axis_count": Spec(lambda x, axis, keepdim: torch.ones_like(x).sum(dim=axis, keepdim=keepdim),
                       make=_rows, attrs=_axis_variants()),
    "unsqueeze": Spec(lambda x, axis: torch.unsqueeze(x, axis), make=_rows,
                      attrs=({"axis": 0}, {"axis": 1}, {"axis": -1}, {"axis": 2})),
    "softmax": Spec(lambda x, axis: torch.softmax(x, dim=axis), make=_rows,
                    attrs=_axis_variants(keepdim=False)),
    "log_softmax": Spec(lambda x, axis: torch.log_softmax(x, dim=axis), make=_rows,
                        attrs=_axis_variants(keepdim=False)),
    # GEMMs, on square matrices so that every transposition fits
    "linear": Spec(lambda x, w: F.linear(x, w), make=_square_pair),
    "matmul": Spec(torch.matmul, make=_square_pair),
    "gemm": Spec(
        _gemm,
        make=_square_pair,
        attrs=tuple({"ta": ta, "tb": tb} for ta in (False, True) for tb in (False, True)),
    ),
    # logic
    "eq": Spec(torch.eq, ints=True),
    "ne": Spec(torch.ne, ints=True),
    "lt": Spec(torch.lt, ints=True),
    "le": Spec(torch.le, ints=True),
    "gt": Spec(torch.gt, ints=True),
    "ge": Spec(torch.ge, ints=True),
    "logical_and": Spec(torch.logical_and, domain="logical", ints=True),
    "logical_or": Spec(torch.logical_or, domain="logical", ints=True),
    "logical_not": Spec(torch.logical_not, domain="logical", ints=True),
    "where": Spec(torch.where, ints=True),
    # conversion; float -> int only for floats (f16, f32, f64, bool) here: out
    # of range (inf, nan, 1e30) the conversion is undefined in C
    "cast": Spec(
        lambda x, dtype: x.to(_TORCH_DTYPES[dtype[1]]),
        ints=True,
        attrs=tuple({"dtype": ("dtype", d)} for d in ("f16", "f32", "f64", "bool")),
        int_attrs=tuple({"dtype": ("dtype", d)} for d in ("f16", "f32", "f64", "i32", "i64", "bool")),
    ),
}


def _inputs(prim, values, dtype):
    """Arrays for each input: every value (unary) or every pair (binary)."""
    if prim.arity == 1:
        return [np.array(values, dtype=dtype)]
    values = SMALL if prim.arity == 3 and dtype != np.int64 and dtype != np.int32 else values
    pairs = list(itertools.product(values, repeat=2))
    a, b = (np.array(col, dtype=dtype) for col in zip(*pairs, strict=True))
    if prim.arity == 2:
        return [a, b]
    cond = np.arange(len(a)) % 3 != 1  # where(cond, a, b)
    return [cond, a, b]


def _check(prim, spec, arrays, attrs, rtol, atol=0.0):
    attrs = {**prim.attrs, **attrs}
    with np.errstate(all="ignore"):
        got = np.asarray(prim.numpy(*arrays, **attrs))
    tensors = [torch.from_numpy(a.copy()) for a in arrays]
    want = spec.torch(*tensors, **attrs).numpy()
    if spec.inf_from_f64 and want.dtype == np.float32:
        at_inf = arrays[0] == INF
        want[at_inf] = spec.torch(*[t.double() for t in tensors], **attrs).numpy()[at_inf]
    assert got.dtype == want.dtype, f"{prim.name}: dtype {got.dtype} != torch's {want.dtype}"
    assert got.shape == want.shape
    where = f"{prim.name}{attrs or ''} on {[a.tolist() for a in arrays]}"
    if got.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want, err_msg=where)
        return
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=where)
    # Signed zeros too: relu(-0.0) is -0.0, sign(-0.0) is +0.0 in torch.
    zeros = (got == 0) & (want == 0)
    np.testing.assert_array_equal(
        np.signbit(got[zeros]), np.signbit(want[zeros]), err_msg=f"sign of zero: {where}"
    )


OPS = sorted(SPECS)


# fusec's own ops, taken when this module is imported (at collection): ops that
# other tests register at run time (register_primitive) are theirs to check.
BUILTIN_OPS = frozenset(all_primitives())


def test_every_op_has_a_spec():
    assert BUILTIN_OPS - set(SPECS) == set(), "ops without a reference spec"
    assert set(SPECS) - set(all_primitives()) == set(), "specs for ops that are not registered"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", OPS)
def test_reference_matches_torch_float(name, dtype):
    prim, spec = all_primitives()[name], SPECS[name]
    rtol = RTOL[dtype]
    atol = spec.atol_f32 if dtype is np.float32 else 0.0
    arrays = spec.make(dtype) if spec.make else _inputs(prim, VALUES, dtype)
    for attrs in spec.attrs:
        _check(prim, spec, arrays, attrs, rtol, atol)
    if spec.domain == "logical":  # also on bool operands
        _check(prim, spec, _inputs(prim, [False, True], np.bool_), {}, 0)


@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("name", [n for n in OPS if SPECS[n].ints])
def test_reference_matches_torch_int(name, dtype):
    prim, spec = all_primitives()[name], SPECS[name]
    if spec.make:
        arrays = spec.make(dtype)
    elif callable(spec.ints):
        arrays = [np.array(col, dtype=dtype) for col in zip(*spec.ints(), strict=True)]
    else:
        arrays = _inputs(prim, INTS, dtype)
    for attrs in spec.int_attrs:
        _check(prim, spec, arrays, attrs, 0)


@pytest.mark.parametrize("name", OPS)
def test_templates_are_well_formed(name):
    """Placeholders all resolve; float literals only inside `(({T})(...))` casts
    (a bare 1.0 would be double in a float kernel, 1.0f float in a double one)."""
    prim = all_primitives()[name]
    check_template(prim)
    templates = [prim.forward] if isinstance(prim.forward, str) else list(prim.forward.values())
    for template in templates:
        assert template.count("(") == template.count(")"), template
        bare = re.sub(r"\(\(\{T\}\)\([^()]*\)\)", "", template)
        assert not re.search(r"\d\.|\.\d|\d[fF]\b", bare), (
            f"{name}: bare float literal in {template}"
        )
