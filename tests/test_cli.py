"""The `fusec` command line, end to end in subprocesses (and in-process for the
many small usage and bad-input cases, where a subprocess would only add start-up
time: an escaping exception fails the test just as a traceback would).

Exit status: 0 success, 1 a mistake in the user's input, 2 a usage error.
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
ACT = "examples/act.ir"


def fusec_command() -> list[str]:
    script = shutil.which("fusec", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "fusec.cli"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fusec-cache")


@pytest.fixture
def fusec(cache_dir):
    """Run `fusec ARGS...` from the repository root; stdout and stderr as text."""

    def run(*args, cwd=ROOT, env=None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*fusec_command(), *map(str, args)],
            cwd=cwd,
            env={**os.environ, "FUSEC_CACHE_DIR": str(cache_dir), **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    return run


def _device_available() -> bool:
    try:
        from fusec.runtime import list_devices

        return bool(list_devices())
    except Exception:
        return False


needs_device = pytest.mark.skipif(not _device_available(), reason="no OpenCL device")


# -- compile -----------------------------------------------------------------------


@needs_device
def test_compile_reports_kernels(fusec):
    p = fusec("compile", ACT)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    assert "act: 1 kernel(s), 10 op(s) fused" in p.stderr
    assert "head: 1 kernel(s)" in p.stderr


@needs_device
def test_emit_all(fusec):
    p = fusec("compile", ACT, "--emit", "all")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "graph act(%0 x: f32[N], %1 s: f32) {" in out  # --emit graph
    assert "__kernel void act_k0(" in out and "__kernel void head_k0(" in out  # --emit source
    assert '"graph": "act"' in out and '"graph": "head"' in out  # --emit plan


@needs_device
def test_emit_source_is_the_golden_source(fusec):
    from test_golden_source import PINNED

    from fusec.runtime import Runtime

    p = fusec("compile", "tests/golden/dag.ir", "--emit", "source")
    assert p.returncode == 0, p.stderr
    info = Runtime.shared().info
    if (info.vector_width, info.vectors_per_item) != (PINNED.vector_width, PINNED.vectors_per_item):
        pytest.skip(f"this device's kernels differ from the golden ones ({info})")
    assert p.stdout == (GOLDEN / "dag.cl").read_text(encoding="utf-8")


@needs_device
def test_emit_plan_is_json(fusec):
    p = fusec("compile", "tests/golden/dag.ir", "--emit", "plan")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert plan["graph"] == "dag"
    assert [k["name"] for k in plan["kernels"]] == ["dag_k0", "dag_k1"]


@needs_device
def test_emit_graph(fusec):
    p = fusec("compile", "tests/golden/chain.ir", "--emit", "graph")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("graph chain(%0 x: f32[N]) {\n")
    assert "sigmoid(" in p.stdout and p.stdout.rstrip().endswith("}")
    assert "__kernel" not in p.stdout


@needs_device
def test_compile_outdir_writes_source_and_plan(fusec, tmp_path):
    out = tmp_path / "artefacts"
    p = fusec("compile", ACT, "-o", out)
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in out.iterdir()) == ["act.cl", "act.json", "head.cl", "head.json"]
    assert "__kernel void act_k0(" in (out / "act.cl").read_text()
    plan = json.loads((out / "act.json").read_text())
    assert plan["graph"] == "act" and [p["name"] for p in plan["params"]] == ["x", "s"]


# -- check and run -------------------------------------------------------------------


def test_check_ok(fusec):
    p = fusec("check", ACT)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "examples/act.ir: ok (2 graphs)\n"


def _act_reference(x, s):
    y = 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))
    v = y * s
    return np.where(v > 0, v, 0.01 * v), y


@needs_device
def test_run_writes_npz(fusec, tmp_path):
    x = np.linspace(-4, 4, 1001, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    p = fusec("run", ACT, "--graph", "act", "--input", f"x={tmp_path / 'x.npy'}", "--input", "s=2.0",
              "--output", tmp_path / "out.npz")
    assert p.returncode == 0, p.stderr
    assert "wrote 2 output(s)" in p.stderr
    with np.load(tmp_path / "out.npz") as out:
        z, y = out["out0"], out["out1"]
    want_z, want_y = _act_reference(x.astype(np.float64), 2.0)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z, want_z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)


@needs_device
def test_run_with_a_wrong_shape_is_a_call_error(fusec, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    p = fusec("run", ACT, "--graph", "act", "--input", f"x={tmp_path / 'x.npy'}", "--input", "s=2")
    assert p.returncode == 1
    assert p.stderr.startswith("fusec: error: parameter 'x' expects f32[N]")
    assert p.stderr.count("\n") == 1  # one line


@needs_device
def test_devices(fusec):
    p = fusec("devices")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines and sum(line.startswith("*") for line in lines) == 1


# -- the cache ------------------------------------------------------------------------


@needs_device
def test_cache_commands(fusec, tmp_path):
    env = {"FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    assert fusec("compile", ACT, env=env).returncode == 0
    stats = fusec("cache", "stats", env=env)
    assert stats.returncode == 0 and "entries: 2" in stats.stdout
    ls = fusec("cache", "ls", env=env)
    assert ls.returncode == 0
    assert sorted(line.split()[2] for line in ls.stdout.splitlines()) == ["act", "head"]
    prune = fusec("cache", "prune", "--max-size", "1M", env=env)
    assert prune.returncode == 0 and prune.stdout.startswith("removed ")
    clear = fusec("cache", "clear", env=env)
    assert clear.returncode == 0 and clear.stdout.startswith("removed ")
    assert "entries: 0" in fusec("cache", "stats", env=env).stdout


# -- usage errors and bad input, in-process -----------------------------------------------


@pytest.fixture
def cli(capsys, monkeypatch, cache_dir):
    """`fusec ARGS...` in this process: (exit status, stdout, stderr)."""
    from fusec.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("FUSEC_CACHE_DIR", str(cache_dir))

    def run(*args) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.parametrize(
    "args",
    [[], ["frobnicate"], ["check"], ["compile"], ["run"], ["compile", ACT, "--emit", "asm"],
     ["cache"], ["cache", "prune"], ["cache", "prune", "--max-size", "lots"]],
    ids=lambda a: " ".join(a) or "nothing",
)
def test_usage_errors_exit_2(cli, args):
    code, out, err = cli(*args)
    assert code == 2
    assert "usage: fusec" in err


def test_subprocess_usage_error_exits_2(fusec):
    p = fusec("frobnicate")
    assert p.returncode == 2
    assert "invalid choice: 'frobnicate'" in p.stderr


def test_missing_file(cli):
    code, out, err = cli("check", "no/such/model.ir")
    assert (code, out, err) == (1, "", "no/such/model.ir: error: no such file\n")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "error: no graph in this file"),
        (b"\n\n   \n", "error: no graph in this file"),
        (bytes(range(256)) * 4, "error: a binary file, not IR text"),
        (b"graph f(x: f32) {\n  return x * 2  # na\xefve\n}\n", "error: not UTF-8 text (byte 0xef)"),
        (b"\xff\xfe\x00g\x00r\x00a\x00p\x00h", "error: a binary file, not IR text"),  # UTF-16
        (b"graph f(x: f32) {\n  return x\n}\n" * 2, "error: graph 'f' is already defined at line 1"),
    ],
    ids=["empty", "blank", "binary", "latin-1", "utf-16", "duplicate"],
)
def test_odd_files_are_one_clean_diagnostic(cli, tmp_path, content, message):
    path = tmp_path / "odd.ir"
    path.write_bytes(content)
    code, out, err = cli("check", path)
    assert code == 1 and out == ""
    assert err.startswith(f"{path}:") and message in err.splitlines()[0]


def test_a_directory_is_not_a_file(cli, tmp_path):
    code, out, err = cli("check", tmp_path)
    assert (code, err) == (1, f"{tmp_path}: error: is a directory, not an IR file\n")


def test_bom_is_accepted(cli, tmp_path):
    path = tmp_path / "bom.ir"
    path.write_bytes(b"\xef\xbb\xbfgraph f(x: f32[N]) {\r\n  return x\r\n}\r\n")
    code, out, err = cli("check", path)
    assert code == 0, err


@pytest.mark.parametrize(
    "inputs, message",
    [
        (["x"], "--input expects NAME=FILE.npy, NAME=NUMBER or NAME=true|false"),
        (["x=nothing-here"], "is neither a .npy file, a number, true nor false"),
        ([f"x={ACT}"], "cannot read input 'x' from 'examples/act.ir': not a .npy array file"),
        (["x=missing.npy"], "cannot read input 'x'"),
    ],
)
def test_run_bad_inputs(cli, inputs, message):
    # a CPU OpenCL device is not needed: the inputs are read before any call
    args = ["run", ACT, "--graph", "act"] + [a for i in inputs for a in ("--input", i)]
    code, out, err = cli(*args)
    if code == 1 and "OpenCL" in err:
        pytest.skip("no OpenCL device")
    assert code == 1 and message in err and err.count("\n") == 1


def test_run_unknown_graph(cli):
    if not _device_available():
        pytest.skip("no OpenCL device")
    code, out, err = cli("run", ACT, "--graph", "nope", "--input", "s=1")
    assert code == 1
    assert err == "fusec: error: no graph 'nope' in examples/act.ir (graphs: act, head)\n"



def test_check_refuses_special_files(fusec, tmp_path):
    # /dev/zero was read until the OOM killer came; a FIFO blocked forever
    fifo = tmp_path / "in.ir"
    os.mkfifo(fifo)
    for target in ("/dev/zero", fifo):
        proc = fusec("check", target)
        assert proc.returncode == 1
        assert "not a regular file" in proc.stderr


@needs_device
def test_run_refuses_a_lying_npy_header(fusec, tmp_path):
    # a header claiming 10^11 elements was a MemoryError traceback
    ir = tmp_path / "g.ir"
    ir.write_text("graph g(x: f32[N]) {\n    return x\n}\n", encoding="utf-8")
    lying = tmp_path / "x.npy"
    with open(lying, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**11,)})
    proc = fusec("run", ir, "--input", f"x={lying}")
    assert proc.returncode == 1
    assert "claims 100000000000 elements of float32 (400000000000 bytes), but the file holds 0" in proc.stderr
