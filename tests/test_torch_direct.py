"""Inference graphs called without AOTAutograd's run-time wrapper
(fusec/torch/direct.py) only where that wrapper does nothing: results as
eager's, and mutations, aliases and grad mode still handled by AOTAutograd."""

import pytest

torch = pytest.importorskip("torch")

import fusec.torch  # noqa: E402
from fusec.torch import direct  # noqa: E402


def chain(x, y):
    a = torch.clamp(torch.relu(x * y + 1.0), -2.0, 2.0)
    return torch.clamp(torch.relu(a * 0.5 + y), -2.0, 2.0)


def two(x, y):
    return torch.sigmoid(x) * y, torch.tanh(x - y)


def with_fallback(x, y):  # cumsum stays in PyTorch, between two fusec graphs
    return torch.exp(torch.cumsum(torch.relu(x * y), 0) * 0.01)


def mutates(x, y):
    x.add_(1.0)
    return torch.relu(x * y)


def aliases(x, y):
    return x.view(-1), torch.exp(x) + y


@pytest.fixture
def bypassed(monkeypatch):
    """Whether each compile of the test returned the forward without the wrapper."""
    seen = []

    def recording(gm, example_inputs, compiled, inference):
        result = callable_for(gm, example_inputs, compiled, inference)
        seen.append(result is not compiled)
        return result

    callable_for = direct.callable_for
    monkeypatch.setattr(direct, "callable_for", recording)
    torch._dynamo.reset()
    return seen


def inputs(n=1023, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen), torch.randn(n, generator=gen)


@pytest.mark.parametrize("fn", [chain, two, with_fallback])
def test_a_no_grad_inference_graph_skips_the_wrapper(bypassed, fn):
    compiled = torch.compile(fn, backend=fusec.torch.backend, dynamic=False)
    kept = []
    with torch.no_grad():
        for seed in range(3):  # the first call goes through AOTAutograd's function
            x, y = inputs(seed=seed)
            got = compiled(x, y)
            torch.testing.assert_close(got, fn(x, y))
            kept.append((x, y, got))
    assert bypassed == [True]
    for x, y, got in kept:  # outputs are fresh tensors a caller may keep
        torch.testing.assert_close(got, fn(x, y))
        outs = got if isinstance(got, tuple) else (got,)
        assert all(o.data_ptr() not in (x.data_ptr(), y.data_ptr()) for o in outs)


def test_input_mutations_and_aliased_outputs_keep_the_wrapper(bypassed):
    x, y = inputs(seed=3)
    with torch.no_grad():
        for _ in range(2):
            mx = x.clone()
            got = torch.compile(mutates, backend=fusec.torch.backend, dynamic=False)(mx, y)
            torch.testing.assert_close(mx, x + 1.0)  # the caller sees the mutation
            torch.testing.assert_close(got, torch.relu((x + 1.0) * y))
        view, total = torch.compile(aliases, backend=fusec.torch.backend, dynamic=False)(x, y)
        assert view.data_ptr() == x.data_ptr()  # as in eager: a view of the input
        torch.testing.assert_close(total, torch.exp(x) + y)
    assert bypassed == [False, False]


def test_grad_mode_on_keeps_the_wrapper(bypassed):
    compiled = torch.compile(chain, backend=fusec.torch.backend, dynamic=False)
    x, y = inputs(seed=4)
    for _ in range(2):  # no input requires grad: an inference graph, grad mode on
        got = compiled(x, y)
        assert not got.requires_grad
        torch.testing.assert_close(got, chain(x, y))
    xg = x.clone().requires_grad_(True)
    got = compiled(xg, y)  # a recompile: training graphs
    (gx,) = torch.autograd.grad(got.sum(), (xg,))
    xe = x.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(chain(xe, y).sum(), (xe,))
    torch.testing.assert_close(gx, want)
    assert bypassed == [False, False]


def test_dynamic_sizes_without_the_wrapper(bypassed):
    compiled = torch.compile(chain, backend=fusec.torch.backend, dynamic=True)
    with torch.no_grad():
        for n in (7, 1023, 1, 4099):
            x, y = inputs(n, seed=n)
            for _ in range(2):
                torch.testing.assert_close(compiled(x, y), chain(x, y))
    assert bypassed and all(bypassed)


def test_a_modules_inference_under_no_grad_skips_the_wrapper(bypassed):
    """Parameters are graph inputs that require grad; with grad mode off the
    graph is an inference graph all the same."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(33, 17), torch.nn.GELU(), torch.nn.Linear(17, 5))
    compiled = torch.compile(model, backend=fusec.torch.backend, dynamic=False)
    with torch.no_grad():
        for seed in range(3):
            x = torch.randn(7, 33, generator=torch.Generator().manual_seed(seed))
            got = compiled(x)
            assert not got.requires_grad
            torch.testing.assert_close(got, model(x), rtol=1e-4, atol=1e-5)
    assert bypassed == [True]
