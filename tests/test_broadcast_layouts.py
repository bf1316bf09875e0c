"""Broadcast operands in the row layout (issue 15): `[D]`, `[B, 1]`, NCHW
`[C, 1, 1]` and mixes, on sizes that are not multiples of the vector width
(1, 7, 1023, primes), on every usable OpenCL device, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import fusec

cl = pytest.importorskip("pyopencl")

from fusec.runtime import broken_reason, is_simulator, list_devices  # noqa: E402

# a simulator (Oclgrind) has its own module, tests/test_oclgrind.py, at sizes it can take
DEVICES = [d for _, d in list_devices() if broken_reason(d) is None and not is_simulator(d)]
rng = np.random.default_rng(15)

CHAIN = """
graph rows(x: f32[B, D], w: f32[D], b: f32[B, 1], h: f16[D], m: bool[B, 1]) {
    y = relu(x * w + b) * 0.5 - 0.125
    return y, where(m, y, h * x), x - b
}
graph planes(x: f32[N, C, H, W], s: f32[C, 1, 1], t: f32[N, 1, 1, W], k: f64) {
    return x * s + t, exp(s) * k + x
}
"""


@pytest.fixture(
    scope="module", params=DEVICES, ids=lambda d: f"{d.platform.name.strip()}: {d.name.strip()}"
)
def graphs(request):
    return fusec.compile(CHAIN, device=request.param)


@pytest.mark.parametrize("b, d", [(1, 1), (7, 7), (3, 1023), (2, 1031), (13, 16), (5, 37)])
def test_row_and_column_operands(graphs, b, d):
    g = graphs["rows"]
    assert len(g.plan["kernels"]) == 1 and any(
        a["name"] == "inner" for a in g.plan["kernels"][0]["args"]
    )
    x, w = rng.standard_normal((b, d)).astype(np.float32), rng.standard_normal(d).astype(np.float32)
    c, h = rng.standard_normal((b, 1)).astype(np.float32), rng.standard_normal(d).astype(np.float16)
    m = rng.random((b, 1)) < 0.5
    y, sel, diff = g(x, w, c, h, m)
    want = np.maximum(x * w + c, 0) * np.float32(0.5) - np.float32(0.125)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        sel, np.where(m, want, h.astype(np.float32) * x), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(diff, x - c)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (1, 7, 1, 1023), (3, 2, 11, 13)])
def test_plane_operands(graphs, shape):
    g = graphs["planes"]
    n, c, _, w = shape
    x = rng.standard_normal(shape).astype(np.float32)
    s = rng.standard_normal((c, 1, 1)).astype(np.float32)
    t = rng.standard_normal((n, 1, 1, w)).astype(np.float32)
    y, z = g(x, s, t, 0.75)
    np.testing.assert_allclose(y, x * s + t, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(z, np.exp(s.astype(np.float64)) * 0.75 + x, rtol=1e-6, atol=1e-6)
