"""Syntax errors in the IR's own words: what lark reports, as a Diagnostic.

LALR lookahead sets name tokens of other contexts and do not say which
bracket is still open, so the messages here are worked out from the text:
an expression's possible starts become "an expression", an unclosed bracket
is named with its position, and common slips (a chained comparison, an
unknown dtype, a keyword as a name) get their own words.
"""

from __future__ import annotations

import re

from ..diagnostics import Diagnostic, Pos
from ..ir.keywords import KEYWORDS

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

_EXPR_START = frozenset({"NAME", "LPAR", "MINUS", "INT", "FLOAT", "INF", "NAN", "TRUE", "FALSE"})
_OPERATORS = frozenset({"PLUS", "MINUS", "MUL_OP", "POW_OP", "COMP_OP"})
_KEYWORD_TOKENS = frozenset({"GRAPH", "RETURN", "DTYPE", "TRUE", "FALSE", "INF", "NAN"})
_DTYPE_NAMES = ("f16", "f32", "f64", "i32", "i64", "bool")
_DTYPE_ALIASES = {
    "float": "f32",
    "float32": "f32",
    "half": "f16",
    "float16": "f16",
    "fp16": "f16",
    "fp32": "f32",
    "float64": "f64",
    "double": "f64",
    "fp64": "f64",
    "int": "i32",
    "int32": "i32",
    "int64": "i64",
    "long": "i64",
    "boolean": "bool",
}
_CHARACTER_HINTS = {
    "&": "; for a logical and, write logical_and(a, b)",
    "|": "; for a logical or, write logical_or(a, b)",
    "!": "; for a logical not, write logical_not(x)",
    "~": "; for a logical not, write logical_not(x)",
    "@": "; for a matrix product, write matmul(a, b)",
}

# Python's words where the IR has ops: `a and b`, `x if c else y`
_WORD_HINTS = {
    "and": "; for a logical and, write logical_and(a, b)",
    "or": "; for a logical or, write logical_or(a, b)",
    "if": "; for a choice, write where(cond, a, b)",
}


def _end_pos(text: str) -> Pos:
    lines = text.splitlines() or [""]
    return Pos(len(lines), len(lines[-1]) + 1)


def offset_pos(text: str, offset: int) -> Pos:
    line = text.count("\n", 0, offset) + 1
    return Pos(line, offset - (text.rfind("\n", 0, offset) + 1) + 1)


def character_diagnostic(e, text: str) -> Diagnostic:
    char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
    pos = Pos(e.line, e.column)
    if char in "\"'":
        return Diagnostic(f"unterminated string: a string ends with {char} on the same line", pos)
    shown = f"'{char}'" if char.isprintable() else f"U+{ord(char):04X}"
    return Diagnostic(f"unexpected character {shown}" + _CHARACTER_HINTS.get(char, ""), pos)


def _unmatched_brackets(text: str) -> tuple[set[int], set[int]]:
    """Offsets of the opening brackets that nothing closes, and of the closing
    brackets that close nothing (comments and strings skipped). A closer that
    skips over openers of other kinds leaves those unclosed.

    Linear in the text: a count of each kind of opener on the stack answers
    "does anything close here" at once, and each opener leaves the stack once
    (20,000 stray closers took 18 s when each one searched the stack)."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[int] = []
    open_count = {"(": 0, "[": 0, "{": 0}
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
            open_count[c] += 1
        elif c in pairs:
            if open_count[pairs[c]]:
                while True:
                    o = stack.pop()
                    open_count[text[o]] -= 1
                    if text[o] == pairs[c]:
                        break
                    unclosed.append(o)
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


def token_diagnostic(e, text: str) -> Diagnostic:
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
    if (
        not at_end
        and tok.type in _KEYWORD_TOKENS
        and re.compile(r"\s*=(?!=)").match(text, tok.end_pos)
    ):
        return Diagnostic(f"'{tok}' is a keyword and cannot name a value", pos)
    if not at_end and tok.type == "EQUAL":
        start = _word_before(text, offset, line_start)
        if start is not None and text[start:offset].rstrip() in KEYWORDS:
            word = text[start:offset].rstrip()
            return Diagnostic(
                f"'{word}' is a keyword and cannot name a value", offset_pos(text, start)
            )

    unclosed, stray = _unmatched_brackets(text)
    if not at_end and offset in stray:
        return Diagnostic(f"unmatched '{tok}': it closes nothing", pos)

    # an operand after an attribute: `f(x, alpha=1, y)`
    if not at_end and tok.type in ("RPAR", "COMMA") and expected <= {"EQUAL", "_NL"}:
        start = _word_before(text, offset)
        where = offset_pos(text, start) if start is not None else pos
        return Diagnostic("operands come before attributes: write f(x, y, name=value)", where)

    # a bracket left open: say which, since the error surfaces lines later
    open_before = [o for o in unclosed if o < offset]
    if open_before:
        opener = max(open_before)
        o_pos = offset_pos(text, opener)
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
            f'a name cannot be an attribute\'s value; write a string in quotes ("{word}"),'
            " a number, true, false or a dtype",
            pos,
        )

    if not at_end and tok.type == "COMP_OP" and not {"NAME", "LPAR"} <= expected:
        return Diagnostic(
            "comparisons do not chain: write logical_and(a < b, b < c) for a < b < c", pos
        )

    if not at_end and tok.type == "NAME" and str(tok) in _WORD_HINTS:
        return Diagnostic(f"unexpected {shown}{_WORD_HINTS[str(tok)]}", pos)

    return Diagnostic(
        f"unexpected {shown}" + _expected(expected, _inside_brackets(text, offset)), pos
    )


def _word_before(text: str, offset: int, limit: int = 0) -> int | None:
    """Where the word before `offset` (white space between allowed) starts, not
    before `limit`; None if there is none. A backward scan, linear in what it
    passes: a regex `(\\w+)\\s*$` over the text is quadratic on one long word."""
    end = offset
    while end > limit and text[end - 1].isspace():
        end -= 1
    start = end
    while start > limit and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    return start if start < end else None


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
    return "; expected " + (
        names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    )
