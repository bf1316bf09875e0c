"""Positions and diagnostics. Passes raise CompileError; only the API and CLI render text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pos:
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    message: str
    pos: Pos | None = None
    severity: str = "error"


def render(diag: Diagnostic, filename: str, source: str, lines: list[str] | None = None) -> str:
    """`FILE:LINE:COL: error: MESSAGE`, the source line, and a caret under the column.
    `lines`: the source's lines, when several diagnostics share one source."""
    if diag.pos is None:
        return f"{filename}: {diag.severity}: {diag.message}"
    lines = source.splitlines() if lines is None else lines
    head = f"{filename}:{diag.pos.line}:{diag.pos.column}: {diag.severity}: {diag.message}"
    if not 1 <= diag.pos.line <= len(lines):
        return head
    text, column = _window(lines[diag.pos.line - 1], diag.pos.column)
    # the caret line repeats the line's tabs, so the caret sits under the
    # column whatever width the reader's terminal gives a tab
    lead = "".join(c if c == "\t" else " " for c in text[: column - 1])
    caret = lead.ljust(column - 1) + "^"
    return f"{head}\n{text}\n{caret}"


def _window(text: str, column: int, width: int = 160) -> tuple[str, int]:
    """A long line clipped to `width` characters around the column, `...` marking
    the cuts (generated IR can put megabytes on one line), and the column in it."""
    if len(text) <= width:
        return text, column
    start = max(0, min(column - 1 - width // 2, len(text) - width))
    before = "..." if start else ""
    after = "..." if start + width < len(text) else ""
    return before + text[start : start + width] + after, column - start + len(before)


class FusecError(Exception):
    """Base of the errors fusec raises for a user's mistake."""


class CompileError(FusecError):
    """A problem in the IR text, or a graph fusec cannot build.

    `diagnostics` are data; `text` is set once a filename and source are known.
    """

    def __init__(self, diagnostics, filename: str = "<input>", source: str = ""):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        self.filename = filename
        self.source = source
        super().__init__(self.text)

    @property
    def text(self) -> str:
        # the lines once: 9,000 diagnostics on a 600 kB file each split it (quadratic)
        lines = self.source.splitlines() if any(d.pos for d in self.diagnostics) else []
        return "\n".join(render(d, self.filename, self.source, lines) for d in self.diagnostics)

    def with_source(self, filename: str, source: str) -> CompileError:
        return CompileError(self.diagnostics, filename, source)

    def __str__(self) -> str:
        return self.text


def error(message: str, pos: Pos | None = None) -> CompileError:
    return CompileError(Diagnostic(message, pos))


class CallError(FusecError, TypeError):
    """A compiled graph was called with the wrong arguments."""


class TraceError(FusecError):
    """A Python construct that `fusec.jit` or `fusec.evaluate` cannot trace into IR.

    `filename` and `lineno` name the line of the user's code that did it.
    """

    def __init__(
        self, message: str, filename: str | None = None, lineno: int | None = None, line: str = ""
    ):
        self.message, self.filename, self.lineno, self.line = message, filename, lineno, line
        where = f"{filename}:{lineno}: " if filename else ""
        super().__init__(f"{where}{message}" + (f"\n    {line.strip()}" if line.strip() else ""))
