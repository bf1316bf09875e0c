"""IR text -> AST: the lark grammar, the post-lexer, and a Transformer to dataclasses.

Positions travel with every node; syntax errors become CompileError with the
position lark reports and a message in the IR's own words.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, v_args

from .diagnostics import CompileError, Diagnostic, Pos

KEYWORDS = frozenset(
    {"graph", "return", "inf", "nan", "true", "false", "f16", "f32", "f64", "i32", "i64", "bool"}
)


# -- AST ---------------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    id: str
    pos: Pos


@dataclass(frozen=True)
class Literal:
    value: object  # bool, int or float
    pos: Pos


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple
    attrs: tuple  # ((name, value, pos), ...)
    pos: Pos
    infix: str | None = None  # the operator the user wrote, if sugar


@dataclass(frozen=True)
class Param:
    name: str
    dtype: str
    shape: tuple  # ints and symbol names
    pos: Pos


@dataclass(frozen=True)
class Assign:
    target: str
    value: object
    pos: Pos


@dataclass(frozen=True)
class Return:
    values: tuple
    pos: Pos


@dataclass
class GraphDef:
    name: str
    params: list[Param]
    body: list  # Assign and Return statements in order
    pos: Pos


@dataclass
class Module:
    graphs: list[GraphDef] = field(default_factory=list)


# -- parsing -----------------------------------------------------------------

_INFIX = {
    "+": "add",
    "-": "sub",
    "*": "mul",
    "/": "div",
    "**": "pow",
    "<": "lt",
    "<=": "le",
    ">": "gt",
    ">=": "ge",
    "==": "eq",
    "!=": "ne",
}

_READABLE = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "_NL": "a newline",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "SEMICOLON": "';'",
    "DTYPE": "a dtype",
    "RETURN": "'return'",
    "GRAPH": "'graph'",
    "$END": "the end of the file",
    "MINUS": "'-'",
    "PLUS": "'+'",
    "MUL_OP": "'*' or '/'",
    "POW_OP": "'**'",
    "COMP_OP": "a comparison",
    "STRING": "a string",
}


class _BracketNewlines:
    """Post-lexer: inside ( ) and [ ] a newline is only white space, as in Python."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth:
                continue
            yield tok


def _grammar_path() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "grammar" / "fusec.lark", here.parent / "grammar" / "fusec.lark"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("fusec.lark not found next to the fusec package")


@functools.cache
def _parser() -> Lark:
    return Lark(
        _grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        postlex=_BracketNewlines(),
        propagate_positions=True,
        maybe_placeholders=False,
    )


def _pos(tok) -> Pos:
    return Pos(tok.line, tok.column)


def _literal_value(tok: Token):
    if tok.type == "INT":
        return int(tok)
    if tok.type == "FLOAT":
        return float(tok)
    return {"inf": float("inf"), "nan": float("nan"), "true": True, "false": False}[str(tok)]


@v_args(inline=True)
class _ToAST(Transformer):
    def start(self, *graphs):
        return Module(list(graphs))

    def graph(self, name, *items):
        params = [i for i in items if isinstance(i, Param)]
        body = [i for i in items if isinstance(i, Assign | Return)]
        return GraphDef(str(name), params, body, _pos(name))

    def param(self, name, typ):
        dtype, shape = typ
        return Param(str(name), dtype, shape, _pos(name))

    def type(self, dtype, shape=()):
        return (str(dtype), shape)

    def shape(self, *dims):
        return tuple(int(d) if d.type == "INT" else str(d) for d in dims)

    def assign(self, name, value):
        return Assign(str(name), value, _pos(name))

    def ret(self, kw, *values):
        return Return(tuple(values), _pos(kw))

    def compare(self, a, op, b):
        return Call(_INFIX[str(op)], (a, b), (), _pos(op), infix=str(op))

    def binary(self, a, op, b):
        return Call(_INFIX[str(op)], (a, b), (), _pos(op), infix=str(op))

    def unary(self, op, x):
        if isinstance(x, Literal) and isinstance(x.value, int | float) and not isinstance(
            x.value, bool
        ):
            return Literal(-x.value, _pos(op))  # `-1` is a literal, not neg(1)
        return Call("neg", (x,), (), _pos(op), infix="-")

    def name(self, tok):
        return Name(str(tok), _pos(tok))

    def call(self, name, *items):
        args = tuple(i for i in items if not isinstance(i, tuple))
        attrs = tuple(i for i in items if isinstance(i, tuple))
        return Call(str(name), args, attrs, _pos(name))

    def attr(self, name, value):
        if isinstance(value, Token):
            if value.type == "STRING":
                value = str(value)[1:-1]
            elif value.type == "DTYPE":
                value = ("dtype", str(value))
            else:
                value = _literal_value(value)
        return (str(name), value, _pos(name))

    def signed(self, minus, tok):
        return -_literal_value(tok)

    def literal(self, tok):
        return Literal(_literal_value(tok), _pos(tok))


def parse(text: str) -> Module:
    """Parse IR text into a Module, raising CompileError on a syntax error."""
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedCharacters as e:
        char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        raise CompileError(Diagnostic(f"unexpected character {char!r}", Pos(e.line, e.column)))
    except lark.exceptions.UnexpectedToken as e:
        raise CompileError(Diagnostic(_token_message(e), _token_pos(e, text)))
    except lark.exceptions.UnexpectedEOF as e:
        lines = text.splitlines() or [""]
        raise CompileError(
            Diagnostic(
                "unexpected end of file" + _expected(e.expected),
                Pos(len(lines), len(lines[-1]) + 1),
            )
        )
    return _ToAST().transform(tree)


def _token_pos(e, text: str) -> Pos:
    tok = e.token
    if tok.type == "$END" or tok.line is None:
        lines = text.splitlines() or [""]
        return Pos(len(lines), len(lines[-1]) + 1)
    return Pos(tok.line, tok.column)


def _expected(expected) -> str:
    names = sorted({_READABLE.get(t, repr(t.lower()) if t.isupper() else t) for t in expected})
    if not names or len(names) > 6:
        return ""
    return "; expected " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1])


def _token_message(e) -> str:
    tok = e.token
    if tok.type == "$END":
        return "unexpected end of file" + _expected(e.expected)
    if tok.type == "_NL":
        if "RPAR" in e.expected or "RSQB" in e.expected:
            return "unexpected end of line" + _expected(e.expected)
        return "unexpected end of statement" + _expected(e.expected)
    shown = str(tok)
    if tok.type in ("NAME",) and shown in KEYWORDS:
        return f"unexpected keyword {shown!r}" + _expected(e.expected)
    return f"unexpected {shown!r}" + _expected(e.expected)
