"""fusec.torch.function: a graph compiled with grad=True, differentiated by
autograd through fusec's own backward graph (checked against torch.autograd)."""

import pytest

torch = pytest.importorskip("torch")

import fusec  # noqa: E402
from fusec.torch import function  # noqa: E402

TEXT = """
graph head(x: f32[B, N], w: f32[N], s: f32) {
    y = tanh(x * w) * s
    return y, sum(y, axis=1), y > 0
}
"""


@pytest.fixture(scope="module")
def head():
    return function(fusec.compile(TEXT, grad=True)["head"])


def test_values_and_gradients_match_autograd(head):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 33, generator=gen, requires_grad=True)
    w = torch.randn(33, generator=gen, requires_grad=True)
    y, total, positive = head(x, w, 1.5)
    (y * torch.arange(33.0)).sum().backward(retain_graph=True)
    total.sum().backward()

    xr, wr = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    yr = torch.tanh(xr * wr) * 1.5
    ((yr * torch.arange(33.0)).sum() + yr.sum(1).sum()).backward()
    torch.testing.assert_close(y, yr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w.grad, wr.grad, rtol=1e-5, atol=1e-5)
    assert positive.dtype == torch.bool and not positive.requires_grad
    assert torch.equal(positive, yr > 0)


def test_only_inputs_that_need_grad_get_one(head):
    x = torch.randn(3, 4)
    w = torch.randn(4, requires_grad=True)
    y, _, _ = head(x, w=w, s=2.0)
    y.sum().backward()
    torch.testing.assert_close(
        w.grad, (2 * (1 - torch.tanh(x * w.detach()) ** 2) * x).sum(0), rtol=1e-5, atol=1e-5
    )
    assert x.grad is None


def test_a_graph_without_gradients_is_refused():
    with pytest.raises(fusec.CallError, match="grad=True"):
        function(fusec.compile(TEXT)["head"])
    with pytest.raises(fusec.CallError, match="compiled graph"):
        function(lambda x: x)
