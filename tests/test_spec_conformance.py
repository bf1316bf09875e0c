"""Promises of the spec pages (`shared/spec/*.md`) checked the way an outside
user meets them; each test here failed before its fix."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fusec

TWO_GRAPHS = """
graph mlp(x: f32[B, 4], w: f32[3, 4]) {
    return relu(linear(x, w))
}
graph act(x: f32[N], s: f32) {
    return x * s, x
}
"""


@pytest.fixture(scope="module")
def prog():
    return fusec.compile(TWO_GRAPHS)


def test_a_program_is_looked_up_by_graph_name(prog):
    assert "act" in prog and "mlp" in prog and "nope" not in prog
    assert len(prog) == len(prog.graphs) == 2
    assert prog["act"] in prog  # iteration gives the compiled graphs
    z, y = prog[prog.graphs[1]](np.arange(3, dtype=np.float32), 2.0)
    np.testing.assert_array_equal(z, np.arange(3, dtype=np.float32) * 2)


# -- the command line, in fresh processes ---------------------------------------------
ROOT = Path(__file__).resolve().parent.parent


def run_fusec(*args, env=None, stdin=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "fusec", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_a_warning_on_the_command_line_is_one_fusec_line(tmp_path):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    out = run_fusec("cache", "ls", env={"FUSEC_CACHE_DIR": str(not_a_folder)})
    assert out.returncode == 0
    assert out.stderr.startswith(f"fusec: warning: kernel cache: not using {not_a_folder}")
    assert ".py:" not in out.stderr and "CacheWarning" not in out.stderr  # no Python format


@pytest.mark.parametrize("content", ["", "# only a comment, no newline at the end"])
def test_an_ir_file_without_a_graph_is_named_in_the_error(tmp_path, content):
    path = tmp_path / "empty.ir"
    path.write_text(content)
    for fn in (fusec.compile, fusec.compile_graphs):
        with pytest.raises(fusec.CompileError) as info:
            fn(str(path))
        assert info.value.text.startswith(f"{path}:1:") and "no graph in this file" in str(
            info.value
        )
    with pytest.raises(fusec.CompileError, match="<input>:1:1: error: no graph"):
        fusec.compile("")  # empty text, not a file named ""


def test_dash_reads_the_ir_from_stdin():
    ok = run_fusec("check", "-", stdin=TWO_GRAPHS)
    assert ok.returncode == 0 and ok.stdout == "<stdin>: ok (2 graphs)\n"
    bad = run_fusec("check", "--json", "-", stdin="graph f(x: f32[N]) {\n  return y\n}\n")
    doc = json.loads(bad.stdout)
    assert bad.returncode == 1 and doc["file"] == "<stdin>" and not doc["ok"]
    assert (doc["diagnostics"][0]["line"], doc["diagnostics"][0]["col"]) == (2, 10)
    plain = run_fusec("check", "-", stdin="graph f(x: f32[N]) {\n  return y\n}\n")
    assert plain.returncode == 1 and plain.stderr.startswith(
        "<stdin>:2:10: error: unknown name 'y'"
    )


def test_cache_export_names_the_users_file_when_it_cannot_write(tmp_path):
    env = {"FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    missing = tmp_path / "no such folder" / "kernels.fusecache"
    out = run_fusec("cache", "export", missing, env=env)
    assert (out.returncode, out.stderr) == (
        1,
        f"fusec: error: {missing}: no such file or directory\n",
    )
    out = run_fusec("cache", "export", tmp_path, env=env)
    assert (out.returncode, out.stderr) == (
        1,
        f"fusec: error: {tmp_path}: is a directory, not an archive file\n",
    )


def test_dir_shows_the_names_the_spec_gives_without_loading_frameworks():
    code = (
        "import sys, fusec; names = dir(fusec); "
        "print(all(n in names for n in ('jit', 'evaluate', 'from_onnx', 'torch', 'sigmoid', "
        "'compile', 'register_primitive', 'CallError', 'TraceError')), "
        "'torch' in sys.modules or 'onnx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout == "True False\n", out.stderr


def test_register_primitive_refuses_a_template_that_reads_no_input():
    # `x * x` (no braces) would reach OpenCL as an undeclared `x`, at the first call
    with pytest.raises(
        ValueError, match=r"uses none of its inputs: write them in braces, as \{x\}"
    ):
        fusec.register_primitive("conformance_cube", ["x"], "x * x * x", lambda x: x**3)
    assert "conformance_cube" not in dir(fusec)  # nothing was registered


def test_a_process_that_compiled_leaves_no_unclosed_files(tmp_path):
    code = (
        "import numpy as np, fusec\n"
        "f = fusec.compile('graph f(x: f32[N]) {\\n return x * 3\\n}')['f']\n"
        "print(f(np.ones(3, np.float32)).tolist())\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "FUSEC_CACHE": "0",
            "FUSEC_BUILD_ISOLATION": "1",
        },  # a build, in the worker
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout == "[3.0, 3.0, 3.0]\n" and "ResourceWarning" not in out.stderr, out.stderr


def test_run_names_the_file_it_wrote_and_refuses_an_input_given_twice(tmp_path):
    (tmp_path / "g.ir").write_text(
        "graph g(x: f32[N], c: bool) {\n  return where(c, x * 2, x)\n}\n"
    )
    np.save(tmp_path / "x.npy", np.arange(7, dtype=np.float32))
    env = {"FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    args = ["run", tmp_path / "g.ir", "--input", f"x={tmp_path / 'x.npy'}"]
    out = run_fusec(*args, "--input", "c=True", "--output", tmp_path / "out", env=env)
    assert out.returncode == 0 and out.stderr == f"wrote 1 output(s) to {tmp_path / 'out.npz'}\n"
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["out0"], np.arange(7) * 2)
    twice = run_fusec(*args, "--input", "c=true", "--input", "c=false", env=env)
    assert (twice.returncode, twice.stderr) == (
        1,
        "fusec: error: --input 'c' given more than once\n",
    )


def test_fusec_ops_on_plain_python_sequences_work_as_numpys_functions():
    got = fusec.maximum([1.5, -2.0, 3.0], (0.0, 0.0, 4.0))
    np.testing.assert_array_equal(got, np.maximum([1.5, -2.0, 3.0], (0.0, 0.0, 4.0)))
    assert got.dtype == np.float64  # what np.asarray makes of Python floats
    np.testing.assert_array_equal(fusec.relu([[1, -2]]), [[1, 0]])


def test_a_tensor_fusec_cannot_read_names_what_was_expected_and_got(prog):
    torch = pytest.importorskip("torch")
    with pytest.raises(
        fusec.CallError, match=r"parameter 'x' expects f32\[N\], got a Tensor of torch\.bfloat16"
    ):
        prog["act"](torch.ones(3, dtype=torch.bfloat16), 2.0)


def test_compile_takes_bytes_as_open_does_and_refuses_other_types(tmp_path):
    (tmp_path / "m.ir").write_text(TWO_GRAPHS)
    assert fusec.compile((tmp_path / "m.ir").read_bytes()).graphs == ["mlp", "act"]  # text
    assert fusec.compile(bytes(tmp_path / "m.ir")).graphs == ["mlp", "act"]  # a path
    with pytest.raises(TypeError, match="expected a path or IR text .* got NoneType"):
        fusec.compile(None)  # not the file "None"


def test_a_bad_fusec_cache_value_is_a_one_line_error_naming_it(tmp_path):
    env = {"FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    bad = run_fusec("cache", "stats", env={**env, "FUSEC_CACHE": "2"})
    assert (bad.returncode, bad.stderr) == (
        1,
        "fusec: error: FUSEC_CACHE: expected 0 (off) or 1 (on), got '2'\n",
    )
    off = run_fusec("cache", "stats", env={**env, "FUSEC_CACHE": "off"})
    assert (off.returncode, off.stderr) == (
        1,
        "fusec: error: the kernel cache is off (FUSEC_CACHE=0)\n",
    )


def test_warmup_of_a_folder_without_ir_files_warns(tmp_path):
    out = run_fusec("warmup", "--check", tmp_path, env={"FUSEC_CACHE_DIR": str(tmp_path / "c")})
    assert out.returncode == 0 and out.stderr == f"fusec: warning: no .ir file under {tmp_path}\n"


def test_device_may_be_an_index_into_the_devices_list():
    from fusec.runtime import DeviceError, list_devices, select_device

    devices = [d for _, d in list_devices()]
    index = devices.index(select_device())  # the one fusec uses, by its `fusec devices` index
    p = fusec.compile(TWO_GRAPHS, device=index)
    assert p["act"].runtime.device == devices[index]
    np.testing.assert_array_equal(p["act"](np.ones(2, np.float32), 3.0)[0], [3.0, 3.0])
    with pytest.raises(DeviceError, match=f"no OpenCL device {len(devices)}: there are"):
        fusec.compile(TWO_GRAPHS, device=len(devices))
    with pytest.raises(TypeError, match="expected a pyopencl.Device, a name or an index"):
        fusec.compile(TWO_GRAPHS, device=1.5)


def test_compile_o_naming_a_file_says_it_is_not_a_directory(tmp_path):
    (tmp_path / "m.ir").write_text(TWO_GRAPHS)
    (tmp_path / "out").write_text("a file")
    env = {"FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    out = run_fusec("compile", tmp_path / "m.ir", "-o", tmp_path / "out", env=env)
    assert out.returncode == 1
    assert out.stderr.endswith(
        f"fusec: error: -o {tmp_path / 'out'}: exists and is not a directory\n"
    )


def test_naming_a_device_that_builds_nothing_says_why(tmp_path):
    from fusec.runtime import broken_reason, list_devices

    broken = [d for _, d in list_devices() if broken_reason(d)]
    if not broken:
        pytest.skip("every device here builds kernels (PoCL 3.0 on a CPU its LLVM knows)")
    with pytest.raises(
        fusec.CompileError, match=re.escape(f"unusable: {broken_reason(broken[0])}")
    ):
        fusec.compile(TWO_GRAPHS, device=broken[0], cache_dir=tmp_path)["act"].build()


def test_passing_a_bound_parameter_again_says_it_is_bound(prog):
    act = prog["act"].bind(s=2.0)
    with pytest.raises(fusec.CallError, match="act\\(\\): 's' is bound \\(by bind\\)"):
        act(np.ones(2, np.float32), s=3.0)


def test_a_warmup_that_could_store_nothing_fails(tmp_path):
    (tmp_path / "t.ir").write_text("graph t(x: f32[N]) {\n  return x * 5\n}\n")
    out = run_fusec("warmup", tmp_path / "t.ir", env={"FUSEC_CACHE": "0"})
    assert out.returncode == 1, out.stdout
    assert (
        f"{tmp_path / 't.ir'}:t: built, but not stored: the cache is off (FUSEC_CACHE=0)"
        in out.stderr
    )


def test_an_onnx_model_given_as_ir_points_to_fusec_import(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07\x12\x07pytorch\x00\x01")  # the start of a ModelProto
    with pytest.raises(
        fusec.CompileError, match="an ONNX model is read by `fusec import` or fusec.from_onnx"
    ):
        fusec.compile(model)


def test_a_missing_argument_says_what_was_expected_and_got(prog):
    with pytest.raises(
        fusec.CallError, match=r"act\(\) takes 2 arguments \(x, s\), got 1: missing 's'"
    ):
        prog["act"](np.ones(2, np.float32))
    with pytest.raises(fusec.CallError, match=r"act\(\) takes 1 argument \(x\), got 2"):
        prog["act"].bind(s=1.0)(np.ones(2, np.float32), 2.0)
