"""Max and min over columns on CPUs (codegen/column_rows.py's StreamedColumns):
each work-item streams whole rows of a block of columns into an accumulator
row, NaN kept in a per-step flag. Sizes that are not multiples of the vector
width, of the rows read per step or of the block; NaN, infinities and signed
zeros; against NumPy (np.max and np.min propagate NaN, as torch.amax)."""

from __future__ import annotations

import numpy as np
import pytest

import fusec
from fusec.api import compile_graphs
from fusec.codegen import generate
from fusec.codegen.device import DeviceInfo
from fusec.passes import fuse

# a prologue (x * w, broadcast w) and an epilogue (* 2 + 1) around the extrema
TEXT = """graph f(x: f32[B, D], w: f32[D]) {
    y = x * w
    return max(y, axis=0), min(y, axis=0) * 2.0 + 1.0, max(x, axis=0, keepdim=true)
}"""
# (rows, cols): 1, 7, primes, 1023; rows not a multiple of 4 (rows per step);
# more columns than a block (4096 for one accumulator)
SHAPES = [(1, 1), (7, 7), (1, 1023), (1023, 13), (131, 1023), (37, 2053), (5, 4099), (64, 16)]


@pytest.fixture(scope="module")
def graph():
    return fusec.compile(TEXT)["f"]


def _streams(g) -> bool:
    return "o0 = (t % blocks)" in g.source


def _check(graph, x, w):
    big, small, keep = graph(x, w)
    y = x * w  # f32, as the kernel computes it: products are exact to compare
    np.testing.assert_array_equal(big, y.max(0))
    np.testing.assert_array_equal(small, y.min(0) * np.float32(2) + np.float32(1))
    np.testing.assert_array_equal(keep, x.max(0, keepdims=True))


@pytest.mark.parametrize("rows, cols", SHAPES)
def test_extrema_match_numpy(graph, rows, cols):
    if graph.runtime.info.is_cpu:
        assert _streams(graph)
    rng = np.random.default_rng(rows * 31 + cols)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    w = rng.standard_normal(cols).astype(np.float32)
    _check(graph, x, w)


@pytest.mark.parametrize("rows, cols", [(7, 7), (131, 1023), (37, 2053), (5, 4099)])
def test_nan_inf_and_signed_zeros(graph, rows, cols):
    """NaN anywhere in a column (first row, last row, a row of a 4-row step,
    the columns past the last whole vector) makes it NaN; +-inf; columns all
    -inf or all +inf; -0.0 against +0.0 (equal: either is a right answer)."""
    rng = np.random.default_rng(cols)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    nan_at = [(0, 0), (rows - 1, 1), (rows // 2, cols - 1), (min(2, rows - 1), cols // 2)]
    for r, c in nan_at:
        x[r, c] = np.nan
    x[:, 2] = -np.inf
    x[:, 3] = np.inf
    x[rows // 3, 4], x[rows - 1, 5] = np.inf, -np.inf
    x[:, 6] = 0.0
    x[::2, 6] = -0.0
    w = np.ones(cols, np.float32)
    w[cols // 3] = np.nan  # a whole column NaN through the prologue
    _check(graph, x, w)


@pytest.mark.parametrize("dtype", ["f64", "f16"])
def test_other_float_types(dtype):
    """f64, and f16 (computed in float): NaN kept through the flag's own width."""
    g = fusec.compile(f"graph h(x: {dtype}[B, D]) {{ return max(x, axis=0), min(x, axis=0) }}")["h"]
    np_type = {"f64": np.float64, "f16": np.float16}[dtype]
    x = np.random.default_rng(5).standard_normal((37, 1031)).astype(np_type)
    x[36, 1030] = x[3, 500] = np.nan
    x[:, 7] = -np.inf
    big, small = g(x)
    np.testing.assert_array_equal(big, x.max(0))
    np.testing.assert_array_equal(small, x.min(0))


def _kernel(text: str, device: DeviceInfo):
    (g,) = compile_graphs(text).graphs
    _, (kernel,) = generate(g, fuse(g), device)
    return kernel


CPU = DeviceInfo(vector_width=8, compute_units=2, local_size=256)


def test_cpu_float_extrema_stream_rows_int_ones_do_not():
    floats = _kernel("graph f(x: f32[B, N]) {\n return max(x, axis=0)\n}", CPU)
    partial, finish = floats.launches((4096, 4096))
    assert floats.streams_rows and partial.local_size == (1,)
    assert "nan_seen" in floats.source()
    # one block of 4096 columns: the rows in chunks, a few work-groups per core
    assert partial.global_size[0] == floats.counts((4096, 4096))["chunks"] >= 2 * 2
    # a bias of the columns' shape: read once per column vector, no index modulo per element
    bias = _kernel("graph f(x: f32[B, N], w: f32[N]) {\n return max(x * w, axis=0)\n}", CPU)
    assert bias.per_column and "% d1" not in bias.source()
    ints = _kernel("graph f(x: i32[B, N]) {\n return min(x, axis=0)\n}", CPU)
    assert not ints.streams_rows and "o0 = (t % blocks)" not in ints.source()
    sums = _kernel("graph f(x: f32[B, N]) {\n return sum(x, axis=0) * 2.0\n}", CPU)
    assert sums.streams_rows and "nan_seen" not in sums.source()  # no flag for a sum


def test_gpu_keeps_work_items_across_columns():
    """Adjacent work-items read adjacent vectors of a row on a GPU (coalesced)."""
    gpu = DeviceInfo(vector_width=4, compute_units=32, local_size=256, is_cpu=False)
    kernel = _kernel("graph f(x: f32[B, N]) {\n return max(x, axis=0)\n}", gpu)
    partial, _ = kernel.launches((4096, 1024))
    assert not kernel.streams_rows and partial.local_size == (256,)
