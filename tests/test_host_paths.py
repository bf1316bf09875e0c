"""NumPy inputs run in place on host-memory devices; the copying path gives the same answers."""

import numpy as np
import pytest

import fusec

TEXT = "graph f(x: f32[B, N], b: f32[N], m: bool[B, N]) {\n y = where(m, x * 2 + b, -x)\n return y, y > 0\n}"


@pytest.mark.parametrize("zero_copy", [True, False])
def test_host_paths_agree(zero_copy):
    g = fusec.compile(TEXT)["f"]
    saved = g.runtime.system_svm
    g.runtime.system_svm = zero_copy and saved
    try:
        rng = np.random.default_rng(3)
        x = rng.standard_normal((5, 37)).astype(np.float32)
        b = rng.standard_normal(37).astype(np.float32)
        m = rng.random((5, 37)) > 0.5
        x.setflags(write=False)  # read-only inputs are fine: fusec never writes them
        y, pos = g(x, b, m)
        want = np.where(m, x * 2 + b, -x)
        np.testing.assert_allclose(y, want, rtol=1e-6)
        np.testing.assert_array_equal(pos, want > 0)
        assert isinstance(y, np.ndarray) and y.flags.c_contiguous and y.flags.writeable
        # outputs are fresh arrays, never views of an input
        assert not np.shares_memory(y, x)
        empty = g(np.zeros((0, 37), np.float32), b, np.zeros((0, 37), bool))
        assert empty[0].shape == (0, 37)
    finally:
        g.runtime.system_svm = saved


@pytest.mark.parametrize("zero_copy", [True, False])
def test_a_call_mixing_device_and_host_arrays_is_done_when_it_returns(zero_copy):
    """Device outputs (the first array is a device array), but a host input: the
    caller may overwrite that input as soon as the call returns."""
    import pyopencl.array as cla

    g = fusec.compile("graph h(a: f32[N], b: f32[N]) {\n    return a * b + 1.0\n}")["h"]
    saved = g.runtime.system_svm
    g.runtime.system_svm = zero_copy and saved
    try:
        a = np.arange(1 << 16, dtype=np.float32)
        b = np.full(1 << 16, 2.0, np.float32)
        da = cla.to_device(g.runtime.queue, a)
        out = g(da, b)
        b[:] = -7.0  # at once: the kernel must have read b already
        assert isinstance(out, cla.Array)
        np.testing.assert_array_equal(out.get(), a * 2.0 + 1.0)
    finally:
        g.runtime.system_svm = saved
