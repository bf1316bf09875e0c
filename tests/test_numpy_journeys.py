"""User journeys through `@fusec.jit` and `fusec.evaluate` that a NumPy or
numexpr user takes: methods, dict outputs, `x[:, None]`, numexpr's error
positions and operands. Every result is checked against NumPy / numexpr."""

from __future__ import annotations

import numpy as np
import pytest

import fusec

rng = np.random.default_rng(7)
X = rng.standard_normal((7, 5)).astype(np.float32)
Y = rng.standard_normal((7, 5)).astype(np.float32)


class Scaled:
    def __init__(self, scale):
        self.scale = scale

    @fusec.jit
    def forward(self, x, shift=1.0):
        return np.tanh(x) * self.scale + shift


def test_jit_on_a_method_binds_the_instance():
    a, b = Scaled(3.0), Scaled(-0.5)
    np.testing.assert_allclose(a.forward(X), np.tanh(X) * 3.0 + 1.0, rtol=1e-6, atol=1e-6)
    # each instance traces with its own attributes, and keeps its traces
    np.testing.assert_allclose(b.forward(X, shift=2.0), np.tanh(X) * -0.5 + 2.0, rtol=1e-6)
    assert a.forward is a.forward
    assert Scaled.forward.__name__ == "forward"  # on the class: the jitted function itself


def test_a_dict_of_outputs_comes_back_as_a_dict():
    f = fusec.jit(lambda a, b: {"total": (a * b).sum(axis=1), "prod": a * b}, grad=True)
    got = f(X, Y)
    assert list(got) == ["total", "prod"]
    np.testing.assert_allclose(got["prod"], X * Y, rtol=1e-6)
    np.testing.assert_allclose(got["total"], (X * Y).sum(axis=1), rtol=1e-5, atol=1e-5)
    cot = {"prod": np.ones_like(X), "total": np.full(7, 2.0, np.float32)}
    values, grads = f.value_and_grad(X, Y, grad_outputs=cot)
    assert isinstance(values, dict) and set(values) == {"total", "prod"}
    np.testing.assert_allclose(grads["a"], Y * 3.0, rtol=1e-6)


def test_a_dict_output_that_is_no_array_names_its_key():
    with pytest.raises(fusec.TraceError, match="output 'n'"):
        fusec.jit(lambda a: {"y": a + 1, "n": 3})(X)
