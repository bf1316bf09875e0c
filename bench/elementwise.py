#!/usr/bin/env python
"""Elementwise chains: fusec against NumPy, numexpr, PyTorch eager, torch.compile
and a hand-written OpenCL copy kernel (the memory-bandwidth limit), all in one run.

    python bench/elementwise.py            # n = 2^16, 2^20, 2^24; k = 1, 4, 8, 16 (~10 min)
    python bench/elementwise.py --quick    # n = 2^20; k = 1, 8
    python bench/elementwise.py --full     # torch.compile on every row, more repeats
    python bench/elementwise.py --json out.json

Chains (two float32 inputs x, y of n elements, one output):

  light-k: k ops cycling  v*y, v+y, relu(v), clamp(v, -1, 1)  starting from v = x
           (k = 1 is x*y). Bandwidth-bound.
  heavy-k: v = x*y, then k ops cycling  sigmoid, tanh, exp, sqrt  (values stay in
           (0, 3), nothing overflows). Compute-bound on this CPU.

Bytes counted per call: 2 inputs read + 1 output written = 12 n bytes.
The copy kernel moves n floats: 8 n bytes (read + written).

Timing: each method is warmed up, then timed once per round, the rounds
interleaving every method of a row (the machine drifts +-20% within minutes);
the table shows medians. Columns:

  fusec       g(xd, yd) on pyopencl.array inputs made once on g.runtime.queue,
              queue.finish() inside the timed region (output allocated by fusec).
  fusec-kern  fusec's compiled OpenCL kernel launched directly into a
              preallocated output: what the fusec call costs minus the API
              (argument checks, output allocation). Diagnostic only.
  fusec-e2e   g(x, y) with NumPy in and NumPy out (host copies included).
  numpy       op by op.   numexpr: one expression (where() for relu/clamp;
              numexpr's own common-subexpression elimination keeps it linear).
  torch       eager, torch.set_num_threads(2).   t.compile: torch.compile
              (default mode, dynamic=False, compiled per (chain, k, n)).
  copy        best of several OpenCL copy kernel layouts (float4/wg 1024,
              float8, per-work-item contiguous chunk with local size 1).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

LIGHT_CYCLE = ("mul", "add", "relu", "clamp")
HEAVY_CYCLE = ("sigmoid", "tanh", "exp", "sqrt")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the chains, in each framework's spelling ------------------------------------------


def chain_ops(kind: str, k: int) -> list[str]:
    if kind == "light":
        return [LIGHT_CYCLE[i % 4] for i in range(k)]
    return ["mul"] + [HEAVY_CYCLE[i % 4] for i in range(k)]


def ir_text(kind: str, k: int) -> str:
    lines, v = [], "x"
    for i, op in enumerate(chain_ops(kind, k)):
        expr = {
            "mul": f"{v} * y",
            "add": f"{v} + y",
            "relu": f"relu({v})",
            "clamp": f"clamp({v}, min=-1.0, max=1.0)",
        }.get(op, f"{op}({v})")
        lines.append(f"    v{i} = {expr}")
        v = f"v{i}"
    body = "\n".join(lines)
    return f"graph chain(x: f32[N], y: f32[N]) {{\n{body}\n    return {v}\n}}\n"


def numpy_fn(kind: str, k: int):
    ops = chain_ops(kind, k)

    def f(x, y):
        v = x
        for op in ops:
            if op == "mul":
                v = v * y
            elif op == "add":
                v = v + y
            elif op == "relu":
                v = np.maximum(v, np.float32(0))
            elif op == "clamp":
                v = np.clip(v, np.float32(-1), np.float32(1))
            elif op == "sigmoid":
                v = 1 / (1 + np.exp(-v))
            elif op == "tanh":
                v = np.tanh(v)
            elif op == "exp":
                v = np.exp(v)
            elif op == "sqrt":
                v = np.sqrt(v)
        return v

    return f


def numexpr_expr(kind: str, k: int) -> str:
    # Integer literals keep float32 (float literals and maximum/minimum compute in
    # float64 in numexpr). The string repeats subexpressions; numexpr's compiler
    # collapses duplicate subtrees, so the program stays linear in k.
    v = "x"
    for op in chain_ops(kind, k):
        v = {
            "mul": f"({v} * y)",
            "add": f"({v} + y)",
            "relu": f"where({v} < 0, 0, {v})",
            "clamp": f"where({v} < -1, -1, where({v} > 1, 1, {v}))",
            "sigmoid": f"(1 / (1 + exp(-{v})))",
            "tanh": f"tanh({v})",
            "exp": f"exp({v})",
            "sqrt": f"sqrt({v})",
        }[op]
    return v


def torch_fn(kind: str, k: int):
    import torch

    ops = chain_ops(kind, k)

    def f(x, y):
        v = x
        for op in ops:
            if op == "mul":
                v = v * y
            elif op == "add":
                v = v + y
            elif op == "relu":
                v = torch.relu(v)
            elif op == "clamp":
                v = torch.clamp(v, -1.0, 1.0)
            elif op == "sigmoid":
                v = torch.sigmoid(v)
            elif op == "tanh":
                v = torch.tanh(v)
            elif op == "exp":
                v = torch.exp(v)
            elif op == "sqrt":
                v = torch.sqrt(v)
        return v

    return f


# -- the copy kernel ----------------------------------------------------------------------

COPY_SRC = r"""
__kernel void copy4(__global const float4 *restrict a, __global float4 *restrict b)
{ const size_t i = get_global_id(0); b[i] = a[i]; }

__kernel void copy8(__global const float8 *restrict a, __global float8 *restrict b)
{ const size_t i = get_global_id(0); b[i] = a[i]; }

__kernel void copy_chunk(__global const float8 *restrict a, __global float8 *restrict b,
                         const long n8, const long chunk)
{
    const long start = (long)get_global_id(0) * chunk;
    const long end = min(start + chunk, n8);
    for (long i = start; i < end; ++i) b[i] = a[i];
}
"""

# Stores past the caches, as fusec's kernels make them on Intel's CPU runtime
# (codegen/streaming.py): the copy the bandwidth limit is measured with must
# have them too. Built apart: a driver whose compiler lacks the builtin just
# goes without this layout. The buffers are the pool's, page-aligned.
COPY_NT_SRC = r"""
__kernel void copy8_nt(__global const float8 *restrict a, __global float8 *restrict b)
{
    const size_t i = get_global_id(0);
    __builtin_nontemporal_store(a[i], b + i);
    if (get_local_id(0) == get_local_size(0) - 1) write_mem_fence(CLK_GLOBAL_MEM_FENCE);
}
"""

CHUNK_ITEMS = 16  # work-items for the chunked layout (local size 1: one work-group each)


class CopyKernels:
    def __init__(self, ctx, queue):
        import pyopencl as cl

        self.cl, self.queue = cl, queue
        self.prg = cl.Program(ctx, COPY_SRC).build()
        self.k4, self.k8, self.kc = self.prg.copy4, self.prg.copy8, self.prg.copy_chunk
        self.knt = None
        if queue.device.type & cl.device_type.CPU:
            try:
                self.knt = cl.Program(ctx, COPY_NT_SRC).build().copy8_nt
            except cl.Error:
                pass

    def layouts(self, src, dst, n: int) -> dict:
        """name -> a callable that copies n floats from src to dst and waits."""
        q, out = self.queue, {}
        if n % 4 == 0:
            g4 = n // 4
            l4 = 1024 if g4 % 1024 == 0 else None

            def c4():
                self.k4(q, (g4,), None if l4 is None else (l4,), src, dst)
                q.finish()

            out["float4/wg1024" if l4 else "float4"] = c4
        if n % 8 == 0:
            n8 = n // 8

            def c8():
                self.k8(q, (n8,), None, src, dst)
                q.finish()

            out["float8"] = c8
            items = min(CHUNK_ITEMS, n8)
            chunk = -(-n8 // items)

            def cc():
                self.kc(q, (items,), (1,), src, dst, np.int64(n8), np.int64(chunk))
                q.finish()

            out[f"chunk{items}/ls1"] = cc
            from fusec.runtime.memory import host_address

            aligned = all(host_address(q, b) % 64 == 0 for b in (src, dst))
            if self.knt is not None and aligned and n8 % 256 == 0:

                def cnt():
                    self.knt(q, (n8,), (256,), src, dst)
                    q.finish()

                out["float8/non-temporal"] = cnt
        return out


# -- timing ---------------------------------------------------------------------------------


def repeats_for(n: int, full: bool) -> tuple[int, int]:
    """(warm-up calls, timed rounds) for n elements."""
    if n <= 1 << 16:
        r = (3, 31)
    elif n <= 1 << 20:
        r = (2, 15)
    else:
        r = (1, 7)
    return (r[0], r[1] * 2 - 1) if full else r


def run_row(methods: dict, warm: int, rounds: int, before=None) -> dict[str, list[float]]:
    """Warm every method, then `rounds` rounds each timing every method once,
    in an order that rotates from round to round; `before()`, if given, runs
    before each timed call, outside the timing."""
    for fn in methods.values():
        for _ in range(warm):
            fn()
    names = list(methods)
    samples = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            fn = methods[name]
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return samples


def med(xs):
    return statistics.median(xs) if xs else None


def machine_header(dev, **versions) -> list[str]:
    """The lines every benchmark prints first: device, host, versions."""
    import fusec

    shown = ", ".join(
        f"{k} {v}"
        for k, v in {"fusec": fusec.__version__, "numpy": np.__version__, **versions}.items()
    )
    return [
        f"device:  {dev.name.strip()} ({dev.platform.name.strip()} {dev.platform.version.strip()}), "
        f"{dev.max_compute_units} compute units",
        f"host:    {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"versions: {shown}",
    ]


# -- main -----------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="n = 2^20 only, k in 1, 8")
    mode.add_argument(
        "--full",
        action="store_true",
        help="torch.compile on every row, more repeats, n also 2^18, 2^22",
    )
    ap.add_argument("--json", metavar="PATH", help="write the raw numbers here")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--chains", default="light,heavy", help="comma list of light, heavy")
    ap.add_argument(
        "--compile-limited",
        action="store_true",
        help="torch.compile only for n >= 2^20 and k in 1, 8, 16 (saves ~1 min)",
    )
    ap.add_argument(
        "--omp-active",
        action="store_true",
        help="leave OMP_WAIT_POLICY unset (see below); default sets it to PASSIVE",
    )
    args = ap.parse_args(argv)

    # PyTorch's OpenMP workers spin after each op. Interleaved with the others, the
    # spinning took CPU from whatever ran next (fusec's PoCL kernel 1.0 -> 2.5 ms
    # right after a torch call, 2^20), and on a loaded 2-core machine eager torch
    # itself went from 0.1 to 56 ms (2^16, light-8). PASSIVE workers sleep instead.
    if not args.omp_active:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    t_start = time.perf_counter()
    import numexpr as ne
    import pyopencl as cl
    import pyopencl.array as cla
    import torch

    import fusec

    torch.set_num_threads(2)
    ne.set_num_threads(2)

    if args.quick:
        sizes, ks = [1 << 20], [1, 8]
    elif args.full:
        sizes, ks = [1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24], [1, 4, 8, 16]
    else:
        sizes, ks = [1 << 16, 1 << 20, 1 << 24], [1, 4, 8, 16]
    kinds = [c.strip() for c in args.chains.split(",") if c.strip()]

    def compile_wanted(n, k):
        if args.no_compile:
            return False
        if not args.compile_limited:
            return True
        # each torch.compile costs ~1 s, the first one in the process 11-17 s
        return n >= 1 << 20 and k in (1, 8, 16)

    # Compile fusec graphs first (one per chain and k: N is symbolic).
    graphs, fusec_build = {}, {}
    for kind in kinds:
        for k in ks:
            t0 = time.perf_counter()
            g = fusec.compile(ir_text(kind, k))["chain"]
            g.build()
            fusec_build[(kind, k)] = time.perf_counter() - t0
            graphs[(kind, k)] = g
    queue = next(iter(graphs.values())).runtime.queue
    ctx = queue.context
    dev = queue.device
    copier = CopyKernels(ctx, queue)

    header = [
        f"device:  {dev.name.strip()} ({dev.platform.name.strip()} {dev.platform.version.strip()}), "
        f"{dev.max_compute_units} compute units",
        f"host:    {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"versions: fusec {fusec.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
        f"numexpr {ne.__version__}, pyopencl {cl.VERSION_TEXT}",
        f"mode:    {'quick' if args.quick else 'full' if args.full else 'default'}; "
        f"sizes {', '.join(f'2^{int(math.log2(n))}' for n in sizes)}; k {', '.join(map(str, ks))}; "
        f"fusec vector width {next(iter(graphs.values())).kernels[0].device.vector_width}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
        f"load average at start {os.getloadavg()[0]:.2f}",
    ]
    print("\n".join(header), flush=True)

    rng = np.random.default_rng(0)
    rows = []
    plan = [(kind, k, n) for n in sizes for kind in kinds for k in ks]
    state = {"compiled_once": False}

    def one_row(idx, kind, k, n):
        tag = f"[{idx}/{len(plan)}] {kind}-{k} n=2^{int(math.log2(n))}"
        log(f"{tag}: preparing ({time.perf_counter() - t_start:.0f} s elapsed)")
        x = rng.standard_normal(n, dtype=np.float32)
        y = rng.uniform(0.5, 1.5, n).astype(np.float32)
        ref = numpy_fn(kind, k)(x, y)
        g = graphs[(kind, k)]
        xd, yd = cla.to_device(queue, x), cla.to_device(queue, y)
        queue.finish()
        methods, check = {}, {}

        def fusec_dev(g=g, xd=xd, yd=yd):
            r = g(xd, yd)
            queue.finish()
            return r

        methods["fusec"] = fusec_dev
        check["fusec"] = lambda: fusec_dev().get(queue)

        # the same kernel, launched by hand into a preallocated output
        try:
            kern = g.kernels[0]
            # an own kernel object: fusec's call sets arguments on its own one
            clk = cl.Kernel(g.build(), kern.group.name)
            outd = cla.empty(queue, (n,), np.float32)
            argmap = {"x": xd.data, "y": yd.data, "out0": outd.data}
            kargs = []
            for name, kkind, _ in kern.args:
                if kkind in ("size", "dim"):
                    kargs.append(np.int64(n))
                else:
                    kargs.append(argmap[name])
            gsize = (-(-n // kern.device.vector_width),)
            clk.set_args(*kargs)

            def fusec_kern(clk=clk, gsize=gsize):
                cl.enqueue_nd_range_kernel(queue, clk, gsize, None)
                queue.finish()

            methods["fusec-kern"] = fusec_kern
            check["fusec-kern"] = lambda: (fusec_kern(), outd.get(queue))[1]
        except Exception as e:  # internals moved: skip the diagnostic column
            log(f"{tag}: fusec-kern skipped ({type(e).__name__}: {e})")

        methods["fusec-e2e"] = lambda g=g, x=x, y=y: g(x, y)
        npf = numpy_fn(kind, k)
        methods["numpy"] = lambda: npf(x, y)
        expr = numexpr_expr(kind, k)
        nedict = {"x": x, "y": y}
        methods["numexpr"] = lambda: ne.evaluate(expr, local_dict=nedict)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        tf = torch_fn(kind, k)
        methods["torch"] = lambda: tf(xt, yt)
        check["torch"] = lambda: tf(xt, yt).numpy()
        tc_compile_s = None
        if compile_wanted(n, k):
            torch._dynamo.reset()
            tcf = torch.compile(torch_fn(kind, k), dynamic=False)
            log(
                f"{tag}: torch.compile{' (first in process: slow)' if not state['compiled_once'] else ''}"
            )
            t0 = time.perf_counter()
            tcf(xt, yt)
            tc_compile_s = time.perf_counter() - t0
            state["compiled_once"] = True
            methods["t.compile"] = lambda: tcf(xt, yt)
            check["t.compile"] = lambda: tcf(xt, yt).numpy()

        src = cla.to_device(queue, x)
        dst = cla.empty(queue, (n,), np.float32)
        copies = copier.layouts(src.data, dst.data, n)
        for name, fn in copies.items():
            methods["copy:" + name] = fn

        # correctness, once per row
        errors = {}
        for name in methods:
            if name.startswith("copy:"):
                continue
            try:
                out = check[name]() if name in check else methods[name]()
                out = np.asarray(out)
                bad = out.shape != ref.shape or not np.allclose(
                    out, ref, rtol=1e-4, atol=1e-5, equal_nan=True
                )
                if bad:
                    err = (
                        float(np.nanmax(np.abs(out.astype(np.float64) - ref)))
                        if out.shape == ref.shape
                        else None
                    )
                    errors[name] = f"max abs err {err}" if err is not None else f"shape {out.shape}"
            except Exception as e:
                errors[name] = f"{type(e).__name__}: {e}"
        for name, msg in errors.items():
            log(f"{tag}: WRONG RESULT from {name}: {msg}")
            methods.pop(name, None)
        dst_check = None
        copies[next(iter(copies))]()
        if not np.array_equal(dst.get(queue), x):
            dst_check = "copy kernel produced wrong data"
            log(f"{tag}: {dst_check}")

        warm, rounds = repeats_for(n, args.full)
        log(f"{tag}: timing {len(methods)} methods, {rounds} rounds")
        samples = run_row(methods, warm, rounds)
        meds = {m: med(s) for m, s in samples.items()}
        copy_best = min((m for m in meds if m.startswith("copy:")), key=lambda m: meds[m])
        row = {
            "chain": kind,
            "k": k,
            "n": n,
            "ops": chain_ops(kind, k),
            "bytes": 12 * n,
            "copy_bytes": 8 * n,
            "median_s": meds,
            "samples_s": samples,
            "copy_layout": copy_best[5:],
            "copy_s": meds[copy_best],
            "copy_gbs": 8 * n / meds[copy_best] / 1e9,
            "fusec_build_s": fusec_build[(kind, k)],
            "torch_compile_first_call_s": tc_compile_s,
            "errors": errors,
        }
        for m, t in meds.items():
            if not m.startswith("copy:") and t:
                row.setdefault("gbs", {})[m] = 12 * n / t / 1e9
        torch._dynamo.reset()
        return row

    for idx, (kind, k, n) in enumerate(plan, 1):
        rows.append(one_row(idx, kind, k, n))

    report = format_report(rows, kinds)
    print(report, flush=True)
    elapsed = time.perf_counter() - t_start
    print(f"\n(total {elapsed:.0f} s; load average at end {os.getloadavg()[0]:.2f})", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "elapsed_s": elapsed, "rows": rows}, f, indent=1)
        log(f"wrote {args.json}")
    return 0


# -- the report -------------------------------------------------------------------------------


def fmt_ms(t):
    if t is None:
        return "-"
    ms = t * 1e3
    return (
        f"{ms:.3f}"
        if ms < 1
        else f"{ms:.2f}"
        if ms < 10
        else f"{ms:.1f}"
        if ms < 100
        else f"{ms:.0f}"
    )


def fmt_x(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def table(head, body):
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]

    def line(r):
        cells = zip(r, widths, strict=True)
        return "  ".join(
            str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(cells)
        )

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in body])


def format_report(rows, kinds):
    out = []
    names = ["fusec", "fusec-kern", "fusec-e2e", "numpy", "numexpr", "torch", "t.compile"]

    def label(r):
        return f"{r['chain']}-{r['k']}", f"2^{int(math.log2(r['n']))}"

    body1 = []
    for r in rows:
        m = r["median_s"]
        body1.append([*label(r)] + [fmt_ms(m.get(nm)) for nm in names] + [fmt_ms(r["copy_s"])])
    out.append(
        "\nTime per call, ms (median; fusec and fusec-kern on device-resident inputs, "
        "copy = best copy kernel, 8n bytes)"
    )
    out.append(table(["chain", "n"] + names + ["copy"], body1))

    body2 = []
    for r in rows:
        gb = r.get("gbs", {})
        body2.append(
            [*label(r)]
            + [f"{gb[nm]:.1f}" if nm in gb else "-" for nm in names]
            + [f"{r['copy_gbs']:.1f}", r["copy_layout"]]
        )
    out.append("\nEffective GB/s (12n bytes: x, y read, out written; copy: 8n bytes)")
    out.append(table(["chain", "n"] + names + ["copy", "copy layout"], body2))

    body3 = []
    for r in rows:
        m, gb = r["median_s"], r.get("gbs", {})
        f = m.get("fusec")
        pct = f"{100 * gb['fusec'] / r['copy_gbs']:.0f}%" if "fusec" in gb else "-"
        pctk = f"{100 * gb['fusec-kern'] / r['copy_gbs']:.0f}%" if "fusec-kern" in gb else "-"
        body3.append(
            [*label(r), pct, pctk]
            + [
                fmt_x(m.get(nm), f)
                for nm in ("numpy", "numexpr", "torch", "t.compile", "fusec-e2e")
            ]
        )
    out.append(
        "\nfusec vs the rest: % of copy-kernel GB/s, and speedup = other's time / fusec's time "
        "(> 1: fusec faster)"
    )
    out.append(
        table(
            [
                "chain",
                "n",
                "%copy",
                "kern %copy",
                "vs numpy",
                "vs numexpr",
                "vs torch",
                "vs t.compile",
                "e2e/dev",
            ],
            body3,
        )
    )

    errs = [(label(r), r["errors"]) for r in rows if r["errors"]]
    if errs:
        out.append("\nWRONG RESULTS (excluded from timing):")
        for lab, e in errs:
            for nm, msg in e.items():
                out.append(f"  {lab[0]} {lab[1]} {nm}: {msg}")

    # targets
    def find(kind, k, n):
        return next((r for r in rows if r["chain"] == kind and r["k"] == k and r["n"] == n), None)

    t1, t2 = find("light", 8, 1 << 24), find("heavy", 8, 1 << 24)
    parts = []
    if t1 and "fusec" in t1.get("gbs", {}):
        p = 100 * t1["gbs"]["fusec"] / t1["copy_gbs"]
        kp = t1["gbs"].get("fusec-kern")
        kp = (
            f", kernel alone into a preallocated output {100 * kp / t1['copy_gbs']:.0f}%"
            if kp
            else ""
        )
        parts.append(
            f"light-8 2^24 at {p:.0f}% of copy GB/s (target >= 85%: {'MET' if p >= 85 else 'MISSED'}{kp})"
        )
    else:
        parts.append("light-8 2^24 >= 85% of copy GB/s: not measured in this mode")
    if t2 and t2["median_s"].get("t.compile") and t2["median_s"].get("fusec"):
        s = t2["median_s"]["t.compile"] / t2["median_s"]["fusec"]
        kt = t2["median_s"].get("fusec-kern")
        kt = f", kernel alone {t2['median_s']['t.compile'] / kt:.2f}x" if kt else ""
        parts.append(
            f"heavy-8 2^24 {s:.2f}x torch.compile's speed (target > 1: {'MET' if s > 1 else 'MISSED'}{kt})"
        )
    else:
        parts.append("heavy-8 2^24 faster than torch.compile: not measured in this mode")
    out.append("\nTargets:\n  " + "\n  ".join(parts))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
