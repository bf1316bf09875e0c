"""The examples run, and the training loop follows PyTorch's losses step by step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import fusec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_file_compiles_with_gradients():
    for path in sorted(EXAMPLES.glob("*.ir")):
        prog = fusec.compile(path, grad=True)
        assert prog.graphs, path


def test_mlp_forward_is_two_kernels_and_matches_numpy():
    g = fusec.compile(EXAMPLES / "mlp.ir")["mlp"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 784)).astype(np.float32)
    w1 = (rng.standard_normal((256, 784)) / 28).astype(np.float32)
    b1 = rng.standard_normal(256).astype(np.float32)
    w2 = (rng.standard_normal((10, 256)) / 16).astype(np.float32)
    b2 = rng.standard_normal(10).astype(np.float32)
    want = np.maximum(x @ w1.T + b1, 0) @ w2.T + b2
    np.testing.assert_allclose(g(x, w1, b1, w2, b2), want, rtol=1e-4, atol=1e-4)
    assert len(g.kernels) == 2


def test_sgd_through_fusec_follows_torch_step_by_step():
    pytest.importorskip("torch")
    train = load("train_mlp")
    weights = train.init(np.random.default_rng(0))
    data = list(train.batches(np.random.default_rng(1), 6, 16))
    ours = list(train.fusec_losses(weights, data, 0.1))
    theirs = list(train.torch_losses(weights, data, 0.1))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    # it learns: one batch seen again and again is fitted
    fitted = list(train.fusec_losses(weights, data[:1] * 6, 0.1))
    assert fitted[-1] < 0.5 * fitted[0]
