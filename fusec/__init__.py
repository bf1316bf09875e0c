"""fusec: a JIT fusion compiler from a small tensor IR to fused OpenCL kernels."""

import importlib

from .api import CompiledGraph, Program, compile, compile_graphs, register_primitive
from .diagnostics import CallError, CompileError, FusecError, TraceError
from .version import __version__

__all__ = [
    "CallError",
    "CompileError",
    "CompiledGraph",
    "FusecError",
    "Program",
    "TraceError",
    "__version__",
    "compile",
    "compile_graphs",
    "evaluate",
    "jit",
    "register_primitive",
]

_NUMPY_FRONT_END = ("jit", "evaluate")


def __dir__() -> list[str]:
    """What `dir(fusec)` and tab completion show: the lazy names too (the front
    ends and `fusec.<op>` for every public op), without loading torch or onnx
    (`from_onnx` stays out of `__all__`: `import *` would load onnx)."""
    from .ir.registry import all_primitives

    ops = (name for name, prim in all_primitives().items() if not prim.internal)
    return sorted({*globals(), *__all__, "from_onnx", "torch", "numpy", *ops})


def __getattr__(name: str):
    """The framework front ends, loaded on first use (they sit above the API, and
    `import fusec` stays light: it never imports torch or onnx): `fusec.torch`,
    `fusec.from_onnx`, and from the NumPy front end `fusec.jit`, `fusec.evaluate` and `fusec.<op>` for
    every op in the registry (ops registered later too)."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name == "torch":  # by name, as below
        return importlib.import_module("fusec.torch")
    if name == "from_onnx":
        from .onnx import from_onnx

        globals()[name] = from_onnx  # found directly from now on
        return from_onnx
    # by name: `from . import numpy` would ask this very function for `numpy` first
    front_end = importlib.import_module("fusec.numpy")
    if name == "numpy":  # `fusec.numpy.jit` without importing fusec.numpy first
        return front_end
    if name in _NUMPY_FRONT_END:
        globals()[name] = getattr(front_end, name)  # found directly from now on: calls stay cheap
        return globals()[name]
    return front_end.op_function(name)
