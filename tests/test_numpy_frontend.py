"""The NumPy front end: `@fusec.jit` and `fusec.<op>` against NumPy itself.

Each traced function is also run by NumPy on the same arrays: NumPy is the
reference (the tracer goes through the same operators and ufuncs).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fusec

rng = np.random.default_rng(12)


def rand(*shape, dtype=np.float32, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape).astype(dtype)


def head(x, w, b):
    return fusec.sigmoid(np.tanh(x * w + b))


def head_ref(x, w, b):
    return 1 / (1 + np.exp(-np.tanh(x * w + b)))


@pytest.fixture(scope="module")
def jitted_head():
    return fusec.jit(head)


def test_operators_ufuncs_and_fusec_ops_broadcast_like_numpy(jitted_head):
    x, w, b = rand(6, 10), rand(10), np.float32(0.25)
    np.testing.assert_allclose(jitted_head(x, w, b), head_ref(x, w, b), rtol=1e-5, atol=1e-6)
    text = jitted_head.ir(x, w, b)
    # w's axis is x's last: one symbol, so the graph broadcasts them
    assert "x: f32[N0, N1], w: f32[N1], b: f32" in text
    assert "sigmoid(" in text and "tanh(" in text


def test_new_lengths_of_the_same_rank_reuse_the_trace(jitted_head):
    jitted_head(rand(6, 10), rand(10), np.float32(0.25))
    before = len(jitted_head._traces)
    for rows, cols in ((3, 7), (129, 1000)):
        x, w = rand(rows, cols), rand(cols)
        np.testing.assert_allclose(
            jitted_head(x, w, 0.5), head_ref(x, w, np.float32(0.5)), rtol=1e-5, atol=1e-6
        )
    after_python_scalar = len(jitted_head._traces)
    x, w = rand(40, 33), rand(33)
    jitted_head(x, w, 0.5)
    assert len(jitted_head._traces) == after_python_scalar <= before + 1
    # a size-1 axis is another broadcasting pattern: a new trace, still right
    w1 = rand(1)
    np.testing.assert_allclose(
        jitted_head(x, w1, 0.5), head_ref(x, w1, np.float32(0.5)), rtol=1e-5, atol=1e-6
    )
    assert "w: f32[1]" in jitted_head.ir(x, w1, 0.5)


def test_same_signature_gives_the_same_ir_text():
    """The same text is what lets fusec.compile and the disk cache reuse a build."""
    a = fusec.jit(head).ir(rand(5, 4), rand(4), np.float32(1))
    b = fusec.jit(head).ir(rand(50, 8), rand(8), np.float32(2))
    assert a == b


def several(x, y):
    z = np.where(x > 0, x * 2.0, np.exp(y))
    return z.sum(axis=1), np.maximum(z, 0.5), np.mean(z), z.max(axis=0, keepdims=True)


def test_several_outputs_and_reductions():
    x, y = rand(5, 7), rand(5, 7)
    got = fusec.jit(several)(x, y)
    assert isinstance(got, tuple) and len(got) == 4
    for g, r in zip(got, several(x, y), strict=True):
        assert g.shape == np.shape(r)
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)
    as_list = fusec.jit(lambda x: [x + 1, -x])(x)
    assert isinstance(as_list, list)
    np.testing.assert_array_equal(as_list[1], -x)


def test_dtypes_follow_numpy():
    ints = np.arange(12, dtype=np.int32).reshape(3, 4)
    got = fusec.jit(lambda a, b: (a * b + 1, a > b, (a - b).astype(np.float32) / 2))(
        ints, ints[::-1].copy()
    )
    ref = (ints * ints[::-1] + 1, ints > ints[::-1], (ints - ints[::-1]).astype(np.float32) / 2)
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == r.dtype
        np.testing.assert_array_equal(g, r)
    # a Python float argument takes the arrays' float dtype (NumPy 2's weak scalars)
    x = rand(8)
    y = fusec.jit(lambda x, s: x * s)(x, 0.1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x * 0.1, rtol=1e-6)
    x64 = rand(8, dtype=np.float64)
    np.testing.assert_allclose(fusec.jit(lambda x, s: x * s)(x64, 0.1), x64 * 0.1, rtol=1e-15)


def test_linear_matmul_and_fusec_ops_by_name():
    x, w, b, m = rand(9, 16), rand(8, 16), rand(8), rand(8, 5)

    @fusec.jit
    def layer(x, w, b, m):
        return fusec.softmax(fusec.relu(fusec.linear(x, w, b)) @ m, axis=-1), fusec.leaky_relu(
            x, alpha=0.2
        )

    probs, leaky = layer(x, w, b, m)
    h = np.maximum(x @ w.T + b, 0) @ m
    e = np.exp(h - h.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=-1, keepdims=True), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(leaky, np.where(x > 0, x, 0.2 * x), rtol=1e-6)
    # on plain arrays, fusec.<op> runs at once
    np.testing.assert_allclose(fusec.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-5)
    np.testing.assert_allclose(fusec.clamp(x, min=-0.5, max=0.5), np.clip(x, -0.5, 0.5))


def test_an_op_registered_later_is_a_fusec_function():
    name = "npfe_cube"
    fusec.register_primitive(
        name, ["x"], "({x} * {x} * {x})", lambda x: x**3, backward={"x": "g * 3 * x * x"}
    )
    try:
        x = rand(33)
        np.testing.assert_allclose(getattr(fusec, name)(x), x**3, rtol=1e-6)
        f = fusec.jit(lambda x: getattr(fusec, name)(x) + 1)
        np.testing.assert_allclose(f(x), x**3 + 1, rtol=1e-6)
    finally:
        del fusec.ir.registry.REGISTRY[name]
    with pytest.raises(AttributeError, match="no op 'npfe_cube'"):
        getattr(fusec, name)


def test_value_and_grad_and_vjp():
    def loss(x, w, b):
        return (np.tanh(x * w + b) ** 2).sum()

    f = fusec.jit(loss, grad=True)
    x, w, b = rand(4, 6), rand(6), np.float32(0.3)
    value, grads = f.value_and_grad(x, w, b)
    t = np.tanh(x * w + b)
    dz = 2 * t * (1 - t * t)
    np.testing.assert_allclose(value, loss(x, w, b), rtol=1e-5)
    assert set(grads) == {"x", "w", "b"}
    np.testing.assert_allclose(grads["x"], dz * w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["w"], (dz * x).sum(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["b"], dz.sum(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f.vjp(x, w, b)["w"], grads["w"], rtol=1e-6)
    with pytest.raises(fusec.CallError, match="grad=True"):
        fusec.jit(loss).value_and_grad(x, w, b)


def test_static_arguments_and_keywords():
    f = fusec.jit(lambda x, axis: x.sum(axis=axis), static_argnames=("axis",))
    x = rand(3, 4)
    np.testing.assert_allclose(f(x, 0), x.sum(0), rtol=1e-6)
    np.testing.assert_allclose(f(x, axis=1), x.sum(1), rtol=1e-6)
    with pytest.raises(fusec.CallError, match="'name' is a str"):
        fusec.jit(lambda x, name: x)(x, "a")


def _if_on_values(x):
    if x > 0:  # the line TraceError names
        return x
    return -x


BAD = [
    (_if_on_values, "truth value", inspect.getsourcelines(_if_on_values)[1] + 1),
    (lambda x: np.fft.fft(x), "numpy.fft.fft is not supported", None),
    (lambda x: np.fmod(x, 2), "np.fmod is not supported", None),
    (lambda x: x.cumsum(), "no method or attribute 'cumsum'", None),
    (lambda x: float(x), r"float\(\) of a traced array", None),
    (lambda x: x[0], "indexing", None),
    (lambda x: x @ np.ones((3, 3), np.float32), "not an argument of the traced function", None),
    (lambda x: np.where(x, x, 1.0), "where's condition must be bool", None),
    (lambda x: x + x.sum(axis=1), "could not be broadcast", None),
]


@pytest.mark.parametrize("fn, message, line", BAD, ids=[m.split()[0] for _, m, _ in BAD])
def test_what_cannot_be_traced_names_the_users_line(fn, message, line):
    with pytest.raises(fusec.TraceError, match=message) as info:
        fusec.jit(fn)(rand(3, 4))
    assert info.value.filename == __file__
    assert info.value.lineno == (line or fn.__code__.co_firstlineno)
    assert f"{__file__}:{info.value.lineno}:" in str(info.value)


# -- random expressions: one tree, run by NumPy and traced by fusec.jit --------------
UNARY = {
    "tanh": np.tanh,
    "exp": lambda v: np.exp(np.tanh(v)),
    "neg": np.negative,
    "sin": np.sin,
    "sqrt_abs": lambda v: np.sqrt(np.abs(v)),
    "arctan": np.arctan,
    "log1p_abs": lambda v: np.log1p(np.abs(v)),
    "square": np.square,
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
}
BINARY = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "max": np.maximum,
    "min": np.minimum,
    "where": lambda a, b: np.where(a > b, a, b * 0.5),
    "arctan2": np.arctan2,
}

leaves = st.sampled_from(["x", "w", "b", 1.5, -0.25])
trees = st.recursive(
    leaves,
    lambda sub: (
        st.tuples(st.sampled_from(sorted(UNARY)), sub)
        | st.tuples(st.sampled_from(sorted(BINARY)), sub, sub)
    ),
    max_leaves=6,
)


def run_tree(tree, env):
    if isinstance(tree, str):
        return env[tree]
    if not isinstance(tree, tuple):
        return tree
    if len(tree) == 2:
        return UNARY[tree[0]](run_tree(tree[1], env))
    return BINARY[tree[0]](run_tree(tree[1], env), run_tree(tree[2], env))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_random_expressions_match_numpy(tree):
    env = {
        "x": rand(5, 8, dtype=np.float64),
        "w": rand(8, dtype=np.float64),
        "b": rand(5, 1, dtype=np.float64),
    }
    ref = np.broadcast_to(run_tree(tree, env) * 1.0 + env["x"] * 0.0, (5, 8))

    def f(x, w, b):  # + x * 0 gives every tree an array operand and one output shape
        return run_tree(tree, {"x": x, "w": w, "b": b}) * 1.0 + x * 0.0

    np.testing.assert_allclose(
        fusec.jit(f)(env["x"], env["w"], env["b"]), ref, rtol=1e-9, atol=1e-12
    )


def test_squares_are_products_not_pow():
    x = rand(17)
    f = fusec.jit(lambda x: x**2 + 3.0**x)
    assert "square(x)" in f.ir(x) and "pow(3.0, x)" in f.ir(x)
    np.testing.assert_allclose(f(x), x**2 + np.float32(3.0) ** x, rtol=1e-6)


def test_a_jitted_function_called_while_tracing_is_inlined():
    inner = fusec.jit(lambda v: np.tanh(v) * 2)
    outer = fusec.jit(lambda x, y: inner(x) + inner(y))
    x, y = rand(11), rand(11)
    np.testing.assert_allclose(outer(x, y), np.tanh(x) * 2 + np.tanh(y) * 2, rtol=1e-6, atol=1e-6)
    assert outer.ir(x, y).count("tanh(") == 2


def test_torch_cpu_tensors_in_and_out():
    torch = pytest.importorskip("torch")
    x, w = torch.randn(5, 6), torch.randn(6)
    y = fusec.jit(lambda x, w: np.maximum(x * w, 0.0))(x, w)
    assert isinstance(y, torch.Tensor)
    torch.testing.assert_close(y, torch.relu(x * w))


def test_calls_from_many_threads():
    from concurrent.futures import ThreadPoolExecutor

    f = fusec.jit(lambda x, s: np.exp(x) * s)
    inputs = [rand(n) for n in (10, 200, 3000, 10, 200, 3000, 77, 1)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda v: f(v, 0.5), inputs))
    for v, r in zip(inputs, results, strict=True):
        np.testing.assert_allclose(r, np.exp(v) * np.float32(0.5), rtol=1e-6)


def test_every_registry_op_is_a_fusec_function_that_traces_to_valid_ir():
    """Each op, called as fusec.<op> on traced arrays, writes IR that fusec's
    own front end accepts (parse, types, shapes; no device needed)."""
    from fusec.ir.dtypes import FROM_NUMPY
    from fusec.ir.registry import all_primitives
    from fusec.numpy.tracer import Tracer

    special = {  # operands (as parameter specs) and attributes where f32[N0, N1] arrays will not do
        "cast": ([("f32", ("N0", "N1"))], {"dtype": np.float16}),
        "linear": ([("f32", ("N0", "N1")), ("f32", ("N2", "N1")), ("f32", ("N2",))], {}),
        "matmul": ([("f32", ("N0", "N1")), ("f32", ("N1", "N2"))], {}),
        "gemm": ([("f32", ("N0", "N1")), ("f32", ("N0", "N2"))], {"ta": True}),
        "unsqueeze": ([("f32", ("N0", "N1"))], {"axis": 1}),
        "squeeze": ([("f32", (1, "N1"))], {"axis": 0}),
        "where": ([("bool", ("N0", "N1")), ("f32", ("N0", "N1")), ("f32", ("N1",))], {}),
    }
    ops = sorted(name for name, p in all_primitives().items() if not p.internal)
    assert len(ops) > 50
    for name in ops:
        prim = all_primitives()[name]
        specs, attrs = special.get(name, ([("f32", ("N0", "N1"))] * len(prim.inputs), {}))
        tracer = Tracer()
        args = [tracer.parameter(f"p{i}", dtype, shape) for i, (dtype, shape) in enumerate(specs)]
        out = getattr(fusec, name)(*args, **attrs)
        assert f"= {name}(" in tracer.statements[-1]
        front = fusec.compile_graphs(tracer.text("g", [out]))
        (graph,) = front.graphs
        result = graph.nodes[graph.graph["outputs"][0]]
        # the tracer's dtype and shape are what fusec infers for the text
        assert result["dtype"] == FROM_NUMPY[out.dtype], name
        assert tuple(result["shape"]) == out.shape_symbols, name


def test_varargs_keywords_defaults_and_names_that_are_ops():
    @fusec.jit
    def f(x, *rest, scale=2.0, **named):
        total = x * scale
        for r in rest:
            total = total + r
        for v in named.values():
            total = total - v
        return total

    x, y, z = rand(5), rand(5), rand(5)
    np.testing.assert_allclose(f(x, y, y, scale=3.0, z=z), x * 3 + y + y - z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f(x), x * 2, rtol=1e-6)
    assert "rest_0: f32[N0], rest_1: f32[N0], scale: f32, z: f32[N0]" in f.ir(
        x, y, y, scale=3.0, z=z
    )

    def sum(graph, where):  # an op name and a keyword as names: mangled in the IR
        return graph + where

    assert "graph sum_(graph_: f32[N0], where_: f32[N0])" in fusec.jit(sum).ir(x, y)
    np.testing.assert_allclose(fusec.jit(sum)(x, y), x + y, rtol=1e-6)


def test_new_lengths_in_a_new_process_load_the_build_from_the_disk_cache(tmp_path):
    """The same signature writes the same IR text, so a second process with
    other lengths builds nothing: its kernels come from the disk cache."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "FUSEC_CACHE_DIR": str(tmp_path), "PYTHONPATH": root}
    run = (
        "import sys, numpy as np, fusec\n"
        "n = int(sys.argv[1])\n"
        "x, w = np.ones((n, n + 1), np.float32), np.full(n + 1, 0.5, np.float32)\n"
        "y = fusec.jit(lambda x, w: np.tanh(x * w).sum(axis=1))(x, w)\n"
        "assert np.allclose(y, np.tanh(0.5) * (n + 1)), y\n"
    )

    def stats():
        out = subprocess.run(
            [sys.executable, "-m", "fusec", "cache", "stats", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(out)

    subprocess.run([sys.executable, "-c", run, "3"], env=env, check=True, cwd=root)
    first = stats()
    assert first["builds"] >= 1
    subprocess.run([sys.executable, "-c", run, "700"], env=env, check=True, cwd=root)
    second = stats()
    assert second["builds"] == first["builds"]
    assert second["hits"] > first["hits"]


def test_out_writes_into_the_callers_arrays():
    f = fusec.jit(lambda x, y: (x * y, x - y))
    x, y = rand(4, 5), rand(5)
    prod, diff = np.empty((4, 5), np.float32), np.empty((4, 5), np.float32)
    got = f(x, y, out=(prod, diff))
    assert got[0] is prod and got[1] is diff
    np.testing.assert_array_equal(prod, x * y)
    np.testing.assert_array_equal(diff, x - y)


def test_mod_and_floor_division_of_floats_as_numpy():
    """`%` and `//` of floats follow Python's sign rule (np.mod, np.floor_divide);
    of integers they are a TraceError at the user's line, not a bare TypeError."""
    x = np.linspace(-5, 5, 23)
    f = fusec.jit(lambda x, y: (x % 2, 7.5 % y, x // -1.5, np.mod(x, y)))
    for got, want in zip(
        f(x, x + 0.25), (x % 2, 7.5 % (x + 0.25), x // -1.5, np.mod(x, x + 0.25)), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(fusec.TraceError, match="% of integers: fusec has no integer division"):
        fusec.jit(lambda n: n % 2)(np.arange(4))


def test_xor_of_bools_and_divmod_trace_and_shifts_are_a_trace_error():
    x = np.linspace(-1, 1, 9)
    f = fusec.jit(lambda x: ((x > 0) ^ (x < 0.5), np.logical_xor(x, x > 0), *divmod(x, 0.3)))
    want = ((x > 0) ^ (x < 0.5), np.logical_xor(x, x > 0), *divmod(x, 0.3))
    for got, ref in zip(f(x), want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(fusec.TraceError, match="<< and >>: fusec has no bitwise operations"):
        fusec.jit(lambda n: n << 1)(np.arange(4))


def test_an_unknown_fusec_function_is_a_trace_error_at_the_users_line():
    def head(x):
        return fusec.sigmod(x)  # the typo is this line's

    with pytest.raises(fusec.TraceError, match="did you mean fusec.sigmoid") as info:
        fusec.jit(head)(np.ones(3))
    assert info.value.lineno == head.__code__.co_firstlineno + 1
    assert not hasattr(fusec, "sigmod") and isinstance(info.value, AttributeError)
