"""The front end's time on large generated inputs (issue 13, item 4).

Prints, for each input, the CPU time of `compile_graphs` (parse, lower, the
pipeline, verify: no device) split by stage, and the wall time of a whole
`fusec check` process on the same file (interpreter start-up and imports
included). CPU time is the fairer number on a shared machine; the best of
--repeat runs is shown.

    python bench/front_end.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fusec.diagnostics import CompileError
from fusec.frontend.collector import collections_paused
from fusec.frontend.lower import lower_module
from fusec.frontend.parser import parse
from fusec.ir.graph import verify
from fusec.passes import PIPELINE


def two_op_statements(n: int) -> str:
    body = "\n".join(
        f"    y{i} = y{i - 1} * 2.0 + 1.0" if i else "    y0 = x * 2.0 + 1.0" for i in range(n)
    )
    return f"graph g(x: f32[N]) {{\n{body}\n    return y{n - 1}\n}}\n"


def one_op_statements(n: int) -> str:
    body = "\n".join(f"    y{i} = y{i - 1} + x" if i else "    y0 = x * 2" for i in range(n))
    return f"graph g(x: f32[N]) {{\n{body}\n    return y{n - 1}\n}}\n"


def parameters(n: int) -> str:
    params = ", ".join(f"p{i}: f32[N, 4]" for i in range(n))
    return f"graph g({params}) {{\n    return p0\n}}\n"


def unmatched_brackets(n: int) -> str:
    return "graph g(x: f32[4]) {\n    return " + "(" * n + "x" + "]" * n + "\n}\n"


INPUTS = {
    "10,000 statements y1 = y0 * 2.0 + 1.0": two_op_statements(10_000),
    "10,000 statements y1 = y0 + x": one_op_statements(10_000),
    "100,000 parameters": parameters(100_000),
    "20,000 unmatched brackets (an error)": unmatched_brackets(20_000),
}


def stages(text: str) -> dict[str, float]:
    times: dict[str, float] = {}

    def timed(name, fn, *args):
        start = time.process_time()
        try:
            return fn(*args)
        finally:
            times[name] = times.get(name, 0.0) + time.process_time() - start

    with collections_paused():
        try:
            graphs = timed("lower", lower_module, timed("parse", parse, text))
        except CompileError:  # the bracket input: its time is the parse's
            return times
        for g in graphs:
            for name, stage in PIPELINE:
                g = timed(name, stage, g)
            timed("verify", verify, g)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    stages(INPUTS["10,000 statements y1 = y0 + x"])  # build the parser once
    with tempfile.TemporaryDirectory() as tmp:
        for label, text in INPUTS.items():
            best: dict[str, float] | None = None
            for _ in range(args.repeat):
                gc.collect()
                t = stages(text)
                if best is None or sum(t.values()) < sum(best.values()):
                    best = t
            path = Path(tmp) / "input.ir"
            path.write_text(text)
            walls = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "fusec", "check", str(path)], capture_output=True
                )
                walls.append(time.perf_counter() - start)
            split = ", ".join(f"{k} {v:.3f}" for k, v in best.items())
            print(
                f"{label}: compile_graphs {sum(best.values()):.3f} s CPU ({split});"
                f" `fusec check` {min(walls):.3f} s wall",
                flush=True,
            )


if __name__ == "__main__":
    main()
