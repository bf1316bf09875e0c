"""Non-temporal stores (codegen/streaming.py, DeviceInfo.nontemporal_min_bytes).

On a device that takes them (Intel's CPU runtime), the threshold is lowered
to 1 KiB so that small arrays take the non-temporal path: outputs at every
alignment (out= slices shifted by 0..15 elements), several outputs aligned
alike or not, the flat launch and the row layout at row lengths that are and
are not multiples of a cache line. Results must equal NumPy's exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyopencl as cl
import pytest

import fusec
from fusec.codegen.device import DeviceInfo
from fusec.runtime.memory import LINE, empty

THRESHOLD = 1024  # bytes: the test's arrays cross it


@pytest.fixture(scope="module")
def compile_streaming(tmp_path_factory):
    """fusec.compile on a fresh queue of the default device, its threshold lowered."""
    device = fusec.compile("graph f(x: f32[N]) { return x }")["f"].runtime.device
    if DeviceInfo.from_cl(device).nontemporal_min_bytes == 0:
        pytest.skip(f"{device.name} ({device.platform.name}) takes no non-temporal stores")
    context = cl.Context([device])  # held here: a queue does not keep its context alive
    queue = cl.CommandQueue(context)
    real = DeviceInfo.from_cl
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUSEC_CACHE_DIR", str(tmp_path_factory.mktemp("streaming-cache")))
        mp.setattr(
            DeviceInfo,
            "from_cl",
            classmethod(
                lambda cls, d: dataclasses.replace(real(d), nontemporal_min_bytes=THRESHOLD)
            ),
        )
        yield lambda text, **kw: fusec.compile(text, queue=queue, **kw)


def shifted(n: int, offset: int, shape=None) -> np.ndarray:
    """An f32 array of n elements starting `offset` elements past a cache line."""
    raw = np.empty(n + 32, np.float32)
    start = -raw.ctypes.data % LINE // 4 + offset
    out = raw[start : start + n]
    assert out.ctypes.data % LINE == offset * 4
    return out.reshape(shape) if shape else out


@pytest.fixture(scope="module")
def chain(compile_streaming):
    return compile_streaming(
        "graph f(x: f32[N], y: f32[N]) { return clamp(relu(x * y + 1.0), min=-2.0, max=2.0), x - y }"
    )["f"]


def test_the_kernel_stores_non_temporally_and_fences(chain):
    assert "__builtin_nontemporal_store" in chain.source
    assert "write_mem_fence(CLK_GLOBAL_MEM_FENCE)" in chain.source


@pytest.mark.parametrize("n", [255, 256, 1031, 4099, 65537])
@pytest.mark.parametrize("offsets", [(0, 0), (1, 1), (3, 3), (15, 15), (4, 5), (0, 8)])
def test_flat_outputs_at_every_alignment(chain, n, offsets):
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    out = (shifted(n, offsets[0]), shifted(n, offsets[1]))
    got = chain(x, y, out=out)
    np.testing.assert_array_equal(got[0], np.clip(np.maximum(x * y + 1, 0), -2, 2))
    np.testing.assert_array_equal(got[1], x - y)


@pytest.mark.parametrize("rows, cols", [(64, 16), (33, 48), (300, 1024), (70, 37), (9, 8)])
@pytest.mark.parametrize("offset", [0, 4])
def test_row_layout_outputs(compile_streaming, rows, cols, offset):
    g = compile_streaming(
        "graph f(x: f32[B, D], w: f32[D], b: f32[B, 1]) { return relu(x * w + b) - 0.25 }"
    )["f"]
    rng = np.random.default_rng(rows * cols)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    w = rng.standard_normal(cols).astype(np.float32)
    b = rng.standard_normal((rows, 1)).astype(np.float32)
    want = np.maximum(x * w + b, 0) - np.float32(0.25)
    np.testing.assert_array_equal(g(x, w, b), want)  # fusec's own output: line-aligned
    np.testing.assert_array_equal(g(x, w, b, out=shifted(rows * cols, offset, (rows, cols))), want)


def test_half_and_bool_outputs_keep_ordinary_stores(compile_streaming):
    g = compile_streaming("graph f(x: f32[N]) { return x > 0.5, cast(x, dtype=f16) }")["f"]
    assert "__builtin_nontemporal_store" not in g.source
    x = np.random.default_rng(3).random(5000).astype(np.float32)
    mask, half = g(x)
    np.testing.assert_array_equal(mask, x > 0.5)
    np.testing.assert_array_equal(half, x.astype(np.float16))


def test_fusecs_large_outputs_start_a_cache_line():
    for shape, dtype in [
        ((1 << 20,), np.float32),
        ((1024, 1023), np.float64),
        ((3, 1 << 21), np.int8),
    ]:
        a = empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
        assert a.ctypes.data % LINE == 0
    small = empty((10,), np.float32)
    assert small.base is None  # plain np.empty under the size


def test_kernels_vectorised_across_work_items_keep_ordinary_stores(compile_streaming):
    # no vec_type_hint (two or more math routines a vector): the builtin's stores
    # ran such a chain 2.5x slower there
    g = compile_streaming("graph f(x: f32[N], y: f32[N]) { return sigmoid(tanh(exp(x * y))) }")["f"]
    assert "vec_type_hint" not in g.source and "__builtin_nontemporal_store" not in g.source


# a column group's full-shape output, written while its sums are added
# (column_rows.py's CPU layout): a training step's dx beside dw and db
COLUMNS = "graph col(x: f32[B, D], g: f32[B, D], w: f32[D]) {\n" + (
    "    d = g * w\n    return d * 0.5, sum(d * x, axis=0), sum(d, axis=0)\n}"
)


@pytest.fixture(scope="module")
def columns(compile_streaming):
    g = compile_streaming(COLUMNS)["col"]
    assert "__builtin_nontemporal_store" in g.source
    return g


@pytest.mark.parametrize(
    "rows, cols",
    [(1, 1), (7, 7), (3, 1023), (31, 16), (13, 48), (5, 37), (300, 64), (3, 4112)],
)
def test_column_group_full_shape_outputs(columns, rows, cols):
    rng = np.random.default_rng(rows + cols)
    x, g = (rng.standard_normal((rows, cols)).astype(np.float32) for _ in range(2))
    w = rng.standard_normal(cols).astype(np.float32)
    d = g.astype(np.float64) * w
    got = []
    for offset in (0, 4):  # rows that start a line (N % 16 == 0) stream at 0
        out = (shifted(rows * cols, offset, (rows, cols)), np.empty(cols, np.float32))
        got.append(columns(x, g, w, out=(*out, np.empty(cols, np.float32))))
    for a, b in zip(*got, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[0][0], (g * w) * np.float32(0.5))
    np.testing.assert_allclose(got[0][1], (d * x).sum(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[0][2], d.sum(axis=0), rtol=1e-4, atol=1e-4)


def test_training_step_gradients(compile_streaming):
    # value_and_grad's dx: a column group's output, fusec's own (over 4 MiB: line-aligned)
    text = "graph f(x: f32[B, D], w: f32[D], b: f32[D]) { return relu((x * w + b) * 0.5 - 0.125) }"
    g = compile_streaming(text, grad=True)["f"]
    assert "__builtin_nontemporal_store" in g.backward.source
    rng = np.random.default_rng(11)
    x, ct = (rng.standard_normal((1100, 1024)).astype(np.float32) for _ in range(2))
    w, b = (rng.standard_normal(1024).astype(np.float32) for _ in range(2))
    y, grads = g.value_and_grad(x, w, b, grad_outputs=ct)
    pre = (x * w + b) * np.float32(0.5) - np.float32(0.125)
    np.testing.assert_array_equal(y, np.maximum(pre, 0))
    up = np.where(pre > 0, ct, 0).astype(np.float64) * 0.5
    np.testing.assert_allclose(grads["x"], up * w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grads["w"], (up * x).sum(axis=0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(grads["b"], up.sum(axis=0), rtol=1e-4, atol=1e-3)
