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


def _record_graph_calls(monkeypatch) -> list:
    """The arrays each fusec graph call of the backend receives, in order."""
    seen = []

    class Recording(compiler.FusecPartition):
        def __init__(self, graph, *rest):
            def call(*arrays, **kwargs):
                seen.append(arrays)
                return graph(*arrays, **kwargs)

            super().__init__(call, *rest)

    monkeypatch.setattr(compiler, "FusecPartition", Recording)
    return seen


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
    seen = _record_graph_calls(monkeypatch)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(1, 1031, generator=gen), torch.randn(1, 1031, generator=gen)
    with torch.no_grad():
        got = torch.compile(chain, backend=fusec.torch.backend, dynamic=False)(x, y)
    torch.testing.assert_close(got, chain(x, y))
    (arrays,) = seen
    assert [a.ctypes.data for a in arrays] == [x.data_ptr(), y.data_ptr()]


def test_a_dropped_output_is_written_again_a_held_one_never():
    """The output pool (fusec/torch/outputs.py): an array whose tensor the
    caller dropped is reused (no fresh memory to fault in), one still held
    (the tensor, a view of it, or AOTAutograd's saved copy) is not."""
    f = torch.compile(chain, backend=fusec.torch.backend, dynamic=False)
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(3, 509, generator=gen), torch.randn(3, 509, generator=gen)
    with torch.no_grad():
        dropped = f(x, y).data_ptr()
        assert f(x + 1, y).data_ptr() == dropped  # the first one's array, written again
        held = f(x, y)
        view = f(x - 1, y)[1:]
        others = [f(x * k, y) for k in (2.0, 3.0, 4.0)]
    assert held.data_ptr() not in [o.data_ptr() for o in others]
    assert view.untyped_storage().data_ptr() not in [o.data_ptr() for o in [held, *others]]
    torch.testing.assert_close(held, chain(x, y))
    torch.testing.assert_close(view, chain(x - 1, y)[1:])
    for k, o in zip((2.0, 3.0, 4.0), others, strict=True):
        torch.testing.assert_close(o, chain(x * k, y))


def test_two_outputs_of_one_shape_are_two_arrays():
    """A backward's two gradients share a shape: each call takes two distinct
    arrays, also while the previous call's gradients are still held."""
    f = torch.compile(chain, backend=fusec.torch.backend, dynamic=False)
    gen = torch.Generator().manual_seed(4)
    x, y = (torch.randn(2053, generator=gen, requires_grad=True) for _ in range(2))
    kept = []
    for k in range(3):
        ct = torch.full((2053,), float(k + 1))
        kept.append(torch.autograd.grad(f(x, y), (x, y), ct))
    ptrs = [g.data_ptr() for grads in kept[-2:] for g in grads]
    assert len(set(ptrs)) == 4
    for k, grads in enumerate(kept):
        want = torch.autograd.grad(chain(x, y), (x, y), torch.full((2053,), float(k + 1)))
        for g, w in zip(grads, want, strict=True):
            torch.testing.assert_close(g, w)


def test_threads_never_take_the_same_array():
    """A compiled model may be called from several threads: arrays that
    threads hold at the same time are distinct ones."""
    import threading

    import numpy as np

    from fusec.torch.outputs import OutputPool

    pool = OutputPool()
    key = ((64,),)
    pool.learn(key, (np.zeros(64, np.float32), np.zeros(64, np.float32)))
    held = [None] * 4
    barrier = threading.Barrier(4)
    clashes = []

    def worker(i):
        for _ in range(50):
            held[i] = pool.take(key)
            barrier.wait()  # every thread holds what it took
            ids = [id(a) for taken in held for a in taken]
            if len(set(ids)) != len(ids):
                clashes.append(ids)
            barrier.wait()
            held[i] = None
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not clashes


def test_an_output_fed_back_as_input_is_not_its_own_output():
    """y = f(y, y) in a loop: the input is the last call's output, busy while
    the call reads it, so the call writes another array."""
    f = torch.compile(chain, backend=fusec.torch.backend, dynamic=False)
    gen = torch.Generator().manual_seed(5)
    y = torch.randn(4, 263, generator=gen)
    want = y.clone()
    with torch.no_grad():
        for _ in range(4):
            before = y.data_ptr()
            y = f(y, y)
            want = chain(want, want)
            assert y.data_ptr() != before
    torch.testing.assert_close(y, want)


def test_parameters_reach_the_graph_as_numpy_views_too(monkeypatch):
    """In a training forward the inputs require grad (parameters, leaves):
    they are passed as views of their memory as well, a weight that a GEMM
    reads transposed as the view of its transpose."""
    seen = _record_graph_calls(monkeypatch)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(5, 13, generator=gen, requires_grad=True)
    w = torch.randn(7, 13, generator=gen, requires_grad=True)

    def layer(x, w):
        return torch.relu(x @ w.t()) * 2.0

    f = torch.compile(layer, backend=fusec.torch.backend, dynamic=False)
    got = f(x, w)
    torch.testing.assert_close(got, layer(x, w))
    forward = seen[0]
    addresses = {a.ctypes.data for a in forward}
    assert {x.data_ptr(), w.data_ptr()} <= addresses, (addresses, x.data_ptr(), w.data_ptr())
    ct = torch.randn(5, 7, generator=gen)
    grads = torch.autograd.grad(got, (x, w), ct)
    want = torch.autograd.grad(layer(x, w), (x, w), ct)
    for g, v in zip(grads, want, strict=True):
        torch.testing.assert_close(g, v)


def test_a_warm_call_goes_past_nn_modules_dispatch(monkeypatch):
    """The partitioned ATen graph runs its generated code, and it calls each
    partition's forward, without nn.Module.__call__'s hook dispatch in
    between (two such dispatches a call before, ~2 us each)."""
    f = torch.compile(chain, backend=fusec.torch.backend, dynamic=False)
    gen = torch.Generator().manual_seed(7)
    x, y = torch.randn(1021, generator=gen), torch.randn(1021, generator=gen)
    with torch.no_grad():
        f(x, y)  # compiles
        dispatched = []
        call_impl = torch.nn.Module._call_impl

        def counting(self, *args, **kwargs):
            dispatched.append(type(self).__name__)
            return call_impl(self, *args, **kwargs)

        monkeypatch.setattr(torch.nn.Module, "_call_impl", counting)
        got = f(x, y)
    assert dispatched == []
    torch.testing.assert_close(got, chain(x, y))
