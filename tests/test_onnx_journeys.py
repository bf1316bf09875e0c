"""Models a PyTorch user exports with `torch.onnx.export(..., dynamo=False)`
and imports with `fusec.from_onnx`: BatchNorm1d (eval), LayerNorm and Flatten,
against onnx.reference.ReferenceEvaluator at batch sizes 1, 7 and 1023."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx.reference import ReferenceEvaluator  # noqa: E402

import fusec  # noqa: E402

nn = torch.nn


def exported(model, example, path):
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
        )
    return str(path)


def batchnorm_net():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.1))
    bn = net[2]  # running statistics of a trained model, not the defaults
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5), bn.bias.data.uniform_(-0.5, 0.5)
    return net, (3, 6)


def layernorm_net():
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3)), (3, 6)


def channels_net():  # BatchNorm1d over [N, C, L]: the statistics broadcast along axis 1
    torch.manual_seed(6)
    net = nn.Sequential(nn.BatchNorm1d(4), nn.Tanh())
    net[0].running_mean.uniform_(-1, 1), net[0].running_var.uniform_(0.5, 2)
    return net, (2, 4, 5)


def unit_axis_net():  # Flatten of [N, 1, D] drops the 1 (a squeeze)
    torch.manual_seed(7)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 3), nn.Sigmoid()), (3, 1, 6)


@pytest.mark.parametrize("make", [batchnorm_net, layernorm_net, channels_net, unit_axis_net])
def test_exported_normalizations_import_and_match_the_reference(make, tmp_path):
    net, shape = make()
    path = exported(net, torch.randn(*shape), tmp_path / "m.onnx")
    prog = fusec.from_onnx(path)
    graph, reference = prog[prog.graphs[0]], ReferenceEvaluator(path)
    for batch in (1, 7, 1023):
        x = np.random.default_rng(batch).standard_normal((batch, *shape[1:])).astype(np.float32)
        want = reference.run(None, {"x": x})[0]
        np.testing.assert_allclose(graph(x), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(graph(x), net(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_a_flatten_that_merges_dimensions_names_the_node(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    path = exported(net, torch.randn(2, 3, 4), tmp_path / "m.onnx")
    with pytest.raises(fusec.onnx.OnnxImportError, match=r"\(Flatten\): it merges dimensions"):
        fusec.from_onnx(path)
