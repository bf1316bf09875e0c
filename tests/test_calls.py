"""The calling contract (../shared/spec/interfaces.md, version 2, "Calls"):
host arrays of any kind and alignment in place, `out=`, the output's kind,
calls from many threads, and arguments that must not wrap silently."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import fusec

TEXT = """
graph f(x: f32[B, N], b: f32[N], s: f32) {
    y = tanh(x * s + b)
    return y, sum(y, axis=1)
}
graph k(a: i32[N], c: i32) {
    return a + c
}
"""
rng = np.random.default_rng(11)


def reference(x, b, s):
    y = np.tanh(x * np.float32(s) + b)
    return y, y.sum(axis=1)


@pytest.fixture(scope="module")
def prog():
    return fusec.compile(TEXT)


def unaligned(shape, dtype=np.float32, offset=1):
    """A C-contiguous array whose data starts `offset` elements into a buffer."""
    n = int(np.prod(shape))
    raw = np.empty(n + offset, dtype)
    arr = raw[offset:].reshape(shape)
    arr[...] = rng.standard_normal(shape).astype(dtype)
    return arr


@pytest.mark.parametrize("offset", [0, 1, 3, 1021])
def test_unaligned_inputs_give_the_same_results(prog, offset):
    x = unaligned((7, 1023), offset=offset)
    b = unaligned((1023,), offset=offset + 1)
    y, total = prog["f"](x, b, 0.75)
    want_y, want_total = reference(x, b, 0.75)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total, want_total, rtol=1e-4, atol=1e-4)


def test_torch_tensors_in_and_out_in_place(prog):
    x = torch.randn(5, 33)
    b = torch.randn(33)
    y, total = prog["f"](x, b, 2.0)
    assert isinstance(y, torch.Tensor) and isinstance(total, torch.Tensor)
    assert y.dtype == torch.float32 and y.shape == (5, 33)
    want = torch.tanh(x * 2.0 + b)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(total, want.sum(dim=1), rtol=1e-4, atol=1e-4)
    # a tensor that autograd tracks, and a non-contiguous one (copied, as NumPy's strided input)
    xt = torch.randn(33, 5, requires_grad=True)
    y2, _ = prog["f"](xt.t(), b, 1.0)
    torch.testing.assert_close(y2, torch.tanh(xt.detach().t() + b), rtol=1e-5, atol=1e-6)


def test_output_kind_follows_the_first_array_argument(prog):
    x, b = rng.standard_normal((3, 4)).astype(np.float32), torch.randn(4)
    y, _ = prog["f"](x, b, 1.0)
    assert type(y) is np.ndarray
    y, _ = prog["f"](torch.from_numpy(x), b.numpy(), 1.0)
    assert isinstance(y, torch.Tensor)


def test_array_interface_inputs(prog):
    class Wrapped:  # an array known only through the array interface
        def __init__(self, a):
            self.a = a
            self.__array_interface__ = a.__array_interface__

    x, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    y, _ = prog["f"](Wrapped(x), Wrapped(b), 1.5)
    np.testing.assert_allclose(y, reference(x, b, 1.5)[0], rtol=1e-5, atol=1e-6)


def test_out_writes_into_the_callers_arrays(prog):
    x, b = unaligned((6, 17), offset=2), rng.standard_normal(17).astype(np.float32)
    out = (unaligned((6, 17), offset=1), np.empty(6, np.float32))
    result = prog["f"](x, b, 0.5, out=out)
    assert result[0] is out[0] and result[1] is out[1]
    want_y, want_total = reference(x, b, 0.5)
    np.testing.assert_allclose(out[0], want_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], want_total, rtol=1e-4, atol=1e-4)
    single = prog["k"]
    a = np.arange(10, dtype=np.int32)
    into = np.zeros(10, np.int32)
    assert single(a, 5, out=into) is into
    np.testing.assert_array_equal(into, a + 5)
    t = torch.zeros(10, dtype=torch.int32)
    single(a, 1, out=t)
    assert t.tolist() == list(range(1, 11))


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            lambda: (np.empty((6, 16), np.float32), np.empty(6, np.float32)),
            r"out\[0\] must be a float32 array of shape \[6, 17\]",
        ),
        (
            lambda: (np.empty((6, 17), np.float64), np.empty(6, np.float32)),
            r"out\[0\] must be a float32",
        ),
        (lambda: np.empty((6, 17), np.float32), r"out= needs 2 array\(s\)"),
        (lambda: (np.empty((17, 6), np.float32).T, np.empty(6, np.float32)), "C-contiguous"),
    ],
)
def test_bad_out_is_a_call_error(prog, bad, message):
    x, b = (
        rng.standard_normal((6, 17)).astype(np.float32),
        rng.standard_normal(17).astype(np.float32),
    )
    with pytest.raises(fusec.CallError, match=message):
        prog["f"](x, b, 0.5, out=bad())


def test_read_only_out_is_refused(prog):
    out = np.empty(10, np.int32)
    out.setflags(write=False)
    with pytest.raises(fusec.CallError, match="read-only"):
        prog["k"](np.arange(10, dtype=np.int32), 1, out=out)


def test_many_threads_with_different_sizes(prog):
    g = prog["f"]
    errors = []

    def worker(seed: int):
        local = np.random.default_rng(seed)
        try:
            for i in range(25):
                rows, cols = 1 + (seed * 7 + i) % 13, 1 + (seed * 31 + i * 5) % 300
                x = local.standard_normal((rows, cols)).astype(np.float32)
                b = local.standard_normal(cols).astype(np.float32)
                s = float(local.uniform(-2, 2))
                y, total = g(x, b, s)
                want_y, want_total = reference(x, b, s)
                np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(total, want_total, rtol=1e-4, atol=1e-4)
        except Exception as e:  # reported by the main thread
            errors.append(f"thread {seed}: {e!r}")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "value, message",
    [
        (2**31, "out of range for i32"),
        (2**40 + 5, "out of range for i32"),
        (-(2**31) - 1, "out of range for i32"),
        (np.int64(2**33), "out of range for i32"),
        (1.5, "expects i32, got float"),
    ],
)
def test_out_of_range_scalars_never_wrap(prog, value, message):
    with pytest.raises(fusec.CallError, match=message):
        prog["k"](np.arange(4, dtype=np.int32), value)


def test_scalars_at_the_edge_of_the_range_are_exact(prog):
    a = np.zeros(3, np.int32)
    np.testing.assert_array_equal(prog["k"](a, 2**31 - 1), np.full(3, 2**31 - 1, np.int32))
    np.testing.assert_array_equal(prog["k"](a, -(2**31)), np.full(3, -(2**31), np.int32))
    g = fusec.compile("graph w(a: i64[N], c: i64) {\n    return a + c\n}")["w"]
    np.testing.assert_array_equal(g(np.zeros(2, np.int64), 2**40 + 5), np.full(2, 2**40 + 5))
    with pytest.raises(fusec.CallError, match="out of range for i64"):
        g(np.zeros(2, np.int64), 2**63)


def test_float_scalar_beyond_f32_is_a_call_error(prog):
    x, b = np.zeros((1, 2), np.float32), np.zeros(2, np.float32)
    with pytest.raises(fusec.CallError, match="out of range for f32"):
        prog["f"](x, b, 1e300)
    y, _ = prog["f"](x, b, float("inf"))  # inf and nan are values f32 has
    assert y.shape == (1, 2)


def test_zero_dimensional_array_for_a_tensor_is_a_call_error(prog):
    with pytest.raises(
        fusec.CallError, match=r"parameter 'b' expects f32\[N\] \(1 dimensions\), got shape \[\]"
    ):
        prog["f"](np.zeros((2, 3), np.float32), np.array(1.0, np.float32), 1.0)


def test_an_output_too_big_to_allocate_is_a_call_error():
    g = fusec.compile("graph o(a: f32[N, 1], b: f32[M]) {\n    return a * b\n}")["o"]
    a, b = np.zeros((1 << 21, 1), np.float32), np.zeros(1 << 21, np.float32)  # 2^42 outputs: 16 TiB
    with pytest.raises(
        fusec.CallError, match=r"cannot allocate an output of shape \[2097152, 2097152\]"
    ):
        g(a, b)


def test_a_strided_input_too_big_to_copy_is_a_call_error(prog):
    x = np.broadcast_to(np.float32(1), (1 << 20, 1 << 20))  # a view of one float: 4 TiB as a copy
    with pytest.raises(fusec.CallError, match="parameter 'x'.*cannot be copied"):
        prog["f"](x, np.zeros(1 << 20, np.float32), 1.0)


def test_bound_graphs_made_and_dropped_one_after_another_keep_their_own_values():
    """A binding's prepared launches point at its own buffers: a new binding
    (which may reuse a dropped one's address) must never see another's."""
    g = fusec.compile(
        "graph lin(x: f32[B, K], w: f32[N, K], b: f32[N]) {\n    return relu(linear(x, w, b))\n}"
    )["lin"]
    x = rng.standard_normal((300, 24)).astype(np.float32)
    for i in range(12):
        w = rng.standard_normal((9, 24)).astype(np.float32)
        b = rng.standard_normal(9).astype(np.float32)
        layer = g.bind(w=w, b=b)
        np.testing.assert_allclose(
            layer(x), np.maximum(x @ w.T + b, 0), rtol=1e-4, atol=1e-4, err_msg=f"binding {i}"
        )
        del layer


def test_more_shape_signatures_than_a_thread_keeps_prepared(prog):
    """Past 8 signatures the oldest is dropped and its kernel objects serve the
    next new one: every argument is set again, so results stay right."""
    g = prog["f"]
    for rows in [*range(1, 21), 3, 1, 17]:  # 20 signatures, then old ones again
        x = rng.standard_normal((rows, 5 + rows)).astype(np.float32)
        b = rng.standard_normal(5 + rows).astype(np.float32)
        y, total = g(x, b, 0.25)
        want_y, want_total = reference(x, b, 0.25)
        np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6, err_msg=f"{rows} rows")
        np.testing.assert_allclose(total, want_total, rtol=1e-4, atol=1e-4)


def test_a_sliced_device_array_is_read_from_its_own_offset(prog):
    import pyopencl.array as cla

    g = prog["k"]
    queue = g.runtime.queue
    whole = cla.to_device(queue, np.arange(20, dtype=np.int32))
    part = whole[5:15]
    assert part.offset
    np.testing.assert_array_equal(g(part, 1).get(), np.arange(5, 15) + 1)
    with pytest.raises(fusec.CallError, match="view into a larger device buffer"):
        g(part, 1, out=cla.zeros(queue, 20, np.int32)[5:15])


def test_bound_weights_packed_once_under_concurrent_first_calls():
    """Eight threads make a bound graph's first call together: the packing of w
    is enqueued once, before any thread's product reads it."""
    g = fusec.compile(
        "graph lin(x: f32[B, K], w: f32[N, K], b: f32[N]) {\n    return linear(x, w, b)\n}"
    )["lin"]
    w = rng.standard_normal((33, 64)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    for _ in range(3):
        layer = g.bind(w=w, b=b)
        xs = [rng.standard_normal((200 + i, 64)).astype(np.float32) for i in range(8)]
        results, errors = [None] * 8, []

        def call(i, layer=layer, xs=xs, results=results, errors=errors):
            try:
                results[i] = layer(xs[i])
            except Exception as e:
                errors.append(repr(e))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        for x, y in zip(xs, results, strict=True):
            np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-4, atol=1e-4)


def test_zero_dimensional_tensors_for_scalars_give_tensors_back():
    g = fusec.compile("graph s(a: f32, b: f32) {\n    return a * b + 1.0\n}")["s"]
    out = g(torch.tensor(2.0), torch.tensor(3.0))
    assert isinstance(out, torch.Tensor) and out.shape == () and float(out) == 7.0
    assert type(g(2.0, np.float32(3.0))) is np.ndarray


def test_out_that_is_no_array_is_a_call_error(prog):
    with pytest.raises(fusec.CallError, match=r"out\[0\] must be an array of shape \[3\], got str"):
        prog["k"](np.arange(3, dtype=np.int32), 1, out="x")
