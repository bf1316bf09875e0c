"""DeviceInfo.from_cl on what drivers report, without a driver."""

from types import SimpleNamespace

import pyopencl as cl
import pytest

from fusec.device import DeviceInfo, pocl_target


def fake_device(platform: str, version: str, preferred: int, native: int):
    return SimpleNamespace(
        type=cl.device_type.CPU, platform=SimpleNamespace(name=platform), version=version,
        preferred_vector_width_float=preferred, native_vector_width_float=native, name="cpu",
        extensions="cl_khr_fp64", double_fp_config=1, max_parameter_size=1024, max_work_group_size=4096,
        max_compute_units=2, local_mem_size=1 << 20,
    )


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
    dev = fake_device("Portable Computing Language", f"OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-{target}", 16, 16)
    info = DeviceInfo.from_cl(dev)
    assert (info.vector_width, info.vectors_per_item) == (width, per_item)
    assert info.native_vector_width == 8


def test_other_cpu_drivers_get_explicit_vectors_of_at_least_8():
    info = DeviceInfo.from_cl(fake_device("Intel(R) OpenCL", "OpenCL 3.1 (Build 0)", 1, 16))
    assert (info.vector_width, info.vectors_per_item, info.native_vector_width) == (8, 1, 16)
