"""A few graphs on every usable OpenCL device, not only the default one.

Code generation differs per driver (vector widths, PoCL's composed vector
loads, 8-byte types at half the lanes where vectors are limited to 32 bytes):
where a machine has PoCL and Intel's CPU runtime both working, the suite's
other tests run on one of them; these run on each.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusec

cl = pytest.importorskip("pyopencl")
torch = pytest.importorskip("torch")

from fusec.runtime import broken_reason, is_simulator, list_devices  # noqa: E402

# a simulator (Oclgrind) has its own module, tests/test_oclgrind.py, at sizes it can take
DEVICES = [d for _, d in list_devices() if broken_reason(d) is None and not is_simulator(d)]
rng = np.random.default_rng(11)

MIXED = """
graph mixed(x: f32[B, N], d: f64[B, N], i: i64[N], h: f16[B, N], m: bool[B, N]) {
    return sin(x) * 2.0 + d, where(m, i + 1, i * 3), h * 0.5 + x, x > d
}
"""
REDUCE = """
graph red(x: f32[B, N]) {
    return softmax(x), sum(x, axis=0), max(x, axis=1, keepdim=true)
}
"""
MLP = """
graph mlp(x: f32[B, K], w1: f32[H, K], b1: f32[H], w2: f32[O, H], b2: f32[O]) {
    return linear(relu(linear(x, w1, b1)), w2, b2)
}
"""


@pytest.fixture(params=DEVICES, ids=lambda d: f"{d.platform.name.strip()}: {d.name.strip()}")
def device(request):
    return request.param


def test_mixed_dtypes(device):
    g = fusec.compile(MIXED, device=device)["mixed"]
    for b, n in [(3, 37), (2, 8)]:
        x, d = rng.standard_normal((b, n)).astype(np.float32), rng.standard_normal((b, n))
        i = rng.integers(-5, 5, n).astype(np.int64)
        h, m = rng.standard_normal((b, n)).astype(np.float16), rng.random((b, n)) > 0.5
        y0, y1, y2, y3 = g(x, d, i, h, m)
        np.testing.assert_allclose(y0, np.sin(x.astype(np.float64)) * 2 + d, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(y1, np.where(m, i + 1, i * 3))
        np.testing.assert_allclose(y2, h.astype(np.float32) * 0.5 + x, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(y3, x > d)


def test_reductions(device):
    g = fusec.compile(REDUCE, device=device)["red"]
    x = rng.standard_normal((19, 300)).astype(np.float32)
    s, col, mx = g(x)
    np.testing.assert_allclose(s, torch.softmax(torch.tensor(x), -1).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(col, x.sum(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mx, x.max(axis=1, keepdims=True))


def test_mlp_forward_backward_and_bound_weights(device):
    g = fusec.compile(MLP, device=device, grad=True)["mlp"]
    args = [
        rng.standard_normal(s).astype(np.float32) / 4
        for s in ((150, 33), (40, 33), (40,), (7, 40), (7,))
    ]
    ct = rng.standard_normal((150, 7)).astype(np.float32)
    leaves = [torch.tensor(a, requires_grad=True) for a in args]
    F = torch.nn.functional
    want = F.linear(torch.relu(F.linear(leaves[0], leaves[1], leaves[2])), leaves[3], leaves[4])
    want_grads = torch.autograd.grad(want, leaves, torch.tensor(ct))
    y, grads = g.value_and_grad(*args, grad_outputs=ct)
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-4, atol=1e-5)
    for name, ref in zip(["x", "w1", "b1", "w2", "b2"], want_grads, strict=True):
        np.testing.assert_allclose(grads[name], ref.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)
    layer = g.bind(w1=args[1], b1=args[2], w2=args[3], b2=args[4])
    np.testing.assert_allclose(layer(args[0][:5]), want.detach().numpy()[:5], rtol=1e-4, atol=1e-5)
