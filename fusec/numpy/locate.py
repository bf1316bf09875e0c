"""Where in the user's code a traced operation comes from."""

from __future__ import annotations

import ast
import linecache
import os
import sys

import numpy as np

from ..diagnostics import TraceError

_FUSEC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))
# evaluate's interpreter runs in the standard library's ast.NodeVisitor.visit
_AST_FILE = os.path.abspath(ast.__file__)


def user_location() -> tuple[str | None, int | None, str]:
    """(file, line, source line) of the innermost frame outside fusec and NumPy:
    the line of the user's code that the current operation comes from."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(_FUSEC_DIR) or path.startswith(_NUMPY_DIR) or path == _AST_FILE):
            return frame.f_code.co_filename, frame.f_lineno, linecache.getline(path, frame.f_lineno)
        frame = frame.f_back
    return None, None, ""


def trace_error(message: str) -> TraceError:
    return TraceError(message, *user_location())
