#!/usr/bin/env python
"""SGD on examples/mlp.ir's network, through fusec, beside the same steps in PyTorch.

    python examples/train_mlp.py [--steps 20] [--batch 64] [--lr 0.1]

Both start from the same weights and see the same batches (synthetic data:
784 features, 10 classes, labels from a fixed random linear teacher); each
step prints both losses, which agree to float32 rounding. fusec computes the
loss and every weight's gradient in its forward+backward kernels
(`value_and_grad`); the update w -= lr * dw is NumPy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import fusec

HERE = Path(__file__).resolve().parent
NAMES = ["w1", "b1", "w2", "b2"]


def init(rng):
    """PyTorch's default nn.Linear initialisation: uniform in +-1/sqrt(fan_in)."""
    w1 = rng.uniform(-1, 1, (256, 784)) / np.sqrt(784)
    b1 = rng.uniform(-1, 1, 256) / np.sqrt(784)
    w2 = rng.uniform(-1, 1, (10, 256)) / np.sqrt(256)
    b2 = rng.uniform(-1, 1, 10) / np.sqrt(256)
    return {k: v.astype(np.float32) for k, v in zip(NAMES, (w1, b1, w2, b2), strict=True)}


def batches(rng, steps, batch):
    teacher = rng.standard_normal((784, 10)).astype(np.float32)
    for _ in range(steps):
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        t = np.eye(10, dtype=np.float32)[np.argmax(x @ teacher, axis=1)]
        yield x, t


def torch_losses(weights, data, lr):
    import torch

    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    F = torch.nn.functional
    for x, t in data:
        h = torch.relu(F.linear(torch.tensor(x), params["w1"], params["b1"]))
        logits = F.linear(h, params["w2"], params["b2"])
        loss = -(torch.tensor(t) * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
        loss.backward()
        yield float(loss.detach())
        with torch.no_grad():
            for p in params.values():
                p -= lr * p.grad
                p.grad = None


def fusec_losses(weights, data, lr):
    g = fusec.compile(HERE / "mlp.ir", grad=True)["mlp_loss"]
    weights = {k: v.copy() for k, v in weights.items()}
    for x, t in data:
        loss, grads = g.value_and_grad(x, t, **weights)
        for k in NAMES:
            weights[k] -= np.float32(lr) * grads[k]
        yield float(loss)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.1)
    args = ap.parse_args(argv)
    weights = init(np.random.default_rng(0))
    data = list(batches(np.random.default_rng(1), args.steps, args.batch))
    ours = list(fusec_losses(weights, data, args.lr))
    try:
        theirs = list(torch_losses(weights, data, args.lr))
    except ImportError:
        theirs = [float("nan")] * len(ours)
    print(f"{'step':>4}  {'fusec loss':>12}  {'torch loss':>12}  {'rel. diff':>9}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        diff = abs(a - b) / max(abs(b), 1e-12)
        worst = max(worst, diff)
        print(f"{i:>4}  {a:>12.6f}  {b:>12.6f}  {diff:>9.2e}")
    print(f"largest relative difference: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
