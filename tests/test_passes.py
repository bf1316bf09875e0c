"""Each pass is a function Graph -> Graph: it keeps the graph valid and leaves its input alone."""

import copy
import importlib
import itertools
import math
import random
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

from fusec.api import compile_graphs
from fusec.diagnostics import CompileError
from fusec.frontend.lower import lower_module
from fusec.frontend.parser import parse
from fusec.ir.graph import topological_order, verify
from fusec.passes import infer
from fusec.passes.infer import broadcast
from fusec.passes.simplify import (
    STEPS,
    apply_identities,
    collapse_broadcasts,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_constants,
    merge_sums,
    simplify,
)


def inferred(text: str) -> nx.DiGraph:
    (g,) = lower_module(parse(text))
    return infer(g)


def ops(g) -> list[str]:
    return sorted(d["op"] for _, d in g.nodes(data=True) if d["op"] not in ("param", "const"))


def snapshot(g):
    return (copy.deepcopy(dict(g.nodes(data=True))), sorted(g.edges), copy.deepcopy(g.graph))


SAMPLES = [
    "graph f(x: f32[N]) {\n y = x * 1 + 0\n return relu(relu(-(-y)))\n}",
    "graph f(x: f32[N], s: f32) {\n a = exp(x) * s\n b = exp(x) * s\n return a + b, a\n}",
    "graph f(x: f32[N]) {\n k = 2 ** 3 + 1\n unused = tanh(x)\n return x * k\n}",
    "graph f(x: f16[4, N], b: f16[N]) {\n return where(x > 0, x + b, b * 0.5)\n}",
]


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("name, step", STEPS)
def test_pass_keeps_graph_valid_and_input_untouched(text, name, step):
    g = inferred(text)
    before = snapshot(g)
    out = step(g)
    verify(out)
    assert snapshot(g) == before, f"{name} mutated its input"


def test_constant_folding_evaluates_literal_subexpressions():
    g = fold_constants(inferred("graph f(x: f32[N]) {\n return x * (2 ** 3 + 1) - sqrt(16.0)\n}"))
    g = eliminate_dead_code(g)
    consts = sorted(d["value"] for _, d in g.nodes(data=True) if d["op"] == "const")
    assert consts == [4.0, 9]
    assert ops(g) == ["mul", "sub"]


def test_folded_nan_and_inf_follow_numpy():
    g = eliminate_dead_code(
        fold_constants(inferred("graph f(x: f32[N]) {\n return x + log(0.0) * 0, x + 1 / 0.0\n}"))
    )
    values = [d["value"] for _, d in g.nodes(data=True) if d["op"] == "const"]
    assert any(math.isnan(v) for v in values) and math.inf in values


def test_cse_merges_identical_subexpressions():
    g = eliminate_common_subexpressions(inferred(SAMPLES[1]))
    assert ops(g) == ["add", "exp", "mul"]


def test_dce_drops_unused_values():
    g = eliminate_dead_code(inferred(SAMPLES[2]))
    assert "tanh" not in ops(g)


@pytest.mark.parametrize(
    "expr, left",
    [
        ("x * 1", []),
        ("1 * x", []),
        ("x + 0", []),
        ("x - 0", []),
        ("x / 1", []),
        ("-(-x)", []),
        ("x ** 1", []),
        ("relu(relu(x))", ["relu"]),
        ("x * 1.5", ["mul"]),
        ("0 - x", ["sub"]),
    ],
)
def test_identities(expr, left):
    g = apply_identities(inferred(f"graph f(x: f32[N]) {{\n return {expr}\n}}"))
    assert ops(g) == left


def test_identity_keeps_dtype_changes():
    # i32 * 1.0 is f32: dropping the multiply would change the result's dtype.
    g = apply_identities(inferred("graph f(x: i32[N]) {\n return x * 1.0\n}"))
    assert ops(g) == ["mul"]


def test_identity_keeps_broadcasts():
    # x[N] + zeros broadcast to [M, N] is not x.
    g = apply_identities(inferred("graph f(x: f32[N], z: f32[M, N]) {\n return x + z * 0\n}"))
    assert "add" in ops(g)


def test_collapse_broadcasts_drops_the_wait_for_a_row_sum():
    # the backward of sum(sum(v, axis=1), axis=0) broadcasts its scalar cotangent
    # to the row sum's shape (zeros_like(row sum)), then to v's: only the second counts
    from fusec.passes.autodiff import grad_graph

    g = inferred(
        "graph f(x: f32[B, D], w: f32[D]) {\n return sum(sum(relu(x * w), axis=1), axis=0)\n}"
    )
    bwd = collapse_broadcasts(grad_graph(g, with_forward=False))
    assert "sum" not in ops(bwd) and ops(bwd).count("zeros_like") == 1
    verify(bwd)
    # the forward_backward graph still computes the loss (its two sums)
    both = collapse_broadcasts(grad_graph(g, with_forward=True))
    assert ops(both).count("sum") == 2


def test_merge_sums_gives_a_parameter_used_twice_one_sum():
    from fusec.passes.autodiff import grad_graph

    g = inferred("graph f(x: f32[B, D], w: f32[D]) {\n return relu(x * w + w)\n}")
    bwd = grad_graph(g, with_forward=False)
    assert ops(bwd).count("sum_to") == 2
    merged = merge_sums(bwd)
    assert ops(merged).count("sum_to") == 1
    verify(merged)


def test_full_simplify_pipeline():
    (g,) = compile_graphs(SAMPLES[0]).graphs
    assert ops(g) == ["relu"]
    g2 = simplify(g)
    assert ops(g2) == ops(g)


def test_front_end_does_not_import_pyopencl():
    """Everything up to code generation runs without a device."""
    code = (
        "import sys, fusec, fusec.codegen, fusec.codegen.plan;"
        "fusec.compile_graphs('graph f(x: f32[N]) {\\n return x + 1\\n}');"
        "assert 'pyopencl' not in sys.modules, 'front end imported pyopencl'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_kernels_cache_knows_nothing_of_fusec():
    import kernels_cache

    src = "\n".join(open(m.__file__).read() for m in [kernels_cache])
    assert "fusec." not in src and "import fusec" not in src


@pytest.mark.parametrize("text", SAMPLES)
def test_simplify_as_a_whole_leaves_its_input_untouched(text):
    """simplify runs its steps in place on one copy: the caller's graph stays as it was."""
    g = inferred(text)
    before = snapshot(g)
    out = simplify(g)
    verify(out)
    assert snapshot(g) == before
    steps_one_by_one = g
    for _, step in STEPS:
        steps_one_by_one = step(steps_one_by_one)
    assert snapshot(out) == snapshot(steps_one_by_one)


NESTED_IDENTITIES = (
    "graph f(x: f32[N]) {\n y = relu(relu(relu(x * 1))) / 1\n return -(-(-(-(y + 0)))) ** 1\n}"
)


def test_identities_reach_their_fixed_point_in_one_sweep(monkeypatch):
    """Each node is matched once: a rule reads a node and its operands, which
    a topological sweep has settled already; a second sweep finds nothing."""
    # fusec.passes.simplify is the function: the package re-exports it under the module's name
    simplify_module = importlib.import_module("fusec.passes.simplify")
    g = inferred(NESTED_IDENTITIES)
    calls = []
    counted = [
        (name, lambda g, n, m=m: calls.append(n) or m(g, n))
        for name, m in simplify_module.IDENTITIES
    ]
    monkeypatch.setattr(simplify_module, "IDENTITIES", counted)
    out = apply_identities(g)
    assert ops(out) == ["relu"]
    assert len(calls) <= len(counted) * len(g)  # each node at most once per rule
    assert snapshot(apply_identities(out)) == snapshot(out)  # nothing left to match


@pytest.mark.parametrize("seed", range(5))
def test_topological_order_is_networkx_order(seed):
    """Passes keep the first of equal nodes, so the order is networkx's exactly,
    also after edges moved (replace_uses appends to the successor dicts)."""
    rng = random.Random(seed)
    rank = list(range(300))
    rng.shuffle(rank)  # node ids not in topological order
    pairs = {tuple(sorted(rng.sample(range(300), 2))) for _ in range(900)}
    g = nx.DiGraph((rank[u], rank[v]) for u, v in pairs)
    for u, v in rng.sample(sorted(g.edges), 100):
        g.remove_edge(u, v)
        g.add_edge(u, v)
    order = topological_order(g)
    assert "in_degree" not in g.__dict__  # no view caches the graph in itself: no cycle to collect
    assert order == list(nx.topological_sort(g))


def test_topological_order_refuses_a_cycle():
    with pytest.raises(nx.NetworkXUnfeasible):
        topological_order(nx.DiGraph([(0, 1), (1, 2), (2, 0), (3, 0)]))


def test_broadcast_is_numpys():
    shapes = [(), (1,), (4,), (7,), (1, 4), (3, 1), (3, 4), (2, 3, 4), (1, 1), (2, 1, 1)]
    for combo in [*itertools.product(shapes, repeat=2), *itertools.product(shapes[:6], repeat=3)]:
        try:
            want = np.broadcast_shapes(*combo)
        except ValueError:
            with pytest.raises(CompileError, match="cannot broadcast"):
                broadcast(list(combo), None)
        else:
            assert broadcast(list(combo), None) == want, combo
    assert broadcast([("B", "N"), (), ("B", "N")], None) == ("B", "N")
    assert broadcast([("B", 1), (1, "N")], None) == ("B", "N")
    with pytest.raises(CompileError, match="different size names"):
        broadcast([("B", "N"), ("B", "M"), ()], None)


def test_verify_finds_a_cycle_whatever_the_ids():
    g = inferred("graph f(x: f32[N]) {\n a = exp(x)\n b = tanh(a)\n return b\n}")
    verify(g)
    a, b = (n for n, d in g.nodes(data=True) if d["op"] in ("exp", "tanh"))
    g.nodes[a]["args"] = (b,)  # exp(tanh(...)) with tanh(exp(...)): a cycle
    g.add_edge(b, a)
    g.remove_edge(0, a)
    with pytest.raises(AssertionError, match="cycle"):
        verify(g)
    h = nx.relabel_nodes(inferred("graph f(x: f32[N]) {\n return tanh(exp(x))\n}"), {0: 9})
    h.nodes[1]["args"] = (9,)
    h.graph["params"] = [9]
    verify(h)  # an operand with a larger id than its user is no cycle
