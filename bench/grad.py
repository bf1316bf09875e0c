#!/usr/bin/env python
"""Backward of elementwise chains: fusec against PyTorch eager autograd and
torch.compile, with the bytes each moves against the minimum, in one run.

    python bench/grad.py             # n = 2^24; light and heavy chains of 4, 8, 16 ops
    python bench/grad.py --quick     # n = 2^20; k = 4, 8
    python bench/grad.py --json out.json

The chains are bench/elementwise.py's (two float32 inputs x, y; light: mul,
add, relu, clamp; heavy: mul then sigmoid, tanh, exp, sqrt), differentiated
with respect to both inputs against a cotangent ct of the output's shape.
The training-step cases ("light-4 bcast", "light-4 bcast loss", the same for
heavy) take x as [n / 1024, 1024] and y as a broadcast parameter [1024] (the
chains' w and b), against a [B, D] cotangent, or of the chain's sum (a
scalar loss, cotangent 1): dy is a sum over the rows.

Minimum bytes: the backward must read x, y and ct and write dx and dy (20 n
bytes); forward+backward also writes the output (24 n). With a broadcast y:
12 n and 16 n, with a loss 8 n and 8 n. fusec's figure is
read off its launch plan (every buffer a kernel reads or writes, once).

Columns (medians of interleaved rounds, the machine drifts within minutes):

  fusec bwd       g.backward(x, y, ct) on pyopencl.array inputs (the VJP alone:
                  forward values recomputed in registers), queue.finish() inside
  fusec f+b       g.forward_backward(x, y, ct): outputs and gradients in one pass
  torch bwd       torch.autograd.grad(out, (x, y), ct, retain_graph=True) after
                  one eager forward: the backward alone, reading saved tensors
  torch f+b       eager forward, then the backward
  t.compile bwd   the same backward of a torch.compile'd forward (AOTAutograd's
                  compiled backward kernel)
  t.compile f+b   compiled forward, then its compiled backward
  copy            bench/elementwise.py's best OpenCL copy kernel (8 n bytes)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elementwise import (  # noqa: E402
    CopyKernels,
    fmt_ms,
    ir_text,
    log,
    machine_header,
    med,
    run_row,
    table,
    torch_fn,
)


def plan_bytes(plan: dict, n: int, itemsize: int = 4, inputs: dict | None = None) -> int:
    """Bytes the plan's kernels move (each buffer read or written once): on
    n-element arrays, or with `inputs` (name -> array) every buffer at its
    own size, the plan's size names bound from the inputs' shapes."""
    if inputs is None:
        arrays = {p["name"] for p in plan["params"] if p["shape"]}
        return sum(
            (sum(r in arrays for r in k["reads"]) + len(k["writes"])) * n * itemsize
            for k in plan["kernels"]
        )
    sizes = {}
    for p in plan["params"]:
        if p["name"] in inputs:
            sizes.update(zip(p["shape"], np.shape(inputs[p["name"]]), strict=True))
    fns = {"ceil": math.ceil, "min": min, "max": max}

    def count(shape_or_expr) -> int:
        if isinstance(shape_or_expr, list):
            return math.prod(d if isinstance(d, int) else sizes[d] for d in shape_or_expr)
        expr = re.sub(
            r"[A-Za-z_]\w*", lambda m: m[0] if m[0] in fns else str(sizes[m[0]]), shape_or_expr
        )
        return int(eval(expr, {"__builtins__": {}}, fns))  # the plan's size expressions

    elements = {p["name"]: count(p["shape"]) for p in plan["params"]}
    elements |= {f"out{i}": count(o["shape"]) for i, o in enumerate(plan["outputs"])}
    elements |= {t["name"]: count(t["elements"]) for t in plan.get("scratch", [])}
    moved = sum(elements[b] for k in plan["kernels"] for b in (*k["reads"], *k["writes"]))
    return moved * itemsize


STEP_D = 1024  # the broadcast cases' x is [n / STEP_D, STEP_D]


def step_ir(kind: str, k: int, shape: str) -> str:
    """The chain over x: [B, D] with y a broadcast parameter [D] (w and b of
    `x * w + b`), returning the chain, or its sum (a scalar loss)."""
    text = ir_text(kind, k).replace("x: f32[N], y: f32[N]", "x: f32[B, D], y: f32[D]")
    if shape.endswith("loss"):
        head, ret = text.rsplit("return ", 1)
        text = f"{head}return sum(sum({ret.split(chr(10))[0]}, axis=1), axis=0)\n}}\n"
    return text


def step_torch_fn(fn, loss: bool):
    """The chain with a broadcast y, or its sum (a loss)."""
    return (lambda x, y: fn(x, y).sum()) if loss else fn


def add_torch_methods(methods: dict, results: dict, name: str, f, xt, yt, ctt) -> None:
    """`name bwd` (the backward alone, after one forward) and `name f+b`."""
    import torch

    out = f(xt, yt)

    def bwd():
        return torch.autograd.grad(out, (xt, yt), ctt, retain_graph=True)

    def fb():
        return torch.autograd.grad(f(xt, yt), (xt, yt), ctt)

    methods[f"{name} bwd"], methods[f"{name} f+b"] = bwd, fb
    results[f"{name} bwd"] = [t.numpy() for t in bwd()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 2^20, k = 4, 8")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/elementwise.py

    t_start = time.perf_counter()
    import pyopencl as cl
    import pyopencl.array as cla
    import torch

    import fusec

    torch.set_num_threads(2)
    n = 1 << (20 if args.quick else 24)
    ks = [4, 8] if args.quick else [4, 8, 16]
    kinds = ["light", "heavy"]
    graphs = {}
    for kind in kinds:
        for shape in ("bcast", "bcast loss"):
            graphs[(kind, ks[0], shape)] = fusec.compile(step_ir(kind, ks[0], shape), grad=True)[
                "chain"
            ]
        for k in ks:
            t0 = time.perf_counter()
            g = fusec.compile(ir_text(kind, k), grad=True)["chain"]
            g.backward.build()
            g.forward_backward.build()
            graphs[(kind, k)] = g
            log(f"fusec {kind}-{k}: built in {time.perf_counter() - t0:.1f} s")
    queue = next(iter(graphs.values())).runtime.queue
    dev = queue.device
    copier = CopyKernels(queue.context, queue)
    header = machine_header(dev, torch=torch.__version__, pyopencl=cl.VERSION_TEXT)
    header.append(
        f"n = 2^{int(math.log2(n))} float32; load average at start {os.getloadavg()[0]:.2f}"
    )
    print("\n".join(header), flush=True)

    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    y = rng.uniform(0.5, 1.5, n).astype(np.float32)
    ct = rng.standard_normal(n, dtype=np.float32)
    xd, yd, ctd = (cla.to_device(queue, a) for a in (x, y, ct))
    src, dst = cla.to_device(queue, x), cla.empty(queue, (n,), np.float32)
    copies = copier.layouts(src.data, dst.data, n)
    rows = []
    cases = [(kd, k, "") for kd in kinds for k in ks]
    cases += [(kd, ks[0], shape) for kd in kinds for shape in ("bcast", "bcast loss")]
    for idx, (kind, k, shape) in enumerate(cases, 1):
        name = f"{kind}-{k}" + (f" {shape}" if shape else "")
        tag = f"[{idx}/{len(cases)}] {name}"
        log(f"{tag}: preparing ({time.perf_counter() - t_start:.0f} s elapsed)")
        if shape:  # x: [B, D] with the chain's y a broadcast parameter [D]
            g = graphs[(kind, k, shape)]
            inputs = (x.reshape(-1, STEP_D), y[:STEP_D])
            cot = np.float32(1.0) if shape.endswith("loss") else ct.reshape(-1, STEP_D)
            fn = step_torch_fn(torch_fn(kind, k), shape.endswith("loss"))
        else:
            g, inputs, cot, fn = graphs[(kind, k)], (x, y), ct, torch_fn(kind, k)
        dev_in = [cla.to_device(queue, a) for a in inputs]
        dev_ct = cla.to_device(queue, cot) if cot.ndim else cot
        methods, results = {}, {}

        def fusec_bwd(g=g, dev_in=dev_in, dev_ct=dev_ct):
            r = g.backward(*dev_in, dev_ct)
            queue.finish()
            return r

        def fusec_fb(g=g, dev_in=dev_in, dev_ct=dev_ct):
            r = g.forward_backward(*dev_in, dev_ct)
            queue.finish()
            return r

        methods["fusec bwd"], methods["fusec f+b"] = fusec_bwd, fusec_fb
        results["fusec bwd"] = [a.get(queue) for a in fusec_bwd()]
        results["fusec f+b"] = [a.get(queue) for a in fusec_fb()[1:]]

        xt, yt = (torch.from_numpy(a).requires_grad_() for a in inputs)
        ctt = torch.from_numpy(np.asarray(cot))

        add_torch_methods(methods, results, "torch", fn, xt, yt, ctt)
        compile_s = None
        if not args.no_compile:
            torch._dynamo.reset()
            tcf = torch.compile(fn, dynamic=False)
            t0 = time.perf_counter()
            torch.autograd.grad(tcf(xt, yt), (xt, yt), ctt)
            compile_s = time.perf_counter() - t0
            log(f"{tag}: torch.compile forward+backward compiled in {compile_s:.1f} s")
            add_torch_methods(methods, results, "t.compile", tcf, xt, yt, ctt)
        for copy_name, fn_ in copies.items():
            methods["copy:" + copy_name] = fn_

        want = results["torch bwd"]
        errors = {}
        for method, got in results.items():
            for a, b, which in zip(got, want, "xy", strict=True):
                # a sum over B (dy) gathers rounding over B terms
                atol = 1e-4 * (a.size and max(1.0, float(np.abs(b).max())))
                if not np.allclose(a, b, rtol=1e-3, atol=atol, equal_nan=True):
                    errors[method] = f"d{which}: max abs err {float(np.nanmax(np.abs(a - b))):.3g}"
        for method, msg in errors.items():
            log(f"{tag}: WRONG RESULT from {method}: {msg}")

        log(f"{tag}: timing {len(methods)} methods, 7 rounds")
        samples = run_row(methods, 1, 7)
        meds = {m: med(s) for m, s in samples.items()}
        copy_name = min((m for m in meds if m.startswith("copy:")), key=meds.get)
        # the minimum: read x (and ct), write dx (and the value); dy and a loss are small
        full = 1 if shape.endswith("loss") else 2
        rows.append(
            {
                "chain": name,
                "n": n,
                "median_s": meds,
                "errors": errors,
                "copy_s": meds[copy_name],
                "copy_gbs": 8 * n / meds[copy_name] / 1e9,
                "fusec_bwd_bytes": plan_bytes(
                    g.backward.plan, n, inputs=dict(zip("xy", inputs, strict=True))
                ),
                "min_bwd_bytes": (full + 1) * 4 * n if shape else 20 * n,
                "min_fb_bytes": 2 * full * 4 * n if shape else 24 * n,
                "fusec_fb_bytes": plan_bytes(
                    g.forward_backward.plan, n, inputs=dict(zip("xy", inputs, strict=True))
                ),
                "kernels_bwd": len(g.backward.plan["kernels"]),
                "torch_compile_s": compile_s,
            }
        )
        torch._dynamo.reset()

    print(report(rows), flush=True)
    print(
        f"\n(total {time.perf_counter() - t_start:.0f} s; load average at end {os.getloadavg()[0]:.2f})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    return 0


def report(rows) -> str:
    names = ["fusec bwd", "fusec f+b", "torch bwd", "torch f+b", "t.compile bwd", "t.compile f+b"]
    out = ["\nTime per call, ms (median)"]
    out.append(
        table(
            ["chain"] + names + ["copy"],
            [
                [r["chain"]] + [fmt_ms(r["median_s"].get(m)) for m in names] + [fmt_ms(r["copy_s"])]
                for r in rows
            ],
        )
    )
    out.append("\nBytes moved (fusec, from its plan) against the minimum, and GB/s at the minimum")
    body = []
    for r in rows:
        m = r["median_s"]
        bwd, fb = m.get("fusec bwd"), m.get("fusec f+b")
        body.append(
            [
                r["chain"],
                r["kernels_bwd"],
                f"{r['fusec_bwd_bytes'] / r['min_bwd_bytes']:.2f}",
                f"{r['fusec_fb_bytes'] / r['min_fb_bytes']:.2f}",
                f"{r['min_bwd_bytes'] / bwd / 1e9:.1f}" if bwd else "-",
                f"{r['min_fb_bytes'] / fb / 1e9:.1f}" if fb else "-",
                f"{r['copy_gbs']:.1f}",
            ]
        )
    out.append(
        table(
            [
                "chain",
                "bwd kernels",
                "bwd bytes/min",
                "f+b bytes/min",
                "bwd GB/s",
                "f+b GB/s",
                "copy GB/s",
            ],
            body,
        )
    )
    out.append("\nSpeedup of fusec = other's time / fusec's time (> 1: fusec faster)")
    body = []
    for r in rows:
        m = r["median_s"]

        def x(a, b, m=m):
            return f"{m[a] / m[b]:.2f}x" if m.get(a) and m.get(b) else "-"

        body.append(
            [
                r["chain"],
                x("torch bwd", "fusec bwd"),
                x("t.compile bwd", "fusec bwd"),
                x("torch f+b", "fusec f+b"),
                x("t.compile f+b", "fusec f+b"),
            ]
        )
    out.append(
        table(
            ["chain", "bwd vs torch", "bwd vs t.compile", "f+b vs torch", "f+b vs t.compile"], body
        )
    )
    errs = [(r["chain"], e) for r in rows for e in r["errors"].items()]
    if errs:
        out.append("\nWRONG RESULTS:\n" + "\n".join(f"  {c} {n}: {msg}" for c, (n, msg) in errs))
    met = [r for r in rows if r["median_s"].get("t.compile bwd") and r["median_s"].get("fusec bwd")]
    if met:
        wins = sum(r["median_s"]["t.compile bwd"] > r["median_s"]["fusec bwd"] for r in met)
        # with a broadcast y the partial sums add chunks x D elements per sum: not counted
        minimal = all(
            r["fusec_bwd_bytes"] <= r["min_bwd_bytes"] for r in rows if "bcast" not in r["chain"]
        )
        out.append(
            "\nTargets: fused backward moves no more than the minimum (chains without a"
            f" broadcast y): {'MET' if minimal else 'MISSED'}; "
            f"faster than torch.compile's backward on {wins}/{len(met)} chains"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
