"""The registry's NumPy references agree with PyTorch (CPU) on awkward values.

Later tests check the generated OpenCL against these references, so here they
are pinned to PyTorch: signed zeros, infinities, NaN, tiny and huge values,
the thresholds of softplus (20/21) and relu6/hardsigmoid (3, 6), in f32 and
f64, and integers for the ops that keep integer dtypes. Reductions and GEMMs
take small matrices of multiples of 1/4 (exact in any order of summation).
Every registered op must have a spec in tests/op_specs.py, so a new op cannot
skip this check.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusec.ir.registry import all_primitives, check_template  # noqa: E402
from tests.op_specs import INF, NAN, REF_RTOL, SPECS  # noqa: E402

VALUES = [0.0, -0.0, INF, -INF, NAN, 1e-30, -1e-30, 1e30, -1e30, 0.5, -0.5, 1.0, -1.0,
          0.1, 1.5, 2.5, -2.5, 3.0, -3.0, 4.5, 6.0, -6.0, 7.25, 20.0, 21.0, -20.0, -21.0,
          100.0, -100.0]  # fmt: skip
SMALL = [0.0, -0.0, INF, -INF, NAN, 1e-30, -1e-30, 0.5, -2.5, 3.0, 20.0, 21.0, -20.0, 1e30]
INTS = [-100, -7, -6, -3, -1, 0, 1, 2, 3, 5, 6, 7, 100]


def _inputs(prim, values, dtype):
    """Arrays for each input: every value (unary) or every pair (binary)."""
    if prim.arity == 1:
        return [np.array(values, dtype=dtype)]
    values = SMALL if prim.arity == 3 and np.issubdtype(dtype, np.floating) else values
    pairs = list(itertools.product(values, repeat=2))
    a, b = (np.array(col, dtype=dtype) for col in zip(*pairs, strict=True))
    if prim.arity == 2:
        return [a, b]
    cond = np.arange(len(a)) % 3 != 1  # where(cond, a, b)
    return [cond, a, b]


def _pow_ints(dtype):
    """Integer bases to small non-negative powers (NumPy raises on negative ones)."""
    pairs = list(itertools.product([-3, -1, 0, 1, 2, 5], [0, 1, 2, 3]))
    return [np.array(col, dtype=dtype) for col in zip(*pairs, strict=True)]


def _check(prim, spec, arrays, attrs, rtol, atol=0.0):
    attrs = {**prim.attrs, **attrs}
    if spec.defined is not None:
        keep = spec.defined(arrays[0], **attrs)
        arrays = [a[keep] for a in arrays]
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


# fusec's own ops, taken when this module is imported (at collection): ops that
# other tests register at run time (register_primitive) are theirs to check.
BUILTIN_OPS = frozenset(all_primitives())
OPS = sorted(BUILTIN_OPS & set(SPECS))


def test_every_op_has_a_spec():
    assert BUILTIN_OPS - set(SPECS) == set(), "ops without a spec in tests/op_specs.py"
    assert set(SPECS) - set(all_primitives()) == set(), "specs for ops that are not registered"


def test_specs_fit_their_ops():
    """`make` exactly for the ops that are not elementwise; `int_exponent` and
    `kinks` only where the inputs they describe exist."""
    prims = all_primitives()
    for name in OPS:
        prim, spec = prims[name], SPECS[name]
        assert (spec.make is None) == (prim.kind == "elementwise"), f"{name}: make"
        assert not spec.int_exponent or prim.arity == 2, f"{name}: int_exponent"
        assert not spec.kinks or prim.arity == 1, f"{name}: kinks"
        for variant in spec.variants + spec.int_variants:
            assert set(variant) <= set(prim.attrs), f"{name}: {variant} names no attribute"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", OPS)
def test_reference_matches_torch_float(name, dtype):
    prim, spec = all_primitives()[name], SPECS[name]
    key = "f32" if dtype is np.float32 else "f64"
    rtol, atol = REF_RTOL[key], spec.ref_atol.get(key, 0.0)
    arrays = spec.make(dtype) if spec.make else _inputs(prim, VALUES, dtype)
    for attrs in spec.variants:
        _check(prim, spec, arrays, attrs, rtol, atol)
    if spec.bools:  # also on bool operands
        for attrs in spec.variants:
            _check(prim, spec, _inputs(prim, [False, True], np.bool_), attrs, 0)


@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("name", [n for n in OPS if SPECS[n].ints == "int"])
def test_reference_matches_torch_int(name, dtype):
    prim, spec = all_primitives()[name], SPECS[name]
    if spec.make:
        arrays = spec.make(dtype)
    elif spec.int_exponent:
        arrays = _pow_ints(dtype)
    else:
        arrays = _inputs(prim, INTS, dtype)
    for attrs in spec.int_variants:
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
