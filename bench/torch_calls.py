#!/usr/bin/env python
"""What a call with PyTorch tensors costs over the kernel, in one run.

    python bench/torch_calls.py            # light chain at 2^10, 2^16, 2^20
    python bench/torch_calls.py 10 12      # at 2^10 and 2^12

Rows (microseconds, medians of interleaved rounds of tight loops; each round
times every row once, so drift on a shared machine hits them alike):

  graph, NumPy, out=        the fusec graph called with NumPy arrays into
                            preallocated outputs: the launch and the wait
  graph, NumPy              the same with new outputs
  graph, tensors            the same graph called with the CPU tensors
  Dynamo floor              torch.compile with a backend whose function
                            returns a preallocated tensor: Dynamo's frame
                            and guards alone
  fusec / inductor fwd      torch.compile(light chain), no grad
  fusec / inductor f+b      forward, then torch.autograd.grad w.r.t. x and y
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import fusec  # noqa: E402
import fusec.torch  # noqa: E402

LIGHT = """graph light(x: f32[n], y: f32[n]) {
  a = clamp(relu(x * y + 1.0), min=-2.0, max=2.0)
  return clamp(relu(a * 0.5 + y), min=-2.0, max=2.0)
}"""


def light(x, y):
    a = torch.clamp(torch.relu(x * y + 1.0), -2.0, 2.0)
    return torch.clamp(torch.relu(a * 0.5 + y), -2.0, 2.0)


def cases(n: int, graph) -> dict:
    """(callable, needs grad) per row."""
    gen = torch.Generator().manual_seed(n)
    x, y, ct = (torch.randn(n, generator=gen) for _ in range(3))
    xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
    xn, yn, out = x.numpy(), y.numpy(), torch.empty(n).numpy()
    kept = torch.empty(n)

    def floor_backend(gm, example_inputs):
        return lambda *args: (kept,)

    rows = {
        "graph, NumPy, out=": (lambda: graph(xn, yn, out=out), False),
        "graph, NumPy": (lambda: graph(xn, yn), False),
        "graph, tensors": (lambda: graph(x, y), False),
    }
    floor = torch.compile(light, backend=floor_backend, dynamic=False)
    rows["Dynamo floor"] = (lambda: floor(x, y), False)
    for name, backend in (("fusec", fusec.torch.backend), ("inductor", "inductor")):
        fwd = torch.compile(light, backend=backend, dynamic=False)
        fb = torch.compile(light, backend=backend, dynamic=False)
        rows[f"{name} fwd"] = (lambda f=fwd: f(x, y), False)
        rows[f"{name} f+b"] = (lambda f=fb: torch.autograd.grad(f(xg, yg), (xg, yg), ct), True)
    return rows


def timed(fn, grad: bool, reps: int) -> float:
    times = []
    with torch.set_grad_enabled(grad):
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main():
    exponents = [int(a) for a in sys.argv[1:]] or [10, 16, 20]
    # each size and grad mode is a recompile of `light`: past Dynamo's default
    # limit of 8 it would silently run eagerly
    torch._dynamo.config.recompile_limit = 1000
    torch._dynamo.config.accumulated_recompile_limit = 10000
    graph = fusec.compile(LIGHT)["light"]
    load = open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {load}")
    for e in exponents:
        rows = cases(1 << e, graph)
        reps = 1000 if e <= 16 else 200
        for fn, grad in rows.values():
            timed(fn, grad, 20)  # compile, warm up
        times = {name: [] for name in rows}
        for _ in range(5):
            for name, (fn, grad) in rows.items():
                time.sleep(0.01)
                times[name].append(timed(fn, grad, reps))
        print(f"light chain 2^{e}, us (median of 5 rounds of {reps} calls)")
        for name, t in times.items():
            print(f"  {name:<20}{statistics.median(t):>10.1f}")


if __name__ == "__main__":
    main()
