"""A GEMM with a symbolic M called with a few rows (batch-1 inference).

The CPU panel layout computes 8 rows per work-item; with M unknown at build
time, a call of M <= gemm_layouts.FEW_ROWS runs the `{name}_few` entry point
(FEW_ROWS-row blocks over the same packed panels) instead. Checked against
NumPy in float64 with a bound weight (packed once, read by both entry points),
a weight passed per call, and matmul's untransposed w (packed every call), at
N and K that are not multiples of the vector width, and which entry ran.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusec
from fusec.codegen import gemm_layouts

cl = pytest.importorskip("pyopencl")

LINEAR = "graph f(x: f32[B, K], w: f32[N, K], b: f32[N]) {\n    return relu(linear(x, w, b))\n}\n"
MATMUL = "graph g(a: f32[B, K], w: f32[K, N]) {\n    return matmul(a, w)\n}\n"
ROWS = [1, 2, 3, 4, 5, 7, 9]  # both sides of FEW_ROWS, and a ragged last block
N, K = 37, 101  # two panels, the second ragged; K prime


@pytest.fixture(scope="module")
def graphs():
    return fusec.compile(LINEAR)["f"], fusec.compile(MATMUL)["g"]


@pytest.fixture
def launched(monkeypatch):
    """The entry points each call enqueues."""
    names = []
    enqueue = cl.enqueue_nd_range_kernel

    def record(queue, kernel, *args, **kw):
        names.append(kernel.function_name)
        return enqueue(queue, kernel, *args, **kw)

    monkeypatch.setattr(cl, "enqueue_nd_range_kernel", record)
    return names


def _gemm_kernel(graph):
    return next(k for k in graph.kernels if getattr(k, "layout", None) is not None)


def _panel_or_skip(graph):
    kernel = _gemm_kernel(graph)
    if kernel.layout.kind != "panel":
        pytest.skip(f"the device's GEMM layout is {kernel.layout.kind}, not the CPU panel")
    return kernel


def test_few_rows_entry_point_is_built_beside_the_panel(graphs):
    kernel = _panel_or_skip(graphs[0])
    assert kernel.few.rows == gemm_layouts.FEW_ROWS < kernel.layout.rows
    assert (kernel.few.cols, kernel.few.vector) == (kernel.layout.cols, kernel.layout.vector)
    assert f"{kernel.group.name}_few" in kernel.entry_points
    # it reads the main entry's panels: no pack kernel of its own
    assert f"{kernel.group.name}_few_pack" not in graphs[0].source


def test_bound_weight_few_rows_match_numpy(graphs, launched):
    f, _ = graphs
    kernel = _panel_or_skip(f)
    rng = np.random.default_rng(5)
    w = rng.standard_normal((N, K)).astype(np.float32) / 10
    b = rng.standard_normal(N).astype(np.float32)
    layer = f.bind(w=w, b=b)
    for m in ROWS:
        x = rng.standard_normal((m, K)).astype(np.float32)
        launched.clear()
        got = layer(x)
        want = np.maximum(x.astype(np.float64) @ w.T + b, 0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        few = f"{kernel.group.name}_few" in launched
        assert few == (m <= gemm_layouts.FEW_ROWS), (m, launched)
        # unbound, small M reads w as stored (the `small` entry point): same numbers
        np.testing.assert_allclose(f(x, w, b), want, rtol=1e-5, atol=1e-5)


def test_untransposed_weight_few_rows_match_numpy(graphs, launched):
    _, g = graphs
    kernel = _panel_or_skip(g)
    rng = np.random.default_rng(6)
    for m in ROWS:
        a = rng.standard_normal((m, K)).astype(np.float32)
        w = rng.standard_normal((K, N)).astype(np.float32)
        launched.clear()
        got = g(a, w)
        np.testing.assert_allclose(got, a.astype(np.float64) @ w, rtol=1e-5, atol=1e-4)
        assert launched[0] == f"{kernel.group.name}_pack", launched  # w packed every call
        few = f"{kernel.group.name}_few" in launched
        assert few == (m <= gemm_layouts.FEW_ROWS), (m, launched)
