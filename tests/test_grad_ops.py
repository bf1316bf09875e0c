"""Each op's backward template against torch.autograd, op by op, in f32 and f64.

Generated from the table of tests/op_specs.py, like tests/test_ops_opencl.py:
every differentiable op has a spec there (the torch callable, its attribute
variants, the kinks worth hitting, tolerances), and an op without one fails
`test_every_differentiable_op_has_a_grad_spec`. torch.autograd is the oracle.

Inputs hold the awkward values (signed zeros, infinities, NaN, tiny and huge
numbers, each op's kinks: relu's 0, hardswish's +-3, the clamp bounds, the
softplus threshold, ties for maximum/minimum, every pair of special values
for the binary ops) and random ones; cotangents are random with zeros,
infinities and NaN sprinkled in, so that a template that multiplies by a 0/1
mask instead of selecting shows (inf * 0 is NaN). To keep builds few, each
case has parameters of its own (a gradient sums over every output that uses
a parameter) and a dozen cases share one graph with one output each.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fusec  # noqa: E402
from fusec.ir import dtypes as dt  # noqa: E402
from fusec.ir.registry import all_primitives  # noqa: E402
from fusec.passes.autodiff import check_backward  # noqa: E402
from tests.op_specs import GRAD_ATOL, GRAD_RTOL, INF, NAN, SPECS, OpSpec  # noqa: E402

N = 300  # elements per input
# parameters, cotangents, outputs and gradients of a dozen cases: within
# PoCL's 1 KiB of kernel arguments
CASES_PER_GRAPH = 12
NP = {"f16": np.float16, "f32": np.float32, "f64": np.float64}

SPECIAL = [0.0, -0.0, INF, -INF, NAN, 1e-30, -1e-30, 1e-40, -1e-40, 1e30, -1e30, 0.5, -0.5, 1.0, -1.0,
           2.0, -2.0, 3.0, -3.0, 6.0, -6.0, 0.1, 1.5, -2.5, 7.25, 20.0, 21.0, -20.0, 100.0, -100.0]  # fmt: skip
PAIR_VALUES = [0.0, -0.0, INF, -INF, NAN, 1e-40, 1e30, -1e30, 0.5, -0.5, 1.0, -1.0, 2.0, -2.5, 3.0,
               100.0]  # fmt: skip


# -- the registry's side ------------------------------------------------------------

# fusec's own ops, taken at import (collection), before any test registers one
BUILTIN_OPS = frozenset(all_primitives())


def _may_be_float(prim) -> bool:
    return prim.dtype_rule not in ("compare", "logical")


def _differentiable_inputs(prim) -> list[str]:
    """The inputs a float result has a gradient for: where's cond is read as bool."""
    return [
        name for i, name in enumerate(prim.inputs) if not (prim.dtype_rule == "where" and i == 0)
    ]


def _differentiable_ops() -> set[str]:
    prims = all_primitives()
    return {n for n in BUILTIN_OPS
            if prims[n].kind == "elementwise" and not prims[n].internal and _may_be_float(prims[n])}  # fmt: skip


def test_every_differentiable_op_has_a_backward():
    missing = []
    for name in sorted(_differentiable_ops()):
        prim = all_primitives()[name]
        variants = [{}] + [{k: v} for k, choices in prim.attr_choices.items() for v in choices]
        for input_name, attrs in itertools.product(_differentiable_inputs(prim), variants):
            if prim.backward_for(input_name, attrs) is None:
                missing.append(f"{name}: {input_name} {attrs or ''}")
    assert missing == [], "ops without a backward template (write one, or '0' for a zero gradient)"


@pytest.mark.parametrize("name", sorted(BUILTIN_OPS))
def test_backward_templates_are_well_formed(name):
    check_backward(all_primitives()[name])


def test_every_differentiable_op_has_a_grad_spec():
    assert _differentiable_ops() - set(SPECS) == set(), "ops without a spec in tests/op_specs.py"
    gradient_only = {n for n, s in SPECS.items() if s.kinks or s.grad_rtol or s.grad_atol}
    assert gradient_only - _differentiable_ops() == set(), (
        "gradient kinks or tolerances for ops that are not differentiable"
    )


# -- cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    op: str
    variant: tuple
    roles: tuple  # the registry's input names, in order
    spec: OpSpec


def _cases() -> list[Case]:
    out = []
    for name in sorted(_differentiable_ops() & set(SPECS)):
        prim = all_primitives()[name]
        for variant in (tuple(attrs.items()) for attrs in SPECS[name].variants):
            cid = name + (f"[{','.join(f'{k}={v}' for k, v in variant)}]" if variant else "")
            out.append(Case(cid, name, variant, prim.inputs, SPECS[name]))
    return out


CASES = _cases()


def _attr_ir(variant) -> str:
    parts = []
    for k, v in variant:
        parts.append(f'{k}="{v}"' if isinstance(v, str) and k != "dtype" else f"{k}={v}")
    return "".join(", " + p for p in parts)


def _random(rng, n):
    return rng.standard_normal(n) * 10.0 ** rng.integers(-3, 3, n)


def _values(case: Case, seed: int) -> dict[str, np.ndarray]:
    """float64 values for each input of the case (cond: bool)."""
    rng = np.random.default_rng(seed)
    if len(case.roles) == 1:
        x = np.array(
            SPECIAL + list(case.spec.kinks) + [v for k, v in case.variant if isinstance(v, float)]
        )
        return {case.roles[0]: np.concatenate([x, _random(rng, N - len(x))])}
    pairs = np.array(list(itertools.product(PAIR_VALUES, repeat=2))).T
    a, b = (np.concatenate([p, _random(rng, N - len(p))]) for p in pairs)
    values = dict(zip(case.roles[-2:], (a, b), strict=True))
    if len(case.roles) == 3:  # where(cond, a, b)
        values[case.roles[0]] = rng.integers(0, 2, N).astype(bool)
    return values


def _cotangent(rng, dtype) -> np.ndarray:
    ct = rng.standard_normal(N)
    ct[3::29], ct[11::31], ct[17::37] = 0.0, INF, NAN
    ct[23::41] = -INF
    return ct.astype(NP[dtype])


def _out_dtype(case: Case, dtype: str) -> str:
    return dict(case.variant)["dtype"] if case.op == "cast" else dtype


def _chunks():
    return [CASES[i : i + CASES_PER_GRAPH] for i in range(0, len(CASES), CASES_PER_GRAPH)]


_RUNS: dict = {}


def run_chunk(dtype: str, k: int):
    """(inputs, cotangents, outputs, grads) of chunk k's one graph, memoised."""
    if (dtype, k) not in _RUNS:
        cases = _chunks()[k]
        params, outs, inputs, cts = [], [], {}, []
        rng = np.random.default_rng(100 + k)
        for i, case in enumerate(cases):
            values = _values(case, seed=1000 * k + i)
            names = []
            for role in case.roles:
                p = f"{role}{i}"
                names.append(p)
                v = values[role]
                params.append(f"{p}: {'bool' if v.dtype == bool else dtype}[N]")
                inputs[p] = v if v.dtype == bool else v.astype(NP[dtype])
            outs.append(f"{case.op}({', '.join(names)}{_attr_ir(case.variant)})")
            out_dtype = _out_dtype(case, dtype)
            cts.append(_cotangent(rng, out_dtype) if dt.is_float(out_dtype) else None)
        text = (
            f"graph grads_{dtype}_{k}({', '.join(params)}) {{\n    return {', '.join(outs)}\n}}\n"
        )
        g = fusec.compile(text, grad=True)[f"grads_{dtype}_{k}"]
        ys, grads = g.value_and_grad(*inputs.values(), grad_outputs=cts)
        _RUNS[(dtype, k)] = (inputs, cts, ys if isinstance(ys, tuple) else (ys,), grads)
    return _RUNS[(dtype, k)]


def torch_grads(case: Case, i: int, inputs: dict, ct) -> tuple[np.ndarray, dict]:
    """torch's output and {parameter: gradient} for case i of its chunk."""
    leaves = {}
    for role in case.roles:
        v = inputs[f"{role}{i}"]
        leaves[role] = torch.tensor(v, requires_grad=v.dtype != bool)
    y = case.spec.torch(*leaves.values(), **dict(case.variant))
    if y.requires_grad:
        y.backward(torch.from_numpy(ct))
    grads = {f"{r}{i}": (t.grad.numpy() if t.grad is not None else np.zeros_like(inputs[f"{r}{i}"]))
             for r, t in leaves.items() if t.requires_grad}  # fmt: skip
    return y.detach().numpy(), grads


def assert_close(got, want, g, rtol, atol, what, inputs, near0=None):
    """`near0`: where a derivative of 0 is as right as fusec's (see `_near_zero`)."""
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, torch gives {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, torch gives {want.shape}"
    if got.dtype.kind in "biu":
        bad = got != want
    else:
        g64, w64 = got.astype(np.float64), want.astype(np.float64)
        bad = np.isnan(g64) != np.isnan(w64)  # NaN exactly where torch has NaN
        bad |= np.isinf(w64) & (g64 != w64)  # infinities, with their sign
        unit = np.abs(g.astype(np.float64)) if g is not None else np.ones(len(got))
        unit = np.where(np.isfinite(unit), unit, 1.0)
        scale = np.maximum(np.abs(w64), float(np.finfo(want.dtype).tiny))
        with np.errstate(all="ignore"):
            far = np.abs(g64 - w64) > atol * unit + rtol * scale
        bad |= np.isfinite(w64) & (far | ~np.isfinite(g64))
        zeros = (g64 == 0) & (w64 == 0)
        bad |= zeros & (np.signbit(g64) != np.signbit(w64))  # signed zeros too
        if near0 is not None:  # there g * 0: NaN for an infinite g, a zero of g's sign
            inf_or_nan = (np.isnan(g64) | np.isnan(w64)) & ~np.isfinite(g64) & ~np.isfinite(w64)
            bad &= ~(near0 & (inf_or_nan | zeros))
    if bad.any():
        idx = np.flatnonzero(bad)[:8]
        rows = [f"  [{j}] in={ {k: v[j].item() for k, v in inputs.items()} }"
                f" g={g[j] if g is not None else None!r} got={got[j]!r} torch={want[j]!r}" for j in idx]  # fmt: skip
        pytest.fail(f"{what}: {int(bad.sum())} mismatches\n" + "\n".join(rows))


def _near_zero(case: Case, i: int, inputs: dict, p: str, atol: float) -> np.ndarray:
    """Where the derivative is within tolerance of 0 (f32).

    There a derivative of exactly 0 is as right as fusec's tiny one, and the
    gradient is g * 0: NaN for an infinite g, a zero of g's sign for g = 0.
    torch's vectorised f32 gelu_backward gives exactly 0 for x <= -9 (its
    scalar loop and f64 give -9e-18 at -9, as fusec does): its gradient is NaN
    where fusec's is an infinity, +0 where fusec's is -0. The derivative comes
    from torch in f64 with a cotangent of 1.
    """
    wide = {k: (v.astype(np.float64) if v.dtype != bool else v) for k, v in inputs.items()}
    _, d = torch_grads(case, i, wide, np.ones(N))
    return np.abs(d[p]) <= max(atol, float(np.finfo(np.float32).tiny))


def _params():
    for dtype in ("f32", "f64"):
        for k, chunk in enumerate(_chunks()):
            for i, case in enumerate(chunk):
                yield pytest.param(dtype, k, i, id=f"{dtype}-{case.id}")


@pytest.mark.parametrize("dtype, k, i", list(_params()))
def test_grad_matches_torch(dtype, k, i):
    case = _chunks()[k][i]
    inputs, cts, ys, grads = run_chunk(dtype, k)
    mine = {f"{r}{i}": inputs[f"{r}{i}"] for r in case.roles}
    want_y, want = torch_grads(case, i, inputs, cts[i])
    if case.spec.inf_from_f64 and dtype == "f32":
        x = inputs[f"x{i}"]
        wide = case.spec.torch(torch.from_numpy(x.astype(np.float64)), **dict(case.variant))
        want_y = np.where(x == INF, wide.numpy().astype(np.float32), want_y)
    out_dtype = _out_dtype(case, dtype)
    rtol = case.spec.grad_rtol.get(out_dtype, GRAD_RTOL.get(out_dtype, 1e-3))
    # the forward too, loosely (tests/test_ops_opencl.py pins it), where defined
    keep = np.ones(N, dtype=bool)
    if case.spec.defined is not None:
        keep = case.spec.defined(mine[f"{case.roles[0]}{i}"], **dict(case.variant))
    defined = {p: v[keep] for p, v in mine.items()}
    what = f"{dtype} {case.id} value"
    assert_close(ys[i][keep], want_y[keep], None, max(rtol, 1e-5), 1e-6, what, defined)
    rtol = case.spec.grad_rtol.get(dtype, GRAD_RTOL[dtype])
    atol = case.spec.grad_atol.get(dtype, GRAD_ATOL[dtype])
    for p in want:
        near0 = _near_zero(case, i, mine, p, atol) if dtype == "f32" else None
        what = f"{dtype} {case.id} d/d{p[: -len(str(i))]}"
        assert_close(grads[p], want[p], cts[i], rtol, atol, what, mine, near0)
