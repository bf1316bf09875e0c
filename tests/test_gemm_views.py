"""A GEMM operand that is a view (`squeeze`/`unsqueeze` of a parameter or of
a computed value) reads its root's memory: what an ONNX Flatten of [N, 1, D]
or a torch `x.unsqueeze(1)` before a Linear writes. At sizes 1, 7 and 13."""

from __future__ import annotations

import numpy as np
import pytest

import fusec

TEXT = """
graph params(x: f32[B, 1, D], w: f32[1, K, D], b: f32[K]) {
    return sigmoid(linear(squeeze(x, axis=1), squeeze(w, axis=0), b))
}
graph computed(x: f32[B, D], w: f32[K, D]) {
    h = unsqueeze(exp(x), axis=1)
    return linear(h, w), gemm(squeeze(h, axis=1), x, ta=true, tb=false)
}
"""


@pytest.fixture(scope="module")
def program():
    return fusec.compile(TEXT, grad=True)


@pytest.mark.parametrize("rows", [1, 7, 13])
def test_view_operands_of_gemms_read_their_roots(program, rows):
    rng = np.random.default_rng(rows)
    d, k = 6, 5
    x = rng.standard_normal((rows, 1, d)).astype(np.float32)
    w = rng.standard_normal((1, k, d)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    got = program["params"](x, w, b)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-(x[:, 0] @ w[0].T + b))), rtol=1e-5)
    _, grads = program["params"].value_and_grad(
        x, w, b, grad_outputs=np.ones((rows, k), np.float32)
    )
    assert grads["x"].shape == x.shape and grads["w"].shape == w.shape

    x2, w2 = x[:, 0], w[0]
    product, weight_grad = program["computed"](x2, w2)
    h = np.exp(x2)
    np.testing.assert_allclose(product, (h @ w2.T)[:, None, :], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weight_grad, h.T @ x2, rtol=1e-5, atol=1e-5)
