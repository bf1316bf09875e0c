"""The backend's run-time call of a fusec graph: tensors in as NumPy views
(fusec's prepared-call path), tensors out; what a backward's constants
become; nothing a call returns is written by a later call."""

import pytest

torch = pytest.importorskip("torch")

import fusec.torch  # noqa: E402
from fusec.torch import compiler  # noqa: E402


def chain(x, y):
    a = torch.clamp(torch.relu(x * y + 1.0), -2.0, 2.0)
    return torch.clamp(torch.relu(a * 0.5 + y), -2.0, 2.0)


def test_the_backwards_zero_is_a_literal_not_a_pytorch_tensor():
    """clamp's backward is where(in range, grad, scalar_tensor(0.0)): the zero
    is an IR literal, so the backward is one fusec graph with nothing left in
    PyTorch and no 0-d parameter to pass."""
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.randn(1023, generator=gen, requires_grad=True) for _ in range(2))
    forward, backward = fusec.torch.explain(chain, x, y)
    assert not backward.fallbacks and len(backward.partitions) == 1, str(backward)
    assert "scalar_tensor" in [n for n, _ in backward.partitions[0].nodes]
    assert "[]" not in backward.partitions[0].ir.split(")", 1)[0], backward.partitions[0].ir
    ct = torch.randn(1023, generator=gen)
    got = torch.autograd.grad(torch.compile(chain, backend=fusec.torch.backend)(x, y), (x, y), ct)
    want = torch.autograd.grad(chain(x, y), (x, y), ct)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


def test_a_float64_scalar_tensor_stays_in_pytorch():
    """A float64 0-d tensor would promote an integer operand to float64, a weak
    literal to float32: only float32 ones are literals."""

    def fn(k):
        return torch.where(k > 2, k, torch.scalar_tensor(0.5, dtype=torch.float64))

    k = torch.arange(7, dtype=torch.int32)
    report = fusec.torch.explain(fn, k)
    assert any(op.endswith("scalar_tensor.default") for _, op, _ in report.fallbacks), str(report)
    got = torch.compile(fn, backend=fusec.torch.backend)(k)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, fn(k))


def test_an_output_is_never_written_by_a_later_call():
    """Outputs are fresh arrays each call: a tensor the caller holds keeps its
    values when the same compiled graph runs again (the prepared path too)."""
    f = torch.compile(chain, backend=fusec.torch.backend, dynamic=False)
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(7, generator=gen) for _ in range(4)]
    with torch.no_grad():
        first = f(xs[0], xs[1])
        kept = first.clone()
        second = f(xs[2], xs[3])
        third = f(xs[0], xs[1])
    assert first.data_ptr() not in (second.data_ptr(), third.data_ptr())
    torch.testing.assert_close(first, kept)
    torch.testing.assert_close(first, chain(xs[0], xs[1]))
    torch.testing.assert_close(second, chain(xs[2], xs[3]))
    torch.testing.assert_close(third, kept)


def test_tensors_reach_the_graph_as_numpy_views(monkeypatch):
    """The prepared-call path takes NumPy arrays: the partition passes views of
    the tensors' memory (a copy would still compute the right numbers)."""
    seen = []

    class Recording(compiler.FusecPartition):
        def __init__(self, graph, *rest):
            def call(*arrays):
                seen.append(arrays)
                return graph(*arrays)

            super().__init__(call, *rest)

    monkeypatch.setattr(compiler, "FusecPartition", Recording)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(1, 1031, generator=gen), torch.randn(1, 1031, generator=gen)
    with torch.no_grad():
        got = torch.compile(chain, backend=fusec.torch.backend, dynamic=False)(x, y)
    torch.testing.assert_close(got, chain(x, y))
    (arrays,) = seen
    assert [a.ctypes.data for a in arrays] == [x.data_ptr(), y.data_ptr()]
