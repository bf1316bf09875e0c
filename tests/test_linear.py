"""linear with fused epilogues (bias, activations, residuals, several outputs),
against PyTorch; the two-layer MLP runs as two kernels."""

from __future__ import annotations

import numpy as np
import pytest

import fusec
import fusec.runtime.launcher as launcher_module
from tests.test_plan_launch import compile_and_launch

torch = pytest.importorskip("torch")
F = torch.nn.functional
rng = np.random.default_rng(5)

MLP = """
graph mlp(x: f32[B, K], w1: f32[H, K], b1: f32[H], w2: f32[O, H], b2: f32[O]) {
    h = relu(linear(x, w1, b1))
    return linear(h, w2, b2)
}
"""


def compute_kernels(g) -> list[dict]:
    """The plan's kernels but those that only repack a weight."""
    return [k for k in g.plan["kernels"] if k["ops"] != ["pack"]]


def mlp_reference(x, w1, b1, w2, b2):
    t = [torch.tensor(a) for a in (x, w1, b1, w2, b2)]
    return F.linear(torch.relu(F.linear(t[0], t[1], t[2])), t[3], t[4]).numpy()


# M below and above the size where w is packed per call (128): both kernels run
@pytest.mark.parametrize(
    "b, k, h, o",
    [
        (1, 1, 1, 1),
        (7, 13, 97, 3),
        (64, 784, 256, 10),
        (33, 17, 16, 32),
        (130, 33, 40, 7),
        (300, 64, 96, 20),
    ],
)
def test_mlp_matches_torch(b, k, h, o):
    g = fusec.compile(MLP)["mlp"]
    args = [rng.standard_normal(s).astype(np.float32) for s in ((b, k), (h, k), (h,), (o, h), (o,))]
    args[1] /= np.sqrt(k)
    args[3] /= np.sqrt(h)
    np.testing.assert_allclose(g(*args), mlp_reference(*args), rtol=1e-4, atol=1e-4 * np.sqrt(k))
    # one kernel per layer (after the one packing its weight, where the GEMM layout packs)
    assert [k_["name"] for k_ in compute_kernels(g)] == ["mlp_g0", "mlp_g1"]
    assert compute_kernels(g)[0]["ops"] == ["linear", "add", "relu"]


@pytest.mark.parametrize("a, b", [(2, 5), (3, 100)])
def test_epilogue_with_a_residual_several_outputs_and_batch_dimensions(a, b):
    text = """
graph block(x: f64[A, B, K], w: f64[N, K], r: f64[A, B, N], s: f64) {
    y = linear(x, w)
    z = gelu(y) * s + r
    return z, y, sigmoid(z)
}
"""
    g = fusec.compile(text)["block"]
    x = rng.standard_normal((a, b, 11))
    w = rng.standard_normal((37, 11))  # 37 columns: whole 32-wide panels and a ragged one
    r = rng.standard_normal((a, b, 37))
    z, y, sz = g(x, w, r, 0.5)
    Y = F.linear(torch.tensor(x), torch.tensor(w))
    Z = F.gelu(Y) * 0.5 + torch.tensor(r)
    np.testing.assert_allclose(y, Y.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z, Z.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sz, torch.sigmoid(Z).numpy(), rtol=1e-12, atol=1e-12)
    assert len(g.kernels) == 1  # the product, gelu, the residual and all three outputs: one kernel


def test_a_linear_result_feeding_a_reduction_is_stored_once():
    g = fusec.compile("graph f(x: f32[B, K], w: f32[N, K]) {\n return softmax(linear(x, w))\n}")[
        "f"
    ]
    x = rng.standard_normal((9, 20)).astype(np.float32)
    w = rng.standard_normal((30, 20)).astype(np.float32)
    want = torch.softmax(F.linear(torch.tensor(x), torch.tensor(w)), -1).numpy()
    np.testing.assert_allclose(g(x, w), want, rtol=1e-5, atol=1e-6)
    assert compute_kernels(g)[0]["writes"] == [f"tmp_{g.groups[0].anchor}"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("linear(x, v)", "linear: x's last dimension (K) must equal w's second (M)"),
        ("linear(x, b)", "linear: w must be [out_features, in_features], got 1 dimensions"),
        ("linear(k, w)", "linear needs float tensors of one dtype, got i32 and f32"),
        ("linear(x)", "linear takes 2 or 3 operands (x, w[, b]), got 1"),
    ],
)
def test_bad_linear_calls_are_positioned_errors(text, message):
    ir = f"graph f(x: f32[B, K], w: f32[N, K], v: f32[N, M], b: f32[N], k: i32[B, K]) {{\n    return {text}\n}}"
    with pytest.raises(fusec.CompileError) as err:
        fusec.compile(ir)
    assert f"<input>:2:12: error: {message}" in str(err.value)


def test_mlp_plan_launches_without_fusec(tmp_path):
    args = [
        rng.standard_normal(s).astype(np.float32) for s in ((5, 12), (8, 12), (8,), (3, 8), (3,))
    ]
    res = compile_and_launch(
        tmp_path, MLP, "mlp", **dict(zip(["x", "w1", "b1", "w2", "b2"], args, strict=True))
    )
    np.testing.assert_allclose(res["out0"], mlp_reference(*args), rtol=1e-4, atol=1e-4)


MLP_GRAD = """
graph mlp(x: f64[B, K], w1: f64[H, K], b1: f64[H], w2: f64[O, H], b2: f64[O]) {
    h = tanh(linear(x, w1, b1))
    return linear(h, w2, b2)
}
graph mm(a: f64[A, M, K], b: f64[K, N]) {
    return relu(matmul(a, b)) * 2
}
"""


@pytest.mark.parametrize("b, k, h, o", [(1, 1, 1, 1), (7, 13, 5, 3), (33, 20, 17, 4)])
def test_mlp_gradients_match_torch(b, k, h, o):
    g = fusec.compile(MLP_GRAD, grad=True)["mlp"]
    args = [rng.standard_normal(s) for s in ((b, k), (h, k), (h,), (o, h), (o,))]
    ct = rng.standard_normal((b, o))
    y, grads = g.value_and_grad(*args, grad_outputs=ct)
    t = [torch.tensor(a, requires_grad=True) for a in args]
    want = F.linear(torch.tanh(F.linear(t[0], t[1], t[2])), t[3], t[4])
    want.backward(torch.tensor(ct))
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    for name, leaf in zip(["x", "w1", "b1", "w2", "b2"], t, strict=True):
        np.testing.assert_allclose(
            grads[name], leaf.grad.numpy(), rtol=1e-11, atol=1e-12, err_msg=name
        )
    # tanh's backward runs in the epilogue of dh = g·w2: no kernel of its own
    ops = [k_["ops"] for k_ in g.backward.plan["kernels"]]
    assert ["gemm", "mul", "sub", "mul"] in ops


def test_batched_matmul_gradients_match_torch():
    g = fusec.compile(MLP_GRAD, grad=True)["mm"]
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
    ct = rng.standard_normal((2, 3, 5))
    y, grads = g.value_and_grad(a, b, grad_outputs=ct)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    want = torch.relu(ta @ tb) * 2
    want.backward(torch.tensor(ct))
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["a"], ta.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["b"], tb.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_one_tensor_as_both_operands():
    """linear(x, x) = x xᵀ: one buffer passed as x and w, and its gradient sums both uses."""
    g = fusec.compile("graph f(x: f64[N, K]) {\n return linear(x, x)\n}", grad=True)["f"]
    x = rng.standard_normal((130, 7))
    ct = rng.standard_normal((130, 130))
    y, grads = g.value_and_grad(x, grad_outputs=ct)
    t = torch.tensor(x, requires_grad=True)
    want = t @ t.T
    want.backward(torch.tensor(ct))
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["x"], t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_value_that_is_an_output_and_read_again_is_written_once(tmp_path):
    """h is returned and is the second layer's input: the second GEMM reads it
    back from the output's buffer (fusec's and a plain launcher's alike)."""
    text = MLP.replace("return linear(h, w2, b2)", "return linear(h, w2, b2), h")
    g = fusec.compile(text)["mlp"]
    first, second = compute_kernels(g)
    assert first["writes"] == ["out1"] and "out1" in second["reads"]
    assert all(t["name"].endswith("_packed") for t in g.plan.get("scratch", []))  # no copy of h
    args = [
        rng.standard_normal(s).astype(np.float32) for s in ((5, 12), (8, 12), (8,), (3, 8), (3,))
    ]
    y, h = g(*args)
    np.testing.assert_allclose(y, mlp_reference(*args), rtol=1e-4, atol=1e-4)
    res = compile_and_launch(
        tmp_path, text, "mlp", **dict(zip(["x", "w1", "b1", "w2", "b2"], args, strict=True))
    )
    np.testing.assert_allclose(res["out0"], y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res["out1"], h, rtol=1e-6)


PROLOGUE = """
graph f(x: f32[B, K], s: f32[K], w: f32[N, K], b: f32[N]) {
    return relu(linear(tanh(x * s), w, b))
}
graph mm(x: f64[B, K], w: f64[K, N], t: f64) {
    return matmul(x * t + 1, w)
}
"""


@pytest.mark.parametrize("b, k, n", [(1, 1, 1), (7, 13, 97), (130, 33, 40), (300, 64, 20)])
def test_cheap_elementwise_ops_on_x_run_as_the_gemm_loads_it(b, k, n):
    prog = fusec.compile(PROLOGUE, grad=True)
    g, mm = prog["f"], prog["mm"]
    x = rng.standard_normal((b, k)).astype(np.float32)
    s = rng.standard_normal(k).astype(np.float32)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    want = F.relu(
        F.linear(torch.tanh(torch.tensor(x) * torch.tensor(s)), torch.tensor(w), torch.tensor(bias))
    )
    np.testing.assert_allclose(g(x, s, w, bias), want.numpy(), rtol=1e-5, atol=1e-5)
    (kernel,) = compute_kernels(g)  # tanh(x * s), the product, the bias and relu: one kernel
    assert kernel["ops"] == ["mul", "tanh", "linear", "add", "relu"] and "x" in kernel["reads"]
    x64, w64 = x.astype(np.float64), np.ascontiguousarray(w.T, dtype=np.float64)
    ct = rng.standard_normal((b, n))
    y, grads = mm.value_and_grad(x64, w64, 0.5, grad_outputs=ct)
    tx, tw, tt = (torch.tensor(a, requires_grad=True) for a in (x64, w64, np.float64(0.5)))
    ty = (tx * tt + 1) @ tw
    ty.backward(torch.tensor(ct))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    for name, leaf in (("x", tx), ("w", tw), ("t", tt)):
        np.testing.assert_allclose(
            grads[name], leaf.grad.numpy(), rtol=1e-11, atol=1e-11, err_msg=name
        )


def test_prologue_plan_launches_without_fusec(tmp_path):
    x = rng.standard_normal((150, 9)).astype(np.float32)
    s = rng.standard_normal(9).astype(np.float32)
    w = rng.standard_normal((5, 9)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    res = compile_and_launch(tmp_path, PROLOGUE, "f", x=x, s=s, w=w, b=b)
    want = np.maximum(np.tanh(x * s) @ w.T + b, 0)
    np.testing.assert_allclose(res["out0"], want, rtol=1e-5, atol=1e-5)


# -- bound weights (CompiledGraph.bind) ----------------------------------------------


@pytest.mark.parametrize("b", [1, 64, 130, 300])  # the unpacked small-M kernel and the packed one
def test_bound_weights_match_torch_and_are_a_snapshot(b):
    g = fusec.compile(MLP)["mlp"]
    x, w1, b1, w2, b2 = [
        rng.standard_normal(s).astype(np.float32) for s in ((b, 40), (96, 40), (96,), (7, 96), (7,))
    ]
    weights = [a.copy() for a in (w1, b1, w2, b2)]
    layer = g.bind(w1=w1, b1=b1, w2=w2, b2=b2)
    assert layer.param_names == ["x"]
    np.testing.assert_allclose(layer(x), mlp_reference(x, *weights), rtol=1e-4, atol=1e-4)
    w1[:] = 0  # changed after bind(): not seen, the values were copied
    np.testing.assert_allclose(layer(x=x), mlp_reference(x, *weights), rtol=1e-4, atol=1e-4)
    for m in (b + 3, 200):  # other batch sizes reuse the weights packed by the first call
        x2 = rng.standard_normal((m, 40)).astype(np.float32)
        np.testing.assert_allclose(layer(x2), mlp_reference(x2, *weights), rtol=1e-4, atol=1e-4)
    packs = {k["name"].removesuffix("_pack") for k in g.plan["kernels"] if k["ops"] == ["pack"]}
    # each packing GEMM packed its weights once, and keeps them
    assert {n.removesuffix("_pack") for n in layer.computed_once if n.endswith("_pack")} == packs


def test_bound_graph_calls_are_checked_like_any_call():
    g = fusec.compile(MLP)["mlp"]
    with pytest.raises(fusec.CallError, match="no parameter 'w3'"):
        g.bind(w3=np.zeros((2, 2), np.float32))
    with pytest.raises(fusec.CallError, match="'w1' expects f32"):
        g.bind(w1=np.zeros((2, 2), np.float64))
    layer = g.bind(w1=np.zeros((5, 4), np.float32), b1=np.zeros(5, np.float32))
    with pytest.raises(fusec.CallError, match="K is already 4"):
        layer(np.zeros((3, 6), np.float32), np.zeros((2, 5), np.float32), np.zeros(2, np.float32))
    with pytest.raises(fusec.CallError, match="'w1' is bound \\(by bind\\)"):
        layer(x=np.zeros((3, 4), np.float32), w1=np.zeros((5, 4), np.float32))


def test_bound_device_arrays_give_device_outputs_only_when_the_call_has_them():
    import pyopencl.array as cla

    g = fusec.compile(MLP)["mlp"]
    queue = g.runtime.queue
    x, w1, b1, w2, b2 = [
        rng.standard_normal(s).astype(np.float32) for s in ((150, 8), (16, 8), (16,), (3, 16), (3,))
    ]
    layer = g.bind(w1=cla.to_device(queue, w1), b1=b1, w2=w2, b2=b2)
    host = layer(x)
    assert isinstance(host, np.ndarray)
    device = layer(cla.to_device(queue, x))
    assert isinstance(device, cla.Array)
    np.testing.assert_allclose(device.get(), mlp_reference(x, w1, b1, w2, b2), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(host, device.get(), rtol=0, atol=0)


def test_mlp_backward_plan_launches_without_fusec(tmp_path):
    """The backward's plan (dw = gᵀ·x packs its transposed x into row panels
    first, on CPUs) run by the plain-PyOpenCL launcher, against torch.autograd."""
    x, w1, b1, w2, b2 = [
        rng.standard_normal(s).astype(np.float32)
        for s in ((37, 20), (30, 20), (30,), (5, 30), (5,))
    ]
    ct = rng.standard_normal((37, 5)).astype(np.float32)
    res = compile_and_launch(
        tmp_path, MLP, "mlp_bwd", "--grad", x=x, w1=w1, b1=b1, w2=w2, b2=b2, grad_out0=ct
    )
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, w1, b1, w2, b2)]
    y = F.linear(torch.relu(F.linear(leaves[0], leaves[1], leaves[2])), leaves[3], leaves[4])
    want = torch.autograd.grad(y, leaves, torch.tensor(ct))
    for i, name in enumerate(["x", "w1", "b1", "w2", "b2"]):
        np.testing.assert_allclose(
            res[f"out{i}"], want[i].numpy(), rtol=1e-4, atol=1e-4, err_msg=name
        )


# -- f16: the f32 GEMM between casts (fusec/passes/widen.py) ----------------------------


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 33, 17), (2, 65, 40, 9), (131, 70, 3)])
def test_f16_linear_matches_torch_computed_in_f32(shape):
    *rows, k, n = shape
    g = fusec.compile(
        "graph f(x: f16[..., K], w: f16[N, K], b: f16[N]) {\n    return relu(linear(x, w, b))\n}\n".replace(
            "...", ", ".join(f"R{i}" for i in range(len(rows)))
        ),
        grad=True,
    )["f"]
    x = rng.standard_normal((*rows, k)).astype(np.float16)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float16)
    b = rng.standard_normal(n).astype(np.float16)
    leaves = [torch.tensor(a.astype(np.float32), requires_grad=True) for a in (x, w, b)]
    want = torch.relu(F.linear(*leaves))
    y = g(x, w, b)
    assert y.dtype == np.float16
    # one rounding of the f32 result: within half an f16 ulp of the f32 reference
    np.testing.assert_allclose(y.astype(np.float32), want.detach().numpy(), rtol=2**-11, atol=1e-3)
    ct = rng.standard_normal(y.shape).astype(np.float16)
    _, grads = g.value_and_grad(x, w, b, grad_outputs=ct)
    want_grads = torch.autograd.grad(want, leaves, torch.tensor(ct.astype(np.float32)))
    for name, got, ref in zip("xwb", (grads["x"], grads["w"], grads["b"]), want_grads, strict=True):
        assert got.dtype == np.float16
        scale = float(np.abs(ref.numpy()).max()) + 1
        np.testing.assert_allclose(
            got.astype(np.float32), ref.numpy(), rtol=2e-3, atol=2e-3 * scale, err_msg=name
        )


def test_f16_matmul_and_its_plan():
    g = fusec.compile("graph f(a: f16[M, K], b: f16[K, N]) {\n    return matmul(a, b) * 0.5\n}\n")[
        "f"
    ]
    a, b = (
        rng.standard_normal((37, 20)).astype(np.float16),
        rng.standard_normal((20, 11)).astype(np.float16),
    )
    want = (a.astype(np.float32) @ b.astype(np.float32) * 0.5).astype(np.float16)
    np.testing.assert_allclose(
        g(a, b).astype(np.float32), want.astype(np.float32), rtol=2**-10, atol=1e-3
    )
    # a and b stored as f32 first (a half is not converted in the GEMM's inner loop:
    # fuse.gemm_prologue), then one kernel: the f32 product and its epilogue (the
    # cast to f16, the scaling)
    kernels = [k["ops"] for k in g.plan["kernels"] if k["ops"] != ["pack"]]
    assert kernels == [["cast"], ["cast"], ["matmul", "cast", "mul"]]


def test_values_computed_from_bound_weights_alone_are_computed_once(monkeypatch):
    """An f16 weight's cast to f32 (and the packing of it) and w * 2 run at the
    first call of a bound graph only; later calls launch neither."""
    for text, dtype in [
        (
            "graph f(x: f16[B, K], w: f16[N, K], b: f16[N]) {\n    return relu(linear(x, w, b))\n}\n",
            np.float16,
        ),
        (
            "graph f(x: f32[B, K], w: f32[N, K], b: f32[N]) {\n    return linear(x, w * 2.0, b)\n}\n",
            np.float32,
        ),
    ]:
        g = fusec.compile(text)["f"]
        x = rng.standard_normal((150, 33)).astype(dtype)
        w, b = (
            (rng.standard_normal((17, 33)) / 6).astype(dtype),
            rng.standard_normal(17).astype(dtype),
        )
        layer = g.bind(w=w, b=b)
        first = layer(x)
        once = set(layer.computed_once)
        assert (
            "f_g0_pack" in once and len(once) >= 2
        )  # the pack, and the kernel(s) computing w alone
        launched = []
        enqueue = launcher_module.cl.enqueue_nd_range_kernel
        monkeypatch.setattr(
            launcher_module.cl,
            "enqueue_nd_range_kernel",
            lambda q, k, *a, launched=launched, enqueue=enqueue, **kw: (
                launched.append(k.function_name),
                enqueue(q, k, *a, **kw),
            )[1],
        )
        x2 = rng.standard_normal((150, 33)).astype(dtype)
        np.testing.assert_array_equal(layer(x), first)
        assert launched and not once & set(launched), f"launched again: {once & set(launched)}"
        monkeypatch.undo()
        scale = 2.0 if "* 2.0" in text else 1.0
        ref = x2.astype(np.float32) @ (w.astype(np.float32) * scale).T + b.astype(np.float32)
        ref = np.maximum(ref, 0) if "relu" in text else ref
        np.testing.assert_allclose(layer(x2).astype(np.float32), ref, rtol=2e-3, atol=2e-3)
