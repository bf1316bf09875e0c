"""Gradients of whole graphs: broadcast parameters summed back, several outputs,
values used twice, integer parameters, the plan's account of what is
recomputed, the API's errors and the CLI. The oracle is torch.autograd.

Each op's own backward template is tested in tests/test_grad_ops.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fusec
from fusec.diagnostics import CallError

torch = pytest.importorskip("torch")

rng = np.random.default_rng(7)
TOL = {"f32": dict(rtol=2e-5, atol=2e-5), "f64": dict(rtol=1e-11, atol=1e-12)}
NP = {"f32": np.float32, "f64": np.float64, "f16": np.float16}


def torch_grads(fn, inputs: dict, cotangents):
    leaves = {
        k: torch.tensor(v, requires_grad=np.issubdtype(np.asarray(v).dtype, np.floating))
        for k, v in inputs.items()
    }
    outs = fn(**leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    pairs = [(o, torch.tensor(c)) for o, c in zip(outs, cotangents, strict=True) if c is not None]
    torch.autograd.backward([o for o, _ in pairs], [c for _, c in pairs])
    values = [o.detach().numpy() for o in outs]
    grads = {
        k: (t.grad.numpy() if t.grad is not None else np.zeros_like(inputs[k]))
        for k, t in leaves.items()
        if t.requires_grad
    }
    return values, grads


BROADCAST = """
graph f(x: {T}[B, D], w: {T}[D], c: {T}[B, 1], s: {T}) {{
    return tanh(x * w + s) * c
}}
"""


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize(
    "b, d", [(3, 5), (1, 1), (7, 1), (1, 9), (37, 64), (0, 4), (4, 0), (300, 17)]
)
def test_broadcast_parameters_get_summed_gradients(dtype, b, d):
    g = fusec.compile(BROADCAST.format(T=dtype), grad=True)["f"]
    t = NP[dtype]
    inputs = dict(
        x=rng.standard_normal((b, d)).astype(t),
        w=rng.standard_normal(d).astype(t),
        c=rng.standard_normal((b, 1)).astype(t),
        s=t(0.3),
    )
    ct = rng.standard_normal((b, d)).astype(t)
    y, grads = g.value_and_grad(**inputs, grad_outputs=ct)
    (want_y,), want = torch_grads(lambda x, w, c, s: torch.tanh(x * w + s) * c, inputs, [ct])
    np.testing.assert_allclose(y, want_y, **TOL[dtype])
    assert set(grads) == {"x", "w", "c", "s"}
    for k in grads:
        assert grads[k].shape == np.shape(inputs[k]) and grads[k].dtype == t, k
        np.testing.assert_allclose(grads[k], want[k], **TOL[dtype], err_msg=k)


def test_per_channel_weight_of_an_nchw_tensor():
    """A [C, 1, 1] weight against [N, C, H, W]: reduced axes on both sides of the kept one."""
    g = fusec.compile(
        "graph f(x: f64[N, C, H, W], a: f64[C, 1, 1]) {\n return x * a * x\n}", grad=True
    )["f"]
    x = rng.standard_normal((2, 3, 5, 7))
    a = rng.standard_normal((3, 1, 1))
    ct = rng.standard_normal(x.shape)
    _, grads = g.value_and_grad(x, a, grad_outputs=ct)
    _, want = torch_grads(lambda x, a: x * a * x, dict(x=x, a=a), [ct])
    np.testing.assert_allclose(grads["a"], want["a"], **TOL["f64"])
    np.testing.assert_allclose(grads["x"], want["x"], **TOL["f64"])


def test_f16_gradients_accumulate_in_f32():
    g = fusec.compile("graph f(x: f16[B, D], w: f16[D]) {\n return x * w\n}", grad=True)["f"]
    x = rng.standard_normal((513, 8)).astype(np.float16)
    w = rng.standard_normal(8).astype(np.float16)
    ct = rng.standard_normal(x.shape).astype(np.float16)
    grads = g.vjp(x, w, grad_outputs=ct)
    want = (ct.astype(np.float64) * x.astype(np.float64)).sum(axis=0)
    assert grads["w"].dtype == np.float16
    np.testing.assert_allclose(grads["w"].astype(np.float64), want, rtol=2e-3, atol=2e-2)


def test_several_outputs_and_a_value_used_twice():
    text = "graph f(x: f32[N], y: f32[N]) {\n h = x * y\n return h * h, h + x\n}"
    g = fusec.compile(text, grad=True)["f"]
    x, y = rng.standard_normal(100).astype(np.float32), rng.standard_normal(100).astype(np.float32)
    c0, c1 = (
        rng.standard_normal(100).astype(np.float32),
        rng.standard_normal(100).astype(np.float32),
    )
    (o0, o1), grads = g.value_and_grad(x, y, grad_outputs=(c0, c1))
    (w0, w1), want = torch_grads(
        lambda x, y: ((x * y) * (x * y), x * y + x), dict(x=x, y=y), [c0, c1]
    )
    np.testing.assert_allclose(o0, w0, rtol=1e-6)
    np.testing.assert_allclose(o1, w1, rtol=1e-6)
    for k in "xy":
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-5, atol=1e-6)
    # forward and backward of one shape: one kernel, reading each input once
    assert len(g.forward_backward.kernels) == 1


def test_integer_parameters_and_bool_outputs_take_no_gradient():
    text = "graph f(x: f32[N], k: i32[N], unused: f32[N]) {\n return x * k, x > 0\n}"
    g = fusec.compile(text, grad=True)["f"]
    x = rng.standard_normal(10).astype(np.float32)
    k = rng.integers(-3, 3, 10).astype(np.int32)
    u = rng.standard_normal(10).astype(np.float32)
    ct = rng.standard_normal(10).astype(np.float32)
    (y, positive), grads = g.value_and_grad(x, k, u, grad_outputs=(ct, None))
    assert set(grads) == {"x", "unused"}
    np.testing.assert_allclose(grads["x"], ct * k, rtol=1e-6)
    np.testing.assert_array_equal(grads["unused"], np.zeros(10, np.float32))
    np.testing.assert_array_equal(positive, x > 0)
    with pytest.raises(CallError, match="not float"):
        g.value_and_grad(x, k, u, grad_outputs=(ct, ct))


def test_scalar_outputs_default_to_a_cotangent_of_one():
    g = fusec.compile("graph f(a: f64, b: f64) {\n return a * b + a\n}", grad=True)["f"]
    y, grads = g.value_and_grad(2.0, 5.0)
    assert float(y) == 12.0 and float(grads["a"]) == 6.0 and float(grads["b"]) == 2.0


def test_vjp_equals_value_and_grad_and_the_plan_says_what_is_recomputed():
    g = fusec.compile("graph f(x: f32[N], w: f32[N]) {\n return tanh(x * w) - x\n}", grad=True)["f"]
    x, w = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)
    ct = rng.standard_normal(50).astype(np.float32)
    _, both = g.value_and_grad(x, w, grad_outputs=ct)
    alone = g.vjp(x, w, grad_outputs=ct)
    for k in "xw":
        np.testing.assert_array_equal(both[k], alone[k])
    notes = g.backward.plan["gradients"]
    assert notes["of"] == ["x", "w"] and notes["saved"] == []
    (recomputed,) = notes["recomputed"].values()
    assert "tanh" in recomputed and "mul" in recomputed
    # the backward reads the inputs and the cotangent once, writes the gradients once
    (k,) = g.backward.plan["kernels"]
    assert k["reads"] == ["x", "w", "grad_out0"] and k["writes"] == ["out0", "out1"]


def test_call_errors():
    g = fusec.compile("graph f(x: f32[N]) {\n return x * x\n}", grad=True)["f"]
    x = np.ones(4, np.float32)
    with pytest.raises(CallError, match="grad_outputs is needed"):
        g.value_and_grad(x)
    with pytest.raises(CallError, match="grad_out0"):
        g.value_and_grad(x, grad_outputs=np.ones(5, np.float32))
    plain = fusec.compile("graph f(x: f32[N]) {\n return x * x\n}")["f"]
    with pytest.raises(CallError, match="grad=True"):
        plain.value_and_grad(x, grad_outputs=x)


def test_an_op_without_a_gradient_is_a_positioned_compile_error():
    fusec.register_primitive(
        "nograd_cube", ["x"], "({x} * {x} * {x})", lambda x: x**3, replace=True
    )
    with pytest.raises(fusec.CompileError) as err:
        fusec.compile("graph f(x: f32[N]) {\n return nograd_cube(x)\n}", grad=True)
    assert "<input>:2:9: error: nograd_cube has no gradient for its operand 'x'" in str(err.value)


def test_registered_primitive_with_a_backward_template():
    fusec.register_primitive(
        "grad_cube",
        ["x"],
        "({x} * {x} * {x})",
        lambda x: x**3,
        backward={"x": "g * 3 * x * x"},
        replace=True,
    )
    g = fusec.compile("graph f(x: f64[N]) {\n return grad_cube(x)\n}", grad=True)["f"]
    x = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(g.vjp(x, grad_outputs=np.ones(9))["x"], 3 * x * x)
    with pytest.raises(ValueError, match="names 'y'"):
        fusec.register_primitive("bad_cube", ["x"], "({x})", lambda x: x, backward={"x": "g * y"})


def run_cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "fusec.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


MODEL = "graph lin(x: f32[B, D], w: f32[D], s: f32) {\n h = x * w + s\n return tanh(h), h - w\n}\n"


def test_cli_compile_grad_writes_every_graph_and_warmup_grad_fills_the_cache(tmp_path):
    model = tmp_path / "lin.ir"
    model.write_text(MODEL)
    env = {"FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    out = run_cli("compile", str(model), "--grad", "-o", str(tmp_path / "out"), env_extra=env)
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "lin.cl",
        "lin.json",
        "lin_bwd.cl",
        "lin_bwd.json",
        "lin_fwd_bwd.cl",
        "lin_fwd_bwd.json",
    ]
    plan = json.loads((tmp_path / "out" / "lin_bwd.json").read_text())
    assert plan["gradients"]["of"] == ["x", "w", "s"]
    env2 = {"FUSEC_CACHE_DIR": str(tmp_path / "cache2")}
    check = run_cli("warmup", str(model), "--grad", "--check", env_extra=env2)
    assert check.returncode == 1 and "3 failed" not in check.stdout  # warmup's lines: stdout
    warm = run_cli("warmup", str(model), "--grad", env_extra=env2)
    assert warm.returncode == 0 and "3 built" in warm.stdout, warm.stderr
    check = run_cli("warmup", str(model), "--grad", "--check", env_extra=env2)
    assert check.returncode == 0 and "3 already cached" in check.stdout, check.stderr


def test_backward_plan_launches_without_fusec(tmp_path):
    """The plan of a backward with reductions (broadcast w, scalar s), run by
    tests/test_plan_launch.py's plain-PyOpenCL launcher."""
    from tests.test_plan_launch import compile_and_launch

    x = rng.standard_normal((33, 7)).astype(np.float32)
    w = rng.standard_normal(7).astype(np.float32)
    s = np.float32(0.5)
    c0, c1 = rng.standard_normal((2, 33, 7)).astype(np.float32)
    res = compile_and_launch(
        tmp_path, MODEL, "lin_bwd", "--grad", x=x, w=w, s=s, grad_out0=c0, grad_out1=c1
    )
    _, want = torch_grads(
        lambda x, w, s: (torch.tanh(x * w + s), x * w + s - w), dict(x=x, w=w, s=s), [c0, c1]
    )
    for i, k in enumerate("xws"):
        np.testing.assert_allclose(res[f"out{i}"], want[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_sin_and_cos_of_one_double_value_build_and_differentiate():
    """cos(cos(x))'s gradient takes sin and cos of one double vector, on which
    Intel's CPU compiler crashed (a device quirk now); found by test_grad_random."""
    g = fusec.compile("graph f(x: f64[B, N]) {\n    return cos(cos(x))\n}", grad=True)["f"]
    x = np.linspace(-3, 3, 21).reshape(3, 7)
    value, grads = g.value_and_grad(x, grad_outputs=np.ones_like(x))
    np.testing.assert_allclose(value, np.cos(np.cos(x)), rtol=1e-12)
    np.testing.assert_allclose(grads["x"], np.sin(np.cos(x)) * np.sin(x), rtol=1e-12, atol=1e-15)
