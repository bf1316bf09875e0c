#!/usr/bin/env python
"""A/B in one process: the ONNX MLP of bench/onnx_mlp.py with its softmax run
inside the head GEMM's kernel (fusec/codegen/gemm_rows.py, 3 launches) against
the same graph built without it (4 launches), the graph without its softmax,
and onnxruntime, interleaved (the order rotates each round; a pause before
every block, as bench/onnx_mlp.py).

    python bench/gemm_rows_ab.py [--batches 1 64 1024] [--rounds 21]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_mlp import mlp_model, run_row_cpu  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--rounds", type=int, default=21)
    args = ap.parse_args(argv)

    import onnxruntime as ort

    import fusec
    import fusec.codegen as codegen

    model = mlp_model()
    new = fusec.from_onnx(model)
    attach = codegen.attach_row_tails
    codegen.attach_row_tails = lambda kernels: None  # the code before: a row kernel of its own
    try:  # another graph name: not the compiled graph `new` already is
        old = fusec.from_onnx(model, graph_name="mlp_old")
    finally:
        codegen.attach_row_tails = attach
    bare = new.ir.replace("probs = softmax(gemm2, axis=-1)\n    return probs", "return gemm2")
    assert bare != new.ir, "the importer's IR changed: update the replacement"
    no_softmax = fusec.compile(bare)[new.graphs[0]].bind(**new.initializers)
    graphs = {"3 launches": new[new.graphs[0]], "4 launches": old[old.graphs[0]]}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.rounds} rounds, ms per call")
    for batch in args.batches:
        x = np.random.default_rng(batch).standard_normal((batch, 784)).astype(np.float32)
        np.testing.assert_allclose(graphs["3 launches"](x), graphs["4 launches"](x), atol=1e-6)
        reps = max(5, 20000 // (batch * 20 + 100))

        def block(fn, x=x, reps=reps):
            return lambda: [fn(x) for _ in range(reps)]

        methods = {k: block(g) for k, g in graphs.items()}
        methods["no softmax"] = block(no_softmax)
        methods["onnxruntime"] = block(lambda a: session.run(None, {name: a}))
        wall, _ = run_row_cpu(methods, 3, args.rounds, 0.1, ("onnxruntime", "3 launches", "x"))
        ms = {k: float(np.median(v)) / reps * 1e3 for k, v in wall.items() if k != "x"}
        cells = "  ".join(f"{k} {v:.4f}" for k, v in ms.items())
        print(
            f"batch {batch:5d}: {cells}  | 3 vs 4 launches "
            f"{ms['4 launches'] / ms['3 launches']:.3f}x, vs ort "
            f"{ms['onnxruntime'] / ms['3 launches']:.2f}x (4 launches: "
            f"{ms['onnxruntime'] / ms['4 launches']:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
