"""Every elementwise op, compiled to OpenCL and run, agrees with PyTorch (CPU).

Generated from the registry: each op has a spec in tests/op_specs.py (the
torch callable that is the oracle, which dtypes it takes, its attribute
variants and tolerance), and an op without one fails
`test_every_op_has_a_spec`. torch is the independent oracle; the registry's
own NumPy references are not used here.

To keep builds few, the cases of one input dtype share one graph with many
outputs (one kernel); every case is still its own test. Each graph runs at
sizes 1, 7, 8, 9, 37, the whole pool, 1000 elements and a shuffled pool, so
that every input value goes through both the vector path (one or more float8
vectors per work-item) and the scalar tail, beside varied neighbours.

f16 follows the spec's policy: inputs are f16, computed in f32, rounded once
at the store; the oracle is torch on the f32 values of the f16 inputs, rounded
to f16.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fusec  # noqa: E402
from fusec.ir.registry import all_primitives  # noqa: E402
from tests.op_specs import DTYPES, INF, NAN, RTOL, SPECS, OpSpec  # noqa: E402

SIZES = (1, 7, 8, 9, 37, 1000)  # and the whole pool (its length is not a multiple of 8)
NP = {"f16": np.float16, "f32": np.float32, "f64": np.float64,
      "i32": np.int32, "i64": np.int64, "bool": np.bool_}  # fmt: skip

# Awkward float values: signed zeros, infinities, NaN, tiny (1e-40 is an f32
# subnormal), huge, small integers and the kinks of the activations.
SPECIAL = [0.0, -0.0, INF, -INF, NAN, 1e-30, -1e-30, 1e-40, -1e-40, 1e30, -1e30, 1 + 2**-11 + 2**-40,
           0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 6.0, -6.0, 0.1, 1.5, 2.5, -2.5,
           7.25, 20.0, 21.0, -20.0, 100.0, -100.0]  # fmt: skip
# Binary ops see every pair of these.
PAIR_VALUES = [0.0, -0.0, INF, -INF, NAN, 1e-40, 1e30, -1e30, 0.5, -0.5, 1.0, -1.0, 2.0,
               -2.5, 3.0, 100.0]  # fmt: skip
INT_SPECIAL = [0, 1, -1, 2, -2, 3, -3, 5, 6, 7, -7, 20, 21, 100, -100, 999, -1000]
POOL = 341  # elements per input; 341 = 42 * 8 + 5, so the pool has a tail too


# fusec's own ops, taken when this module is imported (at collection): ops that
# other tests register at run time (register_primitive) are theirs to check.
BUILTIN_OPS = frozenset(all_primitives())
# Elementwise ops that IR text can call. Not here: reductions (sum_to, sum,
# ...; not elementwise, so not one output element per input element) and
# internal ops (zeros_like, sum_to: made by autodiff, IR cannot name them).
ELEMENTWISE = frozenset(
    n for n in BUILTIN_OPS
    if all_primitives()[n].kind == "elementwise" and not all_primitives()[n].internal
)  # fmt: skip
OPS = sorted(ELEMENTWISE & set(SPECS))


def test_every_op_has_a_spec():
    assert ELEMENTWISE - set(SPECS) == set(), "ops without a spec in tests/op_specs.py"
    assert set(SPECS) - BUILTIN_OPS == set(), "specs for ops that are not registered"


# -- inputs ----------------------------------------------------------------------


def _random_floats(rng, n):
    mags = 10.0 ** rng.integers(-6, 7, n)
    return rng.standard_normal(n) * mags


def float_inputs(dtype: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    x = np.concatenate([SPECIAL, _random_floats(rng, POOL - len(SPECIAL))])
    pairs = list(itertools.product(PAIR_VALUES, repeat=2))
    a, b = (np.array(col) for col in zip(*pairs, strict=True))
    rest = POOL - len(pairs)
    a = np.concatenate([a, _random_floats(rng, rest)])
    b = np.concatenate([b, _random_floats(rng, rest)])
    c = rng.integers(0, 2, POOL).astype(bool)
    t = NP[dtype]
    with np.errstate(over="ignore"):
        return {"x": x.astype(t), "a": a.astype(t), "b": b.astype(t), "c": c}


def int_inputs(dtype: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(99)
    x = np.concatenate([INT_SPECIAL, rng.integers(-1000, 1001, POOL - len(INT_SPECIAL))])
    small = [0, 1, -1, 2, -2, 3, 5, -7, 100, -100]
    pairs = list(itertools.product(small, repeat=2))
    a, b = (np.array(col) for col in zip(*pairs, strict=True))
    rest = POOL - len(pairs)
    a = np.concatenate([a, rng.integers(-1000, 1001, rest)])
    b = np.concatenate([b, rng.integers(-1000, 1001, rest)])
    # integer powers: mostly small; every 11th up to 63 (wrapping around, as
    # torch's repeated squaring does); every 23rd negative (0, or +-1 for a
    # base of +-1, as torch)
    e = np.abs(b) % 4
    e[::11] = np.abs(b[::11]) % 64
    e[5::23] = -(np.abs(b[5::23]) % 3 + 1)
    c = rng.integers(0, 2, POOL).astype(bool)
    t = NP[dtype]
    return {"x": x.astype(t), "a": a.astype(t), "b": b.astype(t), "e": e.astype(t), "c": c}


def bool_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    a = np.array([False, False, True, True] + list(rng.integers(0, 2, POOL - 4)), dtype=bool)
    b = np.array([False, True, False, True] + list(rng.integers(0, 2, POOL - 4)), dtype=bool)
    c = rng.integers(0, 2, POOL).astype(bool)
    return {"x": a.copy(), "a": a, "b": b, "c": c}


# -- cases: one output each --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    op: str
    ir: str  # the expression in IR
    oracle: Callable  # dict of torch tensors -> torch tensor
    inputs: tuple  # names of the inputs it reads
    spec: OpSpec
    attrs: dict = field(default_factory=dict)


def _attr_ir(variant) -> str:
    return "".join(f", {k}={v if not isinstance(v, str) or k == 'dtype' else repr(v)}"
                   .replace("'", '"') for k, v in variant)  # fmt: skip


def _variant_id(variant) -> str:
    return ",".join(f"{k}={v}" for k, v in variant)


def cases_for(dtype: str) -> list[Case]:
    """Every op that takes `dtype`, with each attribute variant."""
    category = "bool" if dtype == "bool" else ("int" if dtype in ("i32", "i64") else "float")
    out = []
    for name in OPS:
        spec, prim = SPECS[name], all_primitives()[name]
        if category == "int" and spec.ints is None:
            continue
        if category == "bool" and not spec.bools:
            continue
        if prim.dtype_rule == "where":
            args = ("c", "a", "b")
        elif spec.int_exponent and category == "int":
            args = ("a", "e")
        else:
            args = ("x",) if prim.arity == 1 else ("a", "b")
        for attrs in spec.int_variants if category == "int" else spec.variants:
            variant = tuple(attrs.items())

            def oracle(t, fn=spec.torch, args=args, kwargs=attrs):
                return fn(*(t[a] for a in args), **kwargs)

            ir = f"{name}({', '.join(args)}{_attr_ir(variant)})"
            cid = name + (f"[{_variant_id(variant)}]" if variant else "")
            out.append(Case(cid, name, ir, oracle, args, spec, attrs))
    return out


# Literals rendered into the kernel: weak, so they take the tensor's dtype.
FLOAT_LITERAL_CASES = [
    ("x * 0.1", lambda t: t["x"] * 0.1),
    ("x + 1e-40", lambda t: t["x"] + 1e-40),
    ("x * 1e30", lambda t: t["x"] * 1e30),
    ("maximum(x, inf) + minimum(x, -inf)",
     lambda t: torch.clamp(t["x"], min=INF) + torch.clamp(t["x"], max=-INF)),
    ("x * nan", lambda t: t["x"] * NAN),
    ("x ** 2 - 3", lambda t: t["x"] ** 2 - 3),
    ("2 ** x", lambda t: 2 ** t["x"]),
    ("x > 0.5", lambda t: t["x"] > 0.5),
]  # fmt: skip
INT_LITERAL_CASES = [
    ("x * 3 - 7", lambda t: t["x"] * 3 - 7),
    ("x * 0.5", lambda t: t["x"] * 0.5),  # int * weak float -> f32, as torch
    ("x < 2.5", lambda t: t["x"] < 2.5),
    ("x / 4", lambda t: t["x"] / 4),
]


def literal_cases(dtype):
    table = {"f16": FLOAT_LITERAL_CASES, "f32": FLOAT_LITERAL_CASES, "f64": FLOAT_LITERAL_CASES,
             "i32": INT_LITERAL_CASES, "i64": INT_LITERAL_CASES}.get(dtype, [])  # fmt: skip
    return [Case(f"literal[{ir}]", "literal", ir, fn, ("x",), OpSpec(fn)) for ir, fn in table]


ALL_CASES = {d: cases_for(d) + literal_cases(d) for d in DTYPES}


# -- one graph per dtype, run at every size ------------------------------------------


def _graph_text(dtype: str, inputs: dict[str, np.ndarray]) -> str:
    params = ", ".join(f"{k}: {'bool' if v.dtype == bool else dtype}[N]" for k, v in inputs.items())
    outs = ", ".join(c.ir for c in ALL_CASES[dtype])  # one line: a return is a statement
    return f"graph ops_{dtype}({params}) {{\n    return {outs}\n}}\n"


def _inputs(dtype):
    if dtype == "bool":
        return bool_inputs()
    if dtype in ("i32", "i64"):
        return int_inputs(dtype)
    return float_inputs(dtype)


def _run_chunked(g, inputs, n):
    """Run over the pool in chunks of n (the last one shorter), glue the outputs."""
    pieces = []
    for start in range(0, POOL, n):
        outs = g(*(v[start : start + n] for v in inputs.values()))
        pieces.append(outs if isinstance(outs, tuple) else (outs,))
    return [np.concatenate(col) for col in zip(*pieces, strict=True)]


_RUNS: dict = {}


def run_all(dtype):
    """[(label, inputs, outputs)] for the dtype's one graph, memoised per session.

    Sizes 7 (only the scalar tail), 8 (only the vector path), 9 and 37 (both)
    run over the whole pool in chunks; 1 over a prefix (a launch an element is
    slow); then the pool at once, tiled to 1000, and shuffled four times over
    (each input on its own), so that awkward values meet in one vector: PoCL
    got lanes wrong for sin/cos (float8) and pow (double8) only with some
    neighbours.
    """
    if dtype not in _RUNS:
        inputs = _inputs(dtype)
        g = fusec.compile(_graph_text(dtype, inputs))[f"ops_{dtype}"]
        assert len(g.kernels) == 1
        runs = []
        for n in SIZES:
            if n == 1000:
                tiled = {k: np.resize(v, 1000) for k, v in inputs.items()}
                runs.append(("size 1000", tiled, list(g(*tiled.values()))))
            elif n == 1:
                prefix = {k: v[:48] for k, v in inputs.items()}
                runs.append(("size 1", prefix, _run_chunked(g, prefix, 1)))
            else:
                runs.append((f"size {n}", inputs, _run_chunked(g, inputs, n)))
        runs.append((f"size {POOL}", inputs, list(g(*inputs.values()))))
        rng = np.random.default_rng(5)
        shuffled = {
            k: np.concatenate([rng.permutation(v) for _ in range(4)]) for k, v in inputs.items()
        }
        runs.append(("shuffled", shuffled, list(g(*shuffled.values()))))
        _RUNS[dtype] = runs
    return _RUNS[dtype]


def _oracle(case: Case, dtype: str, inputs: dict) -> np.ndarray:
    """torch's answer; for f16, computed on the f32 values and rounded once."""
    tensors = {k: torch.from_numpy(v.copy()) for k, v in inputs.items()}
    with torch.no_grad():
        if dtype != "f16":
            return case.oracle(tensors).numpy()
        probe = case.oracle({k: t[:4] for k, t in tensors.items()})  # torch's own f16 dtype rule
        wide = {k: (t.float() if t.dtype == torch.float16 else t) for k, t in tensors.items()}
        return case.oracle(wide).to(probe.dtype).numpy()


def _comparable(case: Case, inputs: dict) -> np.ndarray:
    """Elements where the answer is defined: float -> int casts only in range."""
    if case.spec.defined is None:
        return np.ones(len(inputs["x"]), dtype=bool)
    return case.spec.defined(inputs[case.inputs[0]], **case.attrs)


def assert_matches(got, want, rtol, atol, what, inputs):
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, torch gives {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"

    def show(bad):
        idx = np.flatnonzero(bad)[:8]
        rows = [f"  [{i}] in={ {k: v[i].item() for k, v in inputs.items()} } got={got[i]!r} want={want[i]!r}" for i in idx]  # fmt: skip
        return f"{what}: {int(bad.sum())} mismatches\n" + "\n".join(rows)

    if got.dtype == np.bool_:  # stored bytes are 0 or 1, nothing else
        bad = got.view(np.uint8) > 1
        assert not bad.any(), show(bad)
    if got.dtype.kind in "biu":
        bad = got != want
        assert not bad.any(), show(bad)
        return
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    bad = np.isnan(g64) != np.isnan(w64)  # NaN exactly where torch has NaN
    bad |= np.isinf(w64) & (g64 != w64)  # infinities, with their sign
    finite = np.isfinite(w64)
    # A subnormal answer holds fewer significant bits than rtol assumes, and so
    # does a subnormal intermediate: mish(-100) = -100 * tanh(softplus(-100)),
    # whose second factor (3.7e-44) is 27 steps of the smallest f32 subnormal;
    # torch gives -3.92e-42 there, 5% above the true -3.72e-42, and softplus
    # (-100) one step away from the correctly rounded 27 steps. So the error
    # is measured against max(|want|, the smallest normal number) of the
    # output's dtype: an absolute tolerance of rtol * 1.2e-38 in f32 (170
    # subnormal steps), 1.2e-7 in f16 (2 steps), 2e-320 in f64.
    scale = np.maximum(np.abs(w64), float(np.finfo(want.dtype).tiny))
    with np.errstate(all="ignore"):
        far = np.abs(g64 - w64) > atol + rtol * scale
    bad |= finite & (far | ~np.isfinite(g64))
    zeros = (g64 == 0) & (w64 == 0)
    bad |= zeros & (np.signbit(g64) != np.signbit(w64))  # signed zeros too
    assert not bad.any(), show(bad)


def _params():
    for dtype in DTYPES:
        for i, case in enumerate(ALL_CASES[dtype]):
            yield pytest.param(dtype, i, id=f"{dtype}-{case.id}")


@pytest.mark.parametrize("dtype, index", list(_params()))
def test_op_matches_torch(dtype, index):
    case = ALL_CASES[dtype][index]
    for label, inputs, outs in run_all(dtype):
        want = _oracle(case, dtype, inputs)
        out = {np.float16: "f16", np.float32: "f32", np.float64: "f64"}.get(want.dtype.type, "int")
        rtol = case.spec.rtol.get(out, RTOL.get(out, 0.0))
        if out == "f16":
            rtol = RTOL["f16"]  # within an f16 ulp of the rounded f32 answer
        atol = case.spec.atol.get(out, 0.0)
        if case.spec.inf_from_f64 and out in ("f16", "f32"):
            # torch's vectorised f32 gelu gives nan at +inf (its scalar path and
            # f64 give inf): there the consistent answer, inf, is pinned.
            want = np.where(inputs["x"] == INF, want.dtype.type(INF), want)
        keep = _comparable(case, inputs)
        sub = {k: v[keep] for k, v in inputs.items()}
        assert_matches(
            outs[index][keep], want[keep], rtol, atol, f"{dtype} {case.ir} ({label})", sub
        )
