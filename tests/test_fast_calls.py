"""Warm calls replayed without the argument checks (fusec/runtime/fast_calls.py):
the same results as the checked path for every kind of argument, and every
mistake still caught."""

from __future__ import annotations

import threading

import numpy as np
import pyopencl.array as cla
import pytest
import torch

import fusec
from fusec.runtime.launcher import Launcher

TEXT = """
graph f(x: f32[B, N], b: f32[N]) {
    y = tanh(x * 0.5 + b)
    return y, sum(y, axis=1)
}
graph mlp(x: f32[B, K], w: f32[M, K], c: f32[M]) {
    return relu(linear(x, w, c))
}
"""
rng = np.random.default_rng(5)


def reference(x, b):
    y = np.tanh(x * np.float32(0.5) + b)
    return y, y.sum(axis=1)


def check(got, x, b):
    want = reference(np.asarray(x), np.asarray(b))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-5)


def data(rows, cols):
    return rng.standard_normal((rows, cols)).astype(np.float32), rng.standard_normal(cols).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def prog():
    return fusec.compile(TEXT)


def test_a_warm_call_skips_the_checked_path(prog, monkeypatch):
    x, b = data(7, 1023)
    check(prog["f"](x, b), x, b)  # the checked call records the signature

    def refused(*args, **kwargs):
        raise AssertionError("the checked path ran")

    monkeypatch.setattr(Launcher, "call", refused)
    x2, b2 = data(7, 1023)
    first = prog["f"](x2, b2)
    check(first, x2, b2)
    check(prog["f"](x, b), x, b)
    check(first, x2, b2)  # a later call's outputs are new arrays


def test_a_warm_call_with_out_skips_the_checked_path(prog, monkeypatch):
    x, b = data(7, 129)
    y, total = np.empty_like(x), np.empty(7, np.float32)
    got = prog["f"](x, b, out=(y, total))  # checked, recorded
    assert got[0] is y and got[1] is total
    monkeypatch.setattr(Launcher, "call", lambda *a, **k: pytest.fail("the checked path ran"))
    x2, b2 = data(7, 129)
    got = prog["f"](x2, b2, out=[y, total])
    assert got[0] is y and got[1] is total
    check((y, total), x2, b2)


@pytest.mark.parametrize(
    "bad_out, message",
    [
        (lambda: (np.empty((7, 129), np.float64), np.empty(7, np.float32)), "float32 array"),
        (lambda: (np.empty((7, 130), np.float32), np.empty(7, np.float32)), r"shape \[7, 129\]"),
        (lambda: (np.empty((129, 7), np.float32).T, np.empty(7, np.float32)), "C-contiguous"),
        (lambda: np.empty((7, 129), np.float32), "2 array"),
        (lambda: (read_only((7, 129)), np.empty(7, np.float32)), "read-only"),
    ],
)
def test_bad_out_after_a_warm_call_is_still_a_call_error(prog, bad_out, message):
    x, b = data(7, 129)
    prog["f"](x, b)
    prog["f"](x, b, out=(np.empty_like(x), np.empty(7, np.float32)))
    with pytest.raises(fusec.CallError, match=message):
        prog["f"](x, b, out=bad_out())


def read_only(shape):
    arr = np.empty(shape, np.float32)
    arr.flags.writeable = False
    return arr


def test_arguments_of_other_kinds_after_a_warm_call(prog):
    x, b = data(5, 31)
    check(prog["f"](x, b), x, b)
    check(prog["f"](x, b), x, b)  # fast
    strided = np.asfortranarray(x)  # same dtype and shape, other strides
    check(prog["f"](strided, b), strided, b)
    ro = x.copy()
    ro.flags.writeable = False  # same key as the recorded call: falls back to the checked path
    check(prog["f"](ro, b), ro, b)
    y, _ = prog["f"](torch.from_numpy(x), torch.from_numpy(b))
    assert isinstance(y, torch.Tensor)
    queue = prog["f"].runtime.queue
    y, _ = prog["f"](cla.to_device(queue, x), cla.to_device(queue, b))
    assert isinstance(y, cla.Array)
    np.testing.assert_allclose(y.get(), reference(x, b)[0], rtol=1e-5, atol=1e-5)
    check(prog["f"](x, b), x, b)


def test_mistakes_after_a_warm_call_are_still_call_errors(prog):
    x, b = data(3, 17)
    prog["f"](x, b)
    prog["f"](x, b)
    with pytest.raises(fusec.CallError, match="'x' expects f32"):
        prog["f"](x.astype(np.float64), b)
    with pytest.raises(fusec.CallError, match="N is already 17"):
        prog["f"](x, b[:5].copy())
    with pytest.raises(fusec.CallError, match="takes 2 arguments"):
        prog["f"](x, b, b)
    with pytest.raises(fusec.CallError, match="missing 'b'"):
        prog["f"](x)


def test_sizes_that_come_and_go(prog):
    sizes = [(1, 7), (7, 1), (13, 1023), (2, 3), (97, 5), (4, 4), (5, 9), (11, 2), (3, 3), (6, 1)]
    arrays = [data(*s) for s in sizes]
    for _ in range(2):  # more signatures than a thread keeps prepared: the first come back
        for x, b in arrays:
            check(prog["f"](x, b), x, b)


def test_a_bound_graph_warm_calls(prog):
    w = rng.standard_normal((10, 33)).astype(np.float32)
    c = rng.standard_normal(10).astype(np.float32)
    layer = prog["mlp"].bind(w=w, c=c)
    for rows in (1, 64, 1, 7, 64):
        x = rng.standard_normal((rows, 33)).astype(np.float32)
        for _ in range(2):
            np.testing.assert_allclose(layer(x), np.maximum(x @ w.T + c, 0), rtol=1e-4, atol=1e-5)


def test_warm_calls_from_many_threads(prog):
    errors = []

    def worker(rows):
        try:
            x, b = data(rows, 129)
            for _ in range(20):
                check(prog["f"](x, b), x, b)
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(r,)) for r in (1, 3, 3, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_a_jitted_function_keeps_its_container_on_warm_calls():
    @fusec.jit
    def pair(x, y):
        return [x + y, x * y]

    for n in (5, 5, 8, 5):
        x, y = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
        got = pair(x, y)
        assert isinstance(got, list)
        np.testing.assert_allclose(got[0], x + y, rtol=1e-6)
        np.testing.assert_allclose(got[1], x * y, rtol=1e-6)
    outs = [np.empty(5, np.float32), np.empty(5, np.float32)]
    got = pair(x[:5].copy(), y[:5].copy(), out=outs)
    assert isinstance(got, list) and got[0] is outs[0] and got[1] is outs[1]
    np.testing.assert_allclose(outs[0], x[:5] + y[:5], rtol=1e-6)


def test_evaluate_into_out_on_warm_calls():
    a, b = (rng.standard_normal(1023).astype(np.float32) for _ in range(2))
    out = np.empty_like(a)
    for _ in range(3):
        assert fusec.evaluate("where(a > b, a * b, a - b)", out=out) is out
        np.testing.assert_allclose(out, np.where(a > b, a * b, a - b), rtol=1e-6)
        a += 1
