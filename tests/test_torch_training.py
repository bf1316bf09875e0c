"""Modules and training through torch.compile(..., backend="fusec"): an MLP
trained with SGD matches eager step by step; a residual block with
LayerNorm; dynamic batch sizes reuse one fusec graph."""

import copy

import pytest

torch = pytest.importorskip("torch")

import fusec.torch  # noqa: E402
from fusec.torch.report import Explanation, collecting  # noqa: E402

nn = torch.nn


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(20, 32), nn.GELU(), nn.Linear(32, 16), nn.SiLU(), nn.Linear(16, 5), nn.ReLU()
    )


def test_mlp_trained_20_sgd_steps_matches_eager_step_by_step():
    model, reference = mlp(), mlp()
    compiled = torch.compile(model, backend=fusec.torch.backend)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    with collecting(Explanation()) as report:
        for _ in range(20):
            x = torch.randn(16, 20, generator=gen)
            y = torch.randint(0, 5, (16,), generator=gen)
            for m, o in ((compiled, opt), (reference, ref_opt)):
                o.zero_grad()
                loss = loss_fn(m(x), y)
                loss.backward()
                o.step()
                if m is compiled:
                    got = loss.detach()
            torch.testing.assert_close(got, loss.detach(), rtol=1e-5, atol=1e-6)
            for p, q in zip(model.parameters(), reference.parameters(), strict=True):
                torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    kinds = [g.kind for g in report]
    assert kinds == ["forward", "backward"], "one compile each way for 20 steps"
    forward, backward = report
    # each Linear with its bias and activation is one GEMM kernel (epilogue)
    assert [p.kernels for p in forward.partitions] == [3], str(forward)
    # the weights' transposes, saved for the backward, are read in place by linear
    assert "matmul" not in forward.partitions[0].ir and "linear" in forward.partitions[0].ir
    assert backward.partitions and not backward.failed, str(backward)
    # the weight gradients mm(t(g), x) read g transposed in place (no copy of
    # t(g)), and t(t(w)) is w: no transpose is left in PyTorch, one fusec graph
    (graph,) = backward.partitions
    assert graph.ir.count("ta=true") == 3, graph.ir
    assert not [n for n, op, _ in backward.fallbacks if op in ("aten.t.default",)], str(backward)


class Residual(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 2 * width)
        self.down = nn.Linear(2 * width, width)

    def forward(self, x):
        return x + self.down(torch.relu(self.up(self.norm(x))))


def test_residual_block_with_layernorm_and_softmax_head():
    torch.manual_seed(2)
    block = nn.Sequential(Residual(24), nn.Linear(24, 7), nn.Softmax(dim=-1))
    reference = copy.deepcopy(block)
    x = torch.randn(10, 24, requires_grad=True)
    xr = x.detach().clone().requires_grad_()
    report = fusec.torch.explain(block, x)
    assert not [p for g in report for p in g.failed], str(report)
    assert not [f for f in report.fallbacks if "var_mean" in f[1] or "rsqrt" in f[1]], str(report)
    got = torch.compile(block, backend=fusec.torch.backend)(x)
    want = reference(xr)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    weights = torch.randn(10, 7)
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-4, atol=1e-5)
    for p, q in zip(block.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5)


def test_dynamic_batch_sizes_reuse_one_graph():
    torch.manual_seed(3)
    layer = nn.Sequential(nn.Linear(12, 8), nn.Tanh())

    def fn(x):
        return layer(x) * 2

    compiled = torch.compile(fn, backend=fusec.torch.backend, dynamic=True)
    with collecting(Explanation()) as report:
        with torch.no_grad():
            for batch in (4, 9, 33):
                x = torch.randn(batch, 12)
                torch.testing.assert_close(compiled(x), fn(x), rtol=1e-5, atol=1e-6)
    assert len(report) == 1, "a new batch size compiles nothing"
    (part,) = report[0].partitions
    header = part.ir.splitlines()[0]
    assert "f32[s" in header and "12]" in header, header


def test_automatic_dynamic_shapes_after_a_batch_size_change():
    def fn(x):
        return torch.sigmoid(x) * x.sum(1, keepdim=True)

    compiled = torch.compile(fn, backend=fusec.torch.backend)
    with collecting(Explanation()) as report:
        for batch in (3, 5, 11):
            x = torch.randn(batch, 6)
            torch.testing.assert_close(compiled(x), fn(x), rtol=1e-5, atol=1e-6)
    # Dynamo specializes on the first size, then makes the batch dimension dynamic
    assert len(report) == 2, "\n".join(str(g) for g in report)
    assert "f32[3, 6]" in report[0].partitions[0].ir
    assert "f32[s" in report[1].partitions[0].ir


def test_fusec_log_fusion_prints_the_report(monkeypatch, capsys):
    monkeypatch.setenv("FUSEC_LOG", "fusion,ir")

    def fn(x):
        return torch.erf(x) - 1

    x = torch.randn(7)
    torch.testing.assert_close(torch.compile(fn, backend=fusec.torch.backend)(x), fn(x))
    err = capsys.readouterr().err
    assert "inference graph: 2 node(s) in 1 fusec graph(s), 1 kernel(s)" in err
    assert "erf(" in err and "graph fx_" in err


def test_views_and_transposed_gemms_under_dynamic_batch_sizes():
    def fn(x, y):
        s = (torch.tanh(x).unsqueeze(1) * y).squeeze(1) + 1
        return s.sum(0, keepdim=True).view(-1), s.unsqueeze(0), torch.mm(x.t(), s)

    compiled = torch.compile(fn, backend=fusec.torch.backend, dynamic=True)
    gen = torch.Generator().manual_seed(4)
    for batch in (5, 9, 1):
        x = torch.randn(batch, 6, generator=gen, requires_grad=True)
        y = torch.randn(batch, 1, 6, generator=gen)
        got, want = compiled(x, y), fn(x, y)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
        (g_got,) = torch.autograd.grad(sum(o.sum() for o in got), x)
        (g_want,) = torch.autograd.grad(sum(o.sum() for o in want), x)
        torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-5)
