"""The fast lexer and parser state (fusec/frontend/lalr.py) against lark's own:
the same AST, or the same error at the same place, on every input."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fusec.diagnostics import CompileError
from fusec.frontend.parser import parse

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((ROOT / "tests" / "bad").glob("*.ir")) + sorted((ROOT / "examples").glob("*.ir"))

TRICKY = [
    "graph g(x: f32x[4]) { return x }",  # a dtype prefix where only a dtype fits
    "graph g(x: f32[4]) { return cast(x, dtype=f16) }",
    "graph g(x: f32[4]) { return clamp(x, min=infx) }",
    "graph g(x: f32[4]) { true = x\n return true }",  # a keyword where a name fits
    "graph g(x: f32[4]) { return x * inf + nan - true }",
    "graph g(f32: f32[4]) { return f32 }",
    "graph g(x: f32[4.5]) { return x }",  # a float where a size fits
    "graph g(x: f32[N]) { return x ** -2 ** 3 <= 1.5e3 }",
    "graph g(x: f32[N]) { return sum(x, axis=0, keepdim=true) == x }",
    "graph g(x: f32[N]) { return x @ x }",
    "graph g(x: f32[N]) {\r\n  y = (x +\n 1)\n  return y # done\n}\n",
    "graph g(x: f32[N]) { return 'a' }",
    'graph g(x: f32[N]) { return f(x, s="q") }',
    "graph g(x: f32[N]) { return x }\ngraph",
    "graphx g(x: f32[N]) { return x }",
    "graph g(x: f32[N]) { return 1. + .5 + 1e5 + 12 }",
    "",
    "   \n# only a comment\n",
    "graph g(x: bool[N]) { return x == false }",
    "graph g(x: f32[N]) { returnx x }",
]

ALPHABET = list("()[]{},:;=+-*/<>!.#'\"\n\t ") + ["f32", "true", "inf", "1", "2.5", "x", "graph"]


def _outcome(text: str, fast: bool):
    try:
        return ("ok", repr(parse(text, fast=fast)))
    except CompileError as e:
        return ("error", [(d.message, d.pos) for d in e.diagnostics])


def _mutants(seed: int, count: int):
    rng = random.Random(seed)
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in CORPUS] + TRICKY
    for _ in range(count):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(text) + 1)
            j = min(len(text), i + rng.randint(0, 4))
            text = text[:i] + (rng.choice(ALPHABET) if rng.random() < 0.8 else "") + text[j:]
        yield text


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_files_lex_as_lark_lexes_them(path):
    text = path.read_text(encoding="utf-8", errors="replace")
    assert _outcome(text, True) == _outcome(text, False)


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_inputs_lex_as_lark_lexes_them(text):
    assert _outcome(text, True) == _outcome(text, False)


def test_mutated_inputs_lex_as_lark_lexes_them():
    differ = [t for t in _mutants(seed=18, count=2000) if _outcome(t, True) != _outcome(t, False)]
    assert differ == [], differ[:3]
