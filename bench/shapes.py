#!/usr/bin/env python
"""The shapes frameworks call with (issue 15): broadcast operands, reductions,
softmax. fusec against NumPy, torch eager, torch.compile and the copy
bandwidth, all in one run.

    python bench/shapes.py                  # every case below (~5-10 min, torch.compile is slow to build)
    python bench/shapes.py --quick          # fewer cases, no torch.compile
    python bench/shapes.py --only softmax   # cases whose name contains a word

Cases (f32, device-resident inputs for the `fusec` column):

  bcast-*   relu(x * w + b) * 0.5 - 0.125 on 2^22 elements: flat (w, b as big as
            x), [B, D] * [D], [B, D] * [B, 1], NCHW * [C, 1, 1].
  sum-*     row (axis=1), column (axis=0) and full sums (sum of the row sums,
            one pass once simplify folds it), and a row sum with a prologue
            and an epilogue (sqrt(sum(x * x) + eps) * 0.5), at 4096 x 1024
            and 4096 x 4096.
  max-*     row and column max (NaN-propagating), same sizes.
  grad-*    a training step at 4096 x 1024 with broadcast w, b [D]: forward and
            the x, w, b gradients of a scalar loss (sum of the light chain
            above, or of a heavy one: gelu, sigmoid, tanh, silu, sqrt) or of
            the chain itself with a [B, D] cotangent. fusec: forward_backward
            (device-resident) and value_and_grad (NumPy in and out); torch and
            t.compile: the forward, then torch.autograd.grad. No NumPy column.
  softmax-*, log_softmax-*   over rows of 64 to 4096 elements; *-bwd-*: forward
            and backward with a [B, N] cotangent (as grad-*).
  layernorm-fwd-bwd-*, cross_entropy-fwd-bwd-*   forward + backward at 4096 x 1024
            (x, w, b gradients; cross-entropy: x's, labels as i64 [B, 1]).

Bytes counted per call: every input read once + every output written once.
GB/s = those bytes / time: `GB/s` from the device-resident call, `e2e GB/s`
from the NumPy-in/out one (both shown: on a device that reads host memory in
place they do the same work, elsewhere e2e adds the copies). `copy` is the
best OpenCL copy kernel on as many bytes (read + written) as the case moves:
the bandwidth limit. Its source buffer is filled with data first (an untouched
buffer reads the kernel's shared zero page: 110-120 GB/s, cache speed).

Caches: before every timed call (outside the timing) a 64 MiB buffer, twice
this machine's L3, is read, so every method starts from memory (--warm: no
flush). Without it, methods that read the NumPy inputs themselves (fusec-e2e,
numpy, torch: the tensors share the arrays' memory) found them in the L3, left
there by the method timed just before, while the device-resident fusec call
and the copy kernel read buffers of their own from memory: the `fusec` column
was slower than `fusec-e2e` (1.92 vs 1.55 ms, bcast-flat, quiet run of
2026-11-29), which does strictly more work. The flush evicts the interpreter's
and the OpenCL runtime's own data too: each call pays its host overhead cold
(~0.1 ms for a fusec call with its launches, against ~0.03 ms for NumPy's),
as a call in a loop over large arrays does.

Device-resident inputs and the copy kernel's buffers come from fusec's memory
pool, which advises large buffers MADV_HUGEPAGE on a CPU device as NumPy does
its large arrays (since 2026-11-30; before, the driver's own buffers on 4 KiB
pages made the `fusec` column slower than `fusec-e2e` even after the flush).

Columns: fusec (pyopencl arrays in and out, queue.finish() inside the timing),
fusec-e2e (NumPy in, NumPy out), numpy, torch (eager, 2 threads), t.compile
(torch.compile, dynamic=False, built once outside the timing), copy. Each row's
methods are timed in interleaved rounds (medians, then the fastest rounds): numbers on a loaded
machine are noisy, so compare within a row.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elementwise import CopyKernels, log, machine_header, med, run_row  # noqa: E402

CHAIN = "relu(x * w + b) * 0.5 - 0.125"


def _bcast(name, x_shape, wb_shape, dims):
    params = f"x: f32[{dims[0]}], w: f32[{dims[1]}], b: f32[{dims[1]}]"
    return dict(
        name=name,
        ir=f"graph f({params}) {{\n    return {CHAIN}\n}}",
        shapes=[x_shape, wb_shape, wb_shape],
        torch=lambda x, w, b: (x * w + b).relu() * 0.5 - 0.125,
        numpy=lambda x, w, b: (
            np.maximum(x * w + b, np.float32(0)) * np.float32(0.5) - np.float32(0.125)
        ),
    )


def _reduce(name, shape, ir_expr, torch_f, numpy_f):
    return dict(
        name=name,
        ir=f"graph f(x: f32[B, N]) {{\n    return {ir_expr}\n}}",
        shapes=[shape],
        torch=torch_f,
        numpy=numpy_f,
    )


def cases(quick: bool) -> list[dict]:
    import torch

    n = 1 << 22
    out = [
        _bcast("bcast-flat", (n,), (n,), ("N", "N")),
        _bcast("bcast-[B,D]*[D]", (4096, 1024), (1024,), ("B, D", "D")),
        _bcast("bcast-[B,D]*[B,1]", (4096, 1024), (4096, 1), ("B, D", "B, 1")),
        _bcast("bcast-NCHW*[C,1,1]", (16, 64, 64, 64), (64, 1, 1), ("N, C, H, W", "C, 1, 1")),
    ]
    for rows, cols in [(4096, 1024)] + ([] if quick else [(4096, 4096)]):
        tag = f"{rows}x{cols}"
        out += [
            _reduce(
                f"sum-rows-{tag}",
                (rows, cols),
                "sum(x, axis=1)",
                lambda x: x.sum(1),
                lambda x: x.sum(1),
            ),
            _reduce(
                f"sum-cols-{tag}",
                (rows, cols),
                "sum(x, axis=0)",
                lambda x: x.sum(0),
                lambda x: x.sum(0),
            ),
            _reduce(
                f"sum-full-{tag}",
                (rows, cols),
                "sum(sum(x, axis=1), axis=0)",
                lambda x: x.sum(),
                lambda x: np.asarray(x.sum()),
            ),
            _reduce(
                f"max-rows-{tag}",
                (rows, cols),
                "max(x, axis=1)",
                lambda x: x.amax(1),
                lambda x: x.max(1),
            ),
            _reduce(
                f"max-cols-{tag}",
                (rows, cols),
                "max(x, axis=0)",
                lambda x: x.amax(0),
                lambda x: x.max(0),
            ),
            # a prologue and an epilogue around the row sum: what a norm computes
            _reduce(
                f"sum-rows-fused-{tag}",
                (rows, cols),
                "sqrt(sum(x * x, axis=1) + 1e-5) * 0.5",
                lambda x: torch.sqrt((x * x).sum(1) + 1e-5) * 0.5,
                lambda x: np.sqrt((x * x).sum(1) + np.float32(1e-5)) * np.float32(0.5),
            ),
        ]
    # a training step: forward + backward (x, w and b gradients) with broadcast w, b
    light = "(x * w + b) * 0.5 - 0.125"
    heavy = "silu(tanh(sigmoid(gelu(x * w + b))) + sqrt(abs(x) + 1.0))"
    t_light = lambda x, w, b: torch.relu(x * w + b) * 0.5 - 0.125  # noqa: E731
    t_heavy = lambda x, w, b: torch.nn.functional.silu(  # noqa: E731
        torch.tanh(torch.sigmoid(torch.nn.functional.gelu(x * w + b))) + torch.sqrt(x.abs() + 1.0)
    )
    params = "x: f32[B, D], w: f32[D], b: f32[D]"
    for kind, expr, tf in [("light", f"relu{light}", t_light)] + (
        [] if quick else [("heavy", heavy, t_heavy)]
    ):
        loss = f"sum(sum({expr}, axis=1), axis=0)"
        out.append(
            dict(
                name=f"grad-{kind}-loss",
                grad=True,
                ir=f"graph f({params}) {{\n    return {loss}\n}}",
                shapes=[(4096, 1024), (1024,), (1024,)],
                ct=(),
                torch=lambda x, w, b, tf=tf: tf(x, w, b).sum(),
            )
        )
        out.append(
            dict(
                name=f"grad-{kind}-[B,D]ct",
                grad=True,
                ir=f"graph f({params}) {{\n    return {expr}\n}}",
                shapes=[(4096, 1024), (1024,), (1024,)],
                ct=(4096, 1024),
                torch=tf,
            )
        )
    widths = [64, 1024] if quick else [64, 256, 1024, 4096]
    for cols in widths:
        out.append(
            _reduce(
                f"softmax-4096x{cols}",
                (4096, cols),
                "softmax(x, axis=1)",
                lambda x: torch.softmax(x, 1),
                _np_softmax,
            )
        )
        if not quick:
            out.append(
                _reduce(
                    f"log_softmax-4096x{cols}",
                    (4096, cols),
                    "log_softmax(x, axis=1)",
                    lambda x: torch.log_softmax(x, 1),
                    _np_log_softmax,
                )
            )
    out += row_training_cases(torch, widths)
    return out


def row_training_cases(torch, widths) -> list[dict]:
    """Forward + backward of the row groups (issue 15): softmax and log_softmax
    with a [B, N] cotangent, LayerNorm (w, b: [N]) and cross-entropy (mean over
    the batch, class labels as i64 [B, 1]; fusec compares them with a column
    index, cols = arange(N), torch takes the labels) at 4096 x 1024."""
    F = torch.nn.functional
    out = []
    for cols in widths:
        for op, tf in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
            out.append(
                dict(
                    name=f"{op}-bwd-4096x{cols}",
                    grad=True,
                    ir=f"graph f(x: f32[B, N]) {{\n    return {op}(x, axis=1)\n}}",
                    shapes=[(4096, cols)],
                    ct=(4096, cols),
                    torch=lambda x, tf=tf: tf(x, 1),
                )
            )
    layer_norm = """graph f(x: f32[B, N], w: f32[N], b: f32[N]) {
    m = mean(x, axis=1, keepdim=true)
    d = x - m
    v = mean(d * d, axis=1, keepdim=true)
    return d * rsqrt(v + 1e-5) * w + b
}"""
    cross_entropy = """graph f(x: f32[B, N], labels: i64[B, 1], cols: i64[N]) {
    picked = where(labels == cols, log_softmax(x, axis=1), 0.0)
    return mean(-sum(picked, axis=1), axis=0)
}"""
    b, n = 4096, 1024

    def ce_arrays(rng):
        x = rng.standard_normal((b, n)).astype(np.float32)
        return [x, rng.integers(0, n, (b, 1)), np.arange(n)]

    out += [
        dict(
            name=f"layernorm-fwd-bwd-{b}x{n}",
            grad=True,
            ir=layer_norm,
            shapes=[(b, n), (n,), (n,)],
            ct=(b, n),
            torch=lambda x, w, b: F.layer_norm(x, (x.shape[1],), w, b, eps=1e-5),
        ),
        dict(
            name=f"cross_entropy-fwd-bwd-{b}x{n}",
            grad=True,
            ir=cross_entropy,
            make=ce_arrays,
            ct=(),
            torch=lambda x, labels, cols: F.cross_entropy(x, labels.view(-1)),
        ),
    ]
    return out


def _np_softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _np_log_softmax(x):
    s = x - x.max(1, keepdims=True)
    return s - np.log(np.exp(s).sum(1, keepdims=True))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="fewer cases, fewer rounds, no torch.compile"
    )
    ap.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    ap.add_argument(
        "--warm", action="store_true", help="no cache flush before each timed call (see above)"
    )
    ap.add_argument(
        "--rounds", type=int, default=0, help="timed rounds per case (default 9, quick 5)"
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/elementwise.py

    import pyopencl as cl
    import pyopencl.array as cla
    import torch

    import fusec

    torch.set_num_threads(2)
    rounds = args.rounds or (5 if args.quick else 9)
    use_compile = not (args.quick or args.no_compile)
    todo = [c for c in cases(args.quick) if args.only in c["name"]]
    rng = np.random.default_rng(0)
    flush = None if args.warm else cache_flush()
    copier = queue = None
    rows = []
    print(
        f"python bench/shapes.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        flush=True,
    )
    for case in todo:
        log(f"{case['name']}: preparing")
        g = fusec.compile(case["ir"], grad=case.get("grad", False))["f"]
        g.build()
        if queue is None:
            queue = g.runtime.queue
            copier = CopyKernels(queue.context, queue)
            versions = {"torch": torch.__version__, "pyopencl": cl.VERSION_TEXT}
            print("\n".join(machine_header(queue.device, **versions)), flush=True)
            print(f"load average at start {os.getloadavg()[0]:.2f}; rounds {rounds}", flush=True)
        if "make" in case:
            arrays = case["make"](rng)
        else:
            arrays = [rng.standard_normal(s).astype(np.float32) for s in case["shapes"]]
        if case.get("grad"):
            rows.append(time_grad(case, g, arrays, rng, queue, copier, rounds, use_compile, flush))
            continue
        devs = [cla.to_device(queue, a, allocator=g.runtime.allocator) for a in arrays]
        tens = [torch.from_numpy(a) for a in arrays]
        want = case["numpy"](*arrays)
        out_bytes = want.nbytes
        moved = sum(a.nbytes for a in arrays) + out_bytes

        def fusec_dev(g=g, devs=devs, queue=queue):
            r = g(*devs)
            queue.finish()
            return r

        methods = {
            "fusec": fusec_dev,
            "fusec-e2e": lambda g=g, arrays=arrays: g(*arrays),
            "numpy": lambda f=case["numpy"], arrays=arrays: f(*arrays),
            "torch": lambda f=case["torch"], tens=tens: f(*tens),
        }
        if use_compile:
            torch._dynamo.reset()
            tcf = torch.compile(case["torch"], dynamic=False)
            t0 = time.perf_counter()
            tcf(*tens)
            log(f"{case['name']}: torch.compile built in {time.perf_counter() - t0:.1f} s")
            methods["t.compile"] = lambda tcf=tcf, tens=tens: tcf(*tens)
        # the same number of bytes, read once and written once, by a copy kernel
        n_copy = -(-moved // 8) // 8 * 8
        src, dst = copy_buffers(queue, n_copy, rng)
        copies = copier.layouts(src.data, dst.data, n_copy)
        for name, fn in copies.items():
            methods["copy:" + name] = fn

        got = fusec_dev().get(queue)
        np.testing.assert_allclose(
            got,
            want,
            rtol=2e-4,
            atol=2e-4 * max(1.0, float(np.abs(want).max())),
            err_msg=case["name"],
        )
        warm = 1
        samples = run_row(methods, warm, rounds, flush)
        rows.append((case["name"], moved, samples))
        t = summary(samples, med)
        log(f"{case['name']}: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in t.items()))
    print(report(rows, med, "median"), flush=True)
    # On a loaded machine the median holds other jobs' time; the fastest round is
    # closer to what each method costs alone (report both)
    print(report(rows, min, "fastest of the rounds"), flush=True)
    return 0


def time_grad(case, g, arrays, rng, queue, copier, rounds, use_compile, flush):
    """Forward + backward: fusec's forward_backward (device-resident) and
    value_and_grad (NumPy in and out) against torch's forward then autograd.grad."""
    import pyopencl.array as cla
    import torch

    ct = rng.standard_normal(case["ct"]).astype(np.float32)
    fb = g.forward_backward
    fb.build()
    pool = g.runtime.allocator
    devs = [cla.to_device(queue, a, allocator=pool) for a in arrays] + [
        cla.to_device(queue, ct, allocator=pool) if ct.ndim else np.float32(ct)
    ]
    # integer inputs (class labels) get no gradient, in torch as in fusec
    tens = [torch.from_numpy(a).requires_grad_(a.dtype.kind == "f") for a in arrays]
    wrt = [t for t in tens if t.requires_grad]
    names = [name for a, name in zip(arrays, "xwb", strict=False) if a.dtype.kind == "f"]
    ctt = torch.from_numpy(ct)

    def fusec_dev():
        r = fb(*devs)
        queue.finish()
        return r

    def torch_step(f):
        return lambda: torch.autograd.grad(f(*tens), wrt, ctt)

    methods = {
        "fusec": fusec_dev,
        "fusec-e2e": lambda: g.value_and_grad(*arrays, grad_outputs=ct),
        "torch": torch_step(case["torch"]),
    }
    if use_compile:
        torch._dynamo.reset()
        tcf = torch.compile(case["torch"], dynamic=False)
        t0 = time.perf_counter()
        torch_step(tcf)()
        log(f"{case['name']}: torch.compile built in {time.perf_counter() - t0:.1f} s")
        methods["t.compile"] = torch_step(tcf)
    want = [t.numpy() for t in methods["torch"]()]
    got = [a.get(queue) for a in fusec_dev()[1:]]
    for a, b, name in zip(got, want, names, strict=True):
        np.testing.assert_allclose(
            a,
            b,
            rtol=2e-3,
            atol=2e-3 * max(1.0, float(np.abs(b).max())),
            err_msg=f"{case['name']}: d{name}",
        )
    moved = sum(a.nbytes for a in arrays) * 2 + ct.nbytes + ct.nbytes  # inputs, ct; grads, value
    n_copy = -(-moved // 8) // 8 * 8
    src, dst = copy_buffers(queue, n_copy, rng)
    for name, fn in copier.layouts(src.data, dst.data, n_copy).items():
        methods["copy:" + name] = fn
    samples = run_row(methods, 1, rounds, flush)
    t = summary(samples, med)
    log(f"{case['name']}: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in t.items()))
    return case["name"], moved, samples


def cache_flush(nbytes: int = 64 << 20):
    """A callable that reads `nbytes` (twice the L3 here): what the timed call
    then reads comes from memory. Reads, not writes: dirty lines left in the
    cache would be written back during the timed call."""
    buf = np.ones(nbytes // 8, np.float64)
    return lambda: buf.sum()


def copy_buffers(queue, n: int, rng):
    """The copy kernel's source (filled with data: untouched pages all read the
    one zero page, at cache speed) and destination, n f32 each, from fusec's
    memory pool as the device-resident inputs are (huge pages on a CPU device,
    as NumPy's large arrays: a driver's own buffers take a TLB miss every 4 KiB)."""
    import pyopencl.array as cla

    from fusec.runtime.programs import Runtime

    pool = Runtime.shared().allocator
    src = cla.to_device(queue, rng.standard_normal(n).astype(np.float32), allocator=pool)
    dst = cla.zeros(queue, (n,), np.float32, allocator=pool)
    return src, dst


def summary(samples: dict, stat) -> dict:
    """Each method's time by `stat` (median or min); `copy`: the best copy kernel's."""
    t = {k: stat(v) for k, v in samples.items() if not k.startswith("copy:")}
    t["copy"] = min(stat(v) for k, v in samples.items() if k.startswith("copy:"))
    return t


def report(rows, stat, stat_name: str) -> str:
    cols = ["fusec", "fusec-e2e", "numpy", "torch", "t.compile", "copy"]
    head = ["case", "MB", *cols, "GB/s", "e2e GB/s", "vs best", "vs copy", "e2e vs best"]
    body = []
    for name, moved, samples in rows:
        t = summary(samples, stat)
        best = min(t[k] for k in ("numpy", "torch", "t.compile") if k in t)
        body.append(
            [
                name,
                f"{moved / 1e6:.0f}",
                *(f"{t[c] * 1e3:.3f}" if c in t else "-" for c in cols),
                f"{moved / t['fusec'] / 1e9:.1f}",
                f"{moved / t['fusec-e2e'] / 1e9:.1f}",
                f"{best / t['fusec']:.2f}x",
                f"{t['copy'] / t['fusec']:.2f}x",
                f"{best / t['fusec-e2e']:.2f}x",
            ]
        )
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]

    def line(r):
        return "  ".join(
            str(v).rjust(w) if i else str(v).ljust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        )

    notes = (
        f"\nTime per call, ms ({stat_name}). GB/s, e2e GB/s: fusec's bytes (inputs read + output written) "
        "per second, device-resident and NumPy in/out. "
        "vs best: best of numpy, torch, t.compile / fusec (>1: fusec faster). vs copy: the copy kernel "
        "moving as many bytes / fusec (1 = the bandwidth limit). e2e: fusec with NumPy in and out."
    )
    return "\n".join([notes, line(head), "  ".join("-" * w for w in widths), *map(line, body)])


if __name__ == "__main__":
    sys.exit(main())
