"""fusec: a JIT fusion compiler from a small tensor IR to fused OpenCL kernels."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fusec")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"

from .api import CompiledGraph, Program, compile, compile_graphs  # noqa: E402
from .diagnostics import CallError, CompileError, FusecError  # noqa: E402
from .registry import register_primitive  # noqa: E402

__all__ = [
    "CallError",
    "CompileError",
    "CompiledGraph",
    "FusecError",
    "Program",
    "__version__",
    "compile",
    "compile_graphs",
    "register_primitive",
]
