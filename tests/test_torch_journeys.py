"""User journeys through torch.compile(..., backend="fusec") that once fell
back, warned or crashed: BatchNorm1d (train and eval) and cross entropy's
masked_fill in fusec graphs, torch.compile's `mode`/`options`. Each result
is checked against eager. Shapes are static (`dynamic=False`): in a process
that ran other sizes of these modules, Dynamo's automatic dynamic shapes
would make them symbolic, where some nodes stay in PyTorch by design."""

import copy
import warnings

import pytest

torch = pytest.importorskip("torch")

import fusec.torch  # noqa: E402
from fusec.torch.report import Explanation, collecting  # noqa: E402

nn = torch.nn


def net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 16),
        nn.LayerNorm(16),
        nn.ReLU(),
        nn.Linear(16, 16),
        nn.BatchNorm1d(16),
        nn.Tanh(),
        nn.Linear(16, 4),
        nn.Softmax(dim=-1),
    )


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm_after_layernorm_runs_in_fusec_graphs_as_eager(train):
    model, reference = net(), net()
    model.train(train), reference.train(train)
    x = torch.randn(9, 3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no internal error may fall back quietly
        with collecting(Explanation()) as report:
            got = torch.compile(model, backend=fusec.torch.backend, dynamic=False)(x)
            got.sum().backward()
    want = reference(x)
    want.sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5)
    bn, ref_bn = model[5], reference[5]
    torch.testing.assert_close(bn.running_mean, ref_bn.running_mean)
    torch.testing.assert_close(bn.running_var, ref_bn.running_var)
    # batch norm is decomposed: no node of it is left to PyTorch, none failed
    assert not [f for f in report.fallbacks if "batch_norm" in f[1]], str(report)
    assert not [p for g in report for p in g.failed], str(report)


def test_cross_entropy_with_label_smoothing_and_ignore_index_keeps_masked_fill_in_fusec():
    torch.manual_seed(1)
    logits = torch.randn(7, 5, requires_grad=True)
    target = torch.tensor([0, 2, 1, 2, 4, 3, 2])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=2)
    with collecting(Explanation()) as report:
        got = torch.compile(loss_fn, backend=fusec.torch.backend, dynamic=False)(logits, target)
        (g,) = torch.autograd.grad(got, logits)
    want = loss_fn(logits, target)
    (w,) = torch.autograd.grad(want, logits)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(g, w)
    assert not [f for f in report.fallbacks if "masked_fill" in f[1]], str(report)


def test_compile_mode_is_accepted_quietly_and_options_are_named(capfd):
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
    x = torch.randn(4, 5)
    for mode in ("reduce-overhead", "max-autotune"):
        torch._dynamo.reset()
        got = torch.compile(model, backend=fusec.torch.backend, mode=mode)(x)
        torch.testing.assert_close(got, model(x))
    assert "ignoring extra kwargs" not in capfd.readouterr().err
    torch._dynamo.reset()
    with pytest.warns(UserWarning, match=r"no options; ignoring \['max_autotune'\]"):
        got = torch.compile(model, backend=fusec.torch.backend, options={"max_autotune": True})(x)
    torch.testing.assert_close(got, model(x))


def test_an_unknown_fusec_log_value_is_named_once(monkeypatch, capfd):
    monkeypatch.setenv("FUSEC_LOG", "fusoin,ir")
    torch._dynamo.reset()
    fn = torch.compile(lambda x: (x * 2).exp(), backend=fusec.torch.backend)
    x = torch.randn(5)
    with pytest.warns(UserWarning, match="unknown fusoin; it takes fusion, ir") as record:
        torch.testing.assert_close(fn(x), (x * 2).exp())
    assert len([w for w in record if "FUSEC_LOG" in str(w.message)]) == 1
    assert "graph fx_" in capfd.readouterr().err  # the kinds it knows still log


def test_dropout_in_training_backward_is_one_fusec_graph_and_matches_eager():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.GELU(approximate="tanh"), nn.Dropout(0.3), nn.Linear(16, 4)
    )
    reference = copy.deepcopy(model)
    x = torch.randn(5, 8)
    with collecting(Explanation()) as report:
        torch.manual_seed(1)  # the same dropout mask in both runs
        got = torch.compile(model, backend=fusec.torch.backend, dynamic=False)(x)
        got.sum().backward()
    torch.manual_seed(1)
    want = reference(x)
    want.sum().backward()
    torch.testing.assert_close(got, want)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)
    backward = [g for g in report if g.kind == "backward"]
    assert backward and not backward[0].fallbacks, str(report)  # the RNG stays in the forward
