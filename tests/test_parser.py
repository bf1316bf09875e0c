"""The parser: every literal form, separators, brackets across lines, CRLF,
several graphs and returns, precedence and associativity, attributes.

Expressions are compared as S-expressions (`add(x, mul(y, 2))`), so a test
reads like the tree it expects.
"""

from __future__ import annotations

import math

import pytest

from fusec.diagnostics import CompileError, Pos
from fusec.frontend.lower import lower_module
from fusec.frontend.parser import Assign, Call, Literal, Name, Return, parse
from fusec.passes import infer


def show(e) -> str:
    if isinstance(e, Name):
        return e.id
    if isinstance(e, Literal):
        return repr(e.value)
    assert isinstance(e, Call)
    parts = [show(a) for a in e.args] + [f"{k}={v!r}" for k, v, _ in e.attrs]
    return f"{e.op}({', '.join(parts)})"


def expr_module(src: str):
    return parse(f"graph f(x: f32[N], y: f32[N], z: f32[N]) {{\n    return {src}\n}}\n")


def expr(src: str):
    """The expression `src`, returned from a graph with parameters x, y, z."""
    module = expr_module(src)
    (ret,) = module.graphs[0].body
    assert isinstance(ret, Return) and len(ret.values) == 1
    return ret.values[0]


# -- literals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("1", 1),
        ("0", 0),
        ("1.0", 1.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e-3", 1e-3),
        ("2.5E+4", 2.5e4),
        ("3e2", 300.0),
        ("inf", math.inf),
        ("true", True),
        ("false", False),
        ("-1", -1),
        ("-2.5", -2.5),
        ("-inf", -math.inf),
    ],
)
def test_literals(text, value):
    e = expr(text)
    assert isinstance(e, Literal)
    assert e.value == value and type(e.value) is type(value)


def test_nan_literal():
    e = expr("nan")
    assert isinstance(e, Literal) and math.isnan(e.value)


def test_int_and_float_literals_keep_their_kind():
    assert show(expr("x * 2 + 2.0")) == "add(mul(x, 2), 2.0)"


# -- precedence and associativity --------------------------------------------------


@pytest.mark.parametrize(
    "src, tree",
    [
        ("-x**2", "neg(pow(x, 2))"),  # Python: -(x ** 2)
        ("2**-1", "pow(2, -1)"),
        ("x**-y", "pow(x, neg(y))"),
        ("x ** y ** 2", "pow(x, pow(y, 2))"),  # right-associative
        ("-2**2", "neg(pow(2, 2))"),
        ("--x", "neg(neg(x))"),
        ("-x * y", "mul(neg(x), y)"),
        ("x - y - z", "sub(sub(x, y), z)"),  # left-associative
        ("x / y / z", "div(div(x, y), z)"),
        ("x + y * z", "add(x, mul(y, z))"),
        ("(x + y) * z", "mul(add(x, y), z)"),
        ("x * y ** 2", "mul(x, pow(y, 2))"),
        ("x - -1", "sub(x, -1)"),
        ("x + 1 < y * 2", "lt(add(x, 1), mul(y, 2))"),
        ("x <= y", "le(x, y)"),
        ("x > y", "gt(x, y)"),
        ("x >= y", "ge(x, y)"),
        ("x == y", "eq(x, y)"),
        ("x != -y", "ne(x, neg(y))"),
        ("relu(x) ** 2", "pow(relu(x), 2)"),
        ("where(x < 0, -x, x)", "where(lt(x, 0), neg(x), x)"),
    ],
)
def test_precedence(src, tree):
    assert show(expr(src)) == tree


def test_infix_records_the_operator_and_its_position():
    e = expr("x + y * z")
    assert e.infix == "+" and e.pos == Pos(2, 14)
    assert e.args[1].infix == "*" and e.args[1].pos == Pos(2, 18)
    assert expr("exp(x)").infix is None


# -- attributes ------------------------------------------------------------------------


def test_attributes():
    e = expr("f(x, a=1, b=-2.5, c=\"tanh\", d='none', e=f16, g=true, h=false, i=-inf, j=1e-3,)")
    assert show(e) == (
        "f(x, a=1, b=-2.5, c='tanh', d='none', e=('dtype', 'f16'), g=True, h=False, i=-inf, j=0.001)"
    )


def test_call_with_only_attributes_and_trailing_commas():
    assert show(expr("f(a=1,)")) == "f(a=1)"
    assert show(expr("f(x, y,)")) == "f(x, y)"


# -- statements, separators, layout -------------------------------------------------------


def test_comments_semicolons_and_blank_lines():
    m = parse(
        "# leading comment\n\n"
        "graph f(x: f32[N]) {  # after the brace\n"
        "    a = x + 1; b = a * 2   # two statements on a line\n"
        "    ;;\n"
        "\n"
        "    return b  # trailing\n"
        "}  # after the graph\n"
        "# trailing comment, no newline at the end"
    )
    body = m.graphs[0].body
    assert [type(s) for s in body] == [Assign, Assign, Return]
    assert [s.target for s in body[:2]] == ["a", "b"]


def test_newlines_inside_parentheses_and_brackets():
    m = parse(
        "graph f(\n    x: f32[\n        B,\n        N\n    ],\n    w: f32[N],\n) {\n"
        "    y = leaky_relu(\n        x * w,\n        alpha=0.1\n    )\n"
        "    return (y\n        + 1)\n}\n"
    )
    g = m.graphs[0]
    assert [(p.name, p.shape) for p in g.params] == [("x", ("B", "N")), ("w", ("N",))]
    assert show(g.body[0].value) == "leaky_relu(mul(x, w), alpha=0.1)"
    assert show(g.body[1].values[0]) == "add(y, 1)"


def test_crlf_is_the_same_as_lf():
    text = "graph f(x: f32[N]) {\n    y = relu(x)\n    return y, x\n}\n"
    lf, crlf = parse(text), parse(text.replace("\n", "\r\n"))
    assert show(lf.graphs[0].body[0].value) == show(crlf.graphs[0].body[0].value)
    assert crlf.graphs[0].body[0].pos == lf.graphs[0].body[0].pos == Pos(2, 5)


def test_several_graphs_and_several_returns():
    m = parse(
        "graph a(x: f32) { return x }\n"
        "graph b(x: f32[N], s: f32[]) {\n    return x * s, x, s\n}\n"
        "graph c() { return 1 }"
    )
    assert [g.name for g in m.graphs] == ["a", "b", "c"]
    assert [show(v) for v in m.graphs[1].body[0].values] == ["mul(x, s)", "x", "s"]
    assert m.graphs[1].params[1].shape == () and m.graphs[0].params[0].shape == ()
    assert m.graphs[2].params == []


def test_param_types():
    m = parse(
        "graph f(a: f16[2, N], b: f32, c: f64[], d: i32[1], e: i64[B, 3, C], g: bool[N]) { return a }"
    )
    assert [(p.dtype, p.shape) for p in m.graphs[0].params] == [
        ("f16", (2, "N")),
        ("f32", ()),
        ("f64", ()),
        ("i32", (1,)),
        ("i64", ("B", 3, "C")),
        ("bool", ("N",)),
    ]


def test_positions():
    m = parse("graph f(x: f32[N]) {\n\ty = exp(x)\n    return y\n}\n")
    g = m.graphs[0]
    assert g.pos == Pos(1, 7) and g.params[0].pos == Pos(1, 9)
    assert g.body[0].pos == Pos(2, 2)  # a tab is one column
    assert g.body[0].value.pos == Pos(2, 6)
    assert g.end == Pos(4, 1)


# -- lowered graphs -----------------------------------------------------------------------


def test_lowered_ops_and_types():
    (g,) = lower_module(
        parse(
            "graph f(x: f16[B, N], m: bool[N], k: i32[N]) {\n"
            "    y = where(m, -x ** 2, cast(k, dtype=f16))\n"
            '    return y > 0, gelu(y, approximate="tanh")\n}\n'
        )
    )
    g = infer(g)
    ops = [g.nodes[n]["op"] for n in sorted(g.nodes) if g.nodes[n]["op"] not in ("param", "const")]
    assert ops == ["pow", "neg", "cast", "where", "gt", "gelu"]
    outs = [g.nodes[o] for o in g.graph["outputs"]]
    assert [(o["dtype"], o["shape"]) for o in outs] == [("bool", ("B", "N")), ("f16", ("B", "N"))]
    assert dict(outs[1]["attrs"]) == {"approximate": "tanh"}


@pytest.mark.parametrize(
    "src",
    ["x < y < z", "x +", "f(a=1, x)", "x y", "(x", "x)", "return", "f32", "x = 1", "x +* y"],
)
def test_syntax_errors_are_compile_errors(src):
    with pytest.raises(CompileError) as info:
        lower_module(expr_module(src))
    (diag,) = info.value.diagnostics
    assert diag.pos is not None and diag.pos.line >= 2
