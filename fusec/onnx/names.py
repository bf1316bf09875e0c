"""ONNX names (`onnx::Gemm_3`, `input.1`, `relu`) as IR identifiers.

Every IR name a model gets comes from one `Namer`, so a mangled tensor name, a
symbolic size and a temporary can never collide with each other, with an op
name or with a keyword.
"""

from __future__ import annotations

import re

from ..ir.keywords import KEYWORDS
from ..ir.registry import all_primitives

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


class Namer:
    def __init__(self):
        self._given: dict[tuple[str, str], str] = {}
        self._taken: set[str] = set(KEYWORDS) | set(all_primitives())

    def __call__(self, kind: str, onnx_name: str) -> str:
        """The IR name for `onnx_name` of this kind ("value", "size", "graph");
        the same ONNX name of one kind always gets the same IR name."""
        key = (kind, onnx_name)
        if key not in self._given:
            self._given[key] = self.fresh(onnx_name)
        return self._given[key]

    def fresh(self, hint: str) -> str:
        """A new IR name that looks like `hint` (letters, digits and `_` only)."""
        base = _NOT_IDENTIFIER.sub("_", hint) or "v"
        if base[0].isdigit():
            base = "v" + base
        name, n = base, 1
        while name in self._taken:
            n += 1
            name = f"{base}_{n}"
        self._taken.add(name)
        return name
