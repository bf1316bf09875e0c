#!/usr/bin/env python
"""linear + bias + relu, and softmax over rows: fusec against NumPy (BLAS matmul
and separate ops), PyTorch eager and torch.compile, in one run.

    python bench/linear.py              # the three issue shapes, softmax 4096x4096
    python bench/linear.py --quick      # smaller rounds, no torch.compile
    python bench/linear.py --json out.json
    FUSEC_DEVICE=pthread python bench/linear.py   # on PoCL, where Intel's runtime is also installed

Shapes (M x K -> N, float32): 100x333->77, 256x784->256, 4096x1024->1024, 64x4096->4096;
then forward+backward of the same layer (y, dx, dw, db: 6 M N K flops),
fusec's forward_backward against torch eager autograd and torch.compile.

Columns (medians of interleaved rounds; in each, every method runs back to back
enough times for ~20 ms, the same count for all; GFLOP/s counts 2 M N K):

  fusec        relu(linear(x, w, b)) as one fusec kernel (the bias and relu in
               the GEMM's epilogue), device-resident inputs, finish() inside;
               where the layout reads w as panels, a pack kernel runs first on
               every call (w may have changed): included
  fusec bound  the same graph with w and b bound (g.bind(w=w, b=b)): w is
               packed once, by the first call, and reused
  fusec 2-pass fusec's GEMM alone, then a second fusec kernel for relu(y + b):
               what the fused epilogue saves
  np fusec     the fused graph called as a NumPy user calls it: NumPy arrays in
               (default alignment), a NumPy array out
  np bound     the same with w and b bound from NumPy arrays
  numpy        np.maximum(x @ w.T + b, 0) (OpenBLAS matmul, then two passes)
  torch        torch.relu(F.linear(x, w, b)), 2 threads
  t.compile    the same, torch.compile'd

The environment may set OPENBLAS_CORETYPE (see the env notes): the header
prints the BLAS that threadpoolctl reports, if installed, so that NumPy's
number is read against the kernel it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# OpenBLAS's idle workers spin ~0.07 s after each call and, interleaved with
# fusec, took a core from it (490 -> 250 GFLOP/s); NumPy's own numbers do not
# change. Read when OpenBLAS loads, so before NumPy is imported.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elementwise import fmt_ms, log, machine_header, med, run_row, table  # noqa: E402

SHAPES = [(100, 333, 77), (256, 784, 256), (4096, 1024, 1024), (64, 4096, 4096)]
FUSED = "graph f(x: f32[M, K], w: f32[N, K], b: f32[N]) {\n    return relu(linear(x, w, b))\n}\n"
GEMM_ONLY = "graph f(x: f32[M, K], w: f32[N, K]) {\n    return linear(x, w)\n}\n"
EPILOGUE = "graph f(y: f32[M, N], b: f32[N]) {\n    return relu(y + b)\n}\n"
SOFTMAX = "graph f(x: f32[B, N]) {\n    return softmax(x)\n}\n"


def layer_data(rng, m: int, k: int, n: int):
    """x[m, k], w[n, k] scaled so that results stay O(1), b[n]: float32."""
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = (rng.standard_normal((n, k), dtype=np.float32) / np.sqrt(k)).astype(np.float32)
    return x, w, rng.standard_normal(n, dtype=np.float32)


def repetitions(methods: dict, target_s: float = 0.02) -> int:
    """Calls per sample so that one sample lasts about `target_s` for the fastest
    method: a single 0.3 ms call mostly measures how fast each library's
    threads wake up after the others ran; back-to-back calls, as in a training
    or inference loop, measure throughput. Every method gets the same count."""
    fastest = float("inf")
    for fn in methods.values():
        t0 = time.perf_counter()
        fn()
        fastest = min(fastest, time.perf_counter() - t0)
    return max(1, min(50, round(target_s / max(fastest, 1e-6))))


def repeated(methods: dict, reps: int) -> dict:
    def loop(fn):
        def run():
            for _ in range(reps):
                fn()

        return run

    return {name: loop(fn) for name, fn in methods.items()}


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return (
        "; ".join(
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}, "
            f"{i.get('num_threads')} threads"
            for i in blas
        )
        or "no BLAS found"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds, no torch.compile")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/elementwise.py
    t_start = time.perf_counter()
    import pyopencl as cl
    import pyopencl.array as cla
    import torch

    import fusec

    torch.set_num_threads(2)
    F = torch.nn.functional
    fused = fusec.compile(FUSED)["f"]
    gemm_only = fusec.compile(GEMM_ONLY)["f"]
    epilogue = fusec.compile(EPILOGUE)["f"]
    softmax = fusec.compile(SOFTMAX)["f"]
    queue = fused.runtime.queue
    dev = queue.device
    header = machine_header(dev, torch=torch.__version__, pyopencl=cl.VERSION_TEXT) + [
        f"BLAS:    {blas_info()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}",
        f"fusec GEMM layout: {getattr(fused.kernels[0], 'layout', '?')}; load average {os.getloadavg()[0]:.2f}",
    ]
    print("\n".join(header), flush=True)
    rounds = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    rows = []
    for m, k, n in SHAPES:
        tag = f"{m}x{k}->{n}"
        log(f"{tag}: preparing ({time.perf_counter() - t_start:.0f} s elapsed)")
        x, w, b = layer_data(rng, m, k, n)
        xd, wd, bd = (cla.to_device(queue, a) for a in (x, w, b))
        want = np.maximum(x @ w.T + b, 0)
        methods = {}

        def run_fused(xd=xd, wd=wd, bd=bd):
            r = fused(xd, wd, bd)
            queue.finish()
            return r

        def run_two_pass(xd=xd, wd=wd, bd=bd):
            r = epilogue(gemm_only(xd, wd), bd)
            queue.finish()
            return r

        bound = fused.bind(w=wd, b=bd)

        def run_bound(xd=xd, bound=bound):
            r = bound(xd)
            queue.finish()
            return r

        methods["fusec"], methods["fusec bound"], methods["fusec 2-pass"] = (
            run_fused,
            run_bound,
            run_two_pass,
        )
        # as a NumPy user calls it: NumPy arrays in (default alignment), a NumPy array out
        methods["np fusec"] = lambda x=x, w=w, b=b: fused(x, w, b)
        host_bound = fused.bind(w=w, b=b)
        methods["np bound"] = lambda x=x, host_bound=host_bound: host_bound(x)
        methods["numpy"] = lambda x=x, w=w, b=b: np.maximum(x @ w.T + b, 0)
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
        methods["torch"] = lambda xt=xt, wt=wt, bt=bt: torch.relu(F.linear(xt, wt, bt))
        if not (args.quick or args.no_compile):
            torch._dynamo.reset()
            compiled = torch.compile(lambda x, w, b: torch.relu(F.linear(x, w, b)), dynamic=False)
            compiled(xt, wt, bt)
            methods["t.compile"] = lambda c=compiled, xt=xt, wt=wt, bt=bt: c(xt, wt, bt)
        errors = {}
        for name, fn in methods.items():
            got = fn()
            got = (
                got.get(queue)
                if hasattr(got, "get") and not isinstance(got, np.ndarray)
                else np.asarray(got)
            )
            if not np.allclose(got, want, rtol=1e-3, atol=1e-3):
                errors[name] = f"max abs err {float(np.abs(got - want).max()):.3g}"
                log(f"{tag}: WRONG RESULT from {name}: {errors[name]}")
        reps = repetitions(methods)
        log(f"{tag}: timing {len(methods)} methods, {rounds} rounds of {reps} calls")
        meds = {
            name: med(s) / reps for name, s in run_row(repeated(methods, reps), 1, rounds).items()
        }
        rows.append({"shape": tag, "flops": 2 * m * n * k, "median_s": meds, "errors": errors})

    # a training step's worth: forward and backward (dx, dw, db) of the same layer
    train = fusec.compile(FUSED, grad=True)["f"].forward_backward
    train_rows = []
    for m, k, n in SHAPES:
        tag = f"{m}x{k}->{n}"
        log(f"{tag} forward+backward: preparing")
        x, w, b = layer_data(rng, m, k, n)
        ct = rng.standard_normal((m, n), dtype=np.float32)
        xd, wd, bd, cd = (cla.to_device(queue, a) for a in (x, w, b, ct))
        leaves = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        ctt = torch.from_numpy(ct)

        def step(f, leaves=leaves, ctt=ctt):
            return torch.autograd.grad(torch.relu(f(*leaves)), leaves, ctt)

        tm = {
            "fusec": lambda xd=xd, wd=wd, bd=bd, cd=cd: (train(xd, wd, bd, cd), queue.finish()),
            "torch": lambda: step(F.linear),
        }
        if not (args.quick or args.no_compile):
            torch._dynamo.reset()
            lin = torch.compile(lambda x, w, b: torch.relu(F.linear(x, w, b)), dynamic=False)
            lin(*leaves)
            tm["t.compile"] = lambda lin=lin, leaves=leaves, ctt=ctt: torch.autograd.grad(
                lin(*leaves), leaves, ctt
            )
        reps = repetitions(tm)
        meds = {name: med(s_) / reps for name, s_ in run_row(repeated(tm, reps), 1, rounds).items()}
        train_rows.append({"shape": tag, "flops": 6 * m * n * k, "median_s": meds})

    log("softmax 4096x4096: preparing")
    x = rng.standard_normal((4096, 4096), dtype=np.float32)
    xd = cla.to_device(queue, x)
    xt = torch.from_numpy(x)
    sm = {"fusec": lambda: (softmax(xd), queue.finish()), "torch": lambda: torch.softmax(xt, -1)}
    if not (args.quick or args.no_compile):
        torch._dynamo.reset()
        csm = torch.compile(lambda x: torch.softmax(x, -1), dynamic=False)
        csm(xt)
        sm["t.compile"] = lambda: csm(xt)
    sm_err = float(np.abs(softmax(xd).get(queue) - torch.softmax(xt, -1).numpy()).max())
    sm_meds = {name: med(s) for name, s in run_row(sm, 1, rounds).items()}

    names = [
        "fusec",
        "fusec bound",
        "fusec 2-pass",
        "np fusec",
        "np bound",
        "numpy",
        "torch",
        "t.compile",
    ]
    out = ["\nlinear + bias + relu: GFLOP/s (median)"]
    out.append(
        table(
            ["shape"] + names,
            [
                [r["shape"]]
                + [
                    f"{r['flops'] / r['median_s'][n] / 1e9:.1f}" if n in r["median_s"] else "-"
                    for n in names
                ]
                for r in rows
            ],
        )
    )
    out.append(
        "\nNumPy in, NumPy out, against NumPy (targets: bound >= 1.0x, weights passed per call >= 0.9x)"
    )
    out.append(
        table(
            ["shape", "np fusec vs numpy", "np bound vs numpy"],
            [
                [
                    r["shape"],
                    f"{r['median_s']['numpy'] / r['median_s']['np fusec']:.2f}x",
                    f"{r['median_s']['numpy'] / r['median_s']['np bound']:.2f}x",
                ]
                for r in rows
            ],
        )
    )
    out.append("\nfusec's speed relative to each (> 1: fusec faster)")
    out.append(
        table(
            ["shape"] + [f"vs {n}" for n in names[1:]],
            [
                [r["shape"]]
                + [
                    f"{r['median_s'][n] / r['median_s']['fusec']:.2f}x"
                    if n in r["median_s"]
                    else "-"
                    for n in names[1:]
                ]
                for r in rows
            ],
        )
    )
    tnames = ["fusec", "torch", "t.compile"]
    out.append(
        "\nforward + backward (y, dx, dw, db) of the same layer: GFLOP/s (6 M N K), and fusec's speed relative"
    )
    out.append(
        table(
            ["shape"] + tnames + [f"vs {n}" for n in tnames[1:]],
            [
                [r["shape"]]
                + [
                    f"{r['flops'] / r['median_s'][n] / 1e9:.1f}" if n in r["median_s"] else "-"
                    for n in tnames
                ]
                + [
                    f"{r['median_s'][n] / r['median_s']['fusec']:.2f}x"
                    if n in r["median_s"]
                    else "-"
                    for n in tnames[1:]
                ]
                for r in train_rows
            ],
        )
    )
    out.append(f"\nsoftmax over rows of 4096x4096 float32, ms (max abs diff vs torch {sm_err:.1e})")
    out.append(table(list(sm_meds), [[fmt_ms(v) for v in sm_meds.values()]]))
    errs = [(r["shape"], e) for r in rows for e in r["errors"].items()]
    if errs:
        out.append("\nWRONG RESULTS:\n" + "\n".join(f"  {s} {n}: {m}" for s, (n, m) in errs))
    print("\n".join(out))
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"header": header, "rows": rows, "train": train_rows, "softmax_s": sm_meds},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
