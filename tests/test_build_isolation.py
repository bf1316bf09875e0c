"""A compiler crash kills the build worker, never the caller."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fusec
from fusec.runtime import Runtime
from fusec.runtime.build_worker import BuildWorker, WorkerCrash


def _device_names():
    rt = Runtime.shared()
    return rt.device.platform.name, rt.device.name


def test_worker_builds_a_binary():
    platform, device = _device_names()
    w = BuildWorker(timeout=60)
    try:
        reply = w.build(platform, device, "__kernel void k(__global float *x) { x[0] = 1.0f; }", "")
        assert reply["binary"] and reply["seconds"] > 0
        bad = w.build(platform, device, "__kernel void k(__global float *x) { x[0] = nope; }", "")
        assert "nope" in bad["error"]
    finally:
        w.close()


def test_an_aborting_compiler_becomes_a_worker_crash_and_the_worker_restarts(monkeypatch):
    monkeypatch.setenv("FUSEC_TEST_WORKER_ABORT_ON", "ABORT_HERE")
    platform, device = _device_names()
    w = BuildWorker(timeout=60)
    try:
        with pytest.raises(WorkerCrash, match=r"signal 6.*LLVM ERROR"):
            w.build(platform, device, "/* ABORT_HERE */ __kernel void k(__global float *x) { }", "")
        reply = w.build(platform, device, "__kernel void k(__global float *x) { x[0] = 3.0f; }", "")
        assert reply["binary"]
    finally:
        w.close()


def test_worker_timeout_is_a_worker_crash():
    platform, device = _device_names()
    w = BuildWorker(timeout=0.001)
    try:
        with pytest.raises(WorkerCrash, match="did not finish") as hung:
            w.build(platform, device, "__kernel void k(__global float *x) { x[0] = 4.0f; }", "")
        assert hung.value.timed_out
    finally:
        w.close()


def test_a_hung_build_is_not_retried_with_narrower_vectors(tmp_path):
    script = textwrap.dedent(
        """
        import warnings, numpy as np, fusec
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fusec.compile("graph f(x: f32[N]) {\\n return x * 3 + 1\\n}")["f"](np.ones(9, np.float32))
            except fusec.CompileError as e:
                print("ERROR", e)
        print("WARNINGS", [str(w.message) for w in caught])
        """
    )
    env = {**os.environ, "FUSEC_CACHE_DIR": str(tmp_path / "cache"), "FUSEC_BUILD_TIMEOUT": "0.001"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert "did not finish within" in out.stdout, out.stdout + out.stderr
    assert "retrying" not in out.stdout, out.stdout


@pytest.mark.parametrize(
    "abort_on, width, retries",
    # "float8": in any vector code (width 16 splits some ops in halves), never in scalar code
    [("float16", 8, ["vectors of 8"]), ("float8", 1, ["vectors of 8", "vectors of 1"])],
)
def test_compiler_abort_on_vector_code_falls_back_to_narrower_vectors(
    tmp_path, abort_on, width, retries
):
    if abort_on == "float8" and Runtime.shared().info.vector_width == 8:
        retries = ["vectors of 1"]  # already at 8: straight to scalar code
    """A compiler that aborts on vector code: the caller survives, warns, and runs narrower kernels."""
    script = textwrap.dedent(
        """
        import warnings, numpy as np, fusec
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            g = fusec.compile("graph f(x: f32[N]) {\\n return x * 2 + 1\\n}")["f"]
            x = np.arange(100, dtype=np.float32)
            y = g(x)
        assert np.array_equal(y, x * 2 + 1)
        print("WARNINGS", [str(w.message) for w in caught])
        print("WIDTH", g.kernels[0].device.vector_width)
        """
    )
    env = {
        **os.environ,
        "FUSEC_CACHE_DIR": str(tmp_path / "cache"),
        "FUSEC_TEST_WORKER_ABORT_ON": abort_on,
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    needed = 16 if abort_on == "float16" else 8  # the widths whose code the fault hits
    if Runtime.shared().info.vector_width < needed:
        pytest.skip(f"this device's vectors are narrower than {needed}")
    assert f"WIDTH {width}\n" in out.stdout, out.stdout
    for retry in retries:
        assert f"retrying f with {retry}" in out.stdout, out.stdout
    assert "LLVM ERROR" in out.stdout and "signal 6" in out.stdout


def test_compiler_abort_everywhere_is_a_compile_error(tmp_path):
    script = "import fusec, numpy as np; fusec.compile('graph f(x: f32[N]) {\\n return x + 1\\n}')['f'](np.ones(3, np.float32))"
    env = {
        **os.environ,
        "FUSEC_CACHE_DIR": str(tmp_path / "cache"),
        "FUSEC_TEST_WORKER_ABORT_ON": "__kernel",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 1 or "CompileError" in out.stderr
    assert "building the kernels of f failed" in out.stderr and "LLVM ERROR" in out.stderr


def test_cached_program_is_loaded_without_the_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEC_CACHE_DIR", str(tmp_path))
    text = "graph f(x: f32[N]) {\n return x * 3 + 0.25\n}"
    a = fusec.compile(text, cache_dir=tmp_path)["f"]
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(a(x), x * 3 + 0.25)
    assert a.runtime.cache.stats()["builds"] >= 1
