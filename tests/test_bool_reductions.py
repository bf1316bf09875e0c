"""max/min of bool (NumPy's any/all) over vector-width runs: a vector
comparison is -1 where true in OpenCL C, so the reduction counts it as 1
(reduction._value). Sizes around the vector width and ragged ones, one true
(or one false) value at the start, middle and end, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import fusec

TEXT = """
graph flat(x: bool[N]) { return max(x, axis=0), min(x, axis=0) }
graph rows(x: bool[B, N]) { return max(x, axis=1), min(x, axis=1), max(x, axis=0), min(x, axis=0) }
"""


@pytest.fixture(scope="module")
def program():
    return fusec.compile(TEXT)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 33, 1023, 4099])
def test_any_and_all_of_one_odd_value(program, n):
    for pos in sorted({0, n // 2, n - 1}):
        for x in (np.arange(n) == pos, np.arange(n) != pos):
            got_max, got_min = program["flat"](x)
            assert bool(got_max) == x.max() and bool(got_min) == x.min(), (n, pos, x[:9])


@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (3, 1023), (13, 17)])
def test_any_and_all_along_rows_and_columns(program, shape):
    rng = np.random.default_rng(shape[1])
    for density in (0.02, 0.5, 0.98):
        x = rng.random(shape) < density
        got = program["rows"](x)
        for g, want in zip(got, (x.max(1), x.min(1), x.max(0), x.min(0)), strict=True):
            np.testing.assert_array_equal(g, want)
