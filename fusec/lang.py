"""IR text -> AST: the lark grammar, the post-lexer, and a Transformer to dataclasses.

Positions travel with every node; syntax errors become CompileError with the
position lark reports and a message in the IR's own words.
"""

from __future__ import annotations

import functools
import re
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

_READABLE = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "_NL": "the end of the line",
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
    "INF": "'inf'",
    "NAN": "'nan'",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "_END_OF_STATEMENT": "the end of the statement",
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

    @v_args(meta=True, inline=True)
    def graph(self, meta, name, *items):
        params = [i for i in items if isinstance(i, Param)]
        body = [i for i in items if isinstance(i, Assign | Return)]
        end = Pos(meta.end_line, meta.end_column - 1)  # lark's end is one past the '}'
        return GraphDef(str(name), params, body, _pos(name), end)

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


def read_ir(path) -> str:
    """The text of an IR file (UTF-8, a byte-order mark allowed), or a CompileError
    naming the file and what is wrong with it."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        why = {
            FileNotFoundError: "no such file",
            IsADirectoryError: "is a directory, not an IR file",
            PermissionError: "permission denied",
        }.get(type(e), (e.strerror or str(e)).lower())
        raise CompileError(Diagnostic(why), name, "") from None
    if b"\0" in data:
        # the source line of a binary file would only garble the terminal
        before = data[: data.index(b"\0")].decode("utf-8", "replace")
        where = _offset_pos(before, len(before))
        raise CompileError(Diagnostic("a binary file, not IR text", Pos(where.line, 1)), name, "")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8", "replace")
        where = _offset_pos(before, len(before))
        raise CompileError(
            Diagnostic(f"not UTF-8 text (byte 0x{data[e.start]:02x}); IR files are UTF-8", where),
            name,
            "",
        ) from None


def parse(text: str) -> Module:
    """Parse IR text into a Module, raising CompileError on a syntax error."""
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedCharacters as e:
        raise CompileError(_character_diagnostic(e, text)) from None
    except (lark.exceptions.UnexpectedToken, lark.exceptions.UnexpectedEOF) as e:
        raise CompileError(_token_diagnostic(e, text)) from None
    return _ToAST().transform(tree)


# -- syntax error messages ---------------------------------------------------

_EXPR_START = frozenset({"NAME", "LPAR", "MINUS", "INT", "FLOAT", "INF", "NAN", "TRUE", "FALSE"})
_OPERATORS = frozenset({"PLUS", "MINUS", "MUL_OP", "POW_OP", "COMP_OP"})
_KEYWORD_TOKENS = frozenset({"GRAPH", "RETURN", "DTYPE", "TRUE", "FALSE", "INF", "NAN"})
_DTYPE_NAMES = ("f16", "f32", "f64", "i32", "i64", "bool")
_DTYPE_ALIASES = {
    "float": "f32", "float32": "f32", "half": "f16", "float16": "f16", "fp16": "f16",
    "fp32": "f32", "float64": "f64", "double": "f64", "fp64": "f64", "int": "i32",
    "int32": "i32", "int64": "i64", "long": "i64", "boolean": "bool",
}
_CHARACTER_HINTS = {
    "&": "; for a logical and, write logical_and(a, b)",
    "|": "; for a logical or, write logical_or(a, b)",
    "!": "; for a logical not, write logical_not(x)",
    "~": "; for a logical not, write logical_not(x)",
    "@": "; for a matrix product, write matmul(a, b)",
}


def _end_pos(text: str) -> Pos:
    lines = text.splitlines() or [""]
    return Pos(len(lines), len(lines[-1]) + 1)


def _offset_pos(text: str, offset: int) -> Pos:
    line = text.count("\n", 0, offset) + 1
    return Pos(line, offset - (text.rfind("\n", 0, offset) + 1) + 1)


def _character_diagnostic(e, text: str) -> Diagnostic:
    char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
    pos = Pos(e.line, e.column)
    if char in "\"'":
        return Diagnostic(f"unterminated string: a string ends with {char} on the same line", pos)
    shown = f"'{char}'" if char.isprintable() else f"U+{ord(char):04X}"
    return Diagnostic(f"unexpected character {shown}" + _CHARACTER_HINTS.get(char, ""), pos)


def _unmatched_brackets(text: str) -> tuple[set[int], set[int]]:
    """Offsets of the opening brackets that nothing closes, and of the closing
    brackets that close nothing (comments and strings skipped). A closer that
    skips over openers of other kinds leaves those unclosed."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[int] = []
    unclosed: list[int] = []
    stray: set[int] = set()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "#":
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        if c in "\"'":
            end = min(j for j in (text.find(c, i + 1), text.find("\n", i + 1), len(text)) if j >= 0)
            i = end + 1
            continue
        if c in "([{":
            stack.append(i)
        elif c in pairs:
            for k in range(len(stack) - 1, -1, -1):
                if text[stack[k]] == pairs[c]:
                    unclosed += stack[k + 1 :]
                    del stack[k:]
                    break
            else:
                stray.add(i)
        i += 1
    return set(unclosed + stack), stray


def _describe(tok) -> str:
    if tok is None or tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line"
    if tok.type == "STRING":
        return f"string {tok}"
    if tok.type in _KEYWORD_TOKENS:
        return f"keyword '{tok}'"
    return f"'{tok}'"


def _token_diagnostic(e, text: str) -> Diagnostic:
    tok = getattr(e, "token", None)
    at_end = tok is None or tok.type == "$END" or tok.line is None
    offset = len(text) if at_end else tok.start_pos
    pos = _end_pos(text) if at_end else Pos(tok.line, tok.column)
    expected = set(e.expected or ())
    shown = _describe(None if at_end else tok)
    line_start = text.rfind("\n", 0, offset) + 1

    if at_end and "GRAPH" in expected and not re.search(r"\bgraph\b", text):
        return Diagnostic("no graph in this file; expected graph NAME(PARAMS) { ... }", pos)

    # a keyword on the left of `=`: `graph = x`, `return = x`
    if not at_end and tok.type in _KEYWORD_TOKENS and re.match(r"\s*=(?!=)", text[tok.end_pos :]):
        return Diagnostic(f"'{tok}' is a keyword and cannot name a value", pos)
    if not at_end and tok.type == "EQUAL":
        before = re.search(r"(\w+)\s*$", text[line_start:offset])
        if before and before.group(1) in KEYWORDS:
            word = before.group(1)
            return Diagnostic(
                f"'{word}' is a keyword and cannot name a value",
                _offset_pos(text, line_start + before.start(1)),
            )

    unclosed, stray = _unmatched_brackets(text)
    if not at_end and offset in stray:
        return Diagnostic(f"unmatched '{tok}': it closes nothing", pos)

    # an operand after an attribute: `f(x, alpha=1, y)`
    if not at_end and tok.type in ("RPAR", "COMMA") and expected <= {"EQUAL", "_NL"}:
        operand = re.search(r"(\w+)\s*$", text[:offset])
        where = _offset_pos(text, operand.start(1)) if operand else pos
        return Diagnostic("operands come before attributes: write f(x, y, name=value)", where)

    # a bracket left open: say which, since the error surfaces lines later
    open_before = [o for o in unclosed if o < offset]
    if open_before:
        opener = max(open_before)
        o_pos = _offset_pos(text, opener)
        kind = text[opener]
        later_line = at_end or tok.line > o_pos.line
        if (kind in "([" and later_line) or (
            kind == "{" and (at_end and "RBRACE" in expected or not at_end and tok.type == "GRAPH")
        ):
            return Diagnostic(
                f"unexpected {shown}; the '{kind}' at line {o_pos.line}, column {o_pos.column}"
                " is never closed",
                pos,
            )

    if not at_end and tok.type == "NAME" and "DTYPE" in expected and "NAME" not in expected:
        word = str(tok)
        dtype_like = word in _DTYPE_ALIASES or re.fullmatch(r"[a-z]{1,6}\d+", word)
        if "STRING" not in expected or dtype_like:
            hint = _DTYPE_ALIASES.get(word)
            hint = f"; did you mean {hint}?" if hint else ""
            return Diagnostic(
                f"unknown dtype '{word}'{hint} (the dtypes are {', '.join(_DTYPE_NAMES)})", pos
            )
        return Diagnostic(
            f"a name cannot be an attribute's value; write a string in quotes (\"{word}\"),"
            " a number, true, false or a dtype",
            pos,
        )

    if not at_end and tok.type == "COMP_OP" and not {"NAME", "LPAR"} <= expected:
        return Diagnostic(
            "comparisons do not chain: write logical_and(a < b, b < c) for a < b < c", pos
        )

    return Diagnostic(f"unexpected {shown}" + _expected(expected, _inside_brackets(text, offset)), pos)


def _inside_brackets(text: str, offset: int) -> bool:
    depth = 0
    for c in text[:offset]:
        if c in "([":
            depth += 1
        elif c in ")]":
            depth = max(0, depth - 1)
        elif c in "{}":
            depth = 0
    return depth > 0


def _expected(expected, inside_brackets: bool = False) -> str:
    exp = set(expected)
    parts = []
    if {"NAME", "LPAR"} <= exp and exp & {"INT", "FLOAT"}:
        parts.append("an expression")
        exp -= _EXPR_START
    if len(exp & _OPERATORS) >= 2:
        # after a complete operand: LALR lookahead also lists tokens of other
        # contexts, so name what can follow here and nothing else
        parts.append("an operator")
        exp = {"COMMA", "RPAR"} if inside_brackets else {"_END_OF_STATEMENT"}
    if exp & {"_NL", "SEMICOLON"} and (parts or exp - {"_NL", "SEMICOLON"}):
        exp -= {"_NL", "SEMICOLON"}  # a newline is rarely what was missing
    names = parts + sorted({_READABLE.get(t, repr(t.lower()) if t.isupper() else t) for t in exp})
    if not names or len(names) > 6:
        return ""
    return "; expected " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1])
