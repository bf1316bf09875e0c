"""Device-resident calls' outputs (fusec/runtime/device_outputs.py): built
through pyopencl's fast constructor, they must be the arrays
`pyopencl.array.empty` makes, and hold the call's numbers."""

from __future__ import annotations

import numpy as np
import pyopencl.array as cla
import pytest

import fusec
from fusec.runtime.device_outputs import new_device_array


@pytest.fixture(scope="module")
def graph():
    g = fusec.compile("graph f(x: f32[B, N]) {\n    y = x * 2.0\n    return y, sum(y, axis=0)\n}")
    return g["f"]


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 0, 4), (), (1023, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16])
def test_like_pyopencl_empty(graph, shape, dtype):
    queue, pool = graph.runtime.queue, graph.runtime.allocator
    got = new_device_array(queue, shape, dtype, pool)
    want = cla.empty(queue, shape, dtype, allocator=pool)
    for attr in ("shape", "dtype", "strides", "size", "nbytes", "offset"):
        assert getattr(got, attr) == getattr(want, attr), attr
    assert got.flags.c_contiguous and got.queue is queue and got.context == queue.context
    assert got.allocator is pool and (got.base_data is None) == (want.base_data is None)


@pytest.mark.parametrize("rows, cols", [(1, 1), (7, 1023), (13, 8)])
def test_device_call_outputs(graph, rows, cols):
    queue = graph.runtime.queue
    x = np.random.default_rng(rows).standard_normal((rows, cols)).astype(np.float32)
    y, s = graph(cla.to_device(queue, x))
    assert isinstance(y, cla.Array) and isinstance(s, cla.Array)
    np.testing.assert_array_equal(y.get(), x * np.float32(2))
    np.testing.assert_allclose(s.get(), (x * np.float32(2)).sum(0), rtol=1e-5, atol=1e-5)


# -- warm device-resident calls (fusec/runtime/device_fast_calls.py) ------------------


def test_a_warm_device_call_skips_the_checked_path(graph, monkeypatch):
    from fusec.runtime.launcher import Launcher

    queue = graph.runtime.queue
    rng = np.random.default_rng(3)
    x = rng.standard_normal((13, 1023)).astype(np.float32)
    graph(cla.to_device(queue, x))  # the checked call records the signature

    def refused(*args, **kwargs):
        raise AssertionError("the checked path ran")

    monkeypatch.setattr(Launcher, "call", refused)
    x2 = rng.standard_normal((13, 1023)).astype(np.float32)
    y, s = graph(cla.to_device(queue, x2))
    assert isinstance(y, cla.Array) and y.shape == (13, 1023) and s.shape == (1023,)
    np.testing.assert_array_equal(y.get(), x2 * np.float32(2))
    np.testing.assert_allclose(s.get(), (x2 * np.float32(2)).sum(0), rtol=1e-5, atol=1e-4)
    with pytest.raises(AssertionError, match="checked path"):  # another shape: a miss
        graph(cla.to_device(queue, x2[:5]))


def test_device_calls_the_fast_path_leaves_to_the_checked_one(graph):
    """A slice (offset), `out=`, a wrong dtype: checked, and still right or refused."""
    queue = graph.runtime.queue
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 7)).astype(np.float32)
    whole = cla.to_device(queue, x)
    graph(whole), graph(whole)  # recorded
    part = whole[2:]  # offset: copied by the checked path
    y, s = graph(part)
    np.testing.assert_array_equal(y.get(), x[2:] * np.float32(2))
    outs = (cla.empty(queue, (9, 7), np.float32), cla.empty(queue, (7,), np.float32))
    graph(whole, out=outs)
    np.testing.assert_allclose(outs[1].get(), (x * np.float32(2)).sum(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(fusec.FusecError, match="'x'"):
        graph(cla.to_device(queue, x.astype(np.float64)))
