"""Row groups (issue 15): softmax, log_softmax, LayerNorm and cross-entropy,
forward and backward, as one kernel over the rows, against PyTorch CPU."""

from __future__ import annotations

import numpy as np
import pytest

import fusec
from fusec.api import compile_graphs
from fusec.codegen import generate
from fusec.codegen.device import DeviceInfo
from fusec.codegen.kernel_args import Count, Extent, Output, Param
from fusec.passes import fuse

torch = pytest.importorskip("torch")
F = torch.nn.functional

rng = np.random.default_rng(15)
# row lengths: 1, short, around the vector widths and the 4-vector steps, primes, long
ROWS = [1, 7, 63, 64, 65, 127, 1023, 4096, 5000]

GRAPHS = """
graph sm(x: {T}[B, N]) {{ return softmax(x, axis=-1) }}
graph lsm(x: {T}[B, N]) {{ return log_softmax(x, axis=1) }}
graph ln(x: {T}[B, N], w: {T}[N], b: {T}[N]) {{
    m = mean(x, axis=1, keepdim=true)
    d = x - m
    v = mean(d * d, axis=1, keepdim=true)
    return d * rsqrt(v + 1e-5) * w + b
}}
graph ce(x: {T}[B, N], onehot: {T}[B, N]) {{
    return mean(-sum(onehot * log_softmax(x, axis=1), axis=1), axis=0)
}}
graph stats(x: {T}[B, N], c: {T}[B, 1]) {{
    m = max(x, axis=1)
    s = sum(exp(x - max(x, axis=1, keepdim=true)), axis=1, keepdim=true)
    return x / s + c, m, log(s) + 1.0
}}
graph sm3(x: {T}[A, B, N]) {{ return softmax(x, axis=2) }}
graph sm10(x: {T}[B, 10]) {{ return softmax(x, axis=1), log_softmax(x, axis=1) }}
graph cel(x: {T}[B, N], labels: i64[B, 1], cols: i64[N]) {{
    picked = where(labels == cols, log_softmax(x, axis=1), 0.0)
    return mean(-sum(picked, axis=1), axis=0)
}}
"""


@pytest.fixture(scope="module", params=["f32", "f64"])
def graphs(request):
    return request.param, fusec.compile(GRAPHS.format(T=request.param), grad=True)


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == "f32" else dict(rtol=1e-12, atol=1e-13)


def rand(shape, dtype, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32 if dtype == "f32" else np.float64)


def launches(graph) -> int:
    return len(graph.plan["kernels"])


def close(got, want, dtype, scale=1.0):
    t = tol(dtype)
    np.testing.assert_allclose(got, want, rtol=t["rtol"], atol=t["atol"] * scale)


@pytest.mark.parametrize("n", ROWS)
def test_softmax_log_softmax_layernorm_forward(graphs, n):
    dtype, m = graphs
    x = rand((5, n), dtype)
    w, b = rand(n, dtype, 1.0), rand(n, dtype, 1.0)
    tx = torch.from_numpy(x)
    close(m["sm"](x), torch.softmax(tx, -1).numpy(), dtype)
    close(m["lsm"](x), torch.log_softmax(tx, 1).numpy(), dtype, scale=10)
    want = F.layer_norm(tx, (n,), torch.from_numpy(w), torch.from_numpy(b), eps=1e-5)
    close(m["ln"](x, w, b), want.numpy(), dtype, scale=10)
    x3 = rand((2, 3, n), dtype)
    close(m["sm3"](x3), torch.softmax(torch.from_numpy(x3), 2).numpy(), dtype)


@pytest.mark.parametrize("n", [1, 7, 65, 1023, 5000])
def test_backward_matches_torch_autograd(graphs, n):
    """value_and_grad of softmax, log_softmax, LayerNorm and cross-entropy."""
    dtype, m = graphs
    x, ct = rand((4, n), dtype), rand((4, n), dtype, 1.0)
    w, b = rand(n, dtype, 1.0), rand(n, dtype, 1.0)
    onehot = np.eye(n, dtype=x.dtype)[rng.integers(0, n, 4)]
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    # LayerNorm's rounding is amplified by up to rsqrt(eps) ~ 316 (a row of one: exactly 0 here)
    cases = [
        ("sm", (x,), lambda: torch.softmax(tx, -1), (tx,), 50),
        ("lsm", (x,), lambda: torch.log_softmax(tx, 1), (tx,), 50),
        ("ln", (x, w, b), lambda: F.layer_norm(tx, (n,), tw, tb, eps=1e-5), (tx, tw, tb), 5000),
    ]
    for name, args, f, wrt, scale in cases:
        value, grads = m[name].value_and_grad(*args, grad_outputs=ct)
        out = f()
        close(value, out.detach().numpy(), dtype, scale=10)
        want = torch.autograd.grad(out, wrt, torch.from_numpy(ct))
        for got, ref in zip(grads.values(), want, strict=True):
            close(got, ref.numpy(), dtype, scale=scale)
    value, grads = m["ce"].value_and_grad(x, onehot)
    loss = F.cross_entropy(tx, torch.from_numpy(onehot.argmax(1)))
    close(value, loss.detach().numpy(), dtype, scale=10)
    want = torch.autograd.grad(loss, tx)[0].numpy()
    close(grads["x"], want, dtype, scale=10)
    # labels as i64 [B, 1] against a column index: no one-hot array in memory
    value, grads = m["cel"].value_and_grad(x, onehot.argmax(1)[:, None], np.arange(n))
    close(value, loss.detach().numpy(), dtype, scale=10)
    close(grads["x"], want, dtype, scale=10)


def test_short_rows_of_known_length(graphs):
    """Ten classes (an MLP's head), shorter than one vector along the row:
    the device's width and no vec_type_hint on CPUs, so that Intel's runtime
    vectorises across rows; same numbers. 64 known columns are vectorised
    along the row, as a symbolic length is."""
    dtype, m = graphs
    x = rand((37, 10), dtype)
    y, ly = m["sm10"](x)
    close(y, torch.softmax(torch.from_numpy(x), 1).numpy(), dtype)
    close(ly, torch.log_softmax(torch.from_numpy(x), 1).numpy(), dtype, scale=10)
    cpu = DeviceInfo(is_cpu=True, vector_width=8, native_vector_width=16)
    for cols, hint in [(10, dtype == "f64"), (64, True), ("N", True)]:
        (graph,) = compile_graphs(f"graph s(x: {dtype}[B, {cols}]) {{ return softmax(x) }}").graphs
        assert ("vec_type_hint" in generate(graph, fuse(graph), cpu)[0]) == hint, cols


def test_softmax_in_place_keeps_exp_in_its_output(graphs):
    """softmax stores exp(x - max) in its output during the sum's pass and
    divides it there after: right even when the output is the input."""
    dtype, m = graphs
    assert m["sm"].source.count("out0[j] = ") == 2  # the stash, then the quotient (tail)
    for n in (7, 1023):
        x = rand((3, n), dtype)
        want = torch.softmax(torch.from_numpy(x), 1).numpy()
        assert m["sm"](x, out=x) is x
        close(x, want, dtype)


@pytest.mark.parametrize("n", [9, 87])
def test_nan_and_infinite_rows_behave_like_torch(graphs, n):
    """9 columns: the scalar tail; 87: NaN and inf in the CPU
    layout's accumulators, its one-vector remainder and the tail."""
    dtype, m = graphs
    x = rand((8, n), dtype)
    x[0] = -np.inf  # torch: NaN (exp(-inf - -inf))
    x[1, 3] = np.inf  # torch: NaN where finite, as exp(inf - inf)
    x[2, 4] = np.nan
    x[3, 2] = -np.inf  # a 0 there, the row otherwise finite
    if n > 64:
        x[4, 20], x[5, 40], x[6, n - 10], x[7, n - 1] = np.nan, np.inf, np.nan, np.inf
    tx = torch.from_numpy(x)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(np.isnan(m["sm"](x)), torch.softmax(tx, 1).isnan().numpy())
        got, want = m["lsm"](x), torch.log_softmax(tx, 1).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    close(got[finite], want[finite], dtype, scale=10)
    assert (got[~finite & ~np.isnan(want)] == want[~finite & ~np.isnan(want)]).all()


def test_reduction_results_are_outputs_keepdim_or_not(graphs):
    """A member without keepdim returned, one with keepdim read over the row
    and by a value over the result (log(s) + 1), and a [B, 1] operand."""
    dtype, m = graphs
    for n in (1, 13, 1031):
        x, c = rand((6, n), dtype), rand((6, 1), dtype)
        s = np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)
        y, mx, ls = m["stats"](x, c)
        close(y, x / s + c, dtype, scale=10)
        close(mx, x.max(1), dtype)
        close(ls, np.log(s) + 1.0, dtype)
    assert launches(m["stats"]) == 1


def test_each_is_one_kernel_forward_and_backward(graphs):
    """softmax, log_softmax, LayerNorm: one launch forward; their backward's
    row-space parts (softmax: y * (g - sum(g * y))) in the row kernel too."""
    _, m = graphs
    for name in ("sm", "lsm", "ln", "sm3", "stats"):
        kernels = m[name].plan["kernels"]
        assert len(kernels) == 1 and kernels[0]["name"].startswith(f"{name}_w"), kernels
    for name in ("sm", "lsm"):
        assert launches(m[name].backward) == 1, m[name].backward.plan["kernels"]
    # LayerNorm's x gradient in the row kernel; w's and b's are column sums
    plan = m["ln"].backward.plan["kernels"]
    assert [k["name"] for k in plan if "_w" in k["name"]] == ["ln_bwd_w0"]
    assert "out0" in next(k for k in plan if k["name"] == "ln_bwd_w0")["writes"]


def test_what_does_not_chain_keeps_its_kernels():
    """A reduction over every axis, over a leading axis, or reading a value
    computed from an earlier one by a GEMM keeps its own kernels; two
    independent ones over the same rows (max(x), sum(x)) share a row group."""
    text = """graph f(x: f32[B, N], w: f32[N, N]) {
    m = max(x, axis=1, keepdim=true)
    y = linear(x - m, w)
    return sum(y * x, axis=1), sum(x, axis=0), mean(sum(x, axis=1), axis=0)
}"""
    (graph,) = compile_graphs(text).graphs
    groups = fuse(graph)
    # the sum over the leading axis is a column group's (column_reduction.py)
    assert sorted(grp.kind for grp in groups) == [
        "columns",
        "gemm",
        "reduction",
        "reduction",
        "rows",
    ]
    (rows,) = [grp for grp in groups if grp.kind == "rows"]
    assert [graph.nodes[r]["op"] for r in rows.reductions] == ["max", "sum"]
    x, w = rand((6, 13), "f32"), rand((13, 13), "f32", 0.3)
    got = fusec.compile(text)["f"](x, w)
    y = (x - x.max(1, keepdims=True)) @ w.T
    for a, b in zip(got, [(y * x).sum(1), x.sum(0), x.sum(1).mean(0)], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_a_row_group_runs_from_its_plan(tmp_path):
    """The plan says all a launcher needs: the row counts, the result's own
    extents, outputs over the row and over the result (tests/test_plan_launch.py)."""
    from tests.test_plan_launch import compile_and_launch

    x, c = rand((6, 37), "f32"), rand((6, 1), "f32")
    res = compile_and_launch(tmp_path, GRAPHS.format(T="f32"), "stats", x=x, c=c)
    s = np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)
    wants = (x / s + c, x.max(1), np.log(s) + 1)
    for k, want in enumerate(wants):
        close(res[f"out{k}"], want, "f32", scale=10)


# -- the GPU layout (a work-group per row), run on whatever device is here ---------------------


def run_source(graph, device: DeviceInfo, arrays: dict, shape):
    """Generate the graph's kernels for `device` and launch them directly."""
    import pyopencl as cl

    from fusec.runtime import Runtime

    rt = Runtime.shared()
    groups = fuse(graph)
    source, kernels = generate(graph, groups, device)
    prg = cl.Program(rt.context, source).build("-cl-std=CL1.2")
    outs = {}

    def resolve(dims):  # the graph's B and N as `shape` has them
        return tuple(shape[0] if d == "B" else shape[-1] if d == "N" else d for d in dims)

    for k in kernels:
        counts = k.counts(shape)
        for launch in k.launches(shape):
            args = []
            for a in launch.args:
                src = a.source
                if isinstance(src, Extent):
                    space = shape
                    if src.space == "result":
                        space = resolve(graph.nodes[k.group.anchor]["shape"])
                    args.append(np.int64(np.prod(space) if src.axis is None else space[src.axis]))
                elif isinstance(src, Count):
                    args.append(np.int64(counts[src.name]))
                elif isinstance(src, Param):
                    buf = cl.array.to_device(rt.queue, arrays[src.name])
                    args.append(buf.data)
                else:
                    assert isinstance(src, Output), src
                    node = graph.graph["outputs"][src.index]
                    dims = resolve(graph.nodes[node]["shape"])
                    outs[src.index] = cl.array.empty(rt.queue, dims, np.float32)
                    args.append(outs[src.index].data)
            getattr(prg, launch.entry)(rt.queue, launch.global_size, launch.local_size, *args)
    return [outs[i].get() for i in sorted(outs)]


@pytest.mark.parametrize("width", [1, 4])
def test_gpu_layout_a_work_group_per_row(width):
    """The local-memory tree (a work-group of 64 per row) gives the same
    numbers; rows shorter and longer than the work-group, with a tail."""
    import pyopencl.array  # noqa: F401

    (graph,) = compile_graphs(
        GRAPHS.format(T="f32").split("graph ln")[0].split("graph lsm")[0]
    ).graphs
    gpu = DeviceInfo(vector_width=width, is_cpu=False, max_work_group_size=64)
    for shape in [(3, 1), (4, 63), (2, 1031)]:
        x = rand(shape, "f32")
        (y,) = run_source(graph, gpu, {"x": x}, shape)
        close(y, torch.softmax(torch.from_numpy(x), 1).numpy(), "f32")
    source, _ = generate(graph, fuse(graph), gpu)
    assert "barrier(CLK_LOCAL_MEM_FENCE)" in source and "get_group_id(0)" in source
    # a row of known length: a work-group of 32 (the fewest), most of them idle here
    (ten,) = compile_graphs("graph t(x: f32[B, 10]) { return log_softmax(x, axis=1) }").graphs
    x = rand((5, 10), "f32")
    (y,) = run_source(ten, gpu, {"x": x}, (5, 10))
    close(y, torch.log_softmax(torch.from_numpy(x), 1).numpy(), "f32", scale=10)
    assert "#define L 32" in generate(ten, fuse(ten), gpu)[0]


def test_class_labels_keep_the_float_lanes_where_the_device_takes_long16():
    """i64 labels against an i64 column index: 16 float lanes (and long16)
    where `wide_int_vectors` (Intel's CPU runtime), else the 64-byte limit
    holds for them too (float8, long8)."""
    import dataclasses

    (graph,) = compile_graphs("graph cel" + GRAPHS.format(T="f32").split("graph cel")[1]).graphs
    wide = DeviceInfo(is_cpu=True, vector_width=16, native_vector_width=16, wide_int_vectors=True)
    narrow = dataclasses.replace(wide, wide_int_vectors=False)
    source = {d: generate(graph, fuse(graph), d)[0] for d in (wide, narrow)}
    assert "vload16(0, in_x" in source[wide] and "long16" in source[wide]
    assert "vload8(0, in_x" in source[narrow] and "long16" not in source[narrow]


def test_reductions_that_read_none_of_each_others_results_share_a_pass(graphs):
    """softmax's backward: the max, then sum(exp(x - max)) and sum(g * exp(x -
    max)) in one pass (exp in its 4 unrolled blocks and the remainder), then
    the outputs (exp once more): 2 passes with vector loops, not 3.
    log_softmax's: sum(g) joins the exp pass; LayerNorm's: the mean, then the
    variance with sum(g * w * (x - mean)) and the sum that reads it, split
    (row_terms.py) into sum(g * w) and sum(x - mean) times row constants."""
    dtype, m = graphs
    cpu = DeviceInfo(is_cpu=True, vector_width=16, native_vector_width=16)
    passes = {}
    for name in ("sm", "lsm", "ln"):
        graph = m[name].forward_backward.graph
        source, _ = generate(graph, fuse(graph), cpu)
        passes[name] = source.count("long c0 = 0;")
        if name == "sm":
            assert source.count("exp_float16(v" if dtype == "f32" else "exp_double8(v") == 6
    assert passes == {"sm": 2, "lsm": 2, "ln": 2}


def test_layernorm_backward_far_from_zero_mean(graphs):
    """A mean of 1000 (the split sums' rounding against float64): within
    1e-4 of the largest gradient, as torch's own f32 LayerNorm (3.8e-5 for w)."""
    dtype, m = graphs
    if dtype != "f32":
        pytest.skip("the f32 rounding is the point")
    n = 1023
    x = (1000 + rng.standard_normal((8, n))).astype(np.float32)
    ct, w, b = rand((8, n), dtype, 1.0), rand(n, dtype, 1.0), rand(n, dtype, 1.0)
    _, grads = m["ln"].value_and_grad(x, w, b, grad_outputs=ct)
    exact = [torch.from_numpy(a.astype(np.float64)).requires_grad_() for a in (x, w, b)]
    out = F.layer_norm(exact[0], (n,), exact[1], exact[2], eps=1e-5)
    want = torch.autograd.grad(out, exact, torch.from_numpy(ct.astype(np.float64)))
    for name, got, ref in zip("xwb", grads.values(), want, strict=True):
        ref = ref.numpy()
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max(), name
