#!/usr/bin/env python
"""What a backend's call costs right after another backend's, on the light chain.

    python bench/torch_switching.py            # 2^20 floats, forward
    python bench/torch_switching.py 22 f+b     # 2^22 floats, forward and backward

Prints a matrix: the row's backend timed right after one call of the
column's backend (medians of interleaved rounds; the last column, after
10 ms idle and 2 ms of its own calls: steady state), and, for each backend, the
CPU time the process burns in the 10 ms after one call while the caller
sleeps: threads spinning for more work, which hold the cores the next
backend's threads need. PyTorch's OpenMP pool (eager, Inductor) and the
OpenCL runtime's pool (fusec) are two pools; eager and Inductor share one.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import fusec.torch  # noqa: E402


def light(x, y):
    a = torch.clamp(torch.relu(x * y + 1.0), -2.0, 2.0)
    return torch.clamp(torch.relu(a * 0.5 + y), -2.0, 2.0)


def main():
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    mode = sys.argv[2] if len(sys.argv) > 2 else "fwd"
    torch.set_num_threads(2)
    n = 1 << k
    gen = torch.Generator().manual_seed(0)
    x, y, ct = (torch.randn(n, generator=gen) for _ in range(3))
    xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
    backends = {
        "fusec": torch.compile(light, backend=fusec.torch.backend, dynamic=False),
        "inductor": torch.compile(light, backend="inductor", dynamic=False),
        "eager": light,
    }

    def call(f):
        if mode == "fwd":
            with torch.no_grad():
                return f(x, y)
        return torch.autograd.grad(f(xg, yg), (xg, yg), ct)

    for f in backends.values():
        call(f)
        call(f)
    columns = [*backends, "steady"]
    times = {(a, b): [] for a in columns for b in backends}
    for _ in range(30):
        for before in columns:
            for timed in backends:
                if before == "steady":  # as bench/torch_backend.py times by default
                    time.sleep(0.01)
                    warm = time.perf_counter() + 0.002
                    call(backends[timed])
                    while time.perf_counter() < warm:
                        call(backends[timed])
                else:
                    call(backends[before])
                t = time.perf_counter()
                call(backends[timed])
                times[(before, timed)].append(time.perf_counter() - t)
    print(
        f"light chain {mode} 2^{k}, ms: the row's backend right after one call of the "
        "column's (steady: after 10 ms idle and 2 ms of its own calls)"
    )
    print(" " * 10 + "".join(f"{b:>10}" for b in columns))
    for timed in backends:
        cells = "".join(f"{statistics.median(times[(b, timed)]) * 1e3:10.3f}" for b in columns)
        print(f"{timed:<10}{cells}")
    for name, f in backends.items():
        spun = []
        for _ in range(15):
            call(f)
            c = time.process_time()
            time.sleep(0.01)
            spun.append(time.process_time() - c)
        print(f"CPU burnt in the 10 ms after a {name} call: {statistics.median(spun) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
