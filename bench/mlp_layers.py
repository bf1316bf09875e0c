#!/usr/bin/env python
"""Where the ONNX MLP's time goes (bench/onnx_mlp.py's model, layer by layer):
each layer alone, y = relu(x . w^T + b) (the head without relu), fusec against
onnxruntime (MLAS) and torch (MKL/oneDNN), at the same shapes, in one run.

    python bench/mlp_layers.py                  # batches 1, 64, 1024
    python bench/mlp_layers.py --batches 64 --rounds 61

Columns, all medians (ms per call) of interleaved rounds (each round times
every method once, `reps` calls back to back, in an order that rotates):
  kernel    fusec's GEMM kernel alone: the OpenCL profiling events' start-to-end
            of the launch(es) of the call below (device time; no host work)
  fusec     the layer as a fusec graph with w and b bound (packed once), called
            with a NumPy array: what the MLP's call pays per layer
  few off   (batches <= FEW_ROWS) the same graph built without the few-rows entry
            point (fusec/codegen/gemm.py): the 8-row panel, as before 2026-11-30
  ort       an onnxruntime session of one Gemm (transB=1) and Relu, CPU provider
  torch     torch.addmm(b, x, w.T, out=y).relu_(), 2 threads
then GFLOP/s (2 M N K / time) of `kernel`, `ort` and `torch`, and fusec's
speed relative to onnxruntime and torch (> 1: fusec faster).

The machine is shared (2 CPUs): compare columns of one run, not across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench/gemm_kernels.py

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elementwise import log, machine_header, med, table  # noqa: E402
from onnx_mlp import LAYERS, mlp_model  # noqa: E402

LAYER = "graph layer(x: f32[B, K], w: f32[N, K], b: f32[N]) {{\n    return {body}\n}}\n"


def ort_layer(w, b, relu: bool):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1)]
    nodes.append(helper.make_node("Relu" if relu else "Identity", ["g"], ["y"]))
    n, k = w.shape
    graph = helper.make_graph(
        nodes,
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def few_rows(on: bool):
    """Graphs compiled inside are built with (on) or without the few-rows entry point."""
    from fusec.codegen import gemm_layouts

    saved = gemm_layouts.FEW_ROWS
    gemm_layouts.FEW_ROWS = saved if on else 1 << 30
    try:
        yield
    finally:
        gemm_layouts.FEW_ROWS = saved


def whole_mlp(args, queue, events, rng) -> tuple[list, list]:
    import onnxruntime as ort

    import fusec

    model = mlp_model()
    mlps = {}
    for name, on in (("fusec", True), ("few off", False)):
        model.graph.name = "mlp" if on else "mlp_no_few"  # a build of its own
        with few_rows(on):
            prog = fusec.from_onnx(model, queue=queue)
        mlps[name] = prog[prog.graphs[0]]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    body = []
    for m in args.batches:
        x = rng.standard_normal((m, LAYERS[0])).astype(np.float32)
        want = session.run(None, {"input": x})[0]
        reps = 50 if m <= 8 else 10 if m <= 64 else 2
        kernel = []
        methods = {}
        for name, mlp in mlps.items():
            np.testing.assert_allclose(mlp(x), want, rtol=1e-4, atol=1e-5, err_msg=name)

            def run(x=x, reps=reps, mlp=mlp, kernel=kernel if name == "fusec" else []):
                for _ in range(reps):
                    events.clear()
                    mlp(x)
                    kernel.append(sum(e.profile.end - e.profile.start for e in events) * 1e-9)

            methods[name] = run

        def ort_run(x=x, reps=reps):
            for _ in range(reps):
                session.run(None, {"input": x})

        methods["ort"] = ort_run
        if m > 4:  # the same kernels
            del methods["few off"]
        wall = {name: [] for name in methods}
        for fn in methods.values():
            fn()
        kernel.clear()
        for r in range(args.rounds):
            names = list(methods)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                time.sleep(0.02)
                t0 = time.perf_counter()
                methods[name]()
                wall[name].append((time.perf_counter() - t0) / reps)
        t = {name: med(v) for name, v in wall.items()}
        f, k, o = t["fusec"], med(kernel), t["ort"]
        off = t.get("few off")
        body.append(
            [m, f"{f * 1e3:.4f}", f"{k * 1e3:.4f}", f"{(f - k) * 1e3:.4f}", f"{o * 1e3:.4f}"]
            + [
                f"{o / f:.2f}x",
                f"{off * 1e3:.4f}" if off else "-",
                f"{off / f:.3f}x" if off else "-",
            ]
        )
    head = ["batch", "fusec", "kernels", "rest", "ort", "fusec vs ort", "few off", "vs few off"]
    return head, body


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--rounds", type=int, default=31)
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import pyopencl as cl
    import torch

    import fusec
    from fusec.codegen import gemm_layouts
    from fusec.runtime import Runtime

    torch.set_num_threads(2)
    rt = Runtime.shared()
    queue = cl.CommandQueue(
        rt.context, rt.device, properties=cl.command_queue_properties.PROFILING_ENABLE
    )
    events = []  # the profiling events of the fusec launches of the current call
    enqueue = cl.enqueue_nd_range_kernel

    def recording(*a, **kw):
        event = enqueue(*a, **kw)
        events.append(event)
        return event

    cl.enqueue_nd_range_kernel = recording
    print(
        "\n".join(machine_header(rt.device, onnxruntime=ort.__version__, torch=torch.__version__))
    )
    print(f"load average {os.getloadavg()[0]:.2f} (2 CPUs shared with other work: noisy)")

    def build(text: str, few: bool):
        if not few:
            text = text.replace("graph layer", "graph layer_no_few")  # a build of its own
        with few_rows(few):
            graph = fusec.compile(text, queue=queue)
        return graph[graph.graphs[0]]

    rng = np.random.default_rng(0)
    head, body = [], []
    for i, (k, n) in enumerate(zip(LAYERS, LAYERS[1:], strict=False)):
        relu = i < len(LAYERS) - 2
        text = LAYER.format(body="relu(linear(x, w, b))" if relu else "linear(x, w, b)")
        w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
        b = (rng.standard_normal(n) * 0.1).astype(np.float32)
        graphs = {"fusec": build(text, True).bind(w=w, b=b)}
        graphs["few off"] = build(text, False).bind(w=w, b=b)
        session = ort_layer(w, b, relu)
        wt, bt = torch.from_numpy(w), torch.from_numpy(b)
        for m in args.batches:
            x = rng.standard_normal((m, k)).astype(np.float32)
            want = x.astype(np.float64) @ w.T + b
            want = np.maximum(want, 0) if relu else want
            xt, yt = torch.from_numpy(x), torch.empty(m, n)
            reps = 50 if m <= 8 else 10 if m <= 64 else 2
            kernels = {"fusec": [], "few off": []}  # device time per call

            def call(f, kernel, x=x, reps=reps):
                def run():
                    for _ in range(reps):
                        events.clear()
                        f(x)
                        kernel.append(sum(e.profile.end - e.profile.start for e in events) * 1e-9)

                return run

            def torch_run(xt=xt, yt=yt, reps=reps, wt=wt, bt=bt, relu=relu):
                for _ in range(reps):
                    torch.addmm(bt, xt, wt.t(), out=yt)
                    if relu:
                        yt.relu_()

            methods = {"fusec": call(graphs["fusec"], kernels["fusec"])}
            if m <= gemm_layouts.FEW_ROWS:
                methods["few off"] = call(graphs["few off"], kernels["few off"])
            methods["ort"] = lambda x=x, reps=reps, session=session: [
                session.run(None, {"x": x}) for _ in range(reps)
            ]
            methods["torch"] = torch_run
            for name, f in graphs.items():
                np.testing.assert_allclose(f(x), want, rtol=1e-4, atol=1e-4, err_msg=name)
            np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-4)
            log(f"layer {i} {m}x{k}->{n}: {args.rounds} rounds")
            for fn in methods.values():
                fn()
            times = {name: [] for name in methods}
            for v in kernels.values():
                v.clear()
            for r in range(args.rounds):
                names = list(methods)
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    time.sleep(0.02)  # onnxruntime's and torch's workers spin after a call
                    t0 = time.perf_counter()
                    methods[name]()
                    times[name].append((time.perf_counter() - t0) / reps)
            t = {name: med(v) for name, v in times.items()}
            t["kernel"] = med(kernels["fusec"])
            if kernels["few off"]:
                t["kernel few off"] = med(kernels["few off"])
            flops = 2 * m * n * k
            head = ["layer", "kernel", "kernel few off", "fusec", "few off", "ort", "torch"]
            head += ["kernel GF/s", "ort GF/s", "torch GF/s", "vs ort", "vs torch"]
            body.append(
                [f"{i}: {m}x{k}->{n}"]
                + [f"{t[c] * 1e3:.4f}" if c in t else "-" for c in head[1:7]]
                + [f"{flops / t[c] / 1e9:.0f}" for c in ("kernel", "ort", "torch")]
                + [f"{t['ort'] / t['fusec']:.2f}x", f"{t['torch'] / t['fusec']:.2f}x"]
            )
    print("\nms per call (median); GFLOP/s; fusec's call vs the others' (> 1: fusec faster)")
    print(table(head, body))
    print("\nthe whole MLP (bench/onnx_mlp.py's model), same run: fusec's call, the sum of its")
    print("launches' device time, and the rest (host work, launch gaps); onnxruntime's call;")
    print("at batches <= 4 the graph built without the few-rows entry point, and fusec's speed-up")
    print(table(*whole_mlp(args, queue, events, rng)))
    print(f"(load average at end {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
