#!/usr/bin/env python
"""The call path: a light chain-8 called the way NumPy users call it, against
NumPy, numexpr and a raw PyOpenCL launch on the same device, in one run.

    python bench/calls.py                 # 2^10, 2^16, 2^20, 2^24
    python bench/calls.py --quick         # fewer rounds
    FUSEC_DEVICE=pthread python bench/calls.py   # on PoCL

The graph is bench/elementwise.py's light-8: v = x; v*y, v+y, relu(v),
clamp(v, -1, 1), twice. Columns (medians of interleaved rounds, each method
running the same number of back-to-back calls per round):

  fusec        g(x, y): NumPy arrays in (default alignment, as NumPy made them),
               a new NumPy array out
  fusec out=   g(x, y, out=o): the caller's output array
  unaligned    g(x1, y1) with x1, y1 starting one float into their buffers
  device       g(dx, dy) on pyopencl arrays, finish() inside: the kernel alone
  numpy        the same chain in NumPy (8 passes, temporaries)
  numexpr      the same chain with numexpr (if installed)
  raw launch   a trivial PyOpenCL kernel on the same device, enqueue + read back
               of its result (2^10 and 2^16 only): the floor a small call can reach
  copy         (2^20 and up) a PyOpenCL copy kernel on device buffers: bandwidth

Then, for the tiny call, where the time goes: binding the arguments to names,
checking them, the launches (set_arg + enqueue), and the final finish(); a
warm call with NumPy arrays like an earlier one's skips the binding and the
checks (fusec/runtime/fast_calls.py), which "checked call" still pays.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

warnings.simplefilter("ignore", cl.CompilerWarning)  # Intel's runtime logs every build
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import fusec  # noqa: E402

try:
    import numexpr
except ImportError:  # optional competitor
    numexpr = None

LIGHT8 = """graph light8(x: f32[N], y: f32[N]) {
    v1 = x * y
    v2 = v1 + y
    v3 = relu(v2)
    v4 = clamp(v3, min=-1.0, max=1.0)
    v5 = v4 * y
    v6 = v5 + y
    v7 = relu(v6)
    return clamp(v7, min=-1.0, max=1.0)
}"""


def numpy_chain(x, y):
    v = x * y
    v = v + y
    v = np.maximum(v, 0)
    v = np.clip(v, -1, 1)
    v = v * y
    v = v + y
    v = np.maximum(v, 0)
    return np.clip(v, -1, 1)


# numexpr has no relu or clamp: relu then clamp(-1, 1) is where(v > 1, 1, where(v > 0, v, 0)),
# one evaluate per half of the chain (numexpr has no common subexpressions either)
NUMEXPR_HALF = "where(v * y + y > 1, 1, where(v * y + y > 0, v * y + y, 0))"


def numexpr_chain(x, y):
    v = numexpr.evaluate(NUMEXPR_HALF, local_dict={"v": x, "y": y})
    return numexpr.evaluate(NUMEXPR_HALF, local_dict={"v": v, "y": y})


def timed(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def measure(methods: dict, rounds: int, budget: float) -> dict:
    """Median seconds per call of each method, interleaved rounds, the same call count for all."""
    for fn in methods.values():
        fn()  # warm: builds, first-touch
    slowest = max(timed(fn, 1) for fn in methods.values())
    calls = max(1, int(budget / max(slowest, 1e-7)))
    samples = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            samples[name].append(timed(fn, calls))
    return {name: statistics.median(s) for name, s in samples.items()}


def raw_launch(runtime, n: int):
    """A trivial kernel and its read-back through plain PyOpenCL, arguments preset."""
    ctx, queue = runtime.context, runtime.queue
    prg = cl.Program(
        ctx,
        "__kernel void twice(__global const float *x, __global float *y, const long n)"
        "{ long i = get_global_id(0); if (i < n) y[i] = 2.0f * x[i]; }",
    ).build()
    kernel = cl.Kernel(prg, "twice")
    host = np.ones(n, np.float32)
    dx = cl.Buffer(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=host)
    dy = cl.Buffer(ctx, cl.mem_flags.WRITE_ONLY, host.nbytes)
    for i, value in enumerate((dx, dy, np.int64(n))):
        kernel.set_arg(i, value)
    out = np.empty(n, np.float32)
    size = (-(-n // 256) * 256,)

    def run():
        cl.enqueue_nd_range_kernel(queue, kernel, size, (256,))
        cl.enqueue_copy(queue, out, dy)

    run.buffers = (dx, dy)  # the kernel's arguments live as long as it runs
    return run


def copy_kernel(runtime, n: int):
    ctx, queue = runtime.context, runtime.queue
    prg = cl.Program(
        ctx,
        "__kernel void copy(__global const float8 *x, __global float8 *y)"
        "{ y[get_global_id(0)] = x[get_global_id(0)]; }",
    ).build()
    dx = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, n * 4)
    dy = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, n * 4)
    kernel = cl.Kernel(prg, "copy")
    kernel.set_arg(0, dx)
    kernel.set_arg(1, dy)

    def run():
        cl.enqueue_nd_range_kernel(queue, kernel, (n // 8,), None)
        queue.finish()

    run.buffers = (dx, dy)  # the kernel's arguments live as long as it runs
    return run


def unaligned_copy(a: np.ndarray) -> np.ndarray:
    raw = np.empty(a.size + 1, a.dtype)
    out = raw[1:]
    out[...] = a
    return out


def breakdown(g, x, y, calls: int) -> dict:
    """Microseconds per tiny call spent in each step of the call path, each
    step timed alone by replaying it (the launcher's own pieces)."""
    from fusec.api import bind_arguments
    from fusec.codegen.kernel_args import Output
    from fusec.runtime.arguments import check_arguments

    g(x, y)
    launcher = g._launcher
    queue = g.runtime.queue
    bound = bind_arguments(g.name, g.param_names, (x, y), {})
    prepared = launcher._local.prepared[(x.size,)]  # this size's launches (N is the one symbol)
    out = np.empty_like(x)
    values = check_arguments(launcher.params, bound, g.runtime.context)
    arrays = {name: launcher._array_arg(v, None) for name, v in values.arrays.items()}
    outs = [launcher._array_arg(out, None)]

    def launches():
        for launch in prepared.launches:
            for index, src in launch.per_call:
                launch.kernel.set_arg(
                    index, outs[src.index] if isinstance(src, Output) else arrays[src.name]
                )
            cl.enqueue_nd_range_kernel(queue, launch.kernel, launch.global_size, launch.local_size)
        queue.finish()

    steps = {
        "bind to names": lambda: bind_arguments(g.name, g.param_names, (x, y), {}),
        "check arguments": lambda: check_arguments(launcher.params, bound, g.runtime.context),
        "SVM views of 3 arrays": lambda: [cl.SVM(a) for a in (x, y, out)],
        "output np.empty": lambda: np.empty(x.shape, x.dtype),
        "launches + finish": launches,
        "finish (idle queue)": queue.finish,
        "checked call": lambda: launcher.call(bound),
        "whole call": lambda: g(x, y),
    }
    return {name: timed(fn, calls) * 1e6 for name, fn in steps.items()}


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--sizes", default="10,16,20,24", help="log2 of the element counts")
    args = ap.parse_args()
    rounds, budget = (5, 0.02) if args.quick else (9, 0.05)

    g = fusec.compile(LIGHT8)["light8"]
    runtime = g.runtime
    print(
        f"device: {runtime.device.name.strip()} ({runtime.device.platform.name.strip()}); "
        f"host arrays in place: {'yes (system SVM)' if runtime.system_svm else 'no (copied)'}"
    )
    rng = np.random.default_rng(0)
    rows = []
    for log2 in (int(s) for s in args.sizes.split(",")):
        n = 1 << log2
        x = rng.standard_normal(n).astype(np.float32)
        y = rng.standard_normal(n).astype(np.float32)
        x1, y1 = unaligned_copy(x), unaligned_copy(y)
        out = np.empty(n, np.float32)
        dx, dy = cla.to_device(runtime.queue, x), cla.to_device(runtime.queue, y)
        np.testing.assert_allclose(g(x, y), numpy_chain(x, y), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(g(x1, y1), numpy_chain(x, y), rtol=1e-6, atol=1e-6)
        methods = {
            "fusec": lambda x=x, y=y: g(x, y),
            "fusec out=": lambda x=x, y=y, out=out: g(x, y, out=out),
            "unaligned": lambda x1=x1, y1=y1: g(x1, y1),
            "device": lambda dx=dx, dy=dy: (g(dx, dy), runtime.queue.finish()),
            "numpy": lambda x=x, y=y: numpy_chain(x, y),
        }
        if numexpr is not None:
            np.testing.assert_allclose(numexpr_chain(x, y), numpy_chain(x, y), rtol=1e-6, atol=1e-6)
            methods["numexpr"] = lambda x=x, y=y: numexpr_chain(x, y)
        if n <= 1 << 16:
            methods["raw launch"] = raw_launch(runtime, n)
        else:
            methods["copy"] = copy_kernel(runtime, n)
        times = measure(methods, rounds, budget)
        rows.append((n, times))
        shown = "  ".join(f"{k} {v * 1e6:9.1f}" for k, v in times.items())
        print(f"2^{log2:<2} us/call: {shown}", flush=True)

    print("\nratios (higher is better for fusec):")
    for n, t in rows:
        parts = [f"NumPy/fusec {t['numpy'] / t['fusec']:.2f}x"]
        if "numexpr" in t:
            parts.append(f"numexpr/fusec {t['numexpr'] / t['fusec']:.2f}x")
        if "raw launch" in t:
            parts.append(f"fusec/raw launch {t['fusec'] / t['raw launch']:.2f}x (target <= 2)")
        parts.append(
            f"fusec/device {t['fusec'] / t['device']:.2f}x"
            + (" (target <= 1.5)" if n >= 1 << 24 else "")
        )
        parts.append(
            f"unaligned/aligned {t['unaligned'] / t['fusec']:.2f}x"
            + (" (target <= 1.15)" if n >= 1 << 24 else "")
        )
        if "copy" in t:
            gbs = 3 * n * 4 / t["device"] / 1e9  # light-8 reads x, y and writes one output
            copy_gbs = 2 * n * 4 / t["copy"] / 1e9
            parts.append(f"device {gbs:.1f} GB/s vs copy {copy_gbs:.1f} GB/s")
        print(f"  2^{n.bit_length() - 1:<2}: " + ", ".join(parts))

    n = 1 << 10
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    parts = breakdown(g, x, y, 20000 if not args.quick else 3000)
    print("\nwhere a tiny call's time goes (2^10, us):")
    for name, us in parts.items():
        print(f"  {name:22s} {us:7.2f}")
    # A warm call with NumPy arrays like an earlier one's skips binding and checking
    # (fusec/runtime/fast_calls.py); "checked call" is the path every other call takes.
    fast_steps = ("SVM views of 3 arrays", "output np.empty", "launches + finish")
    parts_sum = sum(parts[k] for k in fast_steps)
    print(
        f"  {'(other Python work)':22s} {parts['whole call'] - parts_sum:7.2f}"
        "  (the whole call less SVM views, np.empty and the launches: a warm call skips"
        " binding and checks)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
