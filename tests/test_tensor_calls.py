"""Warm calls with PyTorch CPU tensors (fusec/runtime/tensor_calls.py): they
replay a checked call's record as NumPy arrays do, return fresh tensors (or
the caller's `out=` tensors), and anything unusual still takes the checked path."""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fusec  # noqa: E402
from fusec.runtime.launcher import Launcher  # noqa: E402

TEXT = """
graph f(x: f32[B, N], b: f32[N]) {
    y = tanh(x * 0.5 + b)
    return y, sum(y, axis=1)
}
graph g(x: f32[N], y: f32[N]) {
    return clamp(relu(x * y + 1.0), min=-2.0, max=2.0)
}
"""


def reference(x, b):
    y = np.tanh(np.asarray(x) * np.float32(0.5) + np.asarray(b))
    return y, y.sum(axis=1)


def check(got, x, b):
    for g, w in zip(got, reference(x.detach(), b.detach()), strict=True):
        assert isinstance(g, torch.Tensor) and not g.requires_grad
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-5)


def tensors(rows, cols, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=gen), torch.randn(cols, generator=gen)


@pytest.fixture(scope="module")
def prog():
    return fusec.compile(TEXT)


@pytest.fixture
def checked_path_refused(monkeypatch):
    def refuse():
        monkeypatch.setattr(Launcher, "call", lambda *a, **k: pytest.fail("the checked path ran"))

    return refuse


@pytest.mark.parametrize("cols", [1, 7, 1023])
def test_a_warm_tensor_call_skips_the_checked_path(prog, checked_path_refused, cols):
    x, b = tensors(3, cols, 0)
    check(prog["f"](x, b), x, b)  # checked, recorded
    checked_path_refused()
    x2, b2 = tensors(3, cols, 1)
    first = prog["f"](x2, b2)
    check(first, x2, b2)
    second = prog["f"](x, b)
    check(second, x, b)
    check(first, x2, b2)  # a later call wrote new memory, not the earlier outputs
    ptrs = {t.data_ptr() for t in (*first, *second, x, b, x2, b2)}
    assert len(ptrs) == 8  # outputs alias neither the inputs nor each other


def test_tensors_after_numpy_arrays_share_the_record(prog, checked_path_refused):
    x, b = tensors(5, 33, 2)
    y, _ = prog["f"](x.numpy(), b.numpy())  # recorded by a NumPy call
    assert isinstance(y, np.ndarray)
    checked_path_refused()
    check(prog["f"](x, b), x, b)
    y, total = prog["f"](x.numpy(), b)  # the first array's kind: NumPy
    assert isinstance(y, np.ndarray) and isinstance(total, np.ndarray)
    np.testing.assert_allclose(y, reference(x, b)[0], rtol=1e-5, atol=1e-5)
    check(prog["f"](x, b.numpy()), x, b)  # a tensor first: tensors


def test_out_tensors_on_a_warm_call_are_returned(prog, checked_path_refused):
    x, b = tensors(4, 129, 3)
    y, total = torch.empty(4, 129), torch.empty(4)
    got = prog["f"](x, b, out=(y, total))
    assert got[0] is y and got[1] is total
    u, v = (torch.randn(1023) for _ in range(2))
    prog["g"](u, v)
    checked_path_refused()
    x2, b2 = tensors(4, 129, 4)
    got = prog["f"](x2, b2, out=[y, total])
    assert got[0] is y and got[1] is total
    check((y, total), x2, b2)
    z = torch.empty(1023)
    assert prog["g"](v, u, out=z) is z
    torch.testing.assert_close(z, torch.clamp(torch.relu(v * u + 1.0), -2.0, 2.0))


def test_tensors_that_require_grad_and_parameters(prog, checked_path_refused):
    x, b = tensors(2, 17, 5)
    prog["f"](x, b)
    checked_path_refused()
    xg = x.clone().requires_grad_(True)
    bp = torch.nn.Parameter(b.clone())
    check(prog["f"](xg, bp), xg, bp)


def test_unusual_tensors_after_a_warm_call_take_the_checked_path(prog):
    x, b = tensors(6, 31, 6)
    prog["f"](x, b)
    prog["f"](x, b)
    transposed = x.t().contiguous().t()  # same shape, other strides: copied
    assert not transposed.is_contiguous()
    check(prog["f"](transposed, b), transposed, b)
    wide = torch.randn(7, 31)
    check(prog["f"](wide[1:], b), wide[1:], b)  # contiguous, at an offset: in place
    with pytest.raises(fusec.CallError, match="'x' expects f32"):
        prog["f"](x.double(), b)
    with pytest.raises(fusec.CallError, match="N is already 31"):
        prog["f"](x, b[:5])
    neg = torch.randn(31)._neg_view()  # Tensor.numpy refuses a negative view
    check(prog["f"](x, neg), x, neg.resolve_neg())


def test_warm_tensor_calls_from_many_threads(prog):
    errors = []

    def worker(rows, seed):
        try:
            x, b = tensors(rows, 129, seed)
            for _ in range(20):
                check(prog["f"](x, b), x, b)
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(r, i)) for i, r in enumerate((1, 3, 3, 8))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_a_strided_tensor_is_recorded_once(prog, monkeypatch):
    """Its contiguous copy's signature is recorded by the first checked call;
    the next ones (checked again: the strides differ) find it there."""
    from fusec.runtime import fast_calls

    recorded = []
    record = fast_calls.record
    monkeypatch.setattr(fast_calls, "record", lambda *a: recorded.append(1) or record(*a))
    x, b = tensors(9, 37, 7)
    strided = x.t().contiguous().t()
    for _ in range(3):
        check(prog["f"](strided, b), strided, b)
    assert len(recorded) == 1
    check(prog["f"](x, b), x, b)  # contiguous tensors of that shape replay it
    assert len(recorded) == 1
