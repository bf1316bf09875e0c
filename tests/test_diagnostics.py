"""Golden diagnostics: `fusec check` on every tests/bad/*.ir, stderr compared byte for byte.

Each `X.ir` is a bad file and `X.expected` the exact stderr a user sees. Review
a changed message as a user would. To rewrite the expected files after a
deliberate change, run `FUSEC_UPDATE_GOLDEN=1 pytest tests/test_diagnostics.py`
and read the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted((ROOT / "tests" / "bad").glob("*.ir"))
UPDATE = os.environ.get("FUSEC_UPDATE_GOLDEN") == "1"


def fusec_command() -> list[str]:
    script = shutil.which("fusec", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "fusec.cli"]


def _check(path: Path, env: dict) -> subprocess.CompletedProcess:
    rel = path.relative_to(ROOT).as_posix()  # the path as a user types it, from the repo root
    return subprocess.run(
        [*fusec_command(), "check", rel], cwd=ROOT, env=env, capture_output=True, timeout=60
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    # One process per file, a few at a time: each costs the interpreter's start-up.
    env = {**os.environ, "FUSEC_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(BAD, pool.map(lambda p: _check(p, env), BAD), strict=True))
    return done


def test_there_are_bad_files():
    assert len(BAD) >= 25


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_diagnostic(path, results):
    proc = results[path]
    stderr = proc.stderr.decode("utf-8")
    assert "Traceback" not in stderr
    assert proc.stdout == b""
    assert proc.returncode == 1, stderr
    expected = path.with_suffix(".expected")
    if UPDATE:
        expected.write_bytes(proc.stderr)
        return
    assert expected.exists(), f"no {expected.name}; run with FUSEC_UPDATE_GOLDEN=1 to create it"
    assert stderr == expected.read_text(encoding="utf-8")


def test_every_expected_file_has_its_ir():
    stale = [
        p.name
        for p in (ROOT / "tests" / "bad").glob("*.expected")
        if not p.with_suffix(".ir").exists()
    ]
    assert not stale
