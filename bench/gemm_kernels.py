#!/usr/bin/env python
"""fusec.gemm's kernels alone (built with plain pyopencl, before any compiler
wiring): linear + bias + relu against NumPy (OpenBLAS) and PyTorch eager, in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gemm_kernels.py
    ... --sweep           also the other register blocks tried (see fusec/gemm.py)
    ... --tiled           also the GPU layout (local-memory tiles), run by this CPU: slow
    ... --openblas-spin   leave OPENBLAS_THREAD_TIMEOUT alone (see below)
    ... --mlp             the ONNX MLP's shapes instead (bench/onnx_mlp.py, batch 1024 and 64)
    ... --json out.json

Shapes (M x K -> N, float32): 256x784->256, 4096x1024->1024, 64x4096->4096.
The report also gives the device's FMA peak, measured in the same run by a
kernel of register-only multiply-adds (16 vector accumulators per work-item,
64 work-items), and each column as a fraction of it.
y = relu(x . w^T + b); GFLOP/s counts 2 M N K.

Columns:
  panel        the CPU layout fusec.gemm chooses for this device, w packed ONCE
               (outside the timing; the weight's panels are reused), bias + relu
               as the scalar per-element epilogue the compiler hands over
  panel+vec    the same with the optional vector epilogue (bias + relu on float16s)
  panel+pack   packing w on EVERY call, then the product (a weight that changes)
  dot          the no-packing CPU layout: w read as stored
  <kind> RxC   a layout fusec picks at one of the shapes' known sizes (with a
               bound weight) where it is none of the above (a narrow N's), vector epilogue
  numpy        np.maximum(x @ w.T + b, 0): OpenBLAS GEMM, then two passes
  torch        torch.relu(F.linear(x, w, b)), 2 threads
All fusec columns: inputs already on the device, output left there, clFinish inside.

Timing: every method warmed up, then timed once per round in an order that
rotates between rounds (bench/elementwise.py's run_row); medians. The machine
is shared: compare columns of one run, not numbers across runs.

Two things that otherwise decide the result more than the kernels do:
- Intel's CPU runtime computes on its worker thread *and* on the host thread
  waiting in clFinish; both cores are only used while the host blocks there.
- OpenBLAS's idle worker spins for 2^28 cycles (~0.07 s) after each call.
  Interleaved, that spinning took one of the two cores from whatever ran next
  (fusec's kernels: 250 instead of 490 GFLOP/s). This script sets
  OPENBLAS_THREAD_TIMEOUT=4 (spin briefly, then sleep) unless --openblas-spin;
  NumPy's own numbers did not change measurably with it. Likewise
  OMP_WAIT_POLICY=PASSIVE for torch's OpenMP workers (as bench/elementwise.py).
The environment may set OPENBLAS_CORETYPE (older kernels, slower on this CPU):
run with it unset, as above; the header prints the kernel OpenBLAS uses.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

SHAPES = [(256, 784, 256), (4096, 1024, 1024), (64, 4096, 4096)]
MLP_SHAPES = [(1024, 784, 512), (1024, 512, 512), (1024, 512, 10), (64, 784, 512), (64, 512, 512)]


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", action="store_true", help="also the other register blocks tried")
    ap.add_argument(
        "--tiled", action="store_true", help="also the GPU layout on this device (slow)"
    )
    ap.add_argument(
        "--openblas-spin", action="store_true", help="leave OPENBLAS_THREAD_TIMEOUT unset"
    )
    ap.add_argument("--rounds", type=int, default=0, help="rounds per shape (default: by shape)")
    ap.add_argument("--mlp", action="store_true", help="the ONNX MLP's shapes instead")
    ap.add_argument("--json", metavar="PATH")
    return ap.parse_args(argv)


PEAK_ACCUMULATORS = 16


def fma_peak(cl, ctx, queue, lanes: int, iters: int = 20000, items: int = 64) -> float:
    """GFLOP/s of register-only multiply-adds on float<lanes> (the width the CPU
    layouts use: PoCL aborts on float16 where its target lacks AVX-512): what a
    GEMM can reach at best. 16 independent accumulators per work-item cover the
    FMA latency x pipes; the second fastest of 7 launches."""
    import numpy as np

    acc, vt = range(PEAK_ACCUMULATORS), f"float{lanes}"
    src = "\n".join(
        [
            f"__attribute__((vec_type_hint({vt})))",
            "__kernel void peak(__global float *out, const int iters, const float s) {",
            *(f"    {vt} a{i} = ({vt})({i}.0f + (float)get_global_id(0));" for i in acc),
            f"    const {vt} m = ({vt})(s);",
            "    for (int it = 0; it < iters; ++it) {",
            *(f"        a{i} = a{i} * m + m;" for i in acc),
            "    }",
            f"    vstore{lanes}(" + " + ".join(f"a{i}" for i in acc) + ", get_global_id(0), out);",
            "}",
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kernel = cl.Kernel(cl.Program(ctx, src).build(), "peak")
    out = cl.Buffer(ctx, cl.mem_flags.WRITE_ONLY, lanes * 4 * items)
    kernel.set_args(out, np.int32(iters), np.float32(0.999))
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        cl.enqueue_nd_range_kernel(queue, kernel, (items,), (1,))
        queue.finish()
        times.append(time.perf_counter() - t0)
    return items * iters * PEAK_ACCUMULATORS * lanes * 2 / sorted(times)[1] / 1e9


def blas_info() -> str:
    """The BLAS NumPy calls and the kernel it picked: threadpoolctl if installed,
    else OpenBLAS's own get_corename/get_config through ctypes."""
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return (
            "; ".join(
                f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}, {i.get('num_threads')} threads"
                for i in blas
            )
            or "threadpoolctl found no BLAS"
        )
    except ImportError:
        pass
    paths = set()
    try:
        with open("/proc/self/maps") as f:
            paths = {
                line.split()[-1]
                for line in f
                if "openblas" in line.lower() and line.rstrip().endswith(".so")
            }
    except OSError:
        return "threadpoolctl not installed; BLAS unknown"
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        found = {}
        for what in ("get_corename", "get_config", "get_num_threads"):
            # the scipy-openblas wheels NumPy ships prefix and suffix every symbol
            for sym in (f"openblas_{what}", f"scipy_openblas_{what}64_", f"openblas_{what}64_"):
                if hasattr(lib, sym):
                    fn = getattr(lib, sym)
                    fn.restype = ctypes.c_int if what == "get_num_threads" else ctypes.c_char_p
                    value = fn()
                    found[what] = value.decode() if isinstance(value, bytes) else value
                    break
        if found:
            return (
                f"OpenBLAS kernel {found.get('get_corename', '?')}, {found.get('get_num_threads', '?')} threads "
                f"({found.get('get_config', '?')}; via ctypes, threadpoolctl not installed)"
            )
    return "threadpoolctl not installed; no OpenBLAS found"


def main(argv=None) -> int:
    args = parse(argv)
    # before NumPy and torch start their thread pools (see the docstring)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not args.openblas_spin:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import numpy as np
    import pyopencl as cl
    import torch
    from elementwise import log, med, run_row, table

    import fusec
    from fusec.codegen import gemm_layouts as gemm
    from fusec.codegen.plan import BUILD_OPTIONS
    from fusec.runtime import Runtime

    torch.set_num_threads(2)
    F = torch.nn.functional
    rt = Runtime.shared()
    ctx, queue, dev, info = rt.context, rt.queue, rt.device, rt.info
    # as fusec reads them (PoCL's own report follows cpuid, not its target)
    native = info.native_vector_width
    local_mem = info.local_mem_size

    layouts = {
        "panel": gemm.choose_layout(info, None, None, None, pack="once", native_width=native),
        "dot": gemm.choose_layout(info, None, None, None, pack="never", native_width=native),
    }
    if not info.is_cpu:
        layouts = {"tiled": gemm.choose_layout(info, None, None, None, local_memory=local_mem)}
    sweep = {}
    if args.sweep and info.is_cpu:
        v = layouts["panel"].vector
        for rows, vectors in [(4, 2), (4, 4), (6, 4), (8, 3), (12, 2)]:
            sweep[f"panel {rows}x{vectors * v}"] = gemm.GemmLayout(
                "panel", rows, vectors * v, v, (8, 1)
            )
        for rows, cols in [(2, 8), (4, 4), (3, 8)]:
            sweep[f"dot {rows}x{cols}"] = gemm.GemmLayout("dot", rows, cols, v, (8, 1))
    if args.tiled:
        gpu_like = DeviceInfoFor(info)
        sweep["tiled(gpu)"] = gemm.choose_layout(gpu_like, None, None, None, local_memory=local_mem)

    def epilogue(acc, row, col):
        return [f"out0[({row}) * N + ({col})] = max({acc} + in_b[{col}], 0.0f);"]

    def vector_epilogue(acc, row, col, width):
        return [
            f"vstore{width}(max({acc} + vload{width}(0, in_b + {col}), 0.0f), 0, out0 + ({row}) * N + {col});"
        ]

    params = ["__global const float *restrict in_b", "__global float *restrict out0"]

    def build(layout, vector=False):
        src = gemm.gemm_source(
            "lin",
            layout,
            ctype="float",
            epilogue=epilogue,
            epilogue_params=params,
            vector_epilogue=vector_epilogue if vector else None,
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prg = cl.Program(ctx, src).build(BUILD_OPTIONS)
        kernels = (cl.Kernel(prg, "lin"), cl.Kernel(prg, "lin_pack") if layout.packs else None)
        return kernels, time.perf_counter() - t0

    variants = {}  # column -> (layout, kernels, pack per call)
    builds = {}
    for name, layout in {**layouts, **sweep}.items():
        kernels, seconds = build(layout)
        builds[name] = seconds
        variants[name] = (layout, kernels, False)
        if name == "panel":
            kernels_v, seconds = build(layout, vector=True)
            builds["panel+vec"] = seconds
            variants["panel+vec"] = (layout, kernels_v, False)
            variants["panel+pack"] = (layout, kernels, True)
    # the layouts fusec picks for a bound weight at these known sizes (a narrow
    # N: gemm_layouts._narrow_layout), where they are none of the above
    shapes = MLP_SHAPES if args.mlp else SHAPES
    for m, k, n in shapes if info.is_cpu else ():
        layout = gemm.choose_layout(info, m, n, k, pack="once", native_width=native)
        name = f"{layout.kind} {layout.rows}x{layout.cols}"
        if layout not in [v[0] for v in variants.values()] and name not in variants:
            kernels, builds[name] = build(layout, vector=True)
            variants[name] = (layout, kernels, False)

    peak = fma_peak(cl, ctx, queue, layouts["panel"].vector if "panel" in layouts else 4)
    header = [
        f"device:  {dev.name.strip()} ({dev.platform.name.strip()}, driver {dev.driver_version}), "
        f"{dev.max_compute_units} compute units, native float width {native}",
        f"host:    {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"versions: fusec {fusec.__version__}, numpy {np.__version__}, torch {torch.__version__}, "
        f"pyopencl {cl.VERSION_TEXT}",
        f"BLAS:    {blas_info()}",
        "env:     "
        + ", ".join(
            f"{k}={os.environ.get(k, '(unset)')}"
            for k in (
                "OPENBLAS_CORETYPE",
                "OPENBLAS_L2_SIZE",
                "OPENBLAS_THREAD_TIMEOUT",
                "OMP_WAIT_POLICY",
            )
        ),
        "layouts: " + "; ".join(f"{n}: {lay}" for n, lay in {**layouts, **sweep}.items()),
        "builds:  "
        + ", ".join(f"{n} {s:.2f} s" for n, s in builds.items())
        + f"; load average at start {os.getloadavg()[0]:.2f}",
        f"peak:    {peak:.0f} GFLOP/s (register-only vector multiply-adds, this run)",
    ]
    print("\n".join(header), flush=True)
    if os.environ.get("OPENBLAS_CORETYPE"):
        log("note: OPENBLAS_CORETYPE is set; NumPy runs that kernel, not the machine's own")

    mf = cl.mem_flags
    rng = np.random.default_rng(0)

    def measure(m, k, n) -> dict:
        tag = f"{m}x{k}->{n}"
        x = rng.standard_normal((m, k), dtype=np.float32)
        w = (rng.standard_normal((n, k), dtype=np.float32) / np.float32(np.sqrt(k))).astype(
            np.float32
        )
        b = rng.standard_normal(n, dtype=np.float32)
        want = np.maximum(x.astype(np.float64) @ w.T.astype(np.float64) + b, 0)
        xb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=x)
        wb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=w)
        bb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=b)
        out = cl.Buffer(ctx, mf.READ_WRITE, m * n * 4)
        methods, fetch = {}, {}
        packed_bufs = {}
        for name, (layout, (main_k, pack_k), per_call) in variants.items():
            wd, pgs, pls = wb, None, None
            if layout.packs:
                key = (layout.cols, layout.vector)
                if key not in packed_bufs:
                    packed_bufs[key] = cl.Buffer(
                        ctx, mf.READ_WRITE, gemm.packed_elements(layout, n, k) * 4
                    )
                wd = packed_bufs[key]
                pgs, pls = gemm.pack_geometry(layout, n, k)
                pack_k.set_args(np.int64(n), np.int64(k), wb, wd)
                cl.enqueue_nd_range_kernel(queue, pack_k, pgs, pls)  # once, outside the timing
            gs, ls = gemm.launch_geometry(layout, m, n, k)

            def fn(
                main_k=main_k,
                pack_k=pack_k,
                gs=gs,
                ls=ls,
                wd=wd,
                per_call=per_call,
                pgs=pgs,
                pls=pls,
            ):
                if per_call:
                    cl.enqueue_nd_range_kernel(queue, pack_k, pgs, pls)
                main_k.set_args(np.int64(m), np.int64(n), np.int64(k), xb, wd, bb, out)
                cl.enqueue_nd_range_kernel(queue, main_k, gs, ls)
                queue.finish()

            def get(fn=fn):
                fn()
                y = np.empty((m, n), np.float32)
                cl.enqueue_copy(queue, y, out)
                return y

            methods[name], fetch[name] = fn, get
        methods["numpy"] = lambda: np.maximum(x @ w.T + b, 0)
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
        methods["torch"] = lambda: torch.relu(F.linear(xt, wt, bt))
        fetch["torch"] = lambda: methods["torch"]().numpy()

        errors = {}
        for name in list(methods):
            got = fetch[name]() if name in fetch else methods[name]()
            err = float(np.abs(got - want).max())
            if not err <= 1e-4 * np.sqrt(k):
                errors[name] = f"max abs err {err:.3g}"
                log(f"{tag}: WRONG RESULT from {name}: {errors[name]}; not timed")
                methods.pop(name)
        t0 = time.perf_counter()
        methods["numpy"]()
        est = time.perf_counter() - t0
        rounds = args.rounds or (61 if est < 2e-3 else 21 if est < 30e-3 else 11)
        log(f"{tag}: timing {len(methods)} methods, {rounds} rounds")
        samples = run_row(methods, 2, rounds)
        meds = {name: med(s) for name, s in samples.items()}
        return {
            "shape": tag,
            "m": m,
            "k": k,
            "n": n,
            "flops": 2 * m * n * k,
            "median_s": meds,
            "samples_s": samples,
            "errors": errors,
        }

    rows = [measure(m, k, n) for m, k, n in shapes]

    names = list(variants) + ["numpy", "torch"]
    body = []
    for r in rows:
        meds = r["median_s"]
        body.append(
            [r["shape"]]
            + [f"{r['flops'] / meds[c] / 1e9:.0f}" if c in meds else "-" for c in names]
        )
    print("\nGFLOP/s (2 M N K / median time)")
    print(table(["shape"] + names, body))
    body = [
        [r["shape"]]
        + [
            f"{r['flops'] / r['median_s'][c] / 1e9 / peak:.0%}" if c in r["median_s"] else "-"
            for c in names
        ]
        for r in rows
    ]
    print(f"\nfraction of the FMA peak ({peak:.0f} GFLOP/s)")
    print(table(["shape"] + names, body))
    body = []
    for r in rows:
        meds = r["median_s"]
        body.append([r["shape"]] + [f"{meds[c] * 1e3:.3f}" if c in meds else "-" for c in names])
    print("\nmedian ms per call")
    print(table(["shape"] + names, body))

    ours = [c for c in variants if c in ("panel", "panel+vec", "panel+pack", "dot", "tiled")]
    body = []
    for r in rows:
        meds = r["median_s"]
        line = [r["shape"]]
        for c in ours:
            if c not in meds:
                line += ["-", "-"]
                continue
            line += [
                f"{meds['numpy'] / meds[c]:.2f}x",
                f"{meds['torch'] / meds[c]:.2f}x" if "torch" in meds else "-",
            ]
        body.append(line)
    print("\nspeed-up = other's time / fusec's time (> 1: fusec faster), same run")
    print(table(["shape"] + [f"{c} vs {o}" for c in ours for o in ("numpy", "torch")], body))

    if "panel" in variants:
        met = all(r["median_s"].get("panel", float("inf")) <= r["median_s"]["numpy"] for r in rows)
        print(
            f"\ntarget: panel (w packed once) >= NumPy's GFLOP/s on every shape: {'MET' if met else 'MISSED'}"
        )
        # what fusec's compiler runs today: it packs on every call, and
        # choose_layout(pack="per_call") with the sizes known picks per shape
        wired = []
        for r in rows:
            lay = gemm.choose_layout(info, r["m"], r["n"], r["k"], native_width=native)
            col = "panel+pack" if lay.kind == "panel" else "dot"
            t = r["median_s"].get(col)
            wired.append((r["shape"], col, t and r["median_s"]["numpy"] / t))
        met = all(x and x >= 1 for *_, x in wired)
        print(
            "        as wired (pack per call, layout per known M): "
            + ", ".join(f"{s} {c} {x:.2f}x NumPy" for s, c, x in wired if x)
            + f": {'MET' if met else 'MISSED'}"
        )
    print(f"(load average at end {os.getloadavg()[0]:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=1)
    return 0


def DeviceInfoFor(info):
    """A GPU-like DeviceInfo with this device's limits: the tiled layout's code on this device."""
    import dataclasses

    return dataclasses.replace(
        info, is_cpu=False, max_work_group_size=min(256, info.max_work_group_size)
    )


if __name__ == "__main__":
    sys.exit(main())
