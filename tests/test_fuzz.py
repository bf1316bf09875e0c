"""No input gives a traceback or a hang: every text either compiles (the
front end, as `fusec check` runs it, plus the backward graphs) or raises a
CompileError with diagnostics that render.

Hypothesis draws sentences of grammar/fusec.lark (`from_lark`) and mutations
of a corpus: the bad files, the golden sources and the examples. A bounded,
derandomized run here; `bench/fuzz.py` runs the long campaigns, and each
failure either found becomes a file in tests/bad/ or a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.lark import from_lark  # noqa: E402

from fusec.api import compile_graphs  # noqa: E402
from fusec.diagnostics import CompileError  # noqa: E402
from fusec.frontend.parser import _parser  # noqa: E402
from fusec.ir.registry import REQUIRED, Required, all_primitives  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted(
    p.read_text(encoding="utf-8", errors="replace")
    for pattern in ("tests/bad/*.ir", "tests/golden/*.ir", "examples/*.ir")
    for p in ROOT.glob(pattern)
)
SNIPPETS = [
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "\n",
    ";",
    "**",
    "-",
    "graph",
    "return",
    "x",
    "1e999",
    "99999999999999999999",
    "9" * 4400,
    "nan",
    "inf",
    "sum(",
    "tanh(",
    "\0",
    "\t",
    "#",
    "'",
    '"',
    "\r\n",
    "\u00e9",
    "\ufeff",
    "keepdim=",
    "axis=",
    "min=",
    "true",
    "f16",
    "@",
    "2 ** 70",
    "-true",
]
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a CI failure is reproducible
    suppress_health_check=list(HealthCheck),
    database=None,
)


def compiles_or_diagnoses(text: str) -> None:
    try:
        compile_graphs(text, grad=True)
    except CompileError as e:
        assert e.diagnostics
        assert all(d.message for d in e.diagnostics)
        assert str(e)


def _grammar_strategy():
    # the parser's own grammar; names drawn from a pool, so that some
    # sentences name parameters, ops and keywords
    # sentences name parameters, ops and keywords; words carry spaces so that
    # `graph` and `x` do not run together into the name `graphx`
    def words(*choices):
        return st.sampled_from(choices).map(lambda w: f" {w} ")

    explicit = {
        "NAME": words(
            "x",
            "y",
            "N",
            "B",
            "g",
            "sum",
            "relu",
            "clamp",
            "cast",
            "tanh",
            "alpha",
            "axis",
            "keepdim",
        ),
        "INT": words(
            "0", "1", "2", "4", "2147483648", "9223372036854775808", "99999999999999999999"
        ),
        "FLOAT": words("0.5", ".5", "1e-3", "1e999", "2.5E+4"),
        "COMMENT": st.just("# c\n"),
    }
    for name in ("GRAPH", "RETURN", "TRUE", "FALSE", "INF", "NAN"):
        explicit[name] = words(name.lower())
    explicit["DTYPE"] = words("f16", "f32", "f64", "i32", "i64", "bool")
    return from_lark(_parser(), explicit=explicit)


@FUZZ
@given(_grammar_strategy())
def test_grammar_sentences(text):
    compiles_or_diagnoses(text)


MUTATION = st.tuples(
    st.sampled_from(["delete", "insert", "repeat", "move", "splice", "deepen"]),
    st.floats(0, 1),
    st.integers(1, 200),
    st.sampled_from(SNIPPETS) | st.text(max_size=3),
    st.sampled_from([2, 10, 300, 2000]),
)


def mutate(text: str, steps) -> str:
    for op, where, length, snippet, times in steps:
        i = int(where * len(text))
        j = min(len(text), i + length)
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + snippet + text[i:]
        elif op == "repeat":  # long chains and deep nesting
            text = text[:i] + text[i:j] * times + text[j:]
        elif op == "deepen":  # a balanced chain or nesting around a returned value
            r = text.find("return ", i)
            if r >= 0:
                r += len("return ")
                e = text.find("\n", r) % (len(text) + 1)
                left, right = [("tanh(", ")"), ("(", ")"), ("-", ""), ("x + ", ""), ("1 * ", "")][
                    length % 5
                ]
                text = text[:r] + left * times + text[r:e] + right * times + text[e:]
        elif op == "move":
            rest = text[:i] + text[j:]
            k = int(where * where * len(rest))
            text = rest[:k] + text[i:j] + rest[k:]
        else:
            other = CORPUS[length % len(CORPUS)]
            text = text[:i] + other[int(where * len(other)) :]
    return text


@FUZZ
@given(st.sampled_from(CORPUS), st.lists(MUTATION, min_size=1, max_size=4))
def test_corpus_mutations(text, steps):
    compiles_or_diagnoses(mutate(text, steps))


# -- random programs over the registry ------------------------------------------

OPS = sorted(name for name, p in all_primitives().items() if not p.internal)
LITERALS = [
    "0",
    "1",
    "-1",
    "2",
    "0.5",
    "-0.0",
    "inf",
    "nan",
    "true",
    "false",
    "2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "1e308",
    "1e-320",
    "2 ** -1",
    "2 ** 70",
]
ATTR_VALUES = [
    "true",
    "false",
    '"false"',
    "nan",
    "inf",
    "-inf",
    "0",
    "-1",
    "1",
    "1.5",
    "2147483648",
    "9223372036854775808",
    '"tanh"',
    '"none"',
    "f16",
    "i32",
    "bool",
]


@st.composite
def programs(draw):
    params = [f"p{i}" for i in range(draw(st.integers(1, 3)))]
    dtypes = st.sampled_from(["f32", "f16", "f64", "i32", "i64", "bool"])
    shapes = st.sampled_from(["", "[N]", "[4]", "[B, N]", "[1, N]", "[0]", "[2, 3, 4]"])
    sig = ", ".join(f"{p}: {draw(dtypes)}{draw(shapes)}" for p in params)

    def call(args_and_op):
        op, args, attrs = args_and_op
        prim = all_primitives()[op]
        given = [f"{k}={v}" for k, v in attrs if k in prim.attrs]
        given += [
            f"{k}={'f32' if d is REQUIRED else 0}"
            for k, d in prim.attrs.items()
            if isinstance(d, Required) and k not in dict(attrs)
        ]
        return f"{op}({', '.join(args[: len(prim.inputs)] + given)})"

    leaves = st.sampled_from(params) | st.sampled_from(LITERALS)
    exprs = st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", "<", "=="]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            inner.map(lambda e: f"-{e}"),
            st.tuples(
                st.sampled_from(OPS),
                st.lists(inner, min_size=1, max_size=3),
                st.lists(
                    st.tuples(
                        st.sampled_from(
                            [
                                "alpha",
                                "axis",
                                "keepdim",
                                "min",
                                "max",
                                "min_val",
                                "beta",
                                "threshold",
                                "approximate",
                                "dtype",
                            ]
                        ),
                        st.sampled_from(ATTR_VALUES),
                    ),
                    max_size=2,
                    unique_by=lambda a: a[0],
                ),
            ).map(call),
        ),
        max_leaves=12,
    )
    body = [f"    v{i} = {draw(exprs)}" for i in range(draw(st.integers(1, 3)))]
    names = params + [f"v{i}" for i in range(len(body))]
    return (
        f"graph g({sig}) {{\n"
        + "\n".join(body)
        + f"\n    return {draw(st.sampled_from(names))}\n}}\n"
    )


@FUZZ
@given(programs())
def test_random_programs(text):
    compiles_or_diagnoses(text)
