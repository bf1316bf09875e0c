"""Driver builtins taken instead of fusec's inline math (DeviceInfo.fast_builtins)."""

import numpy as np
from test_device_info import intel_cpu, pocl_zen3

import fusec
from fusec.codegen.mathlib import helpers_for


def test_intels_cpu_runtime_takes_its_builtin_exp_and_pocl_the_inline_one():
    intel, pocl = intel_cpu(), pocl_zen3()
    assert intel.fast_builtins == {"exp", "tanh"} and pocl.fast_builtins == set()
    source = "fu_exp_float16(x) fu_tanh_float(y)"
    inline, builtin = helpers_for(source), helpers_for(source, frozenset({"exp"}))
    assert "return exp(x);" not in inline and "12582912.0f" in inline
    assert "return exp(x);" in builtin and "12582912.0f" not in builtin
    # a device that takes exp only keeps tanh's own polynomial, over the builtin exp
    assert "fu_tanh_float" in builtin and "fu_exp_float(ax + ax)" in builtin
    both = helpers_for(source, frozenset({"exp", "tanh"}))
    assert "return tanh(x);" in both and "fu_exp_float(ax + ax)" not in both


def test_f32_exp_is_within_two_ulps_of_float64_numpy_on_this_device():
    """Whichever exp the device takes (the inline one's documented bound; OpenCL
    allows a builtin 3): results down to the subnormals, overflow to inf, NaN
    and the infinities, at lengths that are not multiples of the vector width."""
    rng = np.random.default_rng(7)
    x = np.concatenate(
        [
            rng.uniform(-110, 95, 40_000),
            rng.uniform(-104, -85, 10_000),  # subnormal results
            rng.uniform(-1, 1, 10_000),
            [np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72283, 88.7228394, -103.97208, 1e-30],
        ]
    ).astype(np.float32)
    g = fusec.compile("graph e(x: f32[N]) { return exp(x) }")["e"]
    want = np.exp(x.astype(np.float64))
    for n in (1, 7, 1023, 1031, x.size):
        got = g(x[-n:])
        w = want[-n:]
        with np.errstate(over="ignore"):
            w32 = w.astype(np.float32)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(w))
        np.testing.assert_array_equal(got[np.isinf(w32)], w32[np.isinf(w32)])
        finite = np.isfinite(w32)
        step = np.maximum(np.spacing(np.abs(w32[finite])).astype(np.float64), 2.0**-149)
        ulps = np.abs(got[finite].astype(np.float64) - w[finite]) / step
        assert ulps.max() <= 2.0, (n, ulps.max())


def test_f32_tanh_is_within_three_ulps_of_float64_numpy_and_keeps_negative_zero():
    """mathlib's bound for its inline tanh, whichever the device takes."""
    rng = np.random.default_rng(8)
    x = np.concatenate(
        [
            rng.uniform(-12, 12, 30_000),
            rng.uniform(-1, 1, 10_000),
            10.0 ** rng.uniform(-45, -3, 5_000),
            [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.625, -0.625, 1e-30, -1e-30, 20.0],
        ]
    ).astype(np.float32)
    g = fusec.compile("graph t(x: f32[N]) { return tanh(x) }")["t"]
    want = np.tanh(x.astype(np.float64))
    for n in (1, 7, 1023, 1031, x.size):
        got, w = g(x[-n:]), want[-n:]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(w))
        np.testing.assert_array_equal(np.signbit(got[w == 0]), np.signbit(x[-n:][w == 0]))
        ok = ~np.isnan(w)
        step = np.maximum(
            np.spacing(np.abs(w[ok]).astype(np.float32)).astype(np.float64), 2.0**-149
        )
        ulps = np.abs(got[ok].astype(np.float64) - w[ok]) / step
        assert ulps.max() <= 3.0, (n, ulps.max())
