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


@pytest.mark.parametrize(
    "expr, column",
    [("a + * b", 4), ("(a + 1", 0), ("a +", 3), ("  a + zz * a", 6), ("zz", 0)],
)
def test_evaluate_errors_point_at_the_culprit(expr, column):
    a, b = X, Y  # noqa: F841 (names for the expression, from this frame)
    with pytest.raises(fusec.TraceError) as info:
        fusec.evaluate(expr)
    assert info.value.column == column
    assert str(info.value).endswith("\n    " + " " * column + "^")


def test_evaluate_takes_lists_and_casts_safely_into_out_as_numexpr():
    ne = pytest.importorskip("numexpr")
    got = fusec.evaluate("x * 2 + y", local_dict={"x": [1.5, -2.0], "y": (3, 4)})
    np.testing.assert_array_equal(
        got, ne.evaluate("x * 2 + y", local_dict={"x": [1.5, -2.0], "y": (3, 4)})
    )
    out = np.empty(X.shape, np.float64)
    assert fusec.evaluate("a * b + 1", local_dict={"a": X, "b": Y}, out=out) is out
    np.testing.assert_allclose(out, (X * Y + 1).astype(np.float64), rtol=1e-6)
    with pytest.raises(fusec.CallError, match="out"):  # float32 into int32 is no safe cast
        fusec.evaluate("a * b", local_dict={"a": X, "b": Y}, out=np.empty(X.shape, np.int32))


@pytest.mark.parametrize(
    "index",
    [
        lambda a: a[:, None],
        lambda a: a[None],
        lambda a: a[..., None],
        lambda a: a[None, :, None],
        lambda a: a[..., None, :],
    ],
    ids=[":,None", "None", "...,None", "None,:,None", "...,None,:"],
)
@pytest.mark.parametrize("scale", [1.0, 2.0])  # * 1.0 leaves the view itself as the output
def test_new_axes_index_as_numpy(index, scale):
    def f(a):
        return index(a) * scale

    np.testing.assert_array_equal(fusec.jit(f)(X), f(X))


def test_outer_product_by_new_axes_and_what_indexing_cannot_do():
    v = rng.standard_normal(7).astype(np.float32)
    np.testing.assert_allclose(fusec.jit(lambda a: a[:, None] * a[None, :])(v), np.outer(v, v))
    with pytest.raises(fusec.TraceError, match=r"only new axes: x\[:, None\]"):
        fusec.jit(lambda a: a[0] + 1)(X)
    with pytest.raises(fusec.TraceError, match="too many indices"):
        fusec.jit(lambda a: a[:, :, :, None])(X)


def test_branching_on_a_number_argument_suggests_static_argnames():
    def power(a, n=2):
        return a if n == 0 else power(a, n - 1) * a

    with pytest.raises(fusec.TraceError, match="static_argnames"):
        fusec.jit(power)(X)
    np.testing.assert_allclose(
        fusec.jit(power, static_argnames=("n",))(X, n=3), X**4, rtol=1e-5, atol=1e-6
    )


SPECIAL = np.array([[np.nan, -np.inf, 0.0, 2.5, -1.5], [np.inf, 3.0, -0.5, 1e-3, 7.0]], np.float32)
NUMPY_FUNCTIONS = {
    "var": lambda a: a.var(axis=1),
    "std ddof": lambda a: np.std(a, axis=0, ddof=1, keepdims=True),
    "var all": lambda a: np.var(a),
    "any/all": lambda a: (np.any(a > 1, axis=1), (a < 5).all(), np.all(a, axis=0)),
    "like": lambda a: (np.zeros_like(a), np.ones_like(a) * 2, np.full_like(a, 7, dtype=np.float64)),
    "trunc fabs": lambda a: (np.trunc(a * 3), np.fabs(a)),
    "logaddexp": lambda a: (np.logaddexp(a, a), np.logaddexp(a, 1.0)),
}


def same(got, want):
    for g, w in zip(*((v if isinstance(v, tuple) else (v,)) for v in (got, want)), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", NUMPY_FUNCTIONS.values(), ids=NUMPY_FUNCTIONS)
@pytest.mark.parametrize("data", ["plain", "special"])
def test_more_numpy_functions_trace_as_numpy(fn, data):
    a = X[:2] if data == "plain" else SPECIAL  # NaN, infinities, signed values
    with np.errstate(all="ignore"):
        want = fn(a)
    same(fusec.jit(fn)(a), want)


def test_matmul_and_dot_with_vectors_as_numpy():
    v = rng.standard_normal(5).astype(np.float32)
    u = rng.standard_normal(7).astype(np.float32)
    for fn, args in [
        (lambda a, b: a @ b, (X, v)),
        (lambda a, b: b @ a, (X, u)),
        (lambda a, b: np.dot(a, b), (v, v)),
        (lambda a, b: np.matmul(a, b) + 1, (X, v)),
    ]:
        got, want = fusec.jit(fn)(*args), fn(*args)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_numexprs_readme_examples_and_keywords_match_numexpr():
    ne = pytest.importorskip("numexpr")
    a, b = np.arange(1001.0), np.arange(1001.0)  # noqa: F841 (the expressions' names)
    x, y = 2.5, 4.1  # noqa: F841
    with np.errstate(all="ignore"):  # 0 / 0 in the first element, as in numexpr's README
        for expr in (
            "a + 1",
            "a*b-4.1*a > 2.5*b",
            "sin(a) + arcsinh(a/b)",
            "a * b - y * a > x * b",
        ):
            want = ne.evaluate(expr)
            got = fusec.evaluate(expr, order="K", casting="safe")
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, equal_nan=True)
    out = np.empty(X.shape, np.int32)
    fusec.evaluate("a * 3", local_dict={"a": X}, out=out, casting="unsafe")
    np.testing.assert_array_equal(out, ne.evaluate("a * 3", local_dict={"a": X}).astype(np.int32))
    with pytest.raises(fusec.CallError, match="out"):
        fusec.evaluate("a * 3", local_dict={"a": X}, out=np.empty(X.shape), casting="no")
    with pytest.raises(fusec.CallError, match="C-contiguous"):
        fusec.evaluate("a * 3", local_dict={"a": X}, order="F")


def test_transposed_matrices_trace_as_gemm_operands():
    b = rng.standard_normal((7, 3)).astype(np.float32)
    c = rng.standard_normal((3, 5)).astype(np.float32)
    cases = [
        (lambda a, b: a.T @ b, (X, b)),
        (lambda a, c: np.dot(a, c.T) + 1, (X, c)),
        (lambda b, c: np.matmul(b.T, c.T.T.T), (b, X.T.copy())),
        (lambda a: (a - a.mean(axis=0)).T @ (a - a.mean(axis=0)) / 6, (X,)),  # a covariance
        (lambda a: np.exp(a.T.T), (X,)),
    ]
    for fn, args in cases:
        got, want = fusec.jit(fn)(*args), fn(*args)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    f = fusec.jit(lambda a, b: (a.T @ b).sum(), grad=True)
    _, grads = f.value_and_grad(X, b)
    np.testing.assert_allclose(
        grads["a"], np.broadcast_to(b.sum(1, keepdims=True), X.shape), rtol=1e-5
    )
    with pytest.raises(fusec.TraceError, match="only traced as an operand of @"):
        fusec.jit(lambda a: np.exp(a.T))(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverse_hyperbolics_stay_finite_for_large_values(dtype):
    # x * x overflowed past 1.8e19 in float32: arcsinh(1e30) was NaN, arccosh(1e30) inf
    x = np.array([1e-30, 0.5, 3.0, 1e10, 1e19, 1e30, 3e38, np.inf], dtype)
    x = np.concatenate([x, -x])
    for expr, ref, arg in (
        ("arcsinh(x)", np.arcsinh, x),
        ("arccosh(x)", np.arccosh, np.abs(x) + 1),
    ):
        got = fusec.evaluate(expr, local_dict={"x": arg})
        np.testing.assert_allclose(got, ref(arg), rtol=4 * np.finfo(dtype).eps)
        np.testing.assert_allclose(fusec.jit(ref)(arg), ref(arg), rtol=4 * np.finfo(dtype).eps)
