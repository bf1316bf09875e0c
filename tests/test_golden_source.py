"""Golden OpenCL: the generated source of tests/golden/*.ir, and those kernels run.

`X.cl` holds exactly what `fusec compile X.ir --emit source` prints on a device
described by PINNED (the source depends on the device's vector width), so the
comparison needs no device. A change to code generation shows up as a diff of
these files: rewrite them with `FUSEC_UPDATE_GOLDEN=1 pytest
tests/test_golden_source.py` and review the diff. The kernels themselves are
run on the real device and checked against NumPy; the CLI's own output is
compared in tests/test_cli.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fusec.api import compile_graphs
from fusec.codegen import generate
from fusec.codegen.device import DeviceInfo
from fusec.passes import fuse

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("FUSEC_UPDATE_GOLDEN") == "1"
# PoCL on an x86 CPU: float8 vectors, four per work-item.
PINNED = DeviceInfo(name="golden", vector_width=16, vectors_per_item=2)  # what PoCL gives here
NAMES = ["chain", "dag", "mixed"]


def golden_source(path: Path, info: DeviceInfo = PINNED) -> str:
    """What `fusec compile --emit source` prints for the file on a device like `info`."""
    front = compile_graphs(path)
    return "".join(generate(g, fuse(g), info)[0] + "\n" for g in front.graphs)


@pytest.mark.parametrize("name", NAMES)
def test_source_matches_golden(name):
    text = golden_source(GOLDEN / f"{name}.ir")
    cl_file = GOLDEN / f"{name}.cl"
    if UPDATE:
        cl_file.write_text(text, encoding="utf-8")
        return
    assert cl_file.exists(), f"no {cl_file.name}; run with FUSEC_UPDATE_GOLDEN=1 to create it"
    assert text == cl_file.read_text(encoding="utf-8"), (
        f"generated OpenCL for {name}.ir changed; if that is intended, rerun with "
        "FUSEC_UPDATE_GOLDEN=1 and review the diff of tests/golden/"
    )


def test_source_is_deterministic():
    path = GOLDEN / "dag.ir"
    assert golden_source(path) == golden_source(path)


# -- the golden kernels run ----------------------------------------------------

rng = np.random.default_rng(7)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def case_chain(n=1003):
    x = rng.standard_normal(n).astype(np.float32) * 4
    want = _sigmoid(np.maximum(x * np.float32(2) + np.float32(1), 0) - np.float32(0.5))
    return (x,), (want.astype(np.float32),)


def case_dag(b=7, d=13):
    x = rng.standard_normal((b, d)).astype(np.float32)
    bias = rng.standard_normal(d).astype(np.float32)
    c = rng.standard_normal((b, 1)).astype(np.float32)
    s = np.float32(1.5)
    h = x * s + bias
    return (x, bias, c, s), (np.tanh(h) * c, h - c, bias * s)


def case_mixed(n=77):
    h = (rng.standard_normal(n) * 3).astype(np.float16)
    m = rng.random(n) < 0.5
    k = rng.integers(-10, 10, n).astype(np.int32)
    big = k > 3
    y = np.where(m & big, (h.astype(np.float32) * 2).astype(np.float16), k.astype(np.float16))
    return (h, m, k), (y, m | big, k * 2 + 1)


CASES = {
    "chain": [case_chain, lambda: case_chain(32 * 5)],
    "dag": [case_dag, lambda: case_dag(5, 16)],  # a ragged row, and rows of whole vectors
    "mixed": [case_mixed],
}


@pytest.fixture(scope="module")
def programs():
    fusec = pytest.importorskip("fusec")
    try:
        return {name: fusec.compile(GOLDEN / f"{name}.ir") for name in NAMES}
    except fusec.FusecError as e:  # no OpenCL device here
        pytest.skip(str(e))


@pytest.mark.parametrize("name", NAMES)
def test_golden_kernels_run(name, programs):
    g = programs[name][name]
    if g.runtime.info.vector_width == PINNED.vector_width and (
        g.runtime.info.vectors_per_item == PINNED.vectors_per_item
    ):
        # this device runs exactly the reviewed kernels
        assert g.source + "\n" == (GOLDEN / f"{name}.cl").read_text(encoding="utf-8")
    for make in CASES[name]:
        args, wants = make()
        got = g(*args)
        got = got if isinstance(got, tuple) else (got,)
        assert len(got) == len(wants)
        for out, want in zip(got, wants, strict=True):
            assert out.dtype == want.dtype and out.shape == want.shape
            if want.dtype.kind == "f":
                np.testing.assert_allclose(out, want, rtol=2e-6, atol=1e-6)
            else:
                np.testing.assert_array_equal(out, want)
