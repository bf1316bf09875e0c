"""GEMMs with a known N of at most one vector (a classifier head: 10 outputs).

choose_layout gives them all N columns as one block of dot products (w read
as stored) where the registers allow, else a panel one vector wide; the
kernels against NumPy at sizes with tails in M, N and K, and through
fusec.compile with the weight passed, bound, or transposed.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_gemm_kernel import CPU, check, data, reference, run, skip_wider_than_native

import fusec
from fusec.codegen import gemm_layouts as gemm

cl = pytest.importorskip("pyopencl")

# (M, K, N): M and K with tails of every block; N up to one float16
SHAPES = [(1, 1, 1), (7, 13, 10), (17, 97, 7), (1023, 31, 10), (33, 784, 13), (5, 17, 16)]


def test_narrow_n_layouts():
    def layout(n, width=16, **kw):
        return gemm.choose_layout(CPU, None, n, None, native_width=width, **kw)

    # rows x N accumulators + N w vectors + rows x vectors within 32 registers
    assert (layout(10).kind, layout(10).rows, layout(10).cols) == ("dot", 2, 10)
    assert (layout(7).kind, layout(7).rows, layout(7).cols) == ("dot", 3, 7)
    assert (layout(1).kind, layout(1).rows, layout(1).cols) == ("dot", 4, 1)
    # 11..16 columns: too many for two rows of dot products; one vector of panel
    for n in (11, 16):
        assert (layout(n).kind, layout(n).cols, layout(n).rows) == ("panel", 16, 8)
    assert layout(17).cols == 32  # past one vector: the default panel
    # AVX2 (16 registers of float8)
    assert (layout(3, 8).kind, layout(3, 8).rows) == ("dot", 3)
    assert (layout(7, 8).kind, layout(7, 8).cols, layout(7, 8).rows) == ("panel", 8, 6)
    # a transposed operand: the panel (it packs either order); a small known M
    t = layout(10, ta=True, tb=False)
    assert (t.kind, t.cols, t.ta, t.tb) == ("panel", 16, True, False)
    assert gemm.choose_layout(CPU, 1, 10, 5, native_width=16).rows == 1
    # no packing wanted and too wide for the narrow dot: the default dot
    assert layout(13, pack="never").kind == "dot" and layout(13, pack="never").cols == 6
    # f64: 8 lanes of a 512-bit register
    assert gemm.choose_layout(CPU, None, 8, None, "f64", native_width=16).kind == "dot"
    assert gemm.choose_layout(GPU_LIKE, None, 10, None).kind == "tiled"


GPU_LIKE = type(CPU)(name="test-gpu", is_cpu=False, max_work_group_size=256)


@pytest.mark.parametrize("width", [16, 8])
def test_narrow_layouts_match_numpy(width):
    from fusec.runtime import Runtime

    rt = Runtime.shared()
    for m, k, n in SHAPES:
        layout = gemm.choose_layout(CPU, None, n, None, native_width=width)
        skip_wider_than_native(rt, layout)
        x, w, b = data(m, k, n)
        check(run(rt, layout, "bias_relu", x, w, b), reference("bias_relu", x, w, b), k)
        # a narrow layout is right for any N (here: four times wider)
        x, w, b = data(m, k, 4 * n + 3)
        check(run(rt, layout, "store", x, w, b), reference("store", x, w, b), k)
    if rt.info.fp64:  # double: at width 16, dot products over double8; at 8, the default panel
        for m, k, n in [(17, 97, 8), (7, 13, 5)]:
            layout = gemm.choose_layout(CPU, None, n, None, "f64", native_width=width)
            skip_wider_than_native(rt, layout, "f64")
            x, w, b = data(m, k, n, np.float64)
            got = run(rt, layout, "bias_relu", x, w, b)
            check(got, reference("bias_relu", x, w, b), k, np.float64)


HEAD = "graph head(x: f32[B, K], w: f32[{n}, K], b: f32[{n}]) {{\n    return tanh(linear(x, w, b))\n}}\n"
# op(a)·op(b) with N = 10 known and either operand transposed: a[R, C], b[P, Q]
TRANSPOSED = {
    (True, False): "graph t(a: f32[B, K], b: f32[B, 10]) {\n    return gemm(a, b, ta=true)\n}\n",
    (False, False): "graph t(a: f32[B, K], b: f32[K, 10]) {\n    return gemm(a, b)\n}\n",
    (
        True,
        True,
    ): "graph t(a: f32[K, B], b: f32[10, K]) {\n    return gemm(a, b, ta=true, tb=true)\n}\n",
}


@pytest.fixture(scope="module")
def heads():
    return {n: fusec.compile(HEAD.format(n=n))["head"] for n in (7, 10, 16)}


@pytest.mark.parametrize("n", [7, 10, 16])
def test_compiled_head_passed_and_bound(heads, n):
    head = heads[n]
    kind = "dot" if n <= 10 else "panel"
    layouts = [getattr(k, "layout", None) for k in head.kernels]
    assert kind in [lay.kind for lay in layouts if lay is not None]
    rng = np.random.default_rng(n)
    w = rng.standard_normal((n, 97)).astype(np.float32) / 10
    b = rng.standard_normal(n).astype(np.float32)
    bound = head.bind(w=w, b=b)
    for m in (1, 17, 1023):
        x = rng.standard_normal((m, 97)).astype(np.float32)
        want = np.tanh(x.astype(np.float64) @ w.T + b)
        np.testing.assert_allclose(head(x, w, b), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(bound(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ta, tb", list(TRANSPOSED))
def test_compiled_transposed_narrow_gemm(ta, tb):
    """A transposed operand (autodiff's dx = g·w, dw = gᵀ·x shapes) with N = 10
    known: the panel one vector wide, which packs either order."""
    t = fusec.compile(TRANSPOSED[(ta, tb)])["t"]
    layout = next(k.layout for k in t.kernels if hasattr(k, "layout"))
    assert (layout.kind, layout.cols, layout.ta, layout.tb) == ("panel", layout.vector, ta, tb)
    rng = np.random.default_rng(3)
    shapes = {  # (a, b) for sizes B, K
        (True, False): lambda bsz, k: ((bsz, k), (bsz, 10)),
        (False, False): lambda bsz, k: ((bsz, k), (k, 10)),
        (True, True): lambda bsz, k: ((k, bsz), (10, k)),
    }[(ta, tb)]
    for bsz, k in ((1, 5), (33, 13), (129, 64)):
        a_shape, b_shape = shapes(bsz, k)
        a = rng.standard_normal(a_shape).astype(np.float32)
        b = rng.standard_normal(b_shape).astype(np.float32)
        op_a, op_b = (a.T if ta else a), (b.T if tb else b)
        np.testing.assert_allclose(
            t(a, b), op_a.astype(np.float64) @ op_b, rtol=1e-5, atol=1e-4 * np.sqrt(op_a.shape[1])
        )
