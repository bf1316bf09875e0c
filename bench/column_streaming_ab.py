#!/usr/bin/env python
"""A/B of non-temporal stores in a column group's full-shape outputs, in one process:

    python bench/column_streaming_ab.py [--rounds 40] [--only loss] [--shapes 4096x1024] [--warm]

`nt`: the kernels fusec now generates (codegen/streaming.py: column_rows.py's
CPU layout stores a column group's full-shape outputs non-temporally where
they pass nontemporal_min_bytes and every row starts a cache line);
`plain`: the same graph compiled under another name with
ColumnSumKernel._streams patched off (ordinary stores; the elementwise
kernels unchanged). Cases: bench/shapes.py's grad-light training step,
value_and_grad with a [B, D] cotangent and with a scalar loss (dx is the
column group's full-shape output, written while dw and db are summed).
NumPy in and out (fusec's own outputs), interleaved, each call after a 64
MiB cache flush (--warm: none, as calls in a loop); ms median and p20, the
plain/nt ratios, beside an A/A ratio (a second copy of the plain kernels):
the noise floor. The row reductions were measured the same way before
they were left with ordinary stores (git show 45bbf28:bench/rows_streaming_ab.py).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elementwise import run_row  # noqa: E402
from shapes import cache_flush  # noqa: E402

import fusec  # noqa: E402
from fusec.codegen.column_reduction import ColumnSumKernel  # noqa: E402

XWB = "x: f32[B, N], w: f32[N], b: f32[N]"
LIGHT = "relu((x * w + b) * 0.5 - 0.125)"
# name: (parameters, body, call: "vag" (value_and_grad, [B, N] cotangent) or "loss")
CASES = {
    "grad-light": (XWB, f"return {LIGHT}", "vag"),
    "grad-light-loss": (XWB, f"return sum(sum({LIGHT}, axis=1), axis=0)", "loss"),
}
SHAPES = [(4096, 256), (4096, 1024), (4096, 4096)]


def compiled(case: str, tag: str, streams: bool, copy: str = ""):
    params, body, call = CASES[case]
    name = f"{case.replace('-', '_')}_{tag}_{'nt' if streams else 'plain'}{copy}"
    original = ColumnSumKernel._streams
    if not streams:
        ColumnSumKernel._streams = lambda self, w: False
    try:
        g = fusec.compile(f"graph {name}({params}) {{ {body} }}", grad=True)[name]
        g.build()
    finally:
        ColumnSumKernel._streams = original
    return g


def calls(g, call: str, arrays: list, ct):
    """The timed call, and one whose result (dx) is compared."""
    kw = {"grad_outputs": ct} if call == "vag" else {}
    run = lambda: g.value_and_grad(*arrays, **kw)  # noqa: E731
    return run, lambda: run()[1]["x"]


def time_case(case: str, rows: int, cols: int, rounds: int, rng, flush) -> str:
    tag = f"{rows}x{cols}"
    new, old = compiled(case, tag, True), compiled(case, tag, False)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    arrays = [x] + [rng.standard_normal(cols).astype(np.float32) for _ in range(2)]
    ct = rng.standard_normal((rows, cols)).astype(np.float32)
    call = CASES[case][2]
    (nt, nt_dx), (plain, plain_dx) = calls(new, call, arrays, ct), calls(old, call, arrays, ct)
    np.testing.assert_array_equal(nt_dx(), plain_dx())
    # a second copy of the plain kernels (A/A): the noise floor of the ratios
    again = calls(compiled(case, tag, False, "_again"), call, arrays, ct)[0]
    samples = run_row({"nt": nt, "plain": plain, "plain again": again}, 2, rounds, flush)
    mid = {k: np.median(v) * 1e3 for k, v in samples.items()}
    p20 = {k: np.percentile(v, 20) * 1e3 for k, v in samples.items()}
    return (
        f"{case}-{tag}: nt {mid['nt']:.3f} plain {mid['plain']:.3f} (p20 {p20['nt']:.3f} /"
        f" {p20['plain']:.3f}) plain/nt median {mid['plain'] / mid['nt']:.2f}x"
        f" p20 {p20['plain'] / p20['nt']:.2f}x"
        f" | A/A plain again/plain median {mid['plain again'] / mid['plain']:.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--only", default="", help="cases whose name contains this word")
    ap.add_argument("--shapes", default="", help="rows x columns, comma-separated")
    ap.add_argument("--warm", action="store_true", help="no cache flush: calls in a loop")
    args = ap.parse_args()
    shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",") if s] or SHAPES
    flush, rng = None if args.warm else cache_flush(), np.random.default_rng(0)
    print(f"load average at start {os.getloadavg()[0]:.2f}; ms median", flush=True)
    for case in CASES:
        for rows, cols in shapes:
            if args.only in f"{case}-{rows}x{cols}":
                print(time_case(case, rows, cols, args.rounds, rng, flush), flush=True)


if __name__ == "__main__":
    main()
