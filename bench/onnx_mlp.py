#!/usr/bin/env python
"""An ONNX MLP imported by fusec (`fusec.from_onnx`) against onnxruntime on the
CPU, at batch 1, 64 and 1024, in one run.

    python bench/onnx_mlp.py            # writes nothing; paste the report into bench/results-onnx-mlp.txt
    python bench/onnx_mlp.py --quick    # fewer rounds

The model, as torch.onnx exports nn.Sequential(Linear(784, 512), ReLU(),
Linear(512, 512), ReLU(), Linear(512, 10), Softmax(-1)): three Gemm (transB=1),
float32, a symbolic batch. fusec runs it as three GEMM kernels (bias and ReLU in
each epilogue) plus the softmax's reductions, with the weights bound (copied and
packed once).

Both sides take a NumPy array and return one (fusec's time includes the copies
to and from its OpenCL device, which on a CPU device is host memory).
onnxruntime: CPUExecutionProvider, default session options (intra-op threads:
the physical cores). Times are medians of interleaved rounds; in each round
every method runs back to back `reps` times (the same count for both).

On a loaded machine the wall-clock ratio swings with the moment (0.72x to
1.36x at batch 64 within one evening here), so the report also gives the CPU
time the process spent per call, all threads together: less sensitive to what
else runs, but it counts idle spinning too (Intel's OpenCL runtime computes
on the host thread while it waits in clFinish).

Settling. onnxruntime's intra-op worker keeps spinning for 15-30 ms after
each run (the process burned 11 ms of CPU in a 20 ms sleep after one, 30 ms
in 100 ms), and it is pinned to CPU 1, the CPU Intel's OpenCL runtime pins
its own worker thread to (os.sched_getaffinity of each thread, this 2-CPU
machine): a fusec block timed right after an onnxruntime block runs on about
one core (batch 1024: 4.5 ms per call, against 2.9 ms right after another
fusec block; /tmp scratch script, 2026-11-30). Neither would share a process with the other in use, so
every timed block starts after a pause (--settle, default 0.1 s) and the
table also shows "fusec after ort", a fusec block timed right after an
onnxruntime block (the way this script measured before 2026-11-30). The CPU
time is the block's own: the spinning after a block is charged to no one (in
a steady stream of calls it happens once, at the end).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as bench/linear.py: idle BLAS threads spin

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elementwise import fmt_ms, log, machine_header, med, table  # noqa: E402

LAYERS = [784, 512, 512, 10]
BATCHES = [1, 64, 1024]


def mlp_model(seed: int = 0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "input"
    for i, (k, n) in enumerate(zip(LAYERS, LAYERS[1:], strict=False)):
        inits += [
            numpy_helper.from_array(
                (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32), f"fc{i}.weight"
            ),
            numpy_helper.from_array(
                (rng.standard_normal(n) * 0.1).astype(np.float32), f"fc{i}.bias"
            ),
        ]
        nodes.append(
            helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [f"gemm{i}"], transB=1)
        )
        x = f"gemm{i}"
        if i < len(LAYERS) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"]))
            x = f"relu{i}"
    nodes.append(helper.make_node("Softmax", [x], ["probs"], axis=-1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", LAYERS[0]])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", LAYERS[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def run_row_cpu(methods: dict, warm: int, rounds: int, settle: float, after: tuple) -> tuple:
    """bench/elementwise.py's run_row, with a pause of `settle` seconds before
    every timed block, also recording the process's CPU time (every thread's,
    spinning included) of each block. `after` =
    (first, then, label): each round also times `then` right after `first`,
    with no pause between, as `label`."""
    for fn in methods.values():
        for _ in range(warm):
            fn()
    names = list(methods)
    first, then, label = after
    wall, cpu = {n: [] for n in [*names, label]}, {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(settle)
            c0, t0 = time.process_time(), time.perf_counter()
            methods[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        methods[first]()
        t0 = time.perf_counter()
        methods[then]()
        wall[label].append(time.perf_counter() - t0)
    return wall, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument(
        "--settle", type=float, default=0.1, help="pause before each timed block, s (0: none)"
    )
    args = ap.parse_args(argv)

    import onnxruntime as ort

    import fusec

    model = mlp_model()
    prog = fusec.from_onnx(model)
    mlp = prog[prog.graphs[0]]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    dev = mlp.graph.runtime.queue.device
    print("\n".join(machine_header(dev, onnxruntime=ort.__version__)))
    print(
        f"model: MLP {' -> '.join(map(str, LAYERS))}, ReLU, softmax; float32; "
        f"load average {os.getloadavg()[0]:.2f} (2 CPUs shared with other work: noisy)"
    )
    log(f"fusec kernels: {len(mlp.graph.kernels) if mlp.graph.kernels else '?'}")

    rng = np.random.default_rng(1)
    rows = []
    for batch in BATCHES:
        x = rng.standard_normal((batch, LAYERS[0])).astype(np.float32)
        expected = session.run(None, {"input": x})[0]
        np.testing.assert_allclose(mlp(x), expected, rtol=1e-4, atol=1e-6)  # the same numbers first
        t0 = time.perf_counter()
        session.run(None, {"input": x})
        reps = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-6)))
        methods = {
            "fusec": lambda x=x, reps=reps: [mlp(x) for _ in range(reps)],
            "onnxruntime": lambda x=x, reps=reps: [
                session.run(None, {"input": x}) for _ in range(reps)
            ],
        }
        after = ("onnxruntime", "fusec", "fusec after ort")
        samples, cpu = run_row_cpu(
            methods, warm=2, rounds=5 if args.quick else 15, settle=args.settle, after=after
        )
        fusec_t, ort_t, after_t = (
            med(samples[k]) / reps for k in ("fusec", "onnxruntime", "fusec after ort")
        )
        fusec_c, ort_c = (med(cpu[k]) / reps for k in ("fusec", "onnxruntime"))
        rows.append(
            [
                str(batch),
                fmt_ms(fusec_t),
                fmt_ms(ort_t),
                f"{ort_t / fusec_t:.2f}x",
                fmt_ms(fusec_c),
                fmt_ms(ort_c),
                f"{ort_c / fusec_c:.2f}x",
                fmt_ms(after_t),
            ]
        )
        log(f"batch {batch}: done")
    print()
    print(
        "time per call in ms (median), and fusec's speed relative to onnxruntime (> 1: fusec faster);\n"
        "then the process's CPU time per call (all threads; > 1: fusec used less); each block timed\n"
        f"after a {args.settle:g} s pause, but 'fusec after ort': right after an onnxruntime block"
    )
    print(
        table(
            [
                "batch",
                "fusec",
                "onnxruntime",
                "fusec vs ort",
                "fusec cpu",
                "ort cpu",
                "cpu ratio",
                "fusec after ort",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
