"""Reading an ONNX model that may come from anyone: a bounded file, no external
data, the checker and shape inference run, and every failure a clear
`OnnxImportError` instead of a traceback from inside protobuf or onnx."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..diagnostics import FusecError

MIN_OPSET = 13  # Softmax's axis, Clip's and ReduceSum's inputs: the semantics fusec maps
MAX_OPSET = 28  # the newest ai.onnx opset whose changes to the imported ops fusec has read
MAX_BYTES = 1 << 30  # protobuf itself stops at 2 GiB; a model for fusec's ops is far smaller

# ONNX element types fusec has; others (uint8, bfloat16, string, ...) are refused by name
DTYPES = {
    TensorProto.FLOAT: "f32",
    TensorProto.FLOAT16: "f16",
    TensorProto.DOUBLE: "f64",
    TensorProto.INT32: "i32",
    TensorProto.INT64: "i64",
    TensorProto.BOOL: "bool",
}


class OnnxImportError(FusecError):
    """An ONNX model fusec cannot import: unreadable, unsafe, or with unsupported nodes."""


def dtype_name(elem_type: int) -> str:
    return (
        TensorProto.DataType.Name(elem_type)
        if elem_type in TensorProto.DataType.values()
        else str(elem_type)
    )


def load_model(path_or_proto, max_bytes: int = MAX_BYTES) -> tuple[onnx.ModelProto, str]:
    """(the model with shapes inferred, a name for messages)."""
    if isinstance(path_or_proto, onnx.ModelProto):
        model, where = path_or_proto, "<model>"
    elif isinstance(path_or_proto, (str, os.PathLike)):
        model, where = _read(Path(path_or_proto), max_bytes), str(path_or_proto)
    else:
        raise OnnxImportError(
            f"expected a path or an onnx.ModelProto, got {type(path_or_proto).__name__}"
        )
    _refuse_external_data(model, where)
    opset = default_opset(model)
    if opset is None:
        raise OnnxImportError(
            f"{where}: the model imports no ai.onnx opset (fusec imports opsets "
            f"{MIN_OPSET} to {MAX_OPSET} of the standard operators)"
        )
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxImportError(
            f"{where}: ai.onnx opset {opset} is not supported (fusec imports opsets {MIN_OPSET} to "
            f"{MAX_OPSET}; onnx.version_converter.convert_version can upgrade the model)"
        )
    try:
        onnx.checker.check_model(model)
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # onnx raises ValidationError, InferenceError, RuntimeError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxImportError(f"{where}: not a valid ONNX model: {first}") from None
    return model, where


def _read(path: Path, max_bytes: int) -> onnx.ModelProto:
    try:
        info = path.stat()
        if not path.is_file():
            raise OnnxImportError(f"{path}: not a regular file")
        if info.st_size > max_bytes:
            raise OnnxImportError(
                f"{path}: {info.st_size} bytes, more than the {max_bytes} fusec reads"
            )
        data = path.read_bytes()
    except OSError as e:
        raise OnnxImportError(f"{path}: {(e.strerror or str(e)).lower()}") from None
    try:
        return onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError, or onnx's own
        raise OnnxImportError(f"{path}: not an ONNX model ({type(e).__name__}: {e})") from None


def _tensors(graph: onnx.GraphProto):
    """Every tensor stored in a graph: initializers and node attributes, subgraphs too."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub)


def _refuse_external_data(model: onnx.ModelProto, where: str) -> None:
    # fusec never opens files a model names: a path in an untrusted model can point anywhere
    for tensor in _tensors(model.graph):
        if tensor.data_location == TensorProto.EXTERNAL:
            raise OnnxImportError(
                f"{where}: tensor {tensor.name!r} keeps its data in an external file; fusec imports "
                "self-contained models only (onnx.load(path) then onnx.save_model(model, out, "
                "save_as_external_data=False) makes one)"
            )
    if model.graph.sparse_initializer:
        raise OnnxImportError(f"{where}: sparse initializers are not supported")


def default_opset(model: onnx.ModelProto) -> int | None:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return versions[0] if versions else None


def tensor_value(tensor: onnx.TensorProto, where: str) -> np.ndarray:
    if tensor.data_type not in DTYPES:
        raise OnnxImportError(
            f"{where}: tensor {tensor.name!r} has type {dtype_name(tensor.data_type)}, "
            f"which fusec lacks (it has {', '.join(sorted(set(DTYPES.values())))})"
        )
    try:
        return numpy_helper.to_array(tensor)
    except Exception as e:
        raise OnnxImportError(f"{where}: tensor {tensor.name!r} cannot be read: {e}") from None
