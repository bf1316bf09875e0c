"""The artefact of `fusec compile -o` runs without fusec.

A plain PyOpenCL script, written here and importing nothing from fusec, loads
the `.cl` source and `.json` launch plan, binds the symbolic sizes from its
inputs, evaluates the plan's size expressions, builds, launches the kernels in
plan order with their arguments in plan order, and saves the outputs; the test
checks them against NumPy. docs/plan.md describes the plan; this script is
its executable reading.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"

LAUNCHER = r'''
import json, math, re, sys
import numpy as np
import pyopencl as cl

plan_dir, graph, inputs_path, outputs_path = sys.argv[1:]
plan = json.load(open(f"{plan_dir}/{graph}.json"))
source = open(f"{plan_dir}/{graph}.cl").read()
assert plan["version"] == 1

# element types in memory and by value, as the plan names them
NUMPY = {"half": np.float16, "float": np.float32, "double": np.float64, "uchar": np.uint8,
         "char": np.int8, "int": np.int32, "long": np.int64}

inputs = dict(np.load(inputs_path))
sizes = {}
for p in plan["params"]:
    value = np.asarray(inputs[p["name"]])
    assert value.ndim == len(p["shape"]), p
    for dim, got in zip(p["shape"], value.shape):
        if isinstance(dim, int):
            assert dim == got, (p, value.shape)
        else:
            assert sizes.setdefault(dim, got) == got, (p, value.shape)


FUNCTIONS = {"ceil": math.ceil, "min": min, "max": max}


def size(expr):
    """A plan size expression: integers, size names, * / ( ) , and ceil() min() max()."""
    assert re.fullmatch(r"[A-Za-z_0-9*/(), ]+", expr), expr
    py = re.sub(r"[A-Za-z_]\w*", lambda m: m[0] if m[0] in FUNCTIONS else str(sizes[m[0]]), expr)
    return int(eval(py, {"__builtins__": {}}, FUNCTIONS))


# the device the source was generated for (its vector widths suit that one)
device = next(d for p in cl.get_platforms() for d in p.get_devices()
              if (d.name.strip(), p.name.strip()) == (plan["device"]["name"], plan["device"]["platform"]))
ctx = cl.Context([device])
queue = cl.CommandQueue(ctx)
program = cl.Program(ctx, source).build(plan["build_options"])
mf = cl.mem_flags

buffers = {}
for p in plan["params"]:
    if p["shape"]:
        host = np.ascontiguousarray(inputs[p["name"]]).astype(NUMPY[p["ctype"]])
        if host.size:
            buffers[p["name"]] = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=host)
outputs = []
for o in plan["outputs"]:
    shape = tuple(size(str(d)) for d in o["shape"])
    host = np.empty(shape, NUMPY[o["ctype"]])
    outputs.append((host, cl.Buffer(ctx, mf.WRITE_ONLY, max(host.nbytes, 1))))

scratch = {}  # buffers kernels pass to later kernels
for t in plan.get("scratch", []):
    nbytes = np.dtype(NUMPY[t["ctype"]]).itemsize * max(size(t["elements"]), 1)
    scratch[t["name"]] = cl.Buffer(ctx, mf.READ_WRITE, nbytes)
empty = cl.Buffer(ctx, mf.READ_ONLY, 16)  # for an empty array: no kernel reads it

for k in plan["kernels"]:
    if size(k["elements"]) == 0:
        continue
    args = []
    for a in k["args"]:
        if a["kind"] in ("size", "dim", "count", "osize", "odim", "psize", "pdim"):
            args.append(NUMPY[a["ctype"]](size(a["value"])))
        elif a["kind"] == "scalar":
            args.append(NUMPY[a["ctype"]](inputs[a["param"]]))
        elif a["kind"] == "buffer":
            args.append(buffers.get(a["param"], empty))
        elif a["kind"] in ("temp", "store", "partial", "packed"):
            args.append(scratch[a["scratch"]])
        else:
            args.append(outputs[a["output"]][1])
        if a["kind"] in ("size", "dim", "count", "osize", "odim", "psize", "pdim", "scalar"):
            assert args[-1].nbytes == a["bytes"], a
    local = tuple(k["local_size"]) if k["local_size"] else None
    grid = k["global_size"]  # an expression, or a list of them (a GEMM's 2-D grid)
    grid = tuple(size(e) for e in grid) if isinstance(grid, list) else (size(grid),)
    getattr(program, k["name"])(queue, grid, local, *args)

results = {}
for i, (host, buf) in enumerate(outputs):
    if host.size:
        cl.enqueue_copy(queue, host, buf)
    results[f"out{i}"] = host
queue.finish()
np.savez(outputs_path, **results)
assert not [m for m in sys.modules if m == "fusec" or m.startswith("fusec.")], "imported fusec"
'''


def compile_and_launch(tmp_path: Path, text: str, graph: str, *compile_flags, **inputs) -> dict:
    """`fusec compile -o` the IR text, then run `graph`'s artefact with the plain
    launcher above (no fusec imported); {"out0": array, ...}."""
    (tmp_path / "model.ir").write_text(text)
    env = {**os.environ, "FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [
            *fusec_command(),
            "compile",
            str(tmp_path / "model.ir"),
            *compile_flags,
            "-o",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    (tmp_path / "launch.py").write_text(LAUNCHER)
    np.savez(tmp_path / "in.npz", **inputs)
    proc = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "launch.py"),
            str(tmp_path / "out"),
            graph,
            str(tmp_path / "in.npz"),
            str(tmp_path / "res.npz"),
        ],
        env=launcher_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "res.npz") as res:
        return dict(res)


def launcher_env() -> dict:
    """The environment a program outside fusec needs to see the devices fusec
    sees: OCL_ICD_VENDORS naming pip-installed drivers too (fusec/icd.py)."""
    from fusec.runtime.drivers import register_pip_drivers

    register_pip_drivers()
    return dict(os.environ)


def fusec_command() -> list[str]:
    script = shutil.which("fusec", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "fusec.cli"]


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    pytest.importorskip("pyopencl")
    from fusec.runtime import list_devices

    if not list_devices():
        pytest.skip("no OpenCL device")
    tmp = tmp_path_factory.mktemp("plan")
    model = tmp / "model.ir"
    text = "".join((GOLDEN / f"{n}.ir").read_text() + "\n" for n in ("dag", "mixed"))
    model.write_text(text + COLUMNS_IR)
    out = tmp / "out"
    env = {**os.environ, "FUSEC_CACHE_DIR": str(tmp / "cache")}
    proc = subprocess.run(
        [*fusec_command(), "compile", str(model), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (tmp / "launch.py").write_text(LAUNCHER)
    return tmp


def launch(artefacts: Path, graph: str, **inputs) -> list[np.ndarray]:
    np.savez(artefacts / f"{graph}-in.npz", **inputs)
    result = artefacts / f"{graph}-out.npz"
    proc = subprocess.run(
        [
            sys.executable,
            str(artefacts / "launch.py"),
            str(artefacts / "out"),
            graph,
            str(artefacts / f"{graph}-in.npz"),
            str(result),
        ],
        env=launcher_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with np.load(result) as out:
        return [out[f"out{i}"] for i in range(len(out.files))]


rng = np.random.default_rng(3)


@pytest.mark.parametrize("b, d", [(7, 13), (4, 32)])
def test_dag_plan_launches(artefacts, b, d):
    x = rng.standard_normal((b, d)).astype(np.float32)
    bias = rng.standard_normal(d).astype(np.float32)
    c = rng.standard_normal((b, 1)).astype(np.float32)
    s = np.float32(-0.75)
    y, hc, bs = launch(artefacts, "dag", x=x, b=bias, c=c, s=s)
    h = x * s + bias
    np.testing.assert_allclose(y, np.tanh(h) * c, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(hc, h - c, rtol=1e-6)
    np.testing.assert_allclose(bs, bias * s, rtol=1e-6)


def test_mixed_plan_launches(artefacts):
    n = 1001
    h = (rng.standard_normal(n) * 3).astype(np.float16)
    m = rng.random(n) < 0.5
    k = rng.integers(-10, 10, n).astype(np.int32)
    y, either, k2 = launch(artefacts, "mixed", h=h, m=m, k=k)
    big = k > 3
    want_y = np.where(m & big, (h.astype(np.float32) * 2).astype(np.float16), k.astype(np.float16))
    np.testing.assert_array_equal(y.view(np.float16), want_y)
    np.testing.assert_array_equal(either.astype(bool), m | big)
    assert set(np.unique(either)) <= {0, 1}  # bool is one byte, 0 or 1
    np.testing.assert_array_equal(k2, k * 2 + 1)


# a column group: one pass writing y and summing it over rows, and in all
COLUMNS_IR = """graph colsum(x: f32[B, D], w: f32[D]) {
    y = tanh(x * w)
    return y, sum(y, axis=0), sum(sum(y, axis=1), axis=0)
}
graph colmax(x: f32[B, D]) {
    return max(x * 2.0, axis=0) - 1.0
}
"""


@pytest.mark.parametrize("b, d", [(37, 13), (0, 5)])
def test_column_group_plan_launches(artefacts, b, d):
    x = rng.standard_normal((b, d)).astype(np.float32)
    w = rng.standard_normal(d).astype(np.float32)
    y, cols, total = launch(artefacts, "colsum", x=x, w=w)
    want = np.tanh(x.astype(np.float64) * w)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cols, want.sum(0), rtol=1e-5, atol=1e-5 * max(b, 1))
    np.testing.assert_allclose(total, want.sum(), rtol=1e-5, atol=1e-5 * max(b * d, 1))


@pytest.mark.parametrize("b, d", [(37, 13), (5, 4099), (0, 5)])
def test_column_max_plan_launches(artefacts, b, d):
    """On CPUs the streamed layout (codegen/column_rows.py): the plan's chunks and sizes."""
    x = rng.standard_normal((b, d)).astype(np.float32)
    (got,) = launch(artefacts, "colmax", x=x)
    np.testing.assert_array_equal(got, (x * 2).max(0, initial=-np.inf) - 1)


def test_plan_says_what_a_launcher_needs(artefacts):
    from fusec.codegen.plan import BUILD_OPTIONS

    plan = json.loads((artefacts / "out" / "dag.json").read_text())
    assert plan["build_options"] == BUILD_OPTIONS
    for k in plan["kernels"]:
        assert {"name", "args", "elements", "global_size", "local_size"} <= set(k)
        for a in k["args"]:
            assert {"name", "kind", "dtype", "ctype", "bytes"} <= set(a)
    scalar = next(a for k in plan["kernels"] for a in k["args"] if a["kind"] == "scalar")
    assert (scalar["param"], scalar["ctype"], scalar["bytes"]) == ("s", "float", 4)
