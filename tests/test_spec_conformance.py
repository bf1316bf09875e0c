"""Promises of the spec pages (`shared/spec/*.md`) checked the way an outside
user meets them; each test here failed before its fix."""

from __future__ import annotations

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
