"""A row group (softmax, log_softmax) run inside the narrow GEMM before it
(fusec/codegen/gemm_rows.py): one launch instead of two, the same numbers.

Against NumPy at sizes with tails (M 1, 7, 64, 1023; K 37; N 1..16, where
N <= 10 takes the merged kernel on a 16-lane CPU and 11..16 keeps two), rows
with NaN and infinities, several outputs, and bound parameters (the merged
kernel must run on every call even when the GEMM reads bound values only).
"""

from __future__ import annotations

import numpy as np
import pytest

import fusec

pytest.importorskip("pyopencl")

ROWS = (1, 7, 64, 1023)
K = 37


def softmax_ref(z):
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def head(n: int, body: str = "softmax(y, axis=-1)") -> str:
    return f"""graph head(x: f32[B, {K}], w: f32[{n}, {K}], b: f32[{n}]) {{
    y = linear(x, w, b)
    return {body}
}}"""


def merged(graph) -> bool:
    """Whether the softmax runs inside the GEMM kernel (no row kernel of its own)."""
    kernels = graph.plan["kernels"]
    gemm = [k for k in kernels if "linear" in k["ops"]]
    return len(gemm) == 1 and "exp" in gemm[0]["ops"] and len(kernels) == 1


def wide_cpu(graph) -> bool:
    info = graph.runtime.info
    return info.is_cpu and (getattr(info, "native_vector_width", None) or 8) >= 16


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(12)


@pytest.mark.parametrize("n", [1, 2, 7, 10, 11, 16])
def test_softmax_after_linear_matches_numpy(n, rng):
    graph = fusec.compile(head(n))["head"]
    if wide_cpu(graph):  # the narrow dot layout holds whole rows for N <= 10
        assert merged(graph) == (n <= 10)
    w = rng.standard_normal((n, K)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    for m in ROWS:
        x = rng.standard_normal((m, K)).astype(np.float32) * 3
        want = softmax_ref(x.astype(np.float64) @ w.T + b)
        np.testing.assert_allclose(graph(x, w, b), want, rtol=2e-5, atol=1e-6)


def test_log_softmax_and_both_outputs(rng):
    prog = fusec.compile(head(10, "log_softmax(y, axis=-1), y"))
    graph = prog["head"]
    w = rng.standard_normal((10, K)).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    for m in (7, 1023):
        x = rng.standard_normal((m, K)).astype(np.float32)
        y = x.astype(np.float64) @ w.T + b
        logp, got_y = graph(x, w, b)
        np.testing.assert_allclose(got_y, y, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(logp, np.log(softmax_ref(y)), rtol=2e-5, atol=2e-5)


def test_nan_and_infinite_rows():
    src = f"""graph head(x: f32[B, {K}], w: f32[10, {K}], e: f32[B, 10]) {{
    return softmax(linear(x, w) + e, axis=-1)
}}"""
    graph = fusec.compile(src)["head"]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, K)).astype(np.float32)
    w = rng.standard_normal((10, K)).astype(np.float32)
    e = np.zeros((7, 10), np.float32)
    e[1, 3] = np.nan  # a NaN anywhere: the row is NaN
    e[2, 0] = np.inf  # +inf: inf - inf is NaN, as NumPy's formula
    e[3, :] = -np.inf  # every value -inf: NaN
    e[4, 5] = -np.inf  # one -inf: its probability is 0
    e[5, 9] = 1e30  # one huge value: probability 1, the rest 0
    with np.errstate(invalid="ignore"):
        want = softmax_ref(x.astype(np.float64) @ w.T + e)
    np.testing.assert_allclose(graph(x, w, e), want, rtol=2e-5, atol=1e-6, equal_nan=True)


def test_bound_gemm_inputs_run_the_rows_every_call():
    src = f"""graph head(x: f32[4, {K}], w: f32[10, {K}], e: f32[4, 10]) {{
    return softmax(linear(x, w) + e, axis=-1)
}}"""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, K)).astype(np.float32)
    w = rng.standard_normal((10, K)).astype(np.float32)
    bound = fusec.compile(src)["head"].bind(x=x, w=w)
    y = x.astype(np.float64) @ w.T
    for _ in range(2):
        e = rng.standard_normal((4, 10)).astype(np.float32)
        np.testing.assert_allclose(bound(e), softmax_ref(y + e), rtol=2e-5, atol=1e-6)
