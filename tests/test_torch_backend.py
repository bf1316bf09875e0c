"""torch.compile(..., backend="fusec"): every lowered ATen op against eager,
forward and backward, fused (no supported node left in PyTorch, kernel
counts); modules, training, dynamic sizes and fallbacks."""

import tomllib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import fusec.torch  # noqa: E402
from fusec.torch.aten_ops import LOWERINGS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_entry_point_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["torch_dynamo_backends"]["fusec"] == "fusec.torch:backend"


@pytest.fixture(scope="module", autouse=True)
def fusec_backend():
    """The backend by name, as the entry point gives it once fusec is installed."""
    from torch._dynamo.backends.registry import _BACKENDS, register_backend

    if "fusec" not in torch._dynamo.list_backends(exclude_tags=()):
        register_backend(name="fusec")(fusec.torch.backend)
    yield
    if _BACKENDS.get("fusec") is fusec.torch.backend:
        del _BACKENDS["fusec"]


def inputs(*shapes, seed=0, grad=True, positive=()):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i, s in enumerate(shapes):
        t = torch.randn(*s, generator=gen)
        if i in positive:
            t = t.abs() + 0.5
        out.append(t.requires_grad_(grad))
    return out


def check(fn, args, *, rtol=1e-4, atol=1e-5, fallbacks=()):
    """fn through fusec (explain) and eagerly: same outputs and gradients;
    every node fusec has a lowering for went into a fusec graph."""
    report = fusec.torch.explain(fn, *args)
    compiled = torch.compile(fn, backend="fusec")
    got = compiled(*args)
    want = fn(*[a.detach().clone().requires_grad_(a.requires_grad) for a in args])
    got, want = (
        (got if isinstance(got, tuple) else (got,)),
        (want if isinstance(want, tuple) else (want,)),
    )
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol)
    diff = [i for i, w in enumerate(want) if w.requires_grad]
    if diff:
        wrt = [a for a in args if a.requires_grad]
        cts = [torch.randn_like(want[i]) for i in diff]
        g_got = torch.autograd.grad([got[i] for i in diff], wrt, cts, allow_unused=True)
        eager_args = [a.detach().clone().requires_grad_(a.requires_grad) for a in args]
        w_out = fn(*eager_args)
        w_out = w_out if isinstance(w_out, tuple) else (w_out,)
        g_want = torch.autograd.grad(
            [w_out[i] for i in diff],
            [a for a in eager_args if a.requires_grad],
            cts,
            allow_unused=True,
        )
        for g, w in zip(g_got, g_want, strict=True):
            if w is not None:
                torch.testing.assert_close(g, w, rtol=rtol, atol=atol)
    left = [
        (n, op)
        for n, op, why in report.fallbacks
        if (any(op == str(t) for t in LOWERINGS) or op.endswith(fallbacks))
        and not why.startswith("only views and identities")  # nothing to compute there
        and not ("has no reshape" in why or "an expand" in why)  # views fusec lacks
    ]
    unexpected = [(n, op) for n, op in left if not op.endswith(fallbacks) or not fallbacks]
    assert not unexpected, f"supported nodes left in PyTorch:\n{report}"
    assert not [p for g in report for p in g.failed], str(report)
    return report


def unary_ops(x, p):
    return (
        torch.exp(x),
        torch.log(p),
        torch.log1p(p),
        torch.expm1(x),
        torch.sqrt(p),
        torch.rsqrt(p),
        torch.sin(x),
        torch.cos(x),
        torch.tanh(x),
        torch.sigmoid(x),
        torch.erf(x),
        -x,
        torch.abs(x),
        torch.reciprocal(p),
        torch.square(x),
        torch.relu(x),
        F.gelu(x),
        F.gelu(x, approximate="tanh"),
        F.silu(x),
        F.mish(x),
        F.softplus(x, beta=2.0),
        F.hardtanh(x, -0.5, 0.5),
        F.hardsigmoid(x),
        F.hardswish(x),
        F.elu(x, 0.7),
        F.selu(x),
        F.celu(x, 1.3),
        F.leaky_relu(x, 0.2),
        F.relu6(x * 4),
        torch.clamp(x, -0.3, 0.4),
        torch.clamp(x, min=0.1),
        x**3,
        p**x,
        torch.pow(2.0, x),
    )


def test_unary_and_activation_ops_fuse_into_one_kernel_each_way():
    report = check(unary_ops, inputs((8, 37), (8, 37), positive=(1,)))
    forward, backward = report
    assert [p.kernels for p in forward.partitions] == [1]
    assert (
        sum(p.kernels for p in backward.partitions) <= 2
    )  # dx and dp: two sums of the chain's cotangent terms


def binary_ops(x, y, b):
    return (
        x + 2 * y,
        torch.add(x, y, alpha=0.5),
        x - y,
        torch.sub(x, y, alpha=3),
        1 - x,
        x * y,
        x / y,
        3 / y,
        torch.maximum(x, y),
        torch.minimum(x, b),
        torch.where(x > y, x, b),
        x * (y >= 0),
        torch.div(x, y, rounding_mode="floor"),
    )


def test_binary_ops_broadcasting_against_eager():
    x, y, b = inputs((6, 1, 9), (5, 9), (9,))
    check(binary_ops, [x, y.abs() + 0.5, b])


def logic_and_integer_ops(x, i, m):
    return (
        x == 0.25,
        x != 0,
        x < 0,
        x <= 0.1,
        x > i,
        x >= 1,
        torch.logical_and(m, x > 0),
        torch.logical_or(m, x > 0),
        ~m,
        i * 3 + 1,
        i // 1,
        i.to(torch.float64) * x,
        x.to(torch.int32),
        torch.floor(x * 3),
        torch.ceil(x),
        torch.round(x * 2),
        torch.sign(x),
        (i > 2).sum(1),
        i.sum(0),
        x.to(torch.float16),
    )


def test_integer_boolean_and_non_differentiable_ops():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 10, generator=gen)
    i = torch.randint(-5, 5, (4, 10), generator=gen, dtype=torch.int32)
    m = torch.rand(4, 10, generator=gen) > 0.5
    check(logic_and_integer_ops, [x, i, m], fallbacks=("aten.floor_divide.default",))


def reductions(x):
    var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
    return (
        x.sum(1),
        x.sum((0, 2), keepdim=True),
        x.mean(-1),
        x.mean(),
        torch.amax(x, 2),
        torch.amin(x, (1, 2)),
        var,
        mean,
        x.var(1),
        torch.softmax(x, -1),
        torch.log_softmax(x, 1),
        x.sum(),
    )


def test_reductions_and_softmax_forward_and_backward():
    (x,) = inputs((3, 5, 7))
    # the sums' gradients are expands added to each other: no operand has
    # the full shape to broadcast them against, so they stay in PyTorch
    check(reductions, [x], rtol=1e-4, atol=1e-5)


def test_linear_layers_fuse_bias_and_activation():
    lin = torch.nn.Linear(24, 16)

    def layer(x, w2):
        h = torch.relu(lin(x))
        return torch.mm(h, w2), torch.addmm(lin.bias, h, torch.ones(16, 16))

    x, w2 = inputs((9, 24), (16, 5))
    report = fusec.torch.explain(layer, x, w2)
    check(layer, [x, w2], rtol=1e-4, atol=1e-4)
    assert report[0].partitions, str(report)


def test_unsupported_op_in_the_middle_stays_in_pytorch():
    def fn(x):
        return torch.sigmoid(torch.cumsum(torch.tanh(x) * 2, 0)) + 1

    (x,) = inputs((33,))
    report = check(fn, [x], fallbacks=("cumsum.default", "flip.default"))
    reasons = dict((n, r) for n, _, r in report[0].fallbacks)
    assert "no fusec lowering for aten.cumsum.default" in reasons["cumsum"]
    assert len(report[0].partitions) == 2


def test_non_contiguous_inputs_and_no_grad():
    def fn(x, y):
        return torch.tanh(x) * y + 1

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(12, 7, generator=gen).t()
    y = torch.randn(7, 12, generator=gen)[:, ::1]
    with torch.no_grad():
        got = torch.compile(fn, backend="fusec")(x, y)
    torch.testing.assert_close(got, fn(x, y))
    check(fn, [x.requires_grad_(), y])


def test_an_unsupported_dtype_runs_in_pytorch():
    def fn(x):
        return torch.relu(x) * 2

    x = torch.randn(10, dtype=torch.bfloat16)
    report = fusec.torch.explain(fn, x)
    assert not report[0].partitions
    assert "bfloat16" in str(report)
    torch.testing.assert_close(torch.compile(fn, backend="fusec")(x), fn(x))


def test_the_same_partition_compiled_twice_is_one_fusec_program():
    def first(x):
        return torch.tanh(x) * 3

    def second(x):  # another function, the same graph
        return torch.tanh(x) * 3

    (x,) = inputs((16,), grad=False)
    a, b = fusec.torch.explain(first, x), fusec.torch.explain(second, x)
    assert a.graphs[0].name == b.graphs[0].name
    assert a.graphs[0].name.startswith("fx_") and "tanh" in a.graphs[0].ir


def test_identities_alone_make_no_fusec_graph():
    def fn(x):
        return torch.cumsum(x, 0).clone()

    (x,) = inputs((8,), grad=False)
    report = fusec.torch.explain(fn, x)
    assert report.graphs == [], "a clone alone is not worth a copy kernel"
    assert ("clone", "aten.clone.default") in [(n, op) for n, op, _ in report.fallbacks]
    torch.testing.assert_close(torch.compile(fn, backend="fusec")(x), fn(x))


def test_zero_dimensional_tensors_come_back_as_tensors():
    def fn(x, y):
        return torch.exp(x) * y, (x + y).sum()

    x, y = torch.tensor(0.5), torch.tensor(-2.0)
    got = torch.compile(fn, backend="fusec")(x, y)
    assert all(isinstance(t, torch.Tensor) and t.shape == () for t in got)
    torch.testing.assert_close(got, fn(x, y))


def test_unbiased_variance_over_a_symbolic_size():
    def fn(x):
        return torch.var(x, 1), torch.var_mean(x, (0, 1), keepdim=True)[0]

    (x,) = inputs((5, 9), grad=False)
    report = fusec.torch.explain(fn, x, dynamic=True)
    assert len(report.graphs) == 1 and not report.fallbacks, str(report)
    assert "f32[s" in report.graphs[0].ir
    got = torch.compile(fn, backend="fusec", dynamic=True)(x)
    torch.testing.assert_close(got, fn(x), rtol=1e-5, atol=1e-6)


def test_a_chains_forward_saves_only_its_inputs_for_the_backward():
    """detach is decomposed (to alias, as Inductor's decompositions do): a
    detach is no op the min-cut partitioner may recompute, so every value
    it read was saved, and the forward wrote two extra full-size tensors."""

    def chain(x, y):
        a = torch.clamp(torch.relu(x * y + 1.0), -2.0, 2.0)
        return torch.clamp(torch.relu(a * 0.5 + y), -2.0, 2.0)

    report = check(chain, inputs((1000,), (1000,)))
    forward, backward = report
    returned = forward.partitions[0].ir.rsplit("return", 1)[1]
    assert returned.count(",") == 0, f"the forward stores more than its output:\n{returned}"
    assert [p.kernels for p in backward.partitions] == [1]


def test_transposed_gemm_operands_are_read_in_place():
    def fn(a, b, c, bias):
        return (
            torch.mm(a.t(), b),  # gemm(a, b, ta=true)
            torch.mm(a.t(), c.t()),  # both transposed
            torch.addmm(bias, a.t(), b),
            torch.tanh(a.t().t()) * 2,  # t(t(a)) is a
            torch.mm(b.t() * 2.0, a),  # t(b) computed on: a view in PyTorch
        )

    a, b, c, bias = inputs((7, 5), (7, 13), (13, 7), (13,))
    report = check(fn, [a, b, c, bias], fallbacks=("aten.t.default",))
    ir = report[0].partitions[0].ir
    assert ir.count("ta=true") == 3 and "tb=true" in ir, ir
    # an input that is the transpose of a contiguous matrix, read as a GEMM's first operand
    x = torch.randn(5, 7).t()
    with torch.no_grad():
        got = torch.compile(lambda x, b: torch.mm(x.t(), b) + 1, backend="fusec")(x, b)
        torch.testing.assert_close(got, x.t() @ b + 1, rtol=1e-4, atol=1e-5)


def views_in_a_chain(x, y, b):
    u = torch.tanh(x).unsqueeze(1) * y  # [4, 1, 6]
    s = u.squeeze(1) + 1  # [4, 6]
    v = s.view(4, 1, 6) * y
    r = v.reshape(4, 6) * 2
    e = b.expand(4, 6) * r  # a broadcast
    p = v.permute(1, 0, 2)  # moves only the dimension of size 1: [1, 4, 6]
    return torch.sigmoid(e) + p.squeeze(0)


def test_views_in_a_chain_are_absorbed():
    x, y, b = inputs((4, 6), (4, 1, 6), (6,))
    with torch.no_grad():
        (inference,) = fusec.torch.explain(views_in_a_chain, x, y, b)
    assert not inference.fallbacks, str(inference)
    assert [p.kernels for p in inference.partitions] == [1], str(inference)
    forward, backward = check(views_in_a_chain, [x, y, b])
    assert len(forward.partitions) == 1 and not forward.fallbacks, str(forward)
    assert len(backward.partitions) == 1, str(backward)


def test_a_reshape_that_merges_dimensions_is_a_boundary():
    def fn(x):
        return torch.tanh(torch.exp(x).reshape(24)) * 2

    (x,) = inputs((4, 6), grad=False)
    (report,) = fusec.torch.explain(fn, x)
    reasons = [why for _, op, why in report.fallbacks if "view" in op]
    assert reasons and "merges, splits or reorders" in reasons[0], str(report)
    assert len(report.partitions) == 2, str(report)
    torch.testing.assert_close(torch.compile(fn, backend="fusec")(x), fn(x))


def test_an_output_that_is_a_view_is_viewed_by_pytorch():
    def fn(x):
        y = torch.tanh(x) * 2
        return y.unsqueeze(0), y.sum(0, keepdim=True).view(-1), y.view(1, 9, 1)

    (x,) = inputs((1, 9), grad=False)
    (report,) = fusec.torch.explain(fn, x)
    assert not report.fallbacks and len(report.partitions) == 1, str(report)
    # no copy kernel for the views: y and its sum over the leading axis are one
    # column group (one pass, column_reduction.py)
    assert report.partitions[0].kernels == 1, str(report)
    got = torch.compile(fn, backend="fusec")(x)
    for g, w in zip(got, fn(x), strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w)
