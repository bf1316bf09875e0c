#!/usr/bin/env python
"""The torch call path of an older fusec against this one, in one process, with Inductor.

    git -C . archive <old-commit> fusec grammar | tar -x -C /tmp/old
    python bench/torch_ab.py /tmp/old 10 16 20

The old tree's `fusec` package is imported as `fusec_old` (its imports are
relative), so both run side by side: the light chain through each fusec
backend and Inductor, forward (no grad) and forward+backward, and the plain
graph call with tensors, at 2^k floats. Microseconds, medians of 5 rounds
of tight loops, rows interleaved within each round (a loaded machine's drift
hits them alike).
"""

from __future__ import annotations

import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch_calls import LIGHT, light, timed  # noqa: E402

import fusec  # noqa: E402
import fusec.torch  # noqa: E402


def import_old(tree: Path):
    """The old tree's fusec package as `fusec_old` (and its grammar next to it)."""
    root = Path(tempfile.mkdtemp(prefix="fusec-old-"))
    shutil.copytree(tree / "fusec", root / "fusec_old")
    shutil.copytree(tree / "grammar", root / "grammar")
    sys.path.insert(0, str(root))
    return importlib.import_module("fusec_old"), importlib.import_module("fusec_old.torch")


def cases(n: int, old, old_torch) -> dict:
    gen = torch.Generator().manual_seed(n)
    x, y, ct = (torch.randn(n, generator=gen) for _ in range(3))
    xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
    backends = {"old": old_torch.backend, "new": fusec.torch.backend, "inductor": "inductor"}
    rows = {}
    for name, b in backends.items():
        fwd = torch.compile(light, backend=b, dynamic=False)
        rows[f"fwd {name}"] = (lambda f=fwd: f(x, y), False)
    for name, b in backends.items():
        fb = torch.compile(light, backend=b, dynamic=False)
        rows[f"f+b {name}"] = (lambda f=fb: torch.autograd.grad(f(xg, yg), (xg, yg), ct), True)
    for name, module in (("old", old), ("new", fusec)):
        g = module.compile(LIGHT)["light"]
        rows[f"graph, tensors, {name}"] = (lambda g=g: g(x, y), False)
    return rows


def main():
    old, old_torch = import_old(Path(sys.argv[1]))
    torch._dynamo.config.recompile_limit = 1000  # every row recompiles `light`
    torch._dynamo.config.accumulated_recompile_limit = 10000
    for e in [int(a) for a in sys.argv[2:]] or [10, 16, 20]:
        rows = cases(1 << e, old, old_torch)
        reps = 2000 if e <= 16 else 300
        for fn, grad in rows.values():
            timed(fn, grad, 30)
        times = {name: [] for name in rows}
        for _ in range(5):
            for name, (fn, grad) in rows.items():
                time.sleep(0.02)
                times[name].append(timed(fn, grad, reps))
        load = open("/proc/loadavg").read().split()[0]
        print(f"light chain 2^{e}, us (medians of 5 interleaved rounds), load {load}")
        for name, t in times.items():
            rounds = " ".join(f"{v:.1f}" for v in t)
            print(f"  {name:<22}{statistics.median(t):>9.1f}   rounds {rounds}")


if __name__ == "__main__":
    main()
