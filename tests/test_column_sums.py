"""The training step's backward in one pass (fuse.merge_column_sums,
codegen/column_reduction.py): dx, the summed-back gradients of broadcast
parameters and the loss, against torch autograd on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

import fusec

torch = pytest.importorskip("torch")
F = torch.nn.functional

CHAINS = {
    "light": ("relu(x * w + b) * 0.5 - 0.125", lambda x, w, b: torch.relu(x * w + b) * 0.5 - 0.125),
    "heavy": (
        "silu(tanh(sigmoid(gelu(x * w + b))) + sqrt(abs(x) + 1.0))",
        lambda x, w, b: F.silu(
            torch.tanh(torch.sigmoid(F.gelu(x * w + b))) + torch.sqrt(torch.abs(x) + 1.0)
        ),
    ),
}
# (chain, dtype, loss): a bounded set; sizes below are not multiples of the vector width
CASES = [
    ("light", "f32", True),
    ("light", "f32", False),
    ("heavy", "f32", True),
    ("heavy", "f32", False),
    ("light", "f64", True),
    ("heavy", "f64", False),
]
SIZES = [(1, 1), (7, 7), (1023, 13), (13, 1023), (31, 17), (0, 5), (3, 0)]
NP = {"f32": np.float32, "f64": np.float64}
TOL = {"f32": 2e-5, "f64": 1e-12}

_cache: dict = {}


def graph(chain: str, dtype: str, loss: bool):
    key = (chain, dtype, loss)
    if key not in _cache:
        expr = CHAINS[chain][0]
        ret = f"sum(sum({expr}, axis=1), axis=0)" if loss else expr
        src = f"graph f(x: {dtype}[B, D], w: {dtype}[D], b: {dtype}[D]) {{\n return {ret}\n}}"
        _cache[key] = fusec.compile(src, grad=True)["f"]
    return _cache[key]


def reference(chain, dtype, loss, x, w, b, ct):
    """torch's loss (or output), dx, dw, db."""
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = CHAINS[chain][1](xt, wt, bt)
    value = y.sum() if loss else y
    value.backward(None if loss else torch.tensor(ct))
    return [value.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()]


def close(got, want, dtype, scale=1.0):
    tol = TOL[dtype]
    np.testing.assert_allclose(got, want, rtol=tol * 10, atol=tol * scale)


@pytest.mark.parametrize("chain, dtype, loss", CASES)
def test_forward_backward_matches_torch(chain, dtype, loss):
    g = graph(chain, dtype, loss)
    for B, D in SIZES:
        rng = np.random.default_rng(B * 7919 + D)
        x, w, b = (rng.standard_normal(s).astype(NP[dtype]) for s in ((B, D), (D,), (D,)))
        ct = np.array(1.0, NP[dtype]) if loss else rng.standard_normal((B, D)).astype(NP[dtype])
        want = reference(chain, dtype, loss, x, w, b, ct)
        got = g.forward_backward(x, w, b, ct)
        # sums over B (and D, the loss) gather rounding over that many terms
        scales = [max(B * D, 1), 1, max(B, 1), max(B, 1)]
        for k, (o, r, s) in enumerate(zip(got, want, scales, strict=True)):
            assert o.shape == r.shape, (k, B, D)
            close(o, r, dtype, s)
        for o, r, s in zip(g.backward(x, w, b, ct), want[1:], scales[1:], strict=True):
            close(o, r, dtype, s)


def test_a_parameter_used_twice():
    # w's gradient is one sum of both shares (simplify's merge_sums): one pass
    src = "graph f(x: f32[B, D], w: f32[D]) {\n return clamp(relu(x * w + w), min=-1.0, max=1.0)\n}"
    g = fusec.compile(src, grad=True)["f"]
    assert len(g.backward.plan["kernels"]) == 2
    rng = np.random.default_rng(9)
    x, w, ct = (rng.standard_normal(s).astype(np.float32) for s in ((67, 29), (29,), (67, 29)))
    xt, wt = (torch.tensor(a, requires_grad=True) for a in (x, w))
    torch.clamp(torch.relu(xt * wt + wt), -1.0, 1.0).backward(torch.tensor(ct))
    dx, dw = g.backward(x, w, ct)
    close(dx, xt.grad.numpy(), "f32")
    close(dw, wt.grad.numpy(), "f32", 67)


def test_value_and_grad_of_the_loss():
    g = graph("light", "f32", True)
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((61, 127), (127,), (127,)))
    value, grads = g.value_and_grad(x, w, b)
    want = reference("light", "f32", True, x, w, b, None)
    close(value, want[0], "f32", 61 * 127)
    for name, r in zip("xwb", want[1:], strict=True):
        close(grads[name], r, "f32", 61)


@pytest.mark.parametrize("loss", [True, False])
def test_plan_shows_one_pass_and_one_finish(loss):
    g = graph("light", "f32", loss)
    for kind, sums in (("forward_backward", 3 if loss else 2), ("backward", 2)):
        plan = getattr(g, kind).plan
        names = [k["name"] for k in plan["kernels"]]
        assert len(names) == 2 and names[0].endswith("_partial") and names[1].endswith("_finish")
        (fused,) = plan["gradients"]["fused"]
        assert fused["launches"] == names and fused["space"] == ["B", "D"]
        assert len(fused["sums"]) == sums
        assert plan["gradients"]["saved"] == []
        assert plan["kernels"][0]["reads"] == ["x", "w", "b", "grad_out0"]


def test_forward_graph_sums_over_the_leading_axis_of_a_3d_space():
    """Not only gradients: a value and its sums over the leading axis in one
    pass, with operands of the columns' shape ([T, D]), of the rows' ([B, T, 1])
    and neither ([1, D]) broadcast in it."""
    src = """graph f(x: f32[B, T, D], u: f32[T, D], w: f32[1, D], s: f32[B, T, 1]) {
    y = tanh(x * w) + s * u
    return y, sum(y, axis=0), sum(y * x, axis=0, keepdim=true)
}"""
    g = fusec.compile(src)["f"]
    assert [k["name"] for k in g.plan["kernels"]] == ["f_c0_partial", "f_c0_finish"]
    for B, T, D in ((3, 5, 7), (37, 2, 9), (1, 1, 1)):
        rng = np.random.default_rng(B + T + D)
        shapes = ((B, T, D), (T, D), (1, D), (B, T, 1))
        x, u, w, s = (rng.standard_normal(sh).astype(np.float32) for sh in shapes)
        y = np.tanh(x.astype(np.float64) * w) + s * u
        want = [y, y.sum(0), (y * x).sum(0, keepdims=True)]
        for k, (o, r) in enumerate(zip(g(x, u, w, s), want, strict=True)):
            assert o.shape == r.shape, k
            np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-5 * B)


def test_sums_that_do_not_fit_stay_apart():
    # a sum over the trailing axis is a row reduction: it keeps its own group
    src = "graph f(x: f32[B, D]) {\n y = exp(x)\n return y, sum(y, axis=1)\n}"
    g = fusec.compile(src)["f"]
    assert not any(k["name"].endswith("_c0_partial") for k in g.plan["kernels"])
    x = np.random.default_rng(0).standard_normal((9, 11)).astype(np.float32)
    y, r = g(x)
    np.testing.assert_allclose(r, np.exp(x).sum(1), rtol=1e-5)


def test_a_value_stored_for_a_gemm_is_summed_from_registers():
    src = """graph f(x: f32[B, D], w: f32[D], m: f32[D, K]) {
    y = tanh(x * w)
    return matmul(y, m), sum(y, axis=0)
}"""
    g = fusec.compile(src)["f"]
    (columns,) = [k for k in g.plan["kernels"] if k["name"].endswith("_c0_partial")]
    assert columns["reads"] == ["x", "w"]
    rng = np.random.default_rng(5)
    x, w, m = (rng.standard_normal(s).astype(np.float32) for s in ((37, 11), (11,), (11, 3)))
    y = np.tanh(x.astype(np.float64) * w)
    z, s = g(x, w, m)
    np.testing.assert_allclose(z, y @ m, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s, y.sum(0), rtol=1e-5, atol=1e-5 * 37)


def test_every_unary_float_op_in_a_column_pass():
    """The pass computes in the device's widest vectors (16 floats with
    AVX-512, wider than the elementwise kernels' here): every unary op with
    its default attributes, in one graph, against torch."""
    from fusec.ir.registry import all_primitives
    from tests.op_specs import RTOL, SPECS

    ops = sorted(
        name
        for name, prim in all_primitives().items()
        if prim.kind == "elementwise"
        and not prim.internal
        and prim.arity == 1
        and name in SPECS
        and {} in SPECS[name].variants
        and prim.dtype_rule not in ("cast", "compare", "logical")
    )
    assert len(ops) > 20
    outs = ", ".join(f"{op}(x * w)" for op in ops)
    src = f"graph f(x: f32[B, D], w: f32[D]) {{\n return {outs}, sum(x * w, axis=0)\n}}"
    g = fusec.compile(src)["f"]
    assert [k["name"] for k in g.plan["kernels"]] == ["f_c0_partial", "f_c0_finish"]
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((5, 37)) * 3).astype(np.float32)
    x[0, :7] = [0.0, -0.0, -np.inf, np.nan, 1e-30, 1e30, -1.0]  # (+inf: see gelu in op_specs)
    w = np.ones(37, np.float32)
    xt = torch.from_numpy(x)
    for op, got in zip(ops, g(x, w)[:-1], strict=True):
        want = SPECS[op].torch(xt).numpy()
        rtol = SPECS[op].rtol.get("f32", RTOL["f32"])
        atol = SPECS[op].atol.get("f32", 0.0)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=op)


@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (13, 1031)])
def test_a_keepdim_total_beside_column_sums_is_one_value(shape):
    """A sum over all axes kept as (1, 1) is a total, like a () loss: the finish
    kernel writes one value, not one per column (it wrote `cols` values into a
    one-element output: a heap overflow, found at 13 x 1031)."""
    g = fusec.compile(
        "graph f(x: f32[B, N], w: f32[N]) {\n"
        "    return sum(x * w, axis=0), sum(sum(x, axis=0, keepdim=true), axis=1, keepdim=true)\n"
        "}",
        grad=True,
    )["f"]
    kinds = [k["name"].rsplit("_", 1)[-1] for k in g.forward_backward.plan["kernels"]]
    assert kinds.count("partial") == 1, kinds  # both sums and dx in one pass
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(shape[1]).astype(np.float32)
    ct = (np.ones(shape[1], np.float32), np.full((1, 1), 2.0, np.float32))
    (cols, total), grads = g.value_and_grad(x, w, grad_outputs=ct)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(cols, (x64 * w).sum(0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(total, x64.sum(keepdims=True), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(grads["x"], w + 2.0 + 0 * x, rtol=1e-6)
    np.testing.assert_allclose(grads["w"], x64.sum(0), rtol=1e-5, atol=1e-4)
