"""IR text -> AST: the lark grammar, the post-lexer, and a Transformer to dataclasses.

Positions travel with every node; syntax errors become CompileError with the
position lark reports and a message in the IR's own words (syntax_errors.py).

The Transformer runs inside the LALR parser, at each reduction: no parse tree
is built and nothing recurses, so the depth of an expression (a sum of 10,000
terms, 2,000 nested calls) costs no stack, and a file of 100,000 parameters
parses about twice as fast as it did through a tree. The positions come from
the tokens (a transformer inside the parser gets no `meta`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, v_args

from ..diagnostics import CompileError, Diagnostic, Pos
from .lalr import FastContextualLexer, TableLALRParser
from .source import read_ir  # noqa: F401  (it lived here; callers may import it from here)
from .syntax_errors import character_diagnostic, token_diagnostic

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
    end: Pos | None = None  # the closing brace


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


# Tokens in one text: the AST costs a few hundred bytes a token, so this bounds
# it (to about 1 GB); 100,000 parameters of shape [N, 4] are 900,000 tokens.
MAX_TOKENS = 4_000_000


class _BracketNewlines:
    """Post-lexer: inside ( ) and [ ] a newline is only white space, as in Python;
    and a text has at most MAX_TOKENS tokens."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for count, tok in enumerate(stream):
            if count >= MAX_TOKENS:
                raise CompileError(
                    Diagnostic(
                        f"more than {MAX_TOKENS:,} tokens, the most fusec reads in one text",
                        _pos(tok),
                    )
                )
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth:
                continue
            yield tok


def _grammar_path() -> Path:
    here = Path(__file__).resolve().parent
    # fusec/grammar in a wheel, grammar/ beside the package in a source tree
    for candidate in (
        here.parent / "grammar" / "fusec.lark",
        here.parent.parent / "grammar" / "fusec.lark",
    ):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("fusec.lark not found next to the fusec package")


@functools.cache
def _parser(fast: bool = True) -> Lark:
    """The parser; `fast=False` gives plain lark (its own lexer and parser state),
    which tests/test_lalr.py compares with ours (fusec/frontend/lalr.py)."""
    plugins = (
        {"ContextualLexer": FastContextualLexer, "LALR_Parser": TableLALRParser} if fast else {}
    )
    return Lark(
        _grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        postlex=_BracketNewlines(),
        transformer=_ToAST(),
        maybe_placeholders=False,
        _plugins=plugins,
    )


def _pos(tok) -> Pos:
    return Pos(tok.line, tok.column)


# Integer literals: folded in int64 (docs/ir.md), so a literal is at most
# 2**63 in magnitude (2**63 itself only negated: -9223372036854775808). The
# digit count is checked before int() is asked: Python refuses to convert
# more than 4,300 digits, and a long string of digits is quadratic to convert.
INT_LITERAL_MAX = 2**63


def _literal_value(tok: Token):
    if tok.type == "INT":
        digits = str(tok).lstrip("0") or "0"
        if len(digits) > 19 or int(digits) > INT_LITERAL_MAX:
            shown = digits if len(digits) <= 30 else f"{digits[:12]}...({len(digits)} digits)"
            raise CompileError(
                Diagnostic(
                    f"integer literal {shown} is out of range: integer literals are int64"
                    " (at most 9223372036854775807); for a large float, write it with a"
                    " decimal point or an exponent (1e20)",
                    _pos(tok),
                )
            )
        return int(digits)
    if tok.type == "FLOAT":
        value = float(tok)
        if value == float("inf"):
            raise CompileError(
                Diagnostic(
                    f"float literal {_shorten(str(tok))} is out of range for f64 (at most about"
                    " 1.8e308); write inf for infinity",
                    _pos(tok),
                )
            )
        return value
    return {"inf": float("inf"), "nan": float("nan"), "true": True, "false": False}[str(tok)]


def _size(tok: Token) -> int:
    digits = str(tok).lstrip("0") or "0"
    if len(digits) > 18 or int(digits) >= 2**62:  # a buffer's bytes must fit int64
        raise CompileError(
            Diagnostic(
                f"size {_shorten(str(tok))} is out of range: a size is below 2**62", _pos(tok)
            )
        )
    return int(digits)


def _shorten(text: str) -> str:
    return text if len(text) <= 30 else f"{text[:12]}...({len(text)} characters)"


@v_args(inline=True)
class _ToAST(Transformer):
    def start(self, *graphs):
        return Module(list(graphs))

    def graph(self, name, *items):
        params = [i for i in items if isinstance(i, Param)]
        body = [i for i in items if isinstance(i, Assign | Return)]
        return GraphDef(str(name), params, body, _pos(name), _pos(items[-1]))  # items[-1]: the '}'

    def param(self, name, typ):
        dtype, shape = typ
        return Param(str(name), dtype, shape, _pos(name))

    def type(self, dtype, shape=()):
        return (str(dtype), shape)

    def shape(self, *dims):
        return tuple(_size(d) if d.type == "INT" else str(d) for d in dims)

    def assign(self, name, value):
        return Assign(str(name), value, _pos(name))

    def ret(self, kw, *values):
        return Return(tuple(values), _pos(kw))

    def compare(self, a, op, b):
        return Call(_INFIX[str(op)], (a, b), (), _pos(op), infix=str(op))

    def binary(self, a, op, b):
        return Call(_INFIX[str(op)], (a, b), (), _pos(op), infix=str(op))

    def unary(self, op, x):
        if (
            isinstance(x, Literal)
            and isinstance(x.value, int | float)
            and not isinstance(x.value, bool)
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


def parse(text: str, *, fast: bool = True) -> Module:
    """Parse IR text into a Module, raising CompileError on a syntax error."""
    try:
        return _parser(fast).parse(text)
    except lark.exceptions.UnexpectedCharacters as e:
        raise CompileError(character_diagnostic(e, text)) from None
    except (lark.exceptions.UnexpectedToken, lark.exceptions.UnexpectedEOF) as e:
        raise CompileError(token_diagnostic(e, text)) from None
