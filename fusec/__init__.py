"""fusec: a JIT fusion compiler from a small tensor IR to fused OpenCL kernels."""

from .api import CompiledGraph, Program, compile, compile_graphs, register_primitive
from .diagnostics import CallError, CompileError, FusecError
from .version import __version__

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


def __getattr__(name: str):
    # Front ends load on first use, so `import fusec` never imports onnx.
    if name == "from_onnx":
        from .onnx import from_onnx

        return from_onnx
    raise AttributeError(f"module 'fusec' has no attribute {name!r}")
