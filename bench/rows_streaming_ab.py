#!/usr/bin/env python
"""A/B of non-temporal stores in row and column groups' full-shape outputs:

    python bench/rows_streaming_ab.py [--rounds 40] [--only layernorm] [--shapes 4096x1024]

`nt`: the kernels fusec now generates (codegen/streaming.py: an output of
nontemporal_min_bytes or more whose rows all start a cache line is stored
non-temporally by the row reductions, row_reduction.py, and the column
groups' CPU layout, column_reduction.py); `plain`: the same graph compiled
under another name with both kernels' `_streams` patched off (ordinary
stores; the elementwise kernels unchanged). NumPy in and out (fusec's own
outputs, line-aligned, fresh each call), and into one preallocated output
(`out=`) where the call takes one; interleaved in one process, each call
after a 64 MiB cache flush (--warm: none, as calls in a loop); ms median and p20, and the plain/nt ratios,
beside an A/A ratio (a second copy of the plain kernels): the noise floor
(a bench that ran the cases without it once showed 1.2x where both took the
same path).
Cases: softmax (it keeps its stash, so no non-temporal stores: a check that
nothing changed), log_softmax's backward (vjp), LayerNorm's forward, and the
grad-light training step of bench/shapes.py (value_and_grad with a [B, D]
cotangent: dx is the column group's full-shape output).
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
from fusec.codegen.row_reduction import RowReductionKernel  # noqa: E402
from fusec.runtime.memory import empty  # noqa: E402

LAYER_NORM = """
    m = mean(x, axis=1, keepdim=true)
    d = x - m
    v = mean(d * d, axis=1, keepdim=true)
    return d * rsqrt(v + 1e-5) * w + b"""
XWB = "x: f32[B, N], w: f32[N], b: f32[N]"
# name: (parameters, body, call: "fwd", "vjp" or "vag" (value_and_grad))
CASES = {
    "softmax": ("x: f32[B, N]", "return softmax(x, axis=1)", "fwd"),
    "log_softmax-bwd": ("x: f32[B, N]", "return log_softmax(x, axis=1)", "vjp"),
    "layernorm-fwd": (XWB, LAYER_NORM, "fwd"),
    "grad-light": (XWB, "return relu((x * w + b) * 0.5 - 0.125)", "vag"),
}
SHAPES = [(4096, 256), (4096, 1024), (4096, 4096)]


def compiled(case: str, tag: str, streams: bool, copy: str = ""):
    params, body, call = CASES[case]
    name = f"{case.replace('-', '_')}_{tag}_{'nt' if streams else 'plain'}{copy}"
    originals = RowReductionKernel._streams, ColumnSumKernel._streams
    if not streams:
        RowReductionKernel._streams = lambda self: False
        ColumnSumKernel._streams = lambda self, w: False
    try:
        g = fusec.compile(f"graph {name}({params}) {{ {body} }}", grad=call != "fwd")[name]
        g.build()
    finally:
        RowReductionKernel._streams, ColumnSumKernel._streams = originals
    return g


def calls(g, call: str, arrays: list, ct):
    """The timed call, and one whose result is compared."""
    if call == "fwd":
        return lambda: g(*arrays), lambda: g(*arrays)
    if call == "vjp":
        return lambda: g.vjp(*arrays, grad_outputs=ct), lambda: g.vjp(*arrays, grad_outputs=ct)["x"]
    run = lambda: g.value_and_grad(*arrays, grad_outputs=ct)  # noqa: E731
    return run, lambda: run()[1]["x"]


def time_case(case: str, rows: int, cols: int, rounds: int, rng, flush) -> str:
    call = CASES[case][2]
    tag = f"{rows}x{cols}"
    new, old = compiled(case, tag, True), compiled(case, tag, False)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    arrays = [x] + [rng.standard_normal(cols).astype(np.float32) for _ in range(2)]
    arrays = arrays if CASES[case][0] == XWB else arrays[:1]
    ct = rng.standard_normal((rows, cols)).astype(np.float32)
    (nt, nt_result), (plain, plain_result) = (
        calls(new, call, arrays, ct),
        calls(old, call, arrays, ct),
    )
    np.testing.assert_array_equal(nt_result(), plain_result())
    # a second copy of the plain kernels (A/A): the noise floor of the ratios
    again = calls(compiled(case, tag, False, "_again"), call, arrays, ct)[0]
    methods = {"nt": nt, "plain": plain, "plain again": again}
    if call == "fwd":  # into one preallocated, line-aligned output
        dst = empty((rows, cols), np.float32)
        methods["nt out="] = lambda: new(*arrays, out=dst)
        methods["plain out="] = lambda: old(*arrays, out=dst)
    samples = run_row(methods, 2, rounds, flush)
    mid = {k: np.median(v) * 1e3 for k, v in samples.items()}
    p20 = {k: np.percentile(v, 20) * 1e3 for k, v in samples.items()}
    line = f"{case}-{tag}:"
    for kind in ("", " out="):
        a, b = f"nt{kind}", f"plain{kind}"
        if a in mid:
            line += (
                f" | {a} {mid[a]:.3f} {b} {mid[b]:.3f} (p20 {p20[a]:.3f} / {p20[b]:.3f})"
                f" plain/nt median {mid[b] / mid[a]:.2f}x p20 {p20[b] / p20[a]:.2f}x"
            )
    return line + f" | A/A plain again/plain median {mid['plain again'] / mid['plain']:.2f}x"


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
