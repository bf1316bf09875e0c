"""The registry's NumPy references agree with PyTorch (CPU) on awkward values.

Later tests check the generated OpenCL against these references, so here they
are pinned to PyTorch: signed zeros, infinities, NaN, tiny and huge values,
the thresholds of softplus (20/21) and relu6/hardsigmoid (3, 6), in f32 and
f64, and integers for the ops that keep integer dtypes. Every registered op
must have a spec below, so a new op cannot skip this check.
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

from fusec.registry import _check_template, all_primitives  # noqa: E402

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


def _torch_clamp(x, min, max):
    # Our absent bound is +-inf; on an int tensor torch needs None (inf would
    # make the result float).
    if not x.is_floating_point():
        min, max = (None if abs(v) == INF else v for v in (min, max))
    return torch.clamp(x, min=min, max=max)


def _pow_ints():
    return list(itertools.product([-3, -1, 0, 1, 2, 5], [0, 1, 2, 3]))


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


def test_every_op_has_a_spec():
    registered = set(all_primitives())
    assert registered - set(SPECS) == set(), "ops without a reference spec"
    assert set(SPECS) - registered == set(), "specs for ops that are not registered"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", OPS)
def test_reference_matches_torch_float(name, dtype):
    prim, spec = all_primitives()[name], SPECS[name]
    rtol = RTOL[dtype]
    atol = spec.atol_f32 if dtype is np.float32 else 0.0
    for attrs in spec.attrs:
        _check(prim, spec, _inputs(prim, VALUES, dtype), attrs, rtol, atol)
    if spec.domain == "logical":  # also on bool operands
        _check(prim, spec, _inputs(prim, [False, True], np.bool_), {}, 0)


@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("name", [n for n in OPS if SPECS[n].ints])
def test_reference_matches_torch_int(name, dtype):
    prim, spec = all_primitives()[name], SPECS[name]
    if callable(spec.ints):
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
    _check_template(prim)
    templates = [prim.forward] if isinstance(prim.forward, str) else list(prim.forward.values())
    for template in templates:
        assert template.count("(") == template.count(")"), template
        bare = re.sub(r"\(\(\{T\}\)\([^()]*\)\)", "", template)
        assert not re.search(r"\d\.|\.\d|\d[fF]\b", bare), (
            f"{name}: bare float literal in {template}"
        )
