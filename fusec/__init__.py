"""fusec: a JIT fusion compiler from a small tensor IR to fused OpenCL kernels."""

from .api import CompiledGraph, Program, compile, compile_graphs, register_primitive
from .diagnostics import CallError, CompileError, FusecError
from .version import __version__


def __getattr__(name):
    # `fusec.torch` without importing torch at `import fusec` time
    if name == "torch":
        import importlib

        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'fusec' has no attribute {name!r}")


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
