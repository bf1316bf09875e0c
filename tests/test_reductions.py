"""Reductions (sum mean max min along an axis, keepdim; softmax, log_softmax)
with their elementwise prologues fused, against PyTorch."""

from __future__ import annotations

import re

import numpy as np
import pytest

import fusec

torch = pytest.importorskip("torch")

rng = np.random.default_rng(11)

FLOAT = """
graph f(x: {T}[A, B, C], y: {T}[A, B, C]) {{
    s = sum(x * y, axis={axis}, keepdim={keep})
    m = mean(exp(x), axis={axis}, keepdim={keep})
    return s, m, max(x - y, axis={axis}, keepdim={keep}), min(tanh(x), axis={axis}, keepdim={keep})
}}
"""


def reference(x, y, axis, keep):
    return [
        (x * y).sum(axis, keepdim=keep),
        torch.exp(x).mean(axis, keepdim=keep),
        (x - y).amax(axis, keepdim=keep),
        torch.tanh(x).amin(axis, keepdim=keep),
    ]


@pytest.mark.parametrize("dtype, tol", [("f32", 2e-5), ("f64", 1e-12)])
@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_axis_reductions_match_torch(dtype, tol, keep, axis):
    g = fusec.compile(FLOAT.format(T=dtype, axis=axis, keep="true" if keep else "false"))["f"]
    np_dtype = {"f32": np.float32, "f64": np.float64}[dtype]
    # 1s, primes and a long axis (more elements than one work-item's chunk)
    for shape in [(1, 1, 1), (3, 5, 7), (2, 1, 1031), (257, 3, 2)]:
        x = rng.standard_normal(shape).astype(np_dtype)
        y = rng.standard_normal(shape).astype(np_dtype)
        got = g(x, y)
        for out, want in zip(
            got, reference(torch.tensor(x), torch.tensor(y), axis, keep), strict=True
        ):
            assert out.shape == tuple(want.shape) and out.dtype == np_dtype
            np.testing.assert_allclose(out, want.numpy(), rtol=tol, atol=tol, err_msg=str(shape))


def test_nan_propagates_through_max_and_min_and_empty_axes_give_identities():
    g = fusec.compile("graph f(x: f32[N, K]) {\n return max(x), min(x), sum(x), mean(x)\n}")["f"]
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    x[1, 2] = np.nan
    mx, mn, s, m = g(x)
    X = torch.tensor(x)
    for got, want in zip(
        (mx, mn, s, m), (X.amax(-1), X.amin(-1), X.sum(-1), X.mean(-1)), strict=True
    ):
        np.testing.assert_array_equal(got, want.numpy())
    empty = np.zeros((2, 0), np.float32)
    mx, mn, s, m = g(empty)
    np.testing.assert_array_equal(
        mx, [-np.inf, -np.inf]
    )  # torch raises here; fusec gives the identity
    np.testing.assert_array_equal(s, [0, 0])
    assert np.isnan(m).all()  # 0 / 0, as torch.mean of an empty axis


def test_integer_and_bool_sums_are_i64_and_int_max_keeps_its_dtype():
    g = fusec.compile(
        "graph f(k: i32[N], q: bool[N]) {\n return sum(k), sum(q), max(k), min(k, axis=0, keepdim=true)\n}"
    )["f"]
    k = rng.integers(-(2**31), 2**31 - 1, 5001).astype(np.int32)
    q = rng.random(5001) < 0.3
    s, c, mx, mn = g(k, q)
    assert s.dtype == np.int64 and int(s) == int(
        torch.tensor(k).sum()
    )  # no overflow: i64 accumulator
    assert c.dtype == np.int64 and int(c) == int(q.sum())
    assert mx.dtype == np.int32 and int(mx) == int(k.max())
    assert mn.shape == (1,) and int(mn[0]) == int(k.min())


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_and_log_softmax_are_stable(axis):
    g = fusec.compile(
        f"graph s(x: f32[B, N]) {{\n return softmax(x, axis={axis}), log_softmax(x * 3, axis={axis})\n}}"
    )["s"]
    for shape in [(1, 1), (3, 5), (64, 1000)]:
        x = (rng.standard_normal(shape) * 40).astype(np.float32)  # exp(x) alone would overflow
        a, b = g(x)
        X = torch.tensor(x)
        np.testing.assert_allclose(a, torch.softmax(X, axis).numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b, torch.log_softmax(X * 3, axis).numpy(), rtol=1e-5, atol=1e-4)


def test_the_prologue_is_fused_and_the_plan_says_why():
    g = fusec.compile("graph f(x: f32[B, N], w: f32[N]) {\n return sum(tanh(x * w), axis=1)\n}")[
        "f"
    ]
    names = [k["name"] for k in g.plan["kernels"]]
    assert names == [
        "f_r0_partial",
        "f_r0_finish",
    ]  # no elementwise kernel: tanh(x * w) runs inside
    assert g.plan["kernels"][0]["ops"] == ["mul", "tanh", "sum"]
    assert "reduction ends a group" in g.plan["kernels"][0]["why"]
    x = rng.standard_normal((40, 9)).astype(np.float32)
    w = rng.standard_normal(9).astype(np.float32)
    np.testing.assert_allclose(g(x, w), np.tanh(x * w).sum(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "text, message",
    [
        ("sum(x, axis=2)", "sum: axis 2 is out of range for 2 dimensions"),
        ("max(s)", "max: cannot reduce a scalar: it has no axis"),
        ("softmax(x, axis=-3)", "max: axis -3 is out of range for 2 dimensions"),
    ],
)
def test_bad_axes_are_positioned_errors(text, message):
    with pytest.raises(fusec.CompileError) as err:
        fusec.compile(f"graph f(x: f32[B, N], s: f32) {{\n    return {text}\n}}")
    assert f"<input>:2:12: error: {message}" in str(err.value)


GRAD = """
graph f(x: f64[B, N], t: f64[B, N]) {{
    a = sum(x * t, axis={axis}, keepdim={keep})
    b = mean(x * x, axis={axis}, keepdim={keep})
    return a, b, max(x, axis={axis}, keepdim={keep}), min(x * t, axis={axis}, keepdim={keep})
}}
"""


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reduction_gradients_match_torch(axis, keep):
    """sum and mean spread g back over the axis; max and min share it evenly among ties (torch.amax)."""
    g = fusec.compile(GRAD.format(axis=axis, keep="true" if keep else "false"), grad=True)["f"]
    for shape in [(1, 1), (3, 5), (17, 40)]:
        x, t = rng.standard_normal(shape), rng.standard_normal(shape)
        x[0, 0] = x[-1, -1]  # a tie for max along both axes when the shape allows
        tx, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
        outs = [
            (tx * tt).sum(axis, keepdim=keep),
            (tx * tx).mean(axis, keepdim=keep),
            tx.amax(axis, keepdim=keep),
            (tx * tt).amin(axis, keepdim=keep),
        ]
        cts = [rng.standard_normal(tuple(o.shape)) for o in outs]
        torch.autograd.backward(outs, [torch.tensor(c) for c in cts])
        ys, grads = g.value_and_grad(x, t, grad_outputs=tuple(cts))
        for y, o in zip(ys, outs, strict=True):
            np.testing.assert_allclose(y, o.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            grads["x"], tx.grad.numpy(), rtol=1e-12, atol=1e-12, err_msg=str(shape)
        )
        np.testing.assert_allclose(
            grads["t"], tt.grad.numpy(), rtol=1e-12, atol=1e-12, err_msg=str(shape)
        )


def test_elementwise_ops_on_a_reduction_run_in_its_last_kernel():
    text = """
graph f(x: f32[B, N], c: f32[B], s: f32) {
    m = mean(x * x, axis=1) * s + c
    return m, sqrt(m), -sum(m)
}
"""
    g = fusec.compile(text, grad=True)["f"]
    x = rng.standard_normal((37, 11)).astype(np.float32)
    c = rng.uniform(1, 2, 37).astype(np.float32)
    m, root, total = g(x, c, np.float32(0.5))
    want = (x * x).mean(1) * 0.5 + c
    np.testing.assert_allclose(m, want, rtol=1e-5)
    np.testing.assert_allclose(root, np.sqrt(want), rtol=1e-5)
    np.testing.assert_allclose(total, -want.sum(), rtol=1e-5)
    names = [k["name"] for k in g.plan["kernels"]]
    assert not any(n.startswith("f_k") for n in names), names  # no elementwise kernel of its own
    finish = next(k for k in g.plan["kernels"] if k["name"] == "f_r0_finish")
    assert "in its last kernel" in finish["why"]
    # and the gradients through it (the epilogue of the backward's reductions too)
    tx, tc = torch.tensor(x, requires_grad=True), torch.tensor(c, requires_grad=True)
    tm = (tx * tx).mean(1) * 0.5 + tc
    outs = [tm, torch.sqrt(tm), -tm.sum()]
    cts = [rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in outs]
    torch.autograd.backward(outs, [torch.tensor(ct) for ct in cts])
    _, grads = g.value_and_grad(x, c, np.float32(0.5), grad_outputs=tuple(cts))
    np.testing.assert_allclose(grads["x"], tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["c"], tc.grad.numpy(), rtol=1e-4, atol=1e-5)


ROW_COL_FULL = """
graph f(x: f32[B, N], w: f32[N], b: f32[B, 1]) {
    y = relu(x * w + b)
    return sum(y, axis=1) * 2.0, sum(y, axis=0) - 1.0, sum(sum(y, axis=1), axis=0), max(y, axis=0), min(x, axis=1)
}
"""


@pytest.fixture(scope="module")
def row_col_full():
    return fusec.compile(ROW_COL_FULL)["f"]


@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (1023, 3), (3, 1023), (2053, 13), (5, 4099)])
def test_row_column_and_full_sums_with_prologue_and_epilogue(row_col_full, shape):
    """Row, column and full reductions of a broadcast prologue, with an elementwise
    epilogue, on sizes that are not multiples of the vector width, against NumPy."""
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(shape[1]).astype(np.float32)
    b = rng.standard_normal((shape[0], 1)).astype(np.float32)
    y = np.maximum(x.astype(np.float64) * w + b, 0)
    rows, cols, full, top, low = row_col_full(x, w, b)
    tol = dict(rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(rows, y.sum(1) * 2, **tol)
    np.testing.assert_allclose(cols, y.sum(0) - 1, **tol)
    np.testing.assert_allclose(full, y.sum(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(top, y.max(0), rtol=1e-6, atol=1e-5)  # f32 rounding of x * w + b
    np.testing.assert_array_equal(low, x.min(1))


def test_a_column_sum_of_few_columns_splits_its_rows_over_work_groups():
    """1024 columns are 128 vectors (one block of a CPU's row-streaming layout,
    column_rows.py): the rows are split into chunks, so that every compute unit
    has work (one chunk was one work-group on one core)."""
    from fusec.api import compile_graphs
    from fusec.codegen import generate
    from fusec.codegen.device import DeviceInfo
    from fusec.passes import fuse

    (graph,) = compile_graphs("graph f(x: f32[B, N]) {\n return sum(x, axis=0)\n}").graphs
    device = DeviceInfo(vector_width=8, compute_units=2, local_size=256)
    _, (kernel,) = generate(graph, fuse(graph), device)
    counts = kernel.counts((4096, 1024))
    (partial, _) = kernel.launches((4096, 1024))
    groups = partial.global_size[0] // partial.local_size[0]
    assert counts["chunks"] > 1 and groups >= 2 * device.compute_units


def test_a_row_reduction_reads_broadcast_operands_without_division_per_element():
    """sum(exp(x - m), axis=1) with m: [B, 1] (softmax's second pass): m is one
    value per row, read at an offset computed once per work-item."""
    from fusec.api import compile_graphs
    from fusec.codegen import generate
    from fusec.codegen.device import DeviceInfo
    from fusec.passes import fuse

    text = (
        "graph f(x: f32[B, N], m: f32[B, 1], w: f32[N]) {\n return sum(exp(x - m) * w, axis=1)\n}"
    )
    (graph,) = compile_graphs(text).graphs
    source, _ = generate(graph, fuse(graph), DeviceInfo(vector_width=8))
    head = source.index("for (long q = q0; q < q1; q += 32)")  # 4 accumulators of 8 lanes
    loop = source[source.index("\n", head) : source.index("if (t / m == 0)")]  # the loop's body
    code = "\n".join(line.split("//")[0] for line in loop.splitlines())
    assert "/" not in code and "%" not in code and "in_w + ob" in code
    g = fusec.compile(text)["f"]
    for shape in [(1, 1), (3, 1023), (7, 13)]:
        x = rng.standard_normal(shape).astype(np.float32)
        m = rng.standard_normal((shape[0], 1)).astype(np.float32)
        w = rng.standard_normal(shape[1]).astype(np.float32)
        np.testing.assert_allclose(g(x, m, w), (np.exp(x - m) * w).sum(1), rtol=1e-5, atol=1e-4)


def compile_for(text, layout, grad=False):
    """The graphs as this device runs them, or as a GPU's code (blocks dealt
    round the chunks, not a contiguous run per chunk), run on this device."""
    if layout == "cpu":
        return fusec.compile(text, grad=grad)
    import dataclasses

    import pyopencl as cl

    from fusec.api import Program, compile_graphs
    from fusec.runtime import Runtime

    shared = fusec.compile("graph f(x: f32[N]) {\n return x\n}")["f"].runtime
    runtime = Runtime(shared.device, cl.CommandQueue(shared.queue.context))
    runtime.info = dataclasses.replace(runtime.info, is_cpu=False)
    return Program(compile_graphs(text, grad=grad), runtime)


EXTREMA = """
graph f(x: f32[B, N]) {
    return max(x, axis=1), min(x * 2.0, axis=1), max(x, axis=0), min(x, axis=0)
}
"""


@pytest.fixture(scope="module", params=["cpu", "gpu"])
def extrema(request):
    return compile_for(EXTREMA, request.param)["f"]


@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (5, 1023), (1031, 9), (3, 4099)])
def test_max_and_min_propagate_nan_from_every_part_of_the_loops(extrema, shape):
    """NaN at the start, the middle and the last element of rows and columns
    (the blocks of vectors, the vectors after them, the scalar end), beside
    rows and columns without one; -inf and inf are ordinary values."""
    g = extrema
    x = rng.standard_normal(shape).astype(np.float32)
    rows, cols = shape
    x[0, 0] = np.nan
    x[rows // 2, cols // 2] = np.nan
    x[-1, -1] = np.nan
    x[rows // 3, 0] = np.inf
    x[0, cols // 3] = -np.inf
    got = g(x)
    want = [x.max(1), (x * 2).min(1), x.max(0), x.min(0)]
    for out, ref in zip(got, want, strict=True):
        np.testing.assert_array_equal(out, ref)
    clean = rng.standard_normal(shape).astype(np.float32)  # and no NaN at all
    for out, ref in zip(
        g(clean), [clean.max(1), (clean * 2).min(1), clean.max(0), clean.min(0)], strict=True
    ):
        np.testing.assert_array_equal(out, ref)


FULL = """
graph f(x: f32[B, N], w: f32[N]) {
    return sum(sum(relu(x * w), axis=1), axis=0) * 0.5, sum(sum(x, axis=0, keepdim=true), axis=1, keepdim=true)
}
"""


@pytest.fixture(scope="module", params=["cpu", "gpu"])
def full_sums(request):
    return compile_for(FULL, request.param, grad=True)["f"]


def test_nested_sums_are_one_reduction_over_both_axes(full_sums):
    """sum(sum(y, axis=1), axis=0) reads y once: one reduction (sum_to), whose
    epilogue takes the * 0.5, not a second reduction over the row sums."""
    reductions = [k for k in full_sums.plan["kernels"] if k["name"].endswith("_partial")]
    assert len(reductions) == 2, full_sums.plan["kernels"]  # one per output
    assert [k["ops"][-1] for k in reductions] == ["sum_to", "sum_to"]
    # a CPU's chunks are contiguous runs; a GPU's, blocks dealt round them
    dealt = re.search(r"q \+= chunks \* \d+\)", full_sums.source) is not None
    assert dealt == (not full_sums.runtime.info.is_cpu)


@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (1023, 3), (13, 1031), (257, 4099)])
def test_nested_sums_match_numpy_with_their_gradient(full_sums, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(shape[1]).astype(np.float32)
    total, keep = full_sums(x, w)
    y = np.maximum(x.astype(np.float64) * w, 0)
    assert total.shape == () and keep.shape == (1, 1)
    np.testing.assert_allclose(total, y.sum() * 0.5, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(keep, x.astype(np.float64).sum(keepdims=True), rtol=1e-5, atol=1e-3)
    ct = (np.float32(1.5), np.full((1, 1), 2.0, np.float32))
    _, grads = full_sums.value_and_grad(x, w, grad_outputs=ct)
    mask = x * w > 0
    np.testing.assert_allclose(grads["x"], 0.75 * w * mask + 2.0, rtol=1e-6)
    np.testing.assert_allclose(grads["w"], 0.75 * (x * mask).sum(0), rtol=1e-5, atol=1e-4)


def test_a_nested_sum_whose_inner_sum_is_used_again_is_left_as_it_is():
    """The row sums are computed anyway: summing them is cheaper than x again.
    Integer sums are not folded (each sum is i64, not its operand's dtype)."""
    from fusec.api import compile_graphs

    text = (
        "graph f(x: f32[B, N], k: i32[B, N]) {\n"
        " r = sum(x, axis=1)\n return r, sum(r, axis=0), sum(sum(k, axis=1), axis=0)\n}"
    )
    (graph,) = compile_graphs(text).graphs
    ops = sorted(d["op"] for _, d in graph.nodes(data=True) if d["op"] != "param")
    assert ops == ["sum"] * 4


@pytest.mark.parametrize(
    "expr, axes, keep, folded",
    [
        ("sum(sum(x, axis=0), axis=0)", (0, 1), False, True),
        ("sum(sum(x, axis=1, keepdim=true), axis=2, keepdim=true)", (1, 2), True, True),
        ("sum(sum(x, axis=2), axis=1)", (1, 2), False, False),  # trailing: sum_to cannot say it
    ],
)
def test_nested_sums_of_three_axes(expr, axes, keep, folded):
    g = fusec.compile(f"graph f(x: f32[A, B, C]) {{\n return {expr}\n}}")["f"]
    passes = [k for k in g.plan["kernels"] if k["name"].endswith("_partial")]
    # folded: one pass over x (a sum over leading axes is a column group's, whose plan says "sum")
    assert len(passes) == (1 if folded else 2), g.plan["kernels"]
    x = rng.standard_normal((7, 13, 1031)).astype(np.float32)
    want = x.astype(np.float64).sum(axis=axes, keepdims=keep)
    np.testing.assert_allclose(g(x), want, rtol=1e-5, atol=1e-3)


def test_one_chunk_per_output_is_one_launch_with_the_epilogue():
    """Rows enough to fill the device (or rows too short to split): the loop
    and the epilogue in `_single`; otherwise partials, then finish. A column
    sum stores vectors of partials: always two stages."""
    from fusec.api import compile_graphs
    from fusec.codegen import generate
    from fusec.codegen.device import DeviceInfo
    from fusec.passes import fuse

    text = "graph f(x: f32[B, N], c: f32[B]) {\n return sqrt(sum(x, axis=1) + c), sum(x, axis=0)\n}"
    (graph,) = compile_graphs(text).graphs
    device = DeviceInfo(vector_width=8, compute_units=2, local_size=256)
    _, (rows, cols) = generate(graph, fuse(graph), device)
    assert [launch.entry for launch in rows.launches((4096, 1024))] == ["f_r0_single"]
    assert [launch.entry for launch in rows.launches((7, 20))] == ["f_r0_single"]
    assert [launch.entry for launch in rows.launches((64, 4096))] == ["f_r0_partial", "f_r0_finish"]
    assert [launch.entry for launch in cols.launches((4096, 1024))] == [
        "f_c0_partial",  # a column sum is a column group's pass (column_reduction.py)
        "f_c0_finish",
    ]
    g = fusec.compile(text)["f"]
    for shape in [(2053, 13), (7, 20), (64, 4099)]:
        x = rng.standard_normal(shape).astype(np.float32)
        c = rng.uniform(200, 300, shape[0]).astype(np.float32)  # a positive sqrt operand
        got_rows, got_cols = g(x, c)
        np.testing.assert_allclose(got_rows, np.sqrt(x.astype(np.float64).sum(1) + c), rtol=1e-5)
        np.testing.assert_allclose(got_cols, x.astype(np.float64).sum(0), rtol=1e-5, atol=1e-4)
