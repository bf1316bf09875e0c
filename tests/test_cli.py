"""The `fusec` command line, end to end in subprocesses (and in-process for the
many small usage and bad-input cases, where a subprocess would only add start-up
time: an escaping exception fails the test just as a traceback would).

Exit status: 0 success, 1 a mistake in the user's input, 2 a usage error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
ACT = "examples/act.ir"


def fusec_command() -> list[str]:
    # `python -m fusec` is the `fusec` program, and runs the code under test
    # (an installed `fusec` script may belong to another checkout)
    return [sys.executable, "-m", "fusec"]


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
    doc = json.loads(p.stdout)
    assert doc["version"] == 1 and doc["file"] == "tests/golden/dag.ir"
    (plan,) = doc["graphs"]
    assert plan["graph"] == "dag"
    assert [k["name"] for k in plan["kernels"]] == ["dag_k0", "dag_k1"]


@needs_device
def test_emit_plan_is_one_document_for_a_file_of_several_graphs(fusec):
    p = fusec("compile", ACT, "--emit", "plan")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # one document: json.loads rejects two
    assert [g["graph"] for g in doc["graphs"]] == ["act", "head"]


@needs_device
def test_compile_graph_selects_graphs(fusec, tmp_path):
    p = fusec("compile", ACT, "--graph", "head", "-o", tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == ["head.cl", "head.json"]
    assert "act:" not in p.stderr and "head: 1 kernel(s)" in p.stderr
    p = fusec("compile", ACT, "--graph", "head", "--graph", "act", "--emit", "plan")
    assert [g["graph"] for g in json.loads(p.stdout)["graphs"]] == ["act", "head"]  # file order


@needs_device
def test_compile_graph_with_grad_brings_the_backward_graphs(fusec):
    p = fusec("compile", ACT, "--grad", "--graph", "head")
    assert p.returncode == 0, p.stderr
    assert [line.split(":")[0] for line in p.stderr.splitlines()] == [
        "head",
        "head_bwd",
        "head_fwd_bwd",
    ]


@needs_device
def test_compile_unknown_graph_lists_the_graphs(fusec):
    p = fusec("compile", ACT, "--graph", "nope")
    assert p.returncode == 1
    assert p.stderr == "fusec: error: no graph 'nope' in examples/act.ir (graphs: act, head)\n"


@needs_device
def test_device_that_matches_nothing_is_a_clean_error(fusec):
    for args in (
        ["compile", ACT],
        ["run", ACT, "--graph", "act", "--input", "s=1"],
        ["warmup", ACT],
    ):
        p = fusec(*args, "--device", "no-such-device-anywhere")
        assert p.returncode == 1, (args, p.stderr)
        assert "no OpenCL device matches 'no-such-device-anywhere'" in p.stderr


@needs_device
def test_device_flag_picks_the_device(fusec):
    from fusec.runtime import list_devices, select_device

    chosen = select_device()
    p = fusec(
        "compile",
        ACT,
        "--emit",
        "plan",
        "--device",
        chosen.name.strip(),
        env={"FUSEC_DEVICE": "nope"},
    )
    assert p.returncode == 0, p.stderr  # --device wins over FUSEC_DEVICE
    assert chosen.name.strip() in json.loads(p.stdout)["graphs"][0]["device"]["name"]
    assert list_devices()


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
    p = fusec(
        "run",
        ACT,
        "--graph",
        "act",
        "--input",
        f"x={tmp_path / 'x.npy'}",
        "--input",
        "s=2.0",
        "--output",
        tmp_path / "out.npz",
    )
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
    chosen = next(line for line in lines if line.startswith("*"))
    assert (
        lines[-1].startswith("fusec uses: ")
        and lines[-1][len("fusec uses: ") :].split(" (")[0] in chosen
    )


@needs_device
def test_devices_when_fusec_device_matches_none(fusec):
    p = fusec("devices", env={"FUSEC_DEVICE": "no-such-device"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert not any(line.startswith("*") for line in lines)
    assert lines[-1].startswith(
        "fusec uses: nothing, FUSEC_DEVICE='no-such-device' matches none of these"
    )
    doc = json.loads(fusec("devices", "--json", env={"FUSEC_DEVICE": "no-such-device"}).stdout)
    assert doc["chosen"] is None and doc["requested"] == "no-such-device"
    assert doc["requested_by"] == "FUSEC_DEVICE" and doc["default"] is not None


@needs_device
def test_devices_json(fusec):
    p = fusec("devices", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc) == {"devices", "chosen", "reason", "requested", "requested_by", "default"}
    assert doc["devices"] and doc["chosen"] == doc["default"]
    for i, d in enumerate(doc["devices"]):
        assert set(d) == {
            "index",
            "platform",
            "name",
            "type",
            "version",
            "driver_version",
            "usable",
            "unusable_reason",
            "simulator",
            "chosen",
        }
        assert d["index"] == i and d["chosen"] == (i == doc["chosen"])
        assert not (d["simulator"] and i == doc["default"])  # Oclgrind only when named
    name = doc["devices"][-1]["name"]
    picked = json.loads(fusec("devices", "--json", "--device", name).stdout)
    got = picked["devices"][picked["chosen"]]  # the first whose platform or name holds it
    assert (
        name.lower() in (got["platform"] + got["name"]).lower()
        and picked["requested_by"] == "--device"
    )


# -- the cache ------------------------------------------------------------------------


@needs_device
def test_cache_commands(fusec, tmp_path):
    env = {"FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    assert fusec("compile", ACT, env=env).returncode == 0
    stats = fusec("cache", "stats", env=env)
    assert stats.returncode == 0 and "entries: 2" in stats.stdout
    ls = fusec("cache", "ls", env=env)
    assert ls.returncode == 0
    header, *rows = ls.stdout.splitlines()
    assert header.split() == ["KEY", "SIZE", "BUILD", "LAST", "USED", "NAME"]
    assert sorted(row.split()[-1] for row in rows) == ["act", "head"]
    assert all(row.split()[2] in ("B", "KiB", "MiB") for row in rows)  # 12.3 KiB
    listed = json.loads(fusec("cache", "ls", "--json", env=env).stdout)
    assert listed["directory"] == env["FUSEC_CACHE_DIR"]
    assert sorted(e["name"] for e in listed["entries"]) == ["act", "head"]
    assert all(
        set(e) == {"key", "name", "size", "last_used", "build_seconds"} for e in listed["entries"]
    )
    stats = json.loads(fusec("cache", "stats", "--json", env=env).stdout)
    assert stats["entries"] == 2 and stats["bytes"] == sum(e["size"] for e in listed["entries"])
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
    [
        [],
        ["frobnicate"],
        ["check"],
        ["compile"],
        ["run"],
        ["compile", ACT, "--emit", "asm"],
        ["cache"],
        ["cache", "prune"],
        ["cache", "prune", "--max-size", "lots"],
        ["warmup", ACT, "--jobs", "0"],
        ["warmup", ACT, "-j", "-2"],
        ["warmup", ACT, "--jobs", "many"],
        ["compile", ACT, "--emit", "png"],
        ["run", ACT, "--input", "x"],
        ["run", ACT, "--input", "=1"],
        ["devices", "--jsn"],
        ["check", ACT, "--device", "x"],
        ["cache", "ls", "--max-size", "1M"],
    ],
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
        (
            b"graph f(x: f32) {\n  return x * 2  # na\xefve\n}\n",
            "error: not UTF-8 text (byte 0xef)",
        ),
        (b"\xff\xfe\x00g\x00r\x00a\x00p\x00h", "error: a binary file, not IR text"),  # UTF-16
        (
            b"graph f(x: f32) {\n  return x\n}\n" * 2,
            "error: graph 'f' is already defined at line 1",
        ),
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


def test_version(fusec):
    from fusec.version import __version__

    p = fusec("--version")
    assert (p.returncode, p.stdout) == (0, f"fusec {__version__}\n")


def test_python_m_fusec_is_the_fusec_program(cli):
    p = subprocess.run(
        [sys.executable, "-m", "fusec", "check", ACT], cwd=ROOT, capture_output=True, text=True
    )
    assert (p.returncode, p.stdout) == (0, "examples/act.ir: ok (2 graphs)\n")
    assert (0, p.stdout, "") == cli("check", ACT)


def test_check_json(cli):
    code, out, err = cli("check", ACT, "--json")
    assert code == 0 and err == ""
    assert json.loads(out) == {
        "file": ACT,
        "ok": True,
        "graphs": ["act", "head"],
        "diagnostics": [],
    }


def test_check_json_gives_diagnostics_as_data(cli, tmp_path):
    bad = tmp_path / "bad.ir"
    bad.write_text("graph g(x: f32[N]) {\n  return y\n}\n")
    code, out, err = cli("check", bad, "--json")
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["ok"] is False and doc["graphs"] == []
    (d,) = doc["diagnostics"]
    assert (d["file"], d["line"], d["col"], d["severity"]) == (str(bad), 2, 10, "error")
    assert "'y'" in d["message"]


def test_check_json_missing_file(cli):
    code, out, err = cli("check", "no/such.ir", "--json")
    assert code == 1
    (d,) = json.loads(out)["diagnostics"]
    assert d == {
        "file": "no/such.ir",
        "line": None,
        "col": None,
        "severity": "error",
        "message": "no such file",
    }


def test_human_sizes():
    from fusec.cli import human_size

    assert [human_size(n) for n in (0, 1023, 1024, 12_600, 5 << 20, 3 << 30)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "12.3 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]


def test_device_types():
    from fusec.cli import _device_type

    assert [_device_type(b) for b in (2, 4, 4 | 1, 8, 1, 0)] == [
        "CPU",
        "GPU",
        "GPU",
        "accelerator",
        "default",
        "0",
    ]


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
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (10**11,)}
        )
    proc = fusec("run", ir, "--input", f"x={lying}")
    assert proc.returncode == 1
    assert (
        "claims 100000000000 elements of float32 (400000000000 bytes), but the file holds 0"
        in proc.stderr
    )


def test_warmup_names_a_special_file_as_such(fusec, tmp_path):
    fifo = tmp_path / "m.ir"
    os.mkfifo(fifo)
    proc = fusec("warmup", fifo)
    assert proc.returncode == 1
    assert "not a regular file or directory" in proc.stderr
