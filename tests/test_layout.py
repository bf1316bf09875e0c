"""The folder layout is the pipeline, and imports point one way down it.

text -> frontend -> ir graph -> passes -> codegen -> runtime -> api ->
framework front ends (numpy, onnx, torch: IR text from other frameworks) -> cli.
A module may import from its own layer or a lower one; the test reads every
import (with `ast`, lazy ones inside functions too) and fails on one that
points up. `kernels_cache` imports nothing of fusec, and only the runtime
imports pyopencl.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fusec"

# lowest first; a module's layer is the first entry its dotted name starts with
LAYERS = [
    ("fusec.version", "fusec.diagnostics"),
    ("fusec.ir",),
    ("fusec.frontend",),
    ("fusec.passes",),
    ("fusec.codegen",),
    ("fusec.runtime",),
    ("fusec.api", "fusec", "fusec.__init__"),
    # framework front ends: they write IR text and call the API
    ("fusec.numpy", "fusec.onnx", "fusec.torch"),
    ("fusec.cli", "fusec.warmup", "fusec.__main__", "fusec.render_dot"),
]


def layer_of(module: str) -> int:
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (rank, prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in a fusec file."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or target == "fusec":  # `from . import x`: x may be a module
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


def fusec_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def lazy_front_end_imports(path: Path) -> set[int]:
    """Lines of the imports in fusec/__init__.py's module `__getattr__`: `fusec.from_onnx`
    loads its front end on first use (so `import fusec` stays light), the one upward
    import allowed, and only into the front ends' layer."""
    if path != PACKAGE / "__init__.py":
        return set()
    return {
        node.lineno
        for fn in ast.parse(path.read_text()).body
        if isinstance(fn, ast.FunctionDef) and fn.name == "__getattr__"
        for node in ast.walk(fn)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }


def test_imports_point_down_the_pipeline():
    upward = []
    front_ends = layer_of("fusec.onnx")
    for path in fusec_files():
        here = layer_of(module_name(path))
        lazy = lazy_front_end_imports(path)
        for line, target in imports_of(path):
            if target.startswith("fusec") and target != "fusec.__version__":
                if line in lazy and layer_of(target) == front_ends:
                    continue
                if layer_of(target) > here:
                    upward.append(f"{path.relative_to(ROOT)}:{line}: imports {target}")
    assert not upward, "imports that point up the pipeline:\n" + "\n".join(upward)


def test_only_the_runtime_imports_pyopencl():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in fusec_files()
        for line, target in imports_of(path)
        if target.split(".")[0] == "pyopencl"
        and layer_of(module_name(path)) != layer_of("fusec.runtime")
    ]
    assert not offenders, "pyopencl imported outside fusec/runtime: " + ", ".join(offenders)


def test_kernels_cache_imports_nothing_of_fusec():
    for path in sorted((ROOT / "kernels_cache").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not any(n.split(".")[0] in ("fusec", "pyopencl") for n in names), (path, names)


def test_the_layer_test_catches_an_upward_import(tmp_path):
    """The checker itself: a registry that imported the parser would be caught."""
    assert layer_of("fusec.ir.registry") < layer_of("fusec.frontend.parser")
    assert layer_of("fusec.codegen.plan") < layer_of("fusec.runtime.programs")
    assert layer_of("fusec") > layer_of("fusec.runtime")


def test_import_fusec_stays_light_and_the_front_ends_load_on_first_use():
    import subprocess
    import sys

    code = (
        "import sys, fusec\n"
        "heavy = [m for m in ('torch', 'onnx', 'pyopencl', 'fusec.numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert callable(fusec.torch.function) and callable(fusec.from_onnx)\n"
        "assert callable(fusec.jit) and callable(fusec.evaluate) and callable(fusec.tanh)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
