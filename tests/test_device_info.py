"""DeviceInfo.from_cl on what drivers report, without a driver."""

from types import SimpleNamespace

import pyopencl as cl
import pytest

from fusec.codegen.device import DeviceInfo, pocl_target


def fake_device(platform: str, version: str, preferred: int, native: int):
    return SimpleNamespace(
        type=cl.device_type.CPU,
        platform=SimpleNamespace(name=platform),
        version=version,
        preferred_vector_width_float=preferred,
        native_vector_width_float=native,
        name="cpu",
        extensions="cl_khr_fp64",
        double_fp_config=1,
        max_parameter_size=1024,
        max_work_group_size=4096,
        max_compute_units=2,
        local_mem_size=1 << 20,
    )


def pocl_zen3() -> DeviceInfo:
    """What PoCL's CPU device on a Zen 3 describes."""
    version = "OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-znver3"
    return DeviceInfo.from_cl(fake_device("Portable Computing Language", version, 16, 16))


def intel_cpu() -> DeviceInfo:
    """What Intel's CPU runtime describes."""
    return DeviceInfo.from_cl(fake_device("Intel(R) OpenCL", "OpenCL 3.1 (Build 0)", 1, 16))


@pytest.mark.parametrize(
    ("version", "target"),
    [
        ("OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-znver3", "znver3"),
        ("OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-skylake-avx512", "skylake-avx512"),
        ("OpenCL 3.0 PoCL HSTR: cpu-x86_64-pc-linux-gnu-generic ", "generic"),
        ("OpenCL 3.1 (Build 0)", ""),
    ],
)
def test_pocl_target_is_the_llvm_cpu_at_the_end_of_the_version(version, target):
    assert pocl_target(version) == target


@pytest.mark.parametrize(
    ("target", "width", "per_item"),
    [("znver3", 8, 4), ("haswell", 8, 4), ("skylake-avx512", 16, 2), ("znver4", 16, 2)],
)
def test_pocl_vector_width_follows_its_target_not_cpuid(target, width, per_item):
    # PoCL 3.0 on a Zen 4 reports 16 (cpuid has AVX-512) but compiles for znver3
    dev = fake_device(
        "Portable Computing Language",
        f"OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-{target}",
        16,
        16,
    )
    info = DeviceInfo.from_cl(dev)
    assert (info.vector_width, info.vectors_per_item) == (width, per_item)
    assert info.native_vector_width == 8


def test_other_cpu_drivers_get_explicit_vectors_of_at_least_8():
    info = DeviceInfo.from_cl(fake_device("Intel(R) OpenCL", "OpenCL 3.1 (Build 0)", 1, 16))
    assert (info.vector_width, info.vectors_per_item, info.native_vector_width) == (8, 1, 16)


def test_kernels_of_8_byte_values_get_fewer_lanes_where_vectors_are_limited_to_32_bytes():
    import fusec
    from fusec.codegen import generate
    from fusec.passes import fuse

    # PoCL on a target without AVX-512 (where sin computes through double)
    narrow = DeviceInfo(
        vector_width=8,
        vectors_per_item=4,
        max_vector_bytes=32,
        quirks=frozenset({"vector_trig_inexact"}),
    )
    text = """
graph f(x: f64[N], y: f32[N], i: i64[N]) {
    return x * 2.0, sin(y), i + 1, y * 3.0
}
"""
    g = fusec.compile_graphs(text).graphs[0]
    source, kernels = generate(g, fuse(g), narrow)
    # no 512-bit vector anywhere (PoCL on a target without AVX-512 builds an empty program)
    for wide in ("double8", "long8", "float16"):
        assert wide not in source
    # an f32 kernel keeps float8; sin, which computes in double, as two halves of 4 lanes
    g_sin = fusec.compile_graphs("graph s(y: f32[N]) {\n    return sin(y) * 2.0\n}\n").graphs[0]
    sin_source, _ = generate(g_sin, fuse(g_sin), narrow)
    assert (
        "float8" in sin_source and "convert_double4" in sin_source and "double8" not in sin_source
    )
    # every kernel still covers 32 elements per work-item
    assert {k.elements_per_item for k in kernels if hasattr(k, "elements_per_item")} == {32}
    wide = DeviceInfo(vector_width=8, vectors_per_item=4, max_vector_bytes=64)
    assert "double8" in generate(g, fuse(g), wide)[0]


def test_oclgrind_is_taken_for_a_gpu_with_small_work_groups():
    # it reports every device type bit (CPU, GPU, accelerator, default) at once
    dev = fake_device("Oclgrind", "OpenCL 1.2 (Oclgrind 21.10)", 1, 1)
    dev.type = 15
    dev.max_work_group_size = 1024
    info = DeviceInfo.from_cl(dev)
    assert not info.is_cpu  # the GPU code paths are the ones it checks
    assert (info.vector_width, info.local_size) == (1, 16)


def test_composed_vector_access_is_right_on_this_device(monkeypatch, tmp_path):
    """The loads and stores PoCL gets (scalar accesses the compiler merges, no
    vloadN/vstoreN), run on whatever device this is."""
    import dataclasses

    import numpy as np

    import fusec
    from fusec.runtime import select_device

    real = DeviceInfo.from_cl
    monkeypatch.setattr(
        DeviceInfo,
        "from_cl",
        classmethod(lambda cls, dev: dataclasses.replace(real(dev), compose_vector_access=True)),
    )
    context = cl.Context([select_device()])  # kept: a queue does not keep its context alive here
    queue = cl.CommandQueue(context)
    g = fusec.compile(
        """
graph f(x: f32[B, N], r: f32[N], h: f16[B, N], m: bool[B, N]) {
    y = where(m, x * r, x + 1.0)
    return y, h * 2.0, y > 0.5, sum(y, axis=1)
}
""",
        queue=queue,
        cache_dir=tmp_path,
    )["f"]
    w = g.kernels[0].device.vector_width
    if w > 1:
        # (f16 keeps vload_half: a conversion, which plain C cannot spell without cl_khr_fp16)
        assert f"vload{w}(" not in g.source and f"vstore{w}(" not in g.source
    rng = np.random.default_rng(3)
    for b, n in [(3, 40), (5, 13), (2, 1)]:
        x, r = (
            rng.standard_normal((b, n), dtype=np.float32),
            rng.standard_normal(n, dtype=np.float32),
        )
        h, m = rng.standard_normal((b, n)).astype(np.float16), rng.random((b, n)) > 0.5
        y, h2, big, s = g(x, r, h, m)
        want = np.where(m, x * r, x + 1)
        np.testing.assert_allclose(y, want, rtol=1e-6)
        np.testing.assert_array_equal(h2, h * np.float16(2))
        np.testing.assert_array_equal(big, want > 0.5)
        np.testing.assert_allclose(s, want.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_driver_bugs_are_quirks_of_the_device_description():
    pocl, intel = pocl_zen3(), intel_cpu()
    assert pocl.quirks == {"vector_trig_inexact"}
    assert intel.quirks == {"select_drops_signed_zero", "sincos_vectorizer_crash"}


def test_templates_follow_the_quirks_and_a_device_without_them_gets_plain_code():
    """sin through double only where vector sin is inexact (so an f32 sin needs
    no fp64 elsewhere); relu and where on bits only where selects lose -0.0."""
    from fusec.api import compile_graphs
    from fusec.codegen import generate
    from fusec.passes import fuse

    def source(quirks, dtype="f32"):
        text = f"graph f(x: {dtype}[N], m: bool[N]) {{\n    return where(m, relu(sin(x)), x)\n}}"
        (g,) = compile_graphs(text).graphs
        return generate(
            g, fuse(g), DeviceInfo(vector_width=8, fp64=False, fp16=True, quirks=frozenset(quirks))
        )[0]

    plain = source(())
    assert "double" not in plain and "as_uint" not in plain and "sin(p" in plain
    assert "convert_double8" in source({"vector_trig_inexact"})
    # the signed-zero bug was seen on values from f16 memory: f32 kernels keep plain selects
    assert "as_uint8" in source({"select_drops_signed_zero"}, "f16")
    assert "as_uint" not in source({"select_drops_signed_zero"}, "f32")


def test_last_level_cache_from_sysfs(tmp_path):
    from fusec.codegen.device import last_level_cache_bytes

    for i, size in enumerate(["48K", "1024K", "32768K", "garbage"]):
        (tmp_path / f"index{i}").mkdir()
        (tmp_path / f"index{i}" / "size").write_text(size + "\n")
    assert last_level_cache_bytes(str(tmp_path)) == 32 << 20
    assert last_level_cache_bytes(str(tmp_path / "missing")) == 0


def test_intels_runtime_stores_past_the_cache_from_one_and_a_half_of_it():
    intel, pocl = intel_cpu(), pocl_zen3()
    assert intel.nontemporal_min_bytes >= 48 << 20 and pocl.nontemporal_min_bytes == 0
