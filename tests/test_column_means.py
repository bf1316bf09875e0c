"""Means and sums with an epilogue over leading axes on CPUs: the reductions a
column group does not take stream whole rows as max and min do
(codegen/column_rows.py). Sizes that are not multiples of the vector width,
of the rows read per step or of the block; a broadcast operand in the
prologue; f16, f64; keepdim; three axes; against float64 NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import fusec

TEXT = """graph f(x: f32[B, D], w: f32[D]) {
    return mean(x, axis=0), sum(x * w, axis=0) * 2.0 - 1.0, mean(x, axis=0, keepdim=true)
}
graph three(x: f32[A, B, D]) { return mean(x, axis=0), sum(x, axis=0) + 1.0 }
graph half(x: f16[B, D]) { return mean(x, axis=0) }
graph double(x: f64[B, D]) { return sum(x, axis=0) - 3.0 }"""
SHAPES = [(1, 1), (7, 7), (1, 1023), (1023, 13), (131, 1023), (37, 2053), (5, 4099), (64, 16)]


@pytest.fixture(scope="module")
def prog():
    return fusec.compile(TEXT)


def _streams(g) -> bool:
    return "o0 = (t % blocks)" in g.source


@pytest.mark.parametrize("rows, cols", SHAPES)
def test_means_and_sums_with_epilogue_match_numpy(prog, rows, cols):
    g = prog["f"]
    if g.runtime.info.is_cpu:
        assert _streams(g)
    rng = np.random.default_rng(rows * 31 + cols)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    w = rng.standard_normal(cols).astype(np.float32)
    mean, scaled, kept = g(x, w)
    x64, tol = x.astype(np.float64), {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(mean, x64.mean(0), **tol)
    np.testing.assert_allclose(scaled, (x64 * w).sum(0) * 2 - 1, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(kept, x64.mean(0, keepdims=True), **tol)


@pytest.mark.parametrize("lead", [1, 3])
def test_over_the_first_of_three_axes(prog, lead):
    x = np.random.default_rng(lead).standard_normal((lead, 37, 1031)).astype(np.float32)
    mean, plus = prog["three"](x)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(plus, x.astype(np.float64).sum(0) + 1, rtol=1e-5, atol=1e-5)


def test_f16_and_f64(prog):
    x = np.random.default_rng(9).standard_normal((131, 1031))
    half = prog["half"](x.astype(np.float16))
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, x.astype(np.float16).astype(np.float64).mean(0), atol=2e-3)
    np.testing.assert_allclose(prog["double"](x), x.sum(0) - 3, rtol=1e-12, atol=1e-12)


def test_no_rows_give_nan_means_and_zero_sums(prog):
    """A mean over no rows is 0/0 (NumPy: nan, with a warning); a sum is 0."""
    x, w = np.zeros((0, 5), np.float32), np.ones(5, np.float32)
    mean, scaled, _ = prog["f"](x, w)
    assert np.isnan(mean).all()
    np.testing.assert_array_equal(scaled, np.full(5, -1.0, np.float32))
