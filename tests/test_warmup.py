"""`fusec warmup` fills the cache; `--check` is the CI gate."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fusec(*args, cache, cwd=REPO):
    env = {**os.environ, "FUSEC_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "fusec.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_warmup_then_check(tmp_path):
    src = tmp_path / "models"
    (src / "sub").mkdir(parents=True)
    (src / "a.ir").write_text("graph a(x: f32[N]) {\n return tanh(x) * 3\n}\n")
    (src / "sub" / "b.ir").write_text("graph b(x: f32[N], y: f32[N]) {\n return x * y + 1, relu(x)\n}\n")
    cache = tmp_path / "cache"

    before = fusec("warmup", str(src), "--check", cache=cache)
    assert before.returncode == 1
    assert "2 need building" in before.stderr and "a.ir:a: not in the cache" in before.stderr

    first = fusec("warmup", str(src), "--jobs", "2", cache=cache)
    assert first.returncode == 0, first.stderr
    assert "2 built, 0 already cached" in first.stderr

    again = fusec("warmup", str(src), cache=cache)
    assert again.returncode == 0 and "0 built, 2 already cached" in again.stderr

    after = fusec("warmup", str(src), "--check", cache=cache)
    assert after.returncode == 0 and "2 already cached" in after.stderr


def test_warmup_reports_bad_files_and_fails(tmp_path):
    (tmp_path / "good.ir").write_text("graph g(x: f32[N]) {\n return x + 1\n}\n")
    (tmp_path / "bad.ir").write_text("graph g(x: f32[N]) {\n return y\n}\n")
    out = fusec("warmup", str(tmp_path), cache=tmp_path / "cache")
    assert out.returncode == 1
    assert "bad.ir:3:9: error: unknown name 'y'" in out.stderr or "bad.ir:2:" in out.stderr
    assert "1 built" in out.stderr and "1 failed" in out.stderr
    assert "Traceback" not in out.stderr


def test_warmup_missing_path_is_a_clean_error(tmp_path):
    out = fusec("warmup", str(tmp_path / "nope"), cache=tmp_path / "cache")
    assert out.returncode == 1 and "no such file or directory" in out.stderr
    assert "Traceback" not in out.stderr


def test_concurrent_warmups_build_each_kernel_once_and_leave_valid_entries(tmp_path):
    """Three processes warming the same files at once: all succeed, the cache verifies."""
    src = tmp_path / "models"
    src.mkdir()
    for i in range(4):
        (src / f"m{i}.ir").write_text(f"graph g{i}(x: f32[N]) {{\n return tanh(x * {i + 2}) + {i}\n}}\n")
    cache = tmp_path / "cache"
    env = {**os.environ, "FUSEC_CACHE_DIR": str(cache)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "fusec.cli", "warmup", str(src)], env=env, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    check = fusec("warmup", str(src), "--check", cache=cache)
    assert check.returncode == 0 and "4 already cached" in check.stderr

    from kernels_cache import KernelCache

    store = KernelCache(cache)
    entries = store.entries()
    assert len(entries) == 4 and all(store.get(e.key) is not None for e in entries)
    assert store.stats()["builds"] == 4, outs  # the lock made each kernel build in one process only
