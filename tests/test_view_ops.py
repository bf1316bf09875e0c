"""`unsqueeze(x, axis=)` and `squeeze(x, axis=)` in IR text: views (no copy
of their operand), in the middle of a chain, as graph outputs, through a
reduction, and differentiated, against torch."""

import numpy as np
import pytest

import fusec

torch = pytest.importorskip("torch")

TEXT = """
graph f(x: f32[N, 7], y: f32[N, 1, 7], c: f32[1, 7]) {
    a = tanh(x)
    b = unsqueeze(a, axis=1)
    z = b * y + unsqueeze(x, axis=-2)
    s = squeeze(c, axis=0) * x
    w = unsqueeze(squeeze(unsqueeze(x, axis=1) * y, axis=1), axis=0)
    return z, b, sum(b * y, axis=2), squeeze(y, axis=1) + s, unsqueeze(x, axis=0), w
}
"""


@pytest.fixture(scope="module")
def graph():
    return fusec.compile(TEXT, grad=True)["f"]


def reference(x, y, c):
    a = torch.tanh(x)
    b = a.unsqueeze(1)
    s = c.squeeze(0) * x
    w = (x.unsqueeze(1) * y).squeeze(1).unsqueeze(0)
    return b * y + x.unsqueeze(-2), b, (b * y).sum(2), y.squeeze(1) + s, x.unsqueeze(0), w


@pytest.mark.parametrize("n", [1, 13])
def test_views_forward_and_gradients_match_torch(graph, n):
    rng = np.random.default_rng(n)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((n, 7), (n, 1, 7), (1, 7))]
    got = graph(*arrays)
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    want = reference(*tensors)
    for g, w in zip(got, want, strict=True):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.detach().numpy(), rtol=1e-5, atol=1e-6)
    cts = [rng.standard_normal(w.shape).astype(np.float32) for w in want]
    torch.autograd.backward(want, [torch.tensor(c) for c in cts])
    _, grads = graph.value_and_grad(*arrays, grad_outputs=cts)
    for name, t in zip("xyc", tensors, strict=True):
        np.testing.assert_allclose(grads[name], t.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "body, message",
    [
        ("squeeze(x, axis=1)", "axis 1 has size 5, not 1"),
        ("squeeze(x, axis=2)", "out of range"),
        ("unsqueeze(x, axis=3)", "out of range"),
        ("squeeze(x, axis=0)", "has size N, not 1"),
    ],
)
def test_view_errors_name_the_axis(body, message):
    with pytest.raises(fusec.CompileError, match=message):
        fusec.compile_graphs(f"graph f(x: f32[N, 5]) {{ return {body} }}")


def test_an_output_that_simplify_leaves_a_view_gets_memory_of_its_own():
    # `* 1.0` folds away, leaving the unsqueeze chain itself as the output
    text = """
graph g(a: f32[N, M]) {
    return unsqueeze(unsqueeze(a, axis=0), axis=2) * 1.0, unsqueeze(a, axis=1) * 1.0
}
"""
    a = np.arange(21, dtype=np.float32).reshape(3, 7)
    y, z = fusec.compile(text, grad=True)["g"](a)
    np.testing.assert_array_equal(y, a[None, :, None])
    np.testing.assert_array_equal(z, a[:, None])
