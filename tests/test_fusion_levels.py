"""Wanted values of one shape that depend on each other through a GEMM or a
reduction go to separate kernels (passes/fuse.py `_level`): one kernel cannot
compute `y` and a value that reads the sum of a product of `y`. Found in
BatchNorm1d's backward after LayerNorm (tests/test_torch_journeys.py)."""

from __future__ import annotations

import numpy as np
import pytest

import fusec

rng = np.random.default_rng(3)

# linear(y, x) and linear(b * rowsum(y @ w), x): both GEMM operands are [M, K]
SHARED_OPERAND_SHAPE = """
graph g(a: f32[M, K], w: f32[K, K], b: f32[M, K], x: f32[N, K]) {
    y = exp(a)
    s = sum(matmul(y, w), axis=1, keepdim=true)
    return linear(y, x), linear(b * s, x)
}
"""
# the same through a view in the first GEMM's operand (no prologue then)
THROUGH_A_VIEW = """
graph g(w: f32[K, K], v: f32[K], a: f32[M, K], b: f32[M, K], x: f32[M, N]) {
    mm = matmul(a * unsqueeze(v, axis=0), w)
    s = sum(mm, axis=1, keepdim=true)
    return gemm(b * s, x, ta=true, tb=false)
}
"""


@pytest.mark.parametrize("m", [1, 7, 13])
def test_values_that_wait_on_a_gemm_of_each_other_are_computed_in_order(m):
    k, n = 5, 3
    a, b = rng.standard_normal((m, k)), rng.standard_normal((m, k))
    w, x = rng.standard_normal((k, k)), rng.standard_normal((n, k))
    a, b, w, x = (t.astype(np.float32) for t in (a, b, w, x))
    y1, y2 = fusec.compile(SHARED_OPERAND_SHAPE)["g"](a, w, b, x)
    y = np.exp(a)
    np.testing.assert_allclose(y1, y @ x.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y2, (b * (y @ w).sum(1, keepdims=True)) @ x.T, rtol=1e-4, atol=1e-3)

    v, x2 = (
        rng.standard_normal(k).astype(np.float32),
        rng.standard_normal((m, n)).astype(np.float32),
    )
    got = fusec.compile(THROUGH_A_VIEW)["g"](w, v, a, b, x2)
    want = (b * ((a * v) @ w).sum(1, keepdims=True)).T @ x2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
