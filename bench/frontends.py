#!/usr/bin/env python
"""fusec.evaluate against numexpr and NumPy, on five expressions, in one run.

    python bench/frontends.py              # n = 2^10, 2^12, ..., 2^24
    python bench/frontends.py --quick      # n = 2^10, 2^20
    python bench/frontends.py --rounds 9 --numexpr-threads 1
    python bench/frontends.py --floor      # 2^10 only: where fusec's time goes

Three float32 inputs a, b, c of n elements; host NumPy arrays in and out for
every method (fusec's host copies are included: this is what a NumPy user
calls). Each method is warmed up (fusec's build is not timed), then timed
once per round, the rounds interleaving the methods of a row so that drift in
a loaded machine hits them alike; the table shows medians and the ratios
numexpr/fusec and numpy/fusec (above 1: fusec is faster).

numexpr computes Python float constants in double: on float32 inputs
`0.1 * a` makes its result float64 (column `ne dtype`); fusec keeps float32.
The ONNX part of issue 12's benchmark is bench/onnx_mlp.py.

--floor: at 2^10 elements, `fusec.evaluate` against the compiled graph called
directly and against the graph's own kernel objects launched by raw PyOpenCL
(the host arrays passed in place as SVM, a new output, enqueue, finish: what
any OpenCL call costs on this runtime, with no fusec code in the way), with
NumPy and numexpr in the same interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numexpr
import numpy as np

import fusec

EXPRESSIONS = {
    "where(a > 0, a * b + c, 0.1 * a)": lambda a, b, c: np.where(
        a > 0, a * b + c, np.float32(0.1) * a
    ),
    "tanh(a * b + c)": lambda a, b, c: np.tanh(a * b + c),
    "exp(-a * a) * sin(b) + cos(c)": lambda a, b, c: np.exp(-a * a) * np.sin(b) + np.cos(c),
    "log1p(abs(a)) + sqrt(b * b + c * c)": lambda a, b, c: (
        np.log1p(np.abs(a)) + np.sqrt(b * b + c * c)
    ),
    "where((a > b) & (c < 0.5), arcsinh(a), tanh(b) ** 2)": lambda a, b, c: np.where(
        (a > b) & (c < np.float32(0.5)), np.arcsinh(a), np.tanh(b) ** 2
    ),
}


def timed(fn, rounds_inner: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds_inner):
        fn()
    return (time.perf_counter() - start) / rounds_inner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--floor", action="store_true", help="2^10 only: fusec's layers and raw OpenCL"
    )
    parser.add_argument(
        "--numexpr-threads",
        type=int,
        help="numexpr's thread count (default: its own, the CPU count)",
    )
    args = parser.parse_args()
    if args.numexpr_threads:
        numexpr.set_num_threads(args.numexpr_threads)
    sizes = [10, 20] if args.quick else list(range(10, 25, 2))
    rng = np.random.default_rng(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    runtime = fusec.compile("graph probe(x: f32[N]) { return x }").runtime
    print(
        f"python bench/frontends.py {' '.join(sys.argv[1:])}  ({time.strftime('%Y-%m-%d %H:%M')})"
    )
    print(f"device:   {runtime.device_names['name']} ({runtime.device_names['platform']})")
    print(
        f"host:     {platform.machine()}, {os.cpu_count()} CPUs, load average at start {load:.2f}"
    )
    print(
        f"versions: fusec {fusec.__version__}, numpy {np.__version__}, numexpr {numexpr.__version__}"
        f" ({numexpr.get_num_threads()} threads)"
    )
    print("time per call, median of rounds; ratios above 1 mean fusec is faster\n")
    if args.floor:
        floor_table(args.rounds, rng)
        return
    header = f"{'expression':54} {'n':>5} {'fusec':>10} {'numexpr':>10} {'numpy':>10} {'ne/fusec':>8} {'np/fusec':>8} {'ne dtype':>8}"
    print(header)
    print("-" * len(header))
    for log2n in sizes:
        n = 1 << log2n
        a, b, c = (rng.uniform(-2, 2, n).astype(np.float32) for _ in range(3))
        # enough calls per timing to last ~20 ms at small n
        inner = max(1, min(2000, (1 << 21) // n))
        for expr, numpy_fn in EXPRESSIONS.items():
            env = {"a": a, "b": b, "c": c}
            methods = {
                "fusec": lambda e=expr, env=env: fusec.evaluate(e, local_dict=env),
                "numexpr": lambda e=expr, env=env: numexpr.evaluate(e, local_dict=env),
                "numpy": lambda f=numpy_fn, env=env: f(**env),
            }
            results = {name: fn() for name, fn in methods.items()}  # warm-up, and a check
            err = np.max(
                np.abs(results["fusec"] - results["numpy"]) / (1 + np.abs(results["numpy"]))
            )
            if err > 1e-4:
                sys.exit(f"{expr} at n=2^{log2n}: fusec differs from NumPy by {err:.3g}")
            times = {name: [] for name in methods}
            for _ in range(args.rounds):
                for name, fn in methods.items():
                    times[name].append(timed(fn, inner))
            med = {name: statistics.median(t) for name, t in times.items()}
            print(
                f"{expr:54} {'2^' + str(log2n):>5} {fmt(med['fusec'])} {fmt(med['numexpr'])} {fmt(med['numpy'])}"
                f" {med['numexpr'] / med['fusec']:8.2f} {med['numpy'] / med['fusec']:8.2f}"
                f" {str(results['numexpr'].dtype):>8}",
                flush=True,
            )


def floor_table(rounds: int, rng) -> None:
    """fusec.evaluate, its graph, and the graph's kernels through raw PyOpenCL, at 2^10."""
    import pyopencl as cl

    from fusec.numpy.evaluate import _compiled

    n = 1 << 10
    a, b, c = (rng.uniform(-2, 2, n).astype(np.float32) for _ in range(3))
    env = {"a": a, "b": b, "c": c}
    cols = ["evaluate", "graph", "raw OpenCL", "numpy", "numexpr"]
    print(f"{'expression (n = 2^10)':54} {'launches':>8}" + "".join(f" {c:>10}" for c in cols))
    print("-" * (64 + 11 * len(cols)))
    for expr, numpy_fn in EXPRESSIONS.items():
        fusec.evaluate(expr, local_dict=env)
        names, function = _compiled(expr)
        arrays = [env[name] for name in names]
        graph = function._traced(list(names), arrays).graph
        graph(*arrays)  # recorded for the fast path: its launches are what raw OpenCL replays
        launcher = graph._launcher
        (fast,) = launcher._local.fast.values()
        queue = launcher.runtime.queue

        def raw(fast=fast, arrays=arrays, queue=queue):
            outputs = [np.empty(shape, dtype) for shape, dtype in fast.outputs]
            svm_in, svm_out = [cl.SVM(x) for x in arrays], [cl.SVM(o) for o in outputs]
            for kernel, global_size, local_size, sets in fast.launches:
                for index, is_output, i in sets:
                    kernel.set_arg(index, svm_out[i] if is_output else svm_in[i])
                cl.enqueue_nd_range_kernel(queue, kernel, global_size, local_size)
            queue.finish()
            return outputs[0]

        methods = {
            "evaluate": lambda e=expr: fusec.evaluate(e, local_dict=env),
            "graph": lambda g=graph, xs=arrays: g(*xs),
            "raw OpenCL": raw,
            "numpy": lambda f=numpy_fn: f(**env),
            "numexpr": lambda e=expr: numexpr.evaluate(e, local_dict=env),
        }
        np.testing.assert_allclose(raw(), methods["numpy"](), rtol=1e-4, atol=1e-5)
        times = {name: [] for name in methods}
        for r in range(rounds):
            order = cols[r % len(cols) :] + cols[: r % len(cols)]
            for name in order:
                times[name].append(timed(methods[name], 2000))
        print(
            f"{expr:54} {len(fast.launches):>8}"
            + "".join(f" {fmt(statistics.median(times[c])):>10}" for c in cols),
            flush=True,
        )


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f}us" if seconds < 1e-3 else f"{seconds * 1e3:8.2f}ms"


if __name__ == "__main__":
    main()
