#!/usr/bin/env python
"""Where a reduction's end-to-end call spends its time beyond the kernel
(issue 15 item 2), measured in one process, interleaved, each call after a
64 MiB cache flush (as bench/shapes.py times them):

    python bench/reduction_launches.py [--rounds 200]

1. A tiny call's fixed cost, layer by layer: the whole call (`g(x)`), the
   launcher's fast path alone, `fast_calls.run`, the bare set-args + launch +
   clFinish of the same kernel, clFinish on an empty queue, and NumPy's and
   torch's own tiny reductions.
2. What the second launch (the finish of a column or full sum) costs: the
   same graph's recorded fast-path call with the finish launch dropped (its
   results are then wrong: timing only), against the call as it is. This is
   the most a one-launch reduction could save.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import pyopencl as cl

import fusec
from fusec.runtime import fast_calls


def timed(methods: dict, rounds: int, flush) -> dict:
    """Median and 20th percentile (ms) of each method, in alternating order per round."""
    ts = {k: [] for k in methods}
    items = list(methods.items())
    for r in range(rounds):
        for name, fn in items if r % 2 else items[::-1]:
            flush()
            t0 = time.perf_counter()
            fn()
            ts[name].append(time.perf_counter() - t0)
    return {k: (np.median(v) * 1e3, np.percentile(v, 20) * 1e3) for k, v in ts.items()}


def show(title: str, res: dict) -> None:
    print(title + ": " + "  ".join(f"{k} {m:.4f}/{q:.4f}" for k, (m, q) in res.items()), flush=True)


def fixed_costs(rounds: int, flush) -> None:
    import torch

    torch.set_num_threads(2)
    g = fusec.compile("graph tiny(x: f32[B, N]) { return sum(x, axis=1) }")["tiny"]
    x = np.ones((8, 16), np.float32)
    xt = torch.from_numpy(x)
    g(x), g(x)
    launcher = g._launcher
    (entry,) = launcher._local.fast.values()
    queue = launcher.runtime.queue
    ((kernel, gsize, lsize, sets),) = entry.launches
    out = np.empty(8, np.float32)
    (x_at,) = [i for i, is_out, _ in sets if not is_out]
    (out_at,) = [i for i, is_out, _ in sets if is_out]

    def bare():
        kernel.set_arg(x_at, cl.SVM(x))
        kernel.set_arg(out_at, cl.SVM(out))
        cl.enqueue_nd_range_kernel(queue, kernel, gsize, lsize)
        queue.finish()

    methods = {
        "call": lambda: g(x),
        "launcher.fast_call": lambda: launcher.fast_call((x,)),
        "fast_calls.run": lambda: fast_calls.run(entry, (x,), queue),
        "set+launch+finish": bare,
        "finish(empty)": queue.finish,
        "numpy": lambda: x.sum(1),
        "torch": lambda: xt.sum(1),
    }
    show("fixed cost, 8 x 16 row sum, ms median/p20", timed(methods, rounds, flush))


def finish_launch(rounds: int, flush) -> None:
    exprs = {"cols": "sum(x, axis=0)", "full": "sum(sum(x, axis=1), axis=0)"}
    for tag, expr in exprs.items():
        for shape in [(4096, 1024), (4096, 4096)]:
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            name = f"{tag}{shape[1]}"
            both = fusec.compile(f"graph a{name}(x: f32[B, N]) {{ return {expr} }}")[f"a{name}"]
            one = fusec.compile(f"graph b{name}(x: f32[B, N]) {{ return {expr} }}")[f"b{name}"]
            for g in (both, one):
                g(x), g(x)
            fast = one._launcher._local.fast
            ((key, entry),) = fast.items()
            assert len(entry.launches) == 2, "expected partial + finish"
            fast[key] = dataclasses.replace(entry, launches=entry.launches[:1])
            calls = {"partial+finish": lambda g=both, x=x: g(x), "partial": lambda g=one, x=x: g(x)}
            res = timed(calls, rounds, flush)
            show(f"{tag} {shape[0]}x{shape[1]}, ms median/p20", res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    buf = np.ones((64 << 20) // 8)
    print(f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    fixed_costs(args.rounds, buf.sum)
    finish_launch(args.rounds, buf.sum)


if __name__ == "__main__":
    main()
