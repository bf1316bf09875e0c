"""Kernels within the device's argument budget (CL_DEVICE_MAX_PARAMETER_SIZE,
passes/budget.py): wide groups split into several kernels, each passing at
most the budget's bytes, with NumPy's numbers. Run on this machine's device
as itself and as a device taking 1024 bytes (AMD GPUs, the OpenCL minimum)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pyopencl as cl
import pytest

import fusec
from fusec.api import compile_graphs
from fusec.codegen.device import DeviceInfo
from fusec.diagnostics import CompileError
from fusec.passes import fuse
from fusec.passes.budget import within_budget
from fusec.runtime import select_device

RNG = np.random.default_rng(3)
SCALAR_KINDS = {"scalar", "size", "dim", "count", "psize", "pdim", "osize", "odim"}

WIDE_SUM = "graph f({}) {{ return {} }}".format(
    ", ".join(f"x{i}: f32[N]" for i in range(200)), " + ".join(f"x{i}" for i in range(200))
)
MANY_OUTPUTS = "graph f(x: f32[N]) {{ return {} }}".format(
    ", ".join(f"x * {i}.0" for i in range(300))
)
# two shapes, a reduction, a scalar parameter, a returned partial sum read by later values
MIX = """graph f({xs}, b: f32[B], s: f32) {{
    t = {terms};
    u = sum(x0 * x1, axis=1) + b;
    return t, {outs}, u, t * s
}}""".format(
    xs=", ".join(f"x{i}: f32[B, N]" for i in range(100)),
    terms=" + ".join(f"x{i}" for i in range(100)),
    outs=", ".join(f"t - x{i}" for i in range(40)),
)


WIDE_REDUCTION = "graph f({}) {{ return sum({}, axis=1) }}".format(
    ", ".join(f"x{i}: f32[B, N]" for i in range(200)), " + ".join(f"x{i}" for i in range(200))
)


def wide_sum(xs):
    acc = xs[0]
    for x in xs[1:]:  # the IR's order, in f32
        acc = acc + x
    return acc


def mix(xs, b, s):
    t = wide_sum(xs)
    return (t, *(t - x for x in xs[:40]), (xs[0] * xs[1]).sum(axis=1) + b, t * s)


@pytest.fixture(scope="module", params=[None, 1024], ids=["device", "1024-bytes"])
def budget(request, tmp_path_factory):
    """compile(text) -> the graph `f` for this machine's device, as itself or
    as a device with a 1024-byte budget; and that budget."""
    real = DeviceInfo.from_cl
    with pytest.MonkeyPatch.context() as mp:
        if request.param is not None:
            mp.setattr(
                DeviceInfo,
                "from_cl",
                classmethod(
                    lambda cls, d: dataclasses.replace(real(d), max_parameter_size=request.param)
                ),
            )
        context = cl.Context([select_device()])
        queue = cl.CommandQueue(context)
        cache = tmp_path_factory.mktemp("budget")

        @functools.cache
        def compile(text):
            return fusec.compile(text, queue=queue, cache_dir=cache)["f"]

        compile.bytes = request.param or real(queue.device).max_parameter_size
        yield compile
        del context


def split_only(budget):
    if budget.bytes > 2048:  # unsplit there: Intel's compiler takes ~10 s over each of these
        pytest.skip("one kernel within the device's budget: the split is what is tested")


def argument_bytes(launch: dict) -> int:
    return sum(a["bytes"] if a["kind"] in SCALAR_KINDS else 8 for a in launch["args"])


def within(g, budget_bytes: int) -> int:
    """The graph's kernel count, after checking each launch's arguments fit."""
    for launch in g.plan["kernels"]:
        assert argument_bytes(launch) <= budget_bytes, launch["name"]
    return len(g.plan["kernels"])


@pytest.mark.parametrize("n", [1, 7, 1023])
def test_a_sum_of_200_parameters(budget, n):
    g = budget(WIDE_SUM)
    kernels = within(g, budget.bytes)
    assert kernels == (1 if budget.bytes >= 201 * 8 + 32 else 2)
    xs = [RNG.standard_normal(n).astype(np.float32) for _ in range(200)]
    np.testing.assert_allclose(g(*xs), wide_sum(xs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n", [1, 13])
def test_300_outputs(budget, n):
    g = budget(MANY_OUTPUTS)
    assert within(g, budget.bytes) == -(-300 // ((budget.bytes - 32) // 8 - 1))
    x = RNG.standard_normal(n).astype(np.float32)
    got = g(x)
    assert len(got) == 300
    for i, y in enumerate(got):
        np.testing.assert_array_equal(y, x * np.float32(i))


@pytest.mark.parametrize("shape", [(3, 7), (2, 1023)])
def test_two_shapes_a_reduction_and_a_returned_partial(budget, shape):
    g = budget(MIX)
    within(g, budget.bytes)
    xs = [RNG.standard_normal(shape).astype(np.float32) for _ in range(100)]
    b, s = RNG.standard_normal(shape[0]).astype(np.float32), np.float32(0.5)
    got = g(*xs, b, s)
    for i, (y, want) in enumerate(zip(got, mix(xs, b, s), strict=True)):
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5, err_msg=f"output {i}")


@pytest.mark.parametrize("shape", [(1, 1), (3, 37)])
def test_a_reduction_of_a_sum_of_200_parameters(budget, shape):
    split_only(budget)
    g = budget(WIDE_REDUCTION)
    within(g, budget.bytes)
    assert len(g.kernels) == 3  # the operand in two parts, the reduction
    xs = [RNG.standard_normal(shape).astype(np.float32) for _ in range(200)]
    np.testing.assert_allclose(g(*xs), wide_sum(xs).sum(axis=1), rtol=1e-5, atol=1e-5)


COLUMN_SUM = (
    "graph f({}) {{ t = {}; return t, sum(t, axis=0), sum(sum(t * t, axis=1), axis=0) }}".format(
        ", ".join(f"x{i}: f32[B, N]" for i in range(130)), " + ".join(f"x{i}" for i in range(130))
    )
)


def test_a_returned_sum_summed_over_columns_and_all_axes(budget):
    # one column group where the arguments fit; at 1024 bytes the sums read t's output
    g = budget(COLUMN_SUM)
    within(g, budget.bytes)
    assert any(k.group.kind == "columns" for k in g.kernels) == (budget.bytes > 1024)
    xs = [RNG.standard_normal((5, 11)).astype(np.float32) for _ in range(130)]
    t, columns, total = g(*xs)
    want = wide_sum(xs)
    np.testing.assert_allclose(t, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(columns, want.sum(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(total, (want * want).sum(), rtol=1e-5)


def test_the_split_is_only_where_needed():
    g = compile_graphs(MIX).graphs[0]
    wide, narrow = fuse(g), fuse(g, 1024)
    assert len(narrow) > len(wide) == len(fuse(g, 4352))
    assert any("part 2 of" in grp.reason for grp in narrow)
    written = sorted(i for grp in narrow for i, _ in grp.outputs)
    assert written == list(range(len(g.graph["outputs"])))  # each output once
    assert within_budget(g, wide, 1 << 20, {}) == wide
    # a sum too wide for one kernel: a partial sum stored, read by the next kernel
    g = compile_graphs(WIDE_SUM).graphs[0]
    first, second = fuse(g, 1024)
    assert first.stores and set(first.stores) <= set(second.inputs)


GEMM_EPILOGUE = "graph f(x: f32[B, K], w: f32[O, K], {}) {{ y = linear(x, w); return y + {}, y }}"
SUM_EPILOGUE = "graph f(x: f32[B, K], {}) {{ return sum(x, axis=1, keepdim=true) + {} }}"


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3)], ids=str)
def test_a_gemm_and_a_reduction_with_200_term_epilogues(budget, shape):
    split_only(budget)
    b, k, o = shape
    names = (
        ", ".join(f"y{i}: f32[B, O]" for i in range(200)),
        " + ".join(f"y{i}" for i in range(200)),
    )
    gemm = budget(GEMM_EPILOGUE.format(*names))
    within(gemm, budget.bytes)
    x, w = (
        RNG.standard_normal((b, k)).astype(np.float32),
        RNG.standard_normal((o, k)).astype(np.float32),
    )
    ys = [RNG.standard_normal((b, o)).astype(np.float32) for _ in range(200)]
    got, y = gemm(x, w, *ys)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, wide_sum([x @ w.T, *ys]), rtol=1e-5, atol=1e-5)
    names = (
        ", ".join(f"y{i}: f32[B, 1]" for i in range(200)),
        " + ".join(f"y{i}" for i in range(200)),
    )
    reduction = budget(SUM_EPILOGUE.format(*names))
    within(reduction, budget.bytes)
    ys = [y[:, :1].copy() for y in ys]
    want = wide_sum([x.sum(axis=1, keepdims=True), *ys])
    np.testing.assert_allclose(reduction(x, *ys), want, rtol=1e-5, atol=1e-5)


def test_a_kernel_that_cannot_be_split_is_refused_by_name():
    # a row group (x - max(x) over rows) over a 200-term sum: not split, and never a driver error
    text = "graph f({}) {{ t = {}; return t - max(t, axis=1, keepdim=true) }}".format(
        ", ".join(f"x{i}: f32[B, N]" for i in range(200)), " + ".join(f"x{i}" for i in range(200))
    )
    from fusec.codegen import generate

    g = compile_graphs(text).graphs[0]
    with pytest.raises(
        CompileError, match=r"kernel f_w0\w* .*1024 \(CL_DEVICE_MAX_PARAMETER_SIZE\)"
    ):
        generate(g, fuse(g, 1024), DeviceInfo(max_parameter_size=1024))
