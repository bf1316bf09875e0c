"""vec_type_hint on flat elementwise kernels (DeviceInfo.hint_max_calls): where
the device takes it, a kernel with at most that many math routine calls per
vector carries the hint and takes hinted_vectors_per_item vectors a
work-item; one with more goes without; results unchanged at odd lengths."""

import numpy as np
import pytest
from test_device_info import intel_cpu, pocl_zen3

import fusec
from fusec.api import compile_graphs
from fusec.codegen import generate
from fusec.codegen.device import DeviceInfo
from fusec.codegen.opencl_c import math_calls
from fusec.passes import fuse

LIGHT = "clamp(relu(x * y + 1.0), min=-2.0, max=2.0)"
HEAVY = "sigmoid(tanh(x * y))"


def _source(expr: str, device: DeviceInfo) -> str:
    g = compile_graphs(f"graph f(x: f32[n], y: f32[n]) {{ return {expr} }}").graphs[0]
    return generate(g, fuse(g), device)[0]


def test_only_intels_cpu_runtime_takes_the_hint():
    intel, pocl = intel_cpu(), pocl_zen3()
    assert intel.hint_max_calls == 1 and pocl.hint_max_calls == -1
    assert intel.hinted_vectors_per_item == 4 and pocl.hinted_vectors_per_item == 1
    assert "vec_type_hint" not in _source(LIGHT, DeviceInfo(vector_width=8, is_cpu=True))


@pytest.mark.parametrize(
    "expr, hinted",
    [(LIGHT, True), ("x > y", True), ("exp(x * y) + y", True), (HEAVY, False)],
)
def test_kernels_with_few_math_calls_carry_the_hint(expr, hinted):
    device = DeviceInfo(vector_width=8, is_cpu=True, hint_max_calls=1, hinted_vectors_per_item=4)
    source = _source(expr, device)
    assert ("vec_type_hint(" in source.split("__kernel void f_k0(")[0]) == hinted
    # a hinted kernel takes 4 vectors a work-item, the others the device's 1
    assert f"get_global_id(0) * {32 if hinted else 8};" in source


@pytest.mark.parametrize("outputs, vectors", [(8, 4), (9, 1)])
def test_a_kernel_writing_many_arrays_takes_one_vector_a_work_item(outputs, vectors):
    # Intel's build time grows faster than the code: 10^4 outputs ran past 120 s
    device = DeviceInfo(vector_width=8, is_cpu=True, hint_max_calls=1, hinted_vectors_per_item=4)
    source = _source(", ".join(f"x * {i}.0" for i in range(outputs)), device)
    assert f"get_global_id(0) * {8 * vectors};" in source


def test_math_calls_counts_routines_not_loads_or_selects():
    assert math_calls(["vstore8(select(a, b, isnan(c)), 0, p);", "convert_int8(floor(x))"]) == 0
    assert math_calls(["fu_exp_float8(x) + tanh(y) * erf(z)", "pow(x, y)"]) == 4


@pytest.mark.parametrize("n", [1, 7, 1023, 1031])
def test_results_unchanged_at_odd_lengths(n):
    g = fusec.compile(f"graph f(x: f32[n], y: f32[n]) {{ return {LIGHT}, {HEAVY} }}")["f"]
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    light, heavy = g(x, y)
    np.testing.assert_array_equal(light, np.clip(np.maximum(x * y + np.float32(1), 0), -2, 2))
    want = 1 / (1 + np.exp(-np.tanh(x.astype(np.float64) * y)))
    np.testing.assert_allclose(heavy, want, rtol=1e-6, atol=1e-7)
