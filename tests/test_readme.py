"""The README's Python examples print what the README says they print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
# a python block, then "prints" and either a fenced block or an inline `...`
EXAMPLE = re.compile(r"```python\n(.*?)```\s*\nprints\s*(?:```\n(.*?)```|`(.*?)`)", re.S)


def test_readme_examples_print_what_they_say():
    examples = EXAMPLE.findall(README)
    assert len(examples) >= 2
    namespace: dict = {}
    for code, block, inline in examples:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
        want = block if block else inline
        assert " ".join(out.getvalue().split()) == " ".join(want.split()), code
