"""fusec.gemm's kernels built with plain pyopencl on fusec's device, against NumPy.

Every layout (CPU panels with packed weights, CPU dot products on w as
stored, GPU local-memory tiles, which the CPU device runs too) with a plain
store and a bias + relu epilogue, over sizes with tails in M, N and K: 1,
primes, non-multiples of every tile, and the benchmark shapes at small M.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from fusec.codegen import gemm_layouts as gemm
from fusec.codegen.device import DeviceInfo
from fusec.codegen.plan import BUILD_OPTIONS

cl = pytest.importorskip("pyopencl")

# (M, K, N): y[M, N] = x[M, K] . w[N, K]^T
SHAPES = [
    (1, 1, 1),
    (1, 7, 13),
    (7, 13, 97),
    (13, 97, 7),
    (97, 7, 13),
    (33, 65, 31),  # one past / one short of the blocks
    (9, 17, 33),
    (20, 50, 70),  # whole blocks and edges in both M and N
    (2, 784, 256),  # the benchmark shapes at small M
    (3, 1024, 1024),
]
BIG = (2, 4096, 4096)

CPU = DeviceInfo(name="test-cpu", is_cpu=True)
GPU = DeviceInfo(name="test-gpu", is_cpu=False, max_work_group_size=256)
SMALL_GPU = DeviceInfo(name="test-gpu-small", is_cpu=False, max_work_group_size=64)

LAYOUTS = {
    "panel16": gemm.choose_layout(CPU, None, None, None, native_width=16),
    "panel8": gemm.choose_layout(CPU, None, None, None, native_width=8),
    "dot16": gemm.choose_layout(CPU, None, None, None, pack="never", native_width=16),
    "tiled": gemm.choose_layout(GPU, None, None, None),
    "tiled-small": gemm.choose_layout(SMALL_GPU, None, None, None, local_memory=2048),
}


@pytest.fixture(scope="module")
def rt():
    from fusec.runtime import Runtime

    return Runtime.shared()


# -- epilogues ---------------------------------------------------------------------------------


def store(ctype):
    def epi(acc, row, col):
        return [f"out0[({row}) * N + ({col})] = {acc};"]

    return epi, [f"__global {ctype} *restrict out0"], None


def bias_relu(ctype):
    zero = "0.0f" if ctype == "float" else "0.0"

    def epi(acc, row, col):
        # declares a name: every element's statements must sit in their own block
        return [
            f"const {ctype} v = {acc} + in_b[{col}];",
            f"out0[({row}) * N + ({col})] = max(v, {zero});",
        ]

    def vec(acc, row, col, width):
        return [
            f"vstore{width}(max({acc} + vload{width}(0, in_b + {col}), ({ctype}{width})({zero})), 0, "
            f"out0 + ({row}) * N + {col});"
        ]

    params = [f"__global const {ctype} *restrict in_b", f"__global {ctype} *restrict out0"]
    return epi, params, vec


EPILOGUES = {"store": store, "bias_relu": bias_relu}


def reference(epi_name, x, w, b):
    y = x.astype(np.float64) @ w.T.astype(np.float64)
    return np.maximum(y + b, 0) if epi_name == "bias_relu" else y


# -- building and running ----------------------------------------------------------------------

_built: dict = {}


def skip_wider_than_native(rt, layout, dtype="f32"):
    """Vectors wider than the device's SIMD registers, which fusec would not
    pick there: PoCL 3.0 builds 512-bit vectors only for LLVM targets with
    AVX-512 (fusec/device.py), and PoCL's targets may lack it where cpuid has it."""
    bits = layout.vector * (64 if dtype == "f64" else 32)
    if bits > 32 * rt.info.native_vector_width:
        pytest.skip(f"{bits}-bit vectors; {rt.info.name} has {32 * rt.info.native_vector_width}")


def build(rt, layout, epi_name, dtype="f32", vector=False):
    skip_wider_than_native(rt, layout, dtype)
    key = (layout, epi_name, dtype, vector)
    if key not in _built:
        ctype = gemm.CTYPES[dtype]
        epi, params, vec = EPILOGUES[epi_name](ctype)
        src = gemm.gemm_source(
            "gk",
            layout,
            ctype=ctype,
            epilogue=epi,
            epilogue_params=params,
            vector_epilogue=vec if vector else None,
        )
        if ctype == "double":
            src = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" + src
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prg = cl.Program(rt.context, src).build(BUILD_OPTIONS)
        main = cl.Kernel(prg, "gk")
        pack = cl.Kernel(prg, "gk_pack") if layout.packs else None
        _built[key] = (main, pack)
        _xpack[key] = cl.Kernel(prg, "gk_xpack") if layout.packs_x else None
    return _built[key]


_xpack: dict = {}  # the kernels packing a transposed x, by build()'s key


def run(rt, layout, epi_name, x, w, b, vector=False):
    dtype = "f64" if x.dtype == np.float64 else "f32"
    main, pack = build(rt, layout, epi_name, dtype, vector)
    ctx, queue = rt.context, rt.queue
    mf = cl.mem_flags
    (m, k), n = x.shape, w.shape[0]
    xb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=x)
    wb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=w)
    out = np.full((m, n), np.nan, x.dtype)
    ob = cl.Buffer(
        ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=out
    )  # NaN: unwritten elements show
    if pack is not None:
        packed = cl.Buffer(ctx, mf.READ_WRITE, gemm.packed_elements(layout, n, k) * x.itemsize)
        gs, ls = gemm.pack_geometry(layout, n, k)
        pack(queue, gs, ls, np.int64(n), np.int64(k), wb, packed)
        wb = packed
    args = [np.int64(m), np.int64(n), np.int64(k), xb, wb]
    if epi_name == "bias_relu":
        args.append(cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=b))
    args.append(ob)
    gs, ls = gemm.launch_geometry(layout, m, n, k)
    main(queue, gs, ls, *args)
    cl.enqueue_copy(queue, out, ob)
    return out


def data(m, k, n, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed + 1000 * m + 10 * n + k)
    x = rng.standard_normal((m, k)).astype(dtype)
    w = (rng.standard_normal((n, k)) / math.sqrt(k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    return x, w, b


def check(out, ref, k, dtype=np.float32):
    eps = 1e-6 if dtype == np.float32 else 1e-14
    # results are O(1); rounding grows like sqrt(K) (bounded here by K itself)
    np.testing.assert_allclose(out, ref, rtol=10 * eps, atol=eps * 4 * math.sqrt(k) + eps * k / 16)


# -- correctness -------------------------------------------------------------------------------


@pytest.mark.parametrize("epi_name", ["store", "bias_relu"])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_matches_numpy(rt, name, epi_name):
    layout = LAYOUTS[name]
    for m, k, n in SHAPES:
        x, w, b = data(m, k, n)
        check(run(rt, layout, epi_name, x, w, b), reference(epi_name, x, w, b), k)


def test_vector_epilogue(rt):
    layout = LAYOUTS["panel16"]
    for m, k, n in SHAPES + [(40, 30, 96)]:
        x, w, b = data(m, k, n)
        check(
            run(rt, layout, "bias_relu", x, w, b, vector=True), reference("bias_relu", x, w, b), k
        )


def test_large_k_and_n(rt):
    m, k, n = BIG
    x, w, b = data(m, k, n)
    for name in ("panel16", "dot16"):
        check(run(rt, LAYOUTS[name], "bias_relu", x, w, b), reference("bias_relu", x, w, b), k)


def test_layout_chosen_for_known_small_m(rt):
    for m in (1, 3, 5):
        layout = gemm.choose_layout(CPU, m, 70, 33, pack="once", native_width=16)
        assert layout.kind == "panel" and layout.rows == m
        x, w, b = data(m, 33, 70)
        check(run(rt, layout, "bias_relu", x, w, b), reference("bias_relu", x, w, b), 33)
        # the layout chosen for one M is right for any other
        x, w, b = data(m + 11, 33, 70)
        check(run(rt, layout, "bias_relu", x, w, b), reference("bias_relu", x, w, b), 33)


@pytest.mark.parametrize("name", ["panel16", "dot16", "tiled"])
def test_f64(rt, name):
    if not rt.info.fp64:
        pytest.skip("no cl_khr_fp64")
    dtype = "f64"
    base = LAYOUTS[name]
    layout = (
        gemm.choose_layout(
            CPU,
            None,
            None,
            None,
            dtype,
            native_width=16,
            pack="never" if name == "dot16" else "once",
        )
        if base.kind != "tiled"
        else gemm.choose_layout(GPU, None, None, None, dtype)
    )
    for m, k, n in [(1, 1, 1), (7, 13, 97), (33, 65, 31), (2, 784, 256)]:
        x, w, b = data(m, k, n, np.float64)
        check(run(rt, layout, "bias_relu", x, w, b), reference("bias_relu", x, w, b), k, np.float64)


def test_pack_kernel_writes_panels_with_zero_padding(rt):
    layout = LAYOUTS["panel16"]
    _, pack = build(rt, layout, "store")
    p = layout.cols
    for n, k in [(1, 1), (33, 17), (64, 32), (70, 45)]:
        w = np.arange(n * k, dtype=np.float32).reshape(n, k) + 1
        size = gemm.packed_elements(layout, n, k)
        got = np.full(size, np.nan, np.float32)
        mf = cl.mem_flags
        wb = cl.Buffer(rt.context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=w)
        pb = cl.Buffer(rt.context, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=got)
        gs, ls = gemm.pack_geometry(layout, n, k)
        pack(rt.queue, gs, ls, np.int64(n), np.int64(k), wb, pb)
        cl.enqueue_copy(rt.queue, got, pb)
        padded = np.zeros((-(-n // p) * p, k), np.float32)
        padded[:n] = w
        want = padded.reshape(-1, p, k).transpose(0, 2, 1).ravel()
        np.testing.assert_array_equal(got, want)


# -- layouts, geometry, source ------------------------------------------------------------------


def test_layout_follows_the_device():
    assert LAYOUTS["panel16"].kind == "panel" and LAYOUTS["panel16"].packs
    assert LAYOUTS["panel16"].vector == 16 and LAYOUTS["panel8"].vector == 8
    assert LAYOUTS["dot16"].kind == "dot" and not LAYOUTS["dot16"].packs
    tiled = LAYOUTS["tiled"]
    assert tiled.kind == "tiled" and not tiled.packs
    assert tiled.group[0] * tiled.group[1] <= GPU.max_work_group_size
    small = LAYOUTS["tiled-small"]
    assert small.group[0] * small.group[1] <= 64
    tm, tn = small.tile
    assert 2 * small.tile_k * (max(tm, tn) + 1) * 4 <= 2048
    # a device that names its native width (a DeviceInfo field fusec may add) is read
    assert gemm.choose_layout(_WideCPU(), None, None, None).vector == 16
    assert gemm.choose_layout(CPU, None, None, None, "f64", native_width=16).vector == 8
    with pytest.raises(ValueError):
        gemm.choose_layout(CPU, None, None, None, "f16")
    # packing on every call: not for a known small M, where it costs more than it saves
    assert gemm.choose_layout(CPU, 64, 4096, 4096, native_width=16).kind == "dot"
    assert gemm.choose_layout(CPU, 256, 784, 256, native_width=16).kind == "panel"
    assert gemm.choose_layout(CPU, None, 784, 256, native_width=16).kind == "panel"
    assert gemm.choose_layout(CPU, 64, 4096, 4096, pack="once", native_width=16).kind == "panel"


@dataclasses.dataclass(frozen=True)
class _WideCPU(DeviceInfo):
    native_vector_width: int = 16


def _evaluate(expr: str, **sizes) -> int:
    value = eval(
        expr,
        {"ceil": math.ceil, "min": min, "max": max},
        {k: Fraction(v) for k, v in sizes.items()},
    )
    assert value.denominator == 1
    return int(value)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_geometry_covers_every_element_in_whole_groups(name):
    layout = LAYOUTS[name]
    for m, k, n in SHAPES + [BIG, (1000, 3, 999)]:
        gs, ls = gemm.launch_geometry(layout, m, n, k)
        assert all(g % size == 0 for g, size in zip(gs, ls, strict=True))
        if layout.kind == "tiled":
            tm, tn = layout.tile
            assert gs[0] // ls[0] * tn >= n and gs[1] // ls[1] * tm >= m
        else:
            assert gs[0] * layout.rows >= m and gs[1] * layout.cols >= n
        exprs, local = gemm.launch_geometry_exprs(layout, "M", "N", "K")
        assert [_evaluate(e, M=m, N=n, K=k) for e in exprs] == list(gs) and tuple(local) == ls
        if layout.packs:
            assert _evaluate(
                gemm.packed_elements_expr(layout, "N", "K"), N=n, K=k
            ) == gemm.packed_elements(layout, n, k)
            pgs, pls = gemm.pack_geometry(layout, n, k)
            pexprs, plocal = gemm.pack_geometry_exprs(layout, "N", "K")
            assert [_evaluate(e, N=n, K=k) for e in pexprs] == list(pgs) and tuple(plocal) == pls


def test_source_is_deterministic_and_has_the_parameters_in_order():
    epi, params, _ = bias_relu("float")
    for layout in LAYOUTS.values():
        a = gemm.gemm_source("lin", layout, ctype="float", epilogue=epi, epilogue_params=params)
        b = gemm.gemm_source("lin", layout, ctype="float", epilogue=epi, epilogue_params=params)
        assert a == b
        head = a[a.index("__kernel void lin(") :]
        head = head[: head.index(")")]
        order = [
            "const long M",
            "const long N",
            "const long K",
            "*restrict x",
            "*restrict w",
            *params,
        ]
        positions = [head.index(p) for p in order]
        assert positions == sorted(positions)
        assert ("__kernel void lin_pack(" in a) == layout.packs


@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("width", [16, 8])
def test_transposed_operands_in_the_panel_layout(rt, ta, tb, width):
    """autodiff's dx = g·w (neither transposed) and dw = gᵀ·x (x transposed):
    the panel layout reads x by columns and packs an untransposed w by rows."""
    layout = gemm.choose_layout(CPU, None, None, None, native_width=width, ta=ta, tb=tb)
    assert layout.kind == "panel" and (layout.ta, layout.tb) == (ta, tb)
    main, pack = build(rt, layout, "store")
    assert layout.packs_x == ta
    xpack = _xpack[(layout, "store", "f32", False)]
    ctx, queue, mf = rt.context, rt.queue, cl.mem_flags
    for m, k, n in SHAPES[:8]:
        x, w, _ = data(m, k, n)
        x_stored = np.ascontiguousarray(x.T) if ta else x  # [k, m] or [m, k]
        w_stored = w if tb else np.ascontiguousarray(w.T)  # [n, k] or [k, n]
        xb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=x_stored)
        wb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=w_stored)
        out = np.full((m, n), np.nan, np.float32)
        ob = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=out)
        packed = cl.Buffer(ctx, mf.READ_WRITE, gemm.packed_elements(layout, n, k) * 4)
        gs, ls = gemm.pack_geometry(layout, n, k)
        pack(queue, gs, ls, np.int64(n), np.int64(k), wb, packed)
        if layout.packs_x:  # x's row panels, zeros past m
            xpacked = np.full(gemm.packed_x_elements(layout, m, k), np.nan, np.float32)
            xp = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=xpacked)
            gs, ls = gemm.xpack_geometry(layout, m, k)
            xpack(queue, gs, ls, np.int64(m), np.int64(k), xb, xp)
            cl.enqueue_copy(queue, xpacked, xp)
            rows = -(-m // layout.rows) * layout.rows
            padded = np.zeros((rows, k), np.float32)
            padded[:m] = x
            want = padded.reshape(-1, layout.rows, k).transpose(0, 2, 1).ravel()
            np.testing.assert_array_equal(xpacked, want)
            xb = xp
        gs, ls = gemm.launch_geometry(layout, m, n, k)
        main(queue, gs, ls, np.int64(m), np.int64(n), np.int64(k), xb, packed, ob)
        cl.enqueue_copy(queue, out, ob)
        check(out, reference("store", x, w, None), k)


@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (True, True)])
def test_transposed_operands_on_a_gpu_take_the_naive_layout(rt, ta, tb):
    """The tiled layout reads x·wᵀ only; a GPU's dx = g·w and dw = gᵀ·x take the
    naive layout (a work-item per element), built and run here like the others."""
    layout = gemm.choose_layout(GPU, None, None, None, ta=ta, tb=tb)
    assert layout.kind == "naive" and not layout.packs and (layout.ta, layout.tb) == (ta, tb)
    main, _ = build(rt, layout, "store")
    ctx, queue, mf = rt.context, rt.queue, cl.mem_flags
    for m, k, n in SHAPES[:8]:
        x, w, _ = data(m, k, n)
        x_stored = np.ascontiguousarray(x.T) if ta else x
        w_stored = w if tb else np.ascontiguousarray(w.T)
        xb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=x_stored)
        wb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=w_stored)
        out = np.full((m, n), np.nan, np.float32)
        ob = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=out)
        gs, ls = gemm.launch_geometry(layout, m, n, k)
        main(queue, gs, ls, np.int64(m), np.int64(n), np.int64(k), xb, wb, ob)
        cl.enqueue_copy(queue, out, ob)
        check(out, x @ w.T, k)


@pytest.mark.parametrize("name", ["panel16", "dot16", "tiled"])
def test_x_computed_as_it_is_loaded(rt, name):
    """x_load: the caller's prologue replaces x's loads (here x = 2 * v + 1, v in memory)."""
    layout = LAYOUTS[name]
    skip_wider_than_native(rt, layout)

    def x_load(row, k, width):
        vt = "float" if width == 1 else f"float{width}"
        load = (
            f"in_v[({row}) * K + ({k})]"
            if width == 1
            else f"vload{width}(0, in_v + ({row}) * K + ({k}))"
        )
        return [f"const {vt} gm_v = {load};"], f"(gm_v * ({vt})(2.0f) + ({vt})(1.0f))"

    epi, params, _ = store("float")
    src = gemm.gemm_source(
        "gx",
        layout,
        ctype="float",
        epilogue=epi,
        epilogue_params=["__global const float *restrict in_v", *params],
        x_load=x_load,
    )
    assert "restrict x" not in src
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prg = cl.Program(rt.context, src).build(BUILD_OPTIONS)
    main = cl.Kernel(prg, "gx")
    pack = cl.Kernel(prg, "gx_pack") if layout.packs else None
    ctx, queue, mf = rt.context, rt.queue, cl.mem_flags
    for m, k, n in SHAPES[:8]:
        v, w, _ = data(m, k, n)
        vb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=v)
        wb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=w)
        out = np.full((m, n), np.nan, np.float32)
        ob = cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=out)
        if layout.packs:
            packed = cl.Buffer(ctx, mf.READ_WRITE, gemm.packed_elements(layout, n, k) * 4)
            gs, ls = gemm.pack_geometry(layout, n, k)
            pack(queue, gs, ls, np.int64(n), np.int64(k), wb, packed)
            wb = packed
        gs, ls = gemm.launch_geometry(layout, m, n, k)
        main(queue, gs, ls, np.int64(m), np.int64(n), np.int64(k), wb, vb, ob)
        cl.enqueue_copy(queue, out, ob)
        check(out, reference("store", v * 2 + 1, w, None), k)
