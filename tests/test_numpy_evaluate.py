"""`fusec.evaluate` against numexpr (the language's owner) on the same arrays.

f64 arrays: numexpr computes Python float constants in double, so on f64
inputs both give f64 and agree to rounding (docs/numpy.md lists where they
differ on f32 and integer inputs).
"""

from __future__ import annotations

import numexpr
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fusec

rng = np.random.default_rng(7)
a = rng.uniform(-2, 2, 3000)
b = rng.uniform(0.5, 3, 3000)
c = rng.uniform(-0.9, 0.9, 3000)
n = np.arange(10)

EXPRESSIONS = [
    "where(a > 0, a * b + 1, 0.1 * a)",
    "tanh(a) ** 2 + sin(b) * cos(c)",
    "log10(b) + log(b) - log1p(b) + exp(c) - expm1(c) + sqrt(b)",
    "tan(c) + sinh(a) + cosh(c) + arcsinh(a) + arccosh(b + 1) + arctanh(c)",
    "arctan2(a, b) + arctan2(c, a) + arcsin(c) + arccos(c) + arctan(a)",
    "abs(a) + floor(a) + ceil(c) + real(a)",
    "where((a > 0) & (b < 2) | ~(c > 0), a, -b)",
    "where(a >= c, a, c) + where(a != b, 1.0, 2.0) * where(a == a, b, 0.0) - (a <= 0.5)",
    "a / b - 2 ** c + b ** 0.5 - -a",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_expressions_match_numexpr(expr):
    ref = numexpr.evaluate(expr, local_dict={"a": a, "b": b, "c": c})
    got = fusec.evaluate(expr)  # names from this function's globals
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


def test_names_come_from_the_caller_or_the_dicts():
    x = np.arange(10.0)
    np.testing.assert_array_equal(fusec.evaluate("x * 2"), x * 2)
    np.testing.assert_allclose(
        fusec.evaluate("tanh(q) ** 2", local_dict={"q": x}), np.tanh(x) ** 2, rtol=1e-15
    )
    np.testing.assert_array_equal(
        fusec.evaluate("x + y", local_dict={"x": x}, global_dict={"y": 1.5}), x + 1.5
    )
    out = np.empty_like(x)
    assert fusec.evaluate("x * x", out=out) is out
    np.testing.assert_array_equal(out, x * x)


def test_broadcasting_and_new_sizes():
    m, v = rng.uniform(-1, 1, (40, 30)), rng.uniform(-1, 1, 30)
    np.testing.assert_allclose(
        fusec.evaluate("m * v + 1"), numexpr.evaluate("m * v + 1"), rtol=1e-15
    )
    m, v = rng.uniform(-1, 1, (7, 3)), rng.uniform(-1, 1, 3)
    np.testing.assert_allclose(fusec.evaluate("m * v + 1"), m * v + 1, rtol=1e-15)


def test_f32_inputs_stay_f32():
    """numexpr computes `x * 2.5` on f32 x in f64; fusec keeps x's dtype (docs/numpy.md)."""
    x = rng.uniform(-1, 1, 100).astype(np.float32)
    got = fusec.evaluate("x * 2.5 + exp(x)")
    assert got.dtype == np.float32
    # against exact arithmetic, within the f32 roundings of the terms: where
    # they cancel, NumPy's f32 exp and the device's (each within an ulp) differ
    # by 1e-6 of the result
    want = x.astype(np.float64) * 2.5 + np.exp(x.astype(np.float64))
    terms = np.abs(x * np.float32(2.5)) + np.exp(x)
    np.testing.assert_array_less(np.abs(got - want), 2 * np.finfo(np.float32).eps * terms)


@pytest.mark.parametrize(
    "expr",
    [
        "round(a * 2) + trunc(a * 3) + sign(a)",  # a * 2 holds halves: round's ties to even
        "log2(b) + where(isnan(a) | isinf(b) | ~isfinite(c), 1.0, 0.0) + copy(c)",
        "min(m)",
        "max(m, axis=1)",
        "2 ** -1 * a + 2 ** 3",  # constants alone, folded as numexpr folds them
        "a % b + (a * 7) % -1.5 + 7.5 % 2",  # numexpr's float %: a - floor(a / b) * b
    ],
)
def test_more_of_numexprs_functions_match_numexpr(expr):
    m = rng.uniform(-1, 1, (5, 6))
    values = {"a": np.round(a, 2), "b": b, "c": c, "m": m}
    ref = numexpr.evaluate(expr, local_dict=values)
    got = fusec.evaluate(expr, local_dict=values)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(
    "expr, message",
    [
        ("fmod(a, b)", "fusec has no fmod"),
        ("hypot(a, b)", "fusec has no hypot"),
        ("sqr(a)", "unknown function 'sqr'; did you mean 'sqrt'\\?"),
        ("n % 2", "% of integers: fusec has no integer division"),
        ("a and b", "use & and |"),
        ("undefined_name + 1", "name 'undefined_name' is not defined"),
        ("a +", "syntax error"),
        ("a.sum()", "unknown function 'a.sum'"),
        ("a[0]", "Subscript is not part of numexpr's expression language"),
        ("imag(a)", "no complex dtypes"),
        ("__import__('os')", "unknown function '__import__'"),
        ("where(a, b, c)", "where's condition must be bool"),
    ],
)
def test_what_evaluate_rejects_is_a_clear_error(expr, message):
    with pytest.raises(fusec.TraceError, match=message) as info:
        fusec.evaluate(expr)
    assert expr in str(info.value)


# -- random expressions -------------------------------------------------------------
FUNCS = ["sin", "cos", "tanh", "exp", "expm1", "log1p", "sqrt", "abs"]


def _safe(fn, sub):  # log1p and sqrt of |.|, exp of tanh: finite results
    inner = {
        "log1p": f"abs({sub})",
        "sqrt": f"abs({sub})",
        "exp": f"tanh({sub})",
        "expm1": f"tanh({sub})",
    }
    return f"{fn}({inner.get(fn, sub)})"


exprs = st.recursive(
    st.sampled_from(["a", "b", "c", "2.5", "0.5"]),
    lambda sub: (
        st.builds(lambda f, s: _safe(f, s), st.sampled_from(FUNCS), sub)
        | st.builds(
            lambda left, op, right: f"({left} {op} {right})",
            sub,
            st.sampled_from(["+", "-", "*"]),
            sub,
        )
        # a branch names `b`: where over two literals is a weak (f32) value in fusec (docs/numpy.md)
        | st.builds(
            lambda left, op, right, x, y: f"where({left} {op} {right}, {x} + b, {y})",
            sub,
            st.sampled_from(["<", ">="]),
            sub,
            sub,
            sub,
        )
    ),
    max_leaves=7,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=exprs)
def test_random_expressions_match_numexpr(expr):
    expr = f"{expr} + a * 0"  # every expression names an array
    ref = numexpr.evaluate(expr, local_dict={"a": a, "b": b, "c": c})
    np.testing.assert_allclose(fusec.evaluate(expr), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("expr", ["1 + 2", "sin(1.0) * 2", "2 ** -1", "3000000000 * 2", "1 < 2"])
def test_constants_alone_fold_to_numexprs_0d_array(expr):
    ref = numexpr.evaluate(expr)
    got = fusec.evaluate(expr)
    assert got.dtype == ref.dtype and got.shape == ref.shape == ()
    assert got == ref
