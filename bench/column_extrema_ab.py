#!/usr/bin/env python
"""A/B of max and min over columns on CPUs, in one process:

    python bench/column_extrema_ab.py [--rounds 60] [--only 4096x4096]

`rows`: the layout fusec now gives a float max/min over leading axes on a
CPU (codegen/column_rows.py: each work-item streams whole rows of a block of
columns into an accumulator row of its own); `vector`: reduction.py's older
loop (a work-item per vector of columns, down a chunk of rows), forced by
compiling the same graph under another name with `_streams_rows` patched off.
Cases: max and min of x, and max of x * w (w: f32[N], read once per column
vector by the new layout). Each is timed device-resident (`dev`: pyopencl arrays in and out) and NumPy
in / NumPy out (`e2e`), beside torch.amax (2 threads), NumPy and a copy
kernel moving the same bytes (input read + output written), interleaved, each
call after a 64 MiB cache flush; ms 20th percentile / median.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elementwise import CopyKernels, run_row  # noqa: E402
from shapes import cache_flush, copy_buffers  # noqa: E402

import fusec  # noqa: E402
from fusec.codegen import column_rows  # noqa: E402

SHAPES = [(4096, 1024), (4096, 4096)]
# case: (reduction, prologue). `xw`: x * w with w: f32[N] (a scale of the
# columns' shape, which the new layout reads once per column vector)
CASES = [("max", ""), ("min", ""), ("max", "xw")]


def compiled(op: str, pro: str, tag: str, streams: bool):
    """The graph, built and run once (its kernels and launches made) with the layout chosen."""
    name = f"{op}{pro}_{tag}_{'rows' if streams else 'vector'}"
    params, value = ("x: f32[B, N], w: f32[N]", "x * w") if pro else ("x: f32[B, N]", "x")
    original = column_rows.StreamedColumns._streams_rows
    if not streams:
        column_rows.StreamedColumns._streams_rows = lambda self: False
    try:
        g = fusec.compile(f"graph {name}({params}) {{ return {op}({value}, axis=0) }}")[name]
        g.build()
        g(*[np.zeros((3, 5), np.float32), np.zeros(5, np.float32)][: 2 if pro else 1])
    finally:
        column_rows.StreamedColumns._streams_rows = original
    return g


def time_case(op, pro, rows, cols, rounds, rng, flush, copier):
    import pyopencl.array as cla
    import torch

    tag = f"{rows}x{cols}"
    new, old = compiled(op, pro, tag, True), compiled(op, pro, tag, False)
    assert "o0 = (t % blocks)" in new.source and "o0 = (t % blocks)" not in old.source
    queue = new.runtime.queue
    copier = copier or CopyKernels(queue.context, queue)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    x[rows // 3, cols // 2] = np.nan  # NaN propagates: checked below
    arrays = [x, rng.standard_normal(cols).astype(np.float32)][: 2 if pro else 1]
    devs, tens = [cla.to_device(queue, a) for a in arrays], [torch.from_numpy(a) for a in arrays]
    np_f, torch_f = getattr(np, op), getattr(torch, f"a{op}")
    want = np_f(x * arrays[1] if pro else x, axis=0)
    for g in (new, old):
        np.testing.assert_array_equal(g(*arrays), want)
        np.testing.assert_array_equal(g(*devs).get(queue), want)

    def dev(g):
        def run():
            g(*devs)
            queue.finish()

        return run

    n_copy = -(-(sum(a.nbytes for a in arrays) + want.nbytes) // 8) // 8 * 8
    src, dst = copy_buffers(queue, n_copy, rng)
    methods = {
        "rows dev": dev(new),
        "vector dev": dev(old),
        "rows e2e": lambda: new(*arrays),
        "vector e2e": lambda: old(*arrays),
        "torch": lambda: torch_f(tens[0] * tens[1] if pro else tens[0], 0),
        "numpy": lambda: np_f(x * arrays[1] if pro else x, axis=0),
    }
    for name, fn in copier.layouts(src.data, dst.data, n_copy).items():
        methods["copy:" + name] = fn
    samples = run_row(methods, 2, rounds, flush)
    p20 = {k: np.percentile(v, 20) * 1e3 for k, v in samples.items()}
    mid = {k: np.median(v) * 1e3 for k, v in samples.items()}
    copy = min((k for k in p20 if k.startswith("copy:")), key=p20.get)
    p20["copy"], mid["copy"] = p20[copy], mid[copy]  # the fastest copy layout's
    names = [k for k in methods if not k.startswith("copy:")] + ["copy"]
    print(
        f"{op}-cols{'-' + pro if pro else ''}-{tag}: "
        + "  ".join(f"{k} {p20[k]:.3f}/{mid[k]:.3f}" for k in names)
        + f"  | vector/rows dev p20 {p20['vector dev'] / p20['rows dev']:.2f}x"
        f", e2e {p20['vector e2e'] / p20['rows e2e']:.2f}x"
        f"; copy/rows dev {p20['copy'] / p20['rows dev']:.2f}"
        f"; best(torch, numpy)/rows e2e {min(p20['torch'], p20['numpy']) / p20['rows e2e']:.2f}x",
        flush=True,
    )
    return copier


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/elementwise.py
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--only", default="", help="cases whose name contains this word")
    args = ap.parse_args()
    torch.set_num_threads(2)
    flush, rng = cache_flush(), np.random.default_rng(0)
    print(f"load average at start {os.getloadavg()[0]:.2f}; ms p20/median", flush=True)
    copier = None
    for op, pro in CASES:
        for rows, cols in SHAPES:
            if args.only in f"{op}-cols{'-' + pro if pro else ''}-{rows}x{cols}":
                copier = time_case(op, pro, rows, cols, args.rounds, rng, flush, copier)


if __name__ == "__main__":
    main()
