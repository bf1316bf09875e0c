"""The ONNX front end: `fusec.from_onnx(path_or_model)` and `fusec import`.

An ONNX model becomes ordinary IR text (one graph), compiled by `fusec.compile`
through the same pipeline and kernel cache as a hand-written file; its
initializers become parameters, bound to their values. See docs/onnx.md.
Needs the `onnx` package (`pip install fusec[onnx]`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..api import compile as compile_ir
from ..diagnostics import CompileError
from . import norm_ops  # noqa: F401 (registers its ops into OPS)
from .convert import Converter, Imported
from .model import MAX_BYTES, MAX_OPSET, MIN_OPSET, OnnxImportError, load_model
from .ops import OPS

__all__ = [
    "OnnxImportError",
    "OnnxProgram",
    "from_onnx",
    "onnx_to_ir",
    "write_imported",
    "SUPPORTED_OPS",
    "MIN_OPSET",
    "MAX_OPSET",
]

SUPPORTED_OPS = frozenset(OPS)


def onnx_to_ir(
    path_or_model, *, graph_name: str | None = None, max_bytes: int = MAX_BYTES
) -> Imported:
    """The model as IR text and the initializers' values, checked by fusec's
    front end (parse, types, shapes) so that the text compiles."""
    from ..api import compile_graphs

    model, where = load_model(path_or_model, max_bytes)
    converter = Converter(model, where, graph_name)
    if graph_name is not None and converter.graph_name != graph_name:
        raise OnnxImportError(
            f"graph name {graph_name!r} is not a valid IR name (a letter or _, then letters, "
            f"digits or _; not an op name or keyword): {converter.graph_name!r} would be"
        )
    imported = converter.run(OPS)
    try:
        compile_graphs(imported.text, filename=f"{where} (imported)")
    except CompileError as e:
        raise OnnxImportError(f"{where}: the imported graph does not check:\n{e.text}") from None
    return imported


def write_imported(imported: Imported, ir_path: Path) -> list[Path]:
    """The IR at `ir_path` and, if the model has initializers, their values in the
    .npz beside it (keys: the IR parameter names), each written whole or not at all."""
    files = [(ir_path, imported.text.encode())]
    if imported.initializers:
        npz = tempfile.SpooledTemporaryFile()
        np.savez(npz, **imported.initializers)
        npz.seek(0)
        files.append((ir_path.with_suffix(".npz"), npz.read()))
    temps = []
    try:
        for path, data in files:
            fd, temp = tempfile.mkstemp(
                dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp"
            )
            temps.append(temp)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        for (path, _), temp in zip(files, temps, strict=True):
            os.replace(temp, path)
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.unlink(temp)
    return [path for path, _ in files]


class OnnxProgram:
    """`fusec.compile`'s Program for an imported model, its graph with the
    initializers bound: `prog[prog.graphs[0]](x)` takes the model's inputs only."""

    def __init__(self, imported: Imported, program):
        self.imported, self.program = imported, program
        graph = program[imported.name]
        self._graph = graph.bind(**imported.initializers) if imported.initializers else graph

    @property
    def graphs(self) -> list[str]:
        return [self.imported.name]

    @property
    def ir(self) -> str:
        return self.imported.text

    @property
    def initializers(self) -> dict:
        return self.imported.initializers

    @property
    def input_names(self) -> list[str]:
        """The IR names of the model's inputs, in the model's order."""
        return list(self.imported.inputs)

    def __getitem__(self, name: str):
        if name != self.imported.name:
            raise KeyError(
                f"no graph {name!r} in the imported model (graphs: {self.imported.name})"
            )
        return self._graph

    def __iter__(self):
        return iter([self._graph])

    def __repr__(self) -> str:
        return f"<fusec program {self.imported.name} imported from ONNX, {len(self.initializers)} initializers bound>"


def from_onnx(
    path_or_model,
    *,
    graph_name: str | None = None,
    device=None,
    queue=None,
    cache_dir=None,
    max_bytes: int = MAX_BYTES,
) -> OnnxProgram:
    """Import an ONNX model (a path or an `onnx.ModelProto`) and compile it."""
    imported = onnx_to_ir(path_or_model, graph_name=graph_name, max_bytes=max_bytes)
    return OnnxProgram(
        imported, compile_ir(imported.text, device=device, queue=queue, cache_dir=cache_dir)
    )
