"""`gemm(a, b, ta=, tb=)` in IR text: op(a) @ op(b) with either operand read
transposed in place (leading dimensions folded into rows), and its gradient
for each (ta, tb), against torch."""

import numpy as np
import pytest

import fusec

torch = pytest.importorskip("torch")

# (ta, tb): a's shape, b's shape (sizes not multiples of a vector width)
CASES = {
    (False, False): ((7, 3, 5), (5, 13)),
    (False, True): ((7, 3, 5), (13, 5)),
    (True, False): ((11, 5), (11, 13)),
    (True, True): ((11, 5), (13, 11)),
}


def _as_2d(t):
    return t.reshape(-1, t.shape[-1])


@pytest.mark.parametrize("ta,tb", sorted(CASES))
def test_gemm_forward_and_gradients_match_torch(ta, tb):
    a_shape, b_shape = CASES[ta, tb]
    sig = ", ".join(
        f"{n}: f32[{', '.join(map(str, s))}]" for n, s in (("a", a_shape), ("b", b_shape))
    )
    text = (
        f"graph f({sig}) {{ return tanh(gemm(a, b, ta={str(ta).lower()}, tb={str(tb).lower()})) }}"
    )
    graph = fusec.compile(text, grad=True)["f"]
    rng = np.random.default_rng(7)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    ct = None
    ta_t, tb_t = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    a2, b2 = _as_2d(ta_t), _as_2d(tb_t)
    want = torch.tanh((a2.T if ta else a2) @ (b2.T if tb else b2))
    rows = a_shape[-1:] if ta else a_shape[:-1]
    cols = b_shape[:-1] if tb else b_shape[-1:]
    want = want.reshape(*rows, *cols)
    ct = rng.standard_normal(want.shape).astype(np.float32)
    want.backward(torch.tensor(ct))
    out, grads = graph.value_and_grad(a, b, grad_outputs=ct)
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads["a"], ta_t.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["b"], tb_t.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_gemm_inner_dimensions_must_agree():
    with pytest.raises(fusec.CompileError, match="inner dimensions differ"):
        fusec.compile("graph f(a: f32[4, 5], b: f32[4, 6]) { return gemm(a, b) }")
