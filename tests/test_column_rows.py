"""Column sums on CPUs (codegen/column_rows.py): each work-item streams whole
rows of a block of columns into accumulators of its own. Sizes that are not
multiples of the vector width, of the rows read per step or of the block,
against NumPy in float64."""

from __future__ import annotations

import numpy as np
import pytest

import fusec
from fusec.api import compile_graphs
from fusec.codegen import column_rows, generate
from fusec.codegen.device import DeviceInfo
from fusec.passes import fuse

TEXT = """graph f(x: f32[B, D], w: f32[D]) {
    y = x * w - 0.25
    return y, sum(y, axis=0), sum(sum(y, axis=1), axis=0), sum(x, axis=0, keepdim=true)
}"""
# (rows, cols): 1, 7, primes, 1023; more columns than a block (three sums: 1360 each)
SHAPES = [(1, 1), (7, 7), (1, 1023), (1023, 13), (131, 1023), (37, 2053), (5, 4099), (64, 16)]


@pytest.fixture(scope="module")
def graph():
    return fusec.compile(TEXT)["f"]


@pytest.mark.parametrize("rows, cols", SHAPES)
def test_sums_match_numpy(graph, rows, cols):
    assert [k["name"] for k in graph.plan["kernels"]] == ["f_c0_partial", "f_c0_finish"]
    rng = np.random.default_rng(rows * 31 + cols)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    w = rng.standard_normal(cols).astype(np.float32)
    y, by_col, total, keep = graph(x, w)
    want = x.astype(np.float64) * w - 0.25
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(by_col, want.sum(0), rtol=1e-5, atol=1e-5 * rows)
    np.testing.assert_allclose(total, want.sum(), rtol=1e-5, atol=1e-5 * rows * cols)
    np.testing.assert_allclose(
        keep, x.sum(0, keepdims=True, dtype=np.float64), rtol=1e-5, atol=1e-5 * rows
    )


def test_an_unaligned_numpy_array(graph):
    """A buffer 4 bytes past a 64-byte boundary: every vector straddles two lines."""
    rng = np.random.default_rng(2)
    raw = rng.standard_normal(97 * 515 + 16).astype(np.float32)
    start = (-(raw.ctypes.data // 4) % 16 + 1) % 16
    x = raw[start : start + 97 * 515].reshape(97, 515)
    assert x.ctypes.data % 64 != 0
    w = np.ones(515, np.float32)
    _, by_col, _, _ = graph(x, w)
    np.testing.assert_allclose(
        by_col, x.astype(np.float64).sum(0) - 97 * 0.25, rtol=1e-5, atol=1e-4
    )


def _kernel(device):
    (g,) = compile_graphs("graph f(x: f32[B, N]) {\n return sum(x, axis=0)\n}").graphs
    _, (kernel,) = generate(g, fuse(g), device)
    return kernel


def test_cpu_layout_streams_rows_and_spreads_over_cores():
    kernel = _kernel(DeviceInfo(vector_width=8, compute_units=2, local_size=256))
    counts = kernel.counts((4096, 4096))
    partial, finish = kernel.launches((4096, 4096))
    assert "o0 = (t % blocks)" in kernel.source() and partial.local_size == (1,)
    # one block of 4096 columns: the rows in chunks, a few work-groups per core
    assert partial.global_size[0] == counts["chunks"] >= 2 * 2
    assert counts["chunk_rows"] >= column_rows.MIN_ROWS_PER_CHUNK


def test_gpu_keeps_work_items_across_columns():
    """Adjacent work-items read adjacent vectors of a row on a GPU (coalesced)."""
    kernel = _kernel(DeviceInfo(vector_width=1, compute_units=32, local_size=256, is_cpu=False))
    partial, _ = kernel.launches((4096, 1024))
    assert "o0 = (t % blocks)" not in kernel.source() and partial.local_size == (256,)


@pytest.mark.parametrize("dtype, tol", [("f16", 2e-2), ("f64", 1e-12)])
def test_other_float_types(dtype, tol):
    """f16 stored, summed in f32; f64 throughout. 37 x 1031: a row tail and a column tail."""
    np_dtype = {"f16": np.float16, "f64": np.float64}[dtype]
    text = f"graph f(x: {dtype}[B, D]) {{\n    return x * 2.0, sum(x, axis=0)\n}}"
    g = fusec.compile(text)["f"]
    assert [k["name"] for k in g.plan["kernels"]] == ["f_c0_partial", "f_c0_finish"]
    x = np.random.default_rng(8).standard_normal((37, 1031)).astype(np_dtype)
    y, s = g(x)
    assert y.dtype == np_dtype and s.dtype == np_dtype
    np.testing.assert_array_equal(y, x * np_dtype(2))
    np.testing.assert_allclose(s, x.astype(np.float64).sum(0), rtol=tol, atol=tol * 37)
