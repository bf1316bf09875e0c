"""An ONNX graph as one IR graph: graph inputs and initializers become
parameters, each node one statement (its op's entry in `ops.OPS`), rank-0
constants literals. Every unsupported node is collected, then reported at once."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx

from .model import DTYPES, OnnxImportError, dtype_name, tensor_value
from .names import Namer


class Unsupported(Exception):
    """This node cannot be imported; the message says why."""


@dataclass
class Imported:
    """An ONNX model as IR: `text` holds one graph, `name`; its parameters are
    `inputs` (the model's graph inputs, in order) then `initializers` (to bind)."""

    name: str
    text: str
    inputs: list[str]
    initializers: dict[str, np.ndarray]
    onnx_names: dict[str, str]  # IR parameter or output name -> the ONNX name it came from


def literal(value) -> str:
    """A rank-0 constant as an IR literal (weakly typed: it takes its operand's dtype)."""
    value = np.asarray(value)
    if value.dtype == np.bool_:
        return "true" if value else "false"
    if value.dtype.kind in "iu":
        return str(int(value)) if value >= 0 else f"({int(value)})"
    x = float(value)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "(-inf)"
    return repr(x) if x >= 0 else f"({x!r})"


def ir_type(dtype: str, dims) -> str:
    return f"{dtype}[{', '.join(str(d) for d in dims)}]" if dims else dtype


class Converter:
    def __init__(self, model: onnx.ModelProto, where: str, graph_name: str | None):
        self.model, self.where, self.graph = model, where, model.graph
        self.names = Namer()
        self.graph_name = self.names("graph", graph_name or self.graph.name or "model")
        self.types: dict[str, onnx.TypeProto] = {}
        for info in (*self.graph.input, *self.graph.value_info, *self.graph.output):
            self.types.setdefault(info.name, info.type)
        self.constants: dict[str, np.ndarray] = {}
        for tensor in self.graph.initializer:
            self.constants[tensor.name] = tensor_value(tensor, where)
        self.values: dict[str, str] = {}  # ONNX value name -> IR name or literal
        self.params: list[str] = []  # "name: type" declarations
        self.inputs: list[str] = []
        self.bound: dict[str, np.ndarray] = {}
        self.onnx_names: dict[str, str] = {}
        self.statements: list[str] = []
        self.problems: list[str] = []

    # -- what node converters ask ---------------------------------------------------

    def value(self, onnx_name: str) -> str:
        if onnx_name in self.values:
            return self.values[onnx_name]
        if onnx_name in self.constants:
            array = self.constants[onnx_name]
            if array.ndim == 0:
                return literal(array)
            ir = self.names("value", onnx_name)
            self.params.append(f"{ir}: {ir_type(DTYPES[self._np_type(array)], array.shape)}")
            self.bound[ir] = array
            self.onnx_names[ir] = onnx_name
            self.values[onnx_name] = ir
            return ir
        raise Unsupported(f"input {onnx_name!r} is not defined before this node")

    def add_constant(self, hint: str, array: np.ndarray) -> str:
        """A constant made at import time (a transposed weight) as a bound parameter."""
        name = self.names.fresh(hint)
        self.constants[name] = np.ascontiguousarray(array)
        return self.value(name)

    def temp(self, hint: str, expr: str) -> str:
        name = self.names.fresh(hint)
        self.statements.append(f"{name} = {expr}")
        return name

    def elem_type(self, onnx_name: str) -> int | None:
        if onnx_name in self.constants:
            return onnx.helper.np_dtype_to_tensor_dtype(self.constants[onnx_name].dtype)
        t = self.types.get(onnx_name)
        return t.tensor_type.elem_type if t is not None and t.HasField("tensor_type") else None

    def shape(self, onnx_name: str) -> list | None:
        """Dims (ints, or None where unknown) or None where even the rank is unknown."""
        if onnx_name in self.constants:
            return list(self.constants[onnx_name].shape)
        t = self.types.get(onnx_name)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim]

    @staticmethod
    def _np_type(array: np.ndarray) -> int:
        return onnx.helper.np_dtype_to_tensor_dtype(array.dtype)

    # -- the walk ------------------------------------------------------------------------

    def run(self, ops: dict) -> Imported:
        initialized = set(self.constants)
        for info in self.graph.input:
            if info.name not in initialized:
                self._declare_input(info)
        for index, node in enumerate(self.graph.node):
            self._convert(index, node, ops)
        outputs = [self._output(info) for info in self.graph.output]
        if self.problems:
            nodes = sum(p.startswith("node ") for p in self.problems)
            others = len(self.problems) - nodes
            counted = [
                f"{n} {what}{'s' if n != 1 else ''}"
                for n, what in ((nodes, "node"), (others, "graph input or output"))
                if n
            ]
            raise OnnxImportError(
                f"{self.where}: {' and '.join(counted)} fusec cannot import:\n  "
                + "\n  ".join(self.problems)
            )
        body = "".join(f"    {s}\n" for s in self.statements)
        params = ",\n        ".join(self.params)
        text = (
            f"# imported from {self._comment(self.where)} by fusec import\n"
            f"graph {self.graph_name}({params}) {{\n{body}    return {', '.join(outputs)}\n}}\n"
        )
        return Imported(self.graph_name, text, self.inputs, self.bound, self.onnx_names)

    @staticmethod
    def _comment(text: str) -> str:
        return "".join(c if c.isprintable() else "?" for c in text)

    def _declare_input(self, info: onnx.ValueInfoProto) -> None:
        t = info.type
        if not t.HasField("tensor_type") or t.tensor_type.elem_type not in DTYPES:
            kind = (
                dtype_name(t.tensor_type.elem_type)
                if t.HasField("tensor_type")
                else t.WhichOneof("value")
            )
            self.problems.append(f"graph input {info.name!r}: type {kind} is not one fusec has")
            self.values[info.name] = self.names("value", info.name)
            return
        if not t.tensor_type.HasField("shape"):
            self.problems.append(
                f"graph input {info.name!r}: no shape (fusec needs at least the rank)"
            )
        ir = self.names("value", info.name)
        dims = [self._dim(info.name, axis, d) for axis, d in enumerate(t.tensor_type.shape.dim)]
        self.params.append(f"{ir}: {ir_type(DTYPES[t.tensor_type.elem_type], dims)}")
        self.values[info.name] = ir
        self.inputs.append(ir)
        self.onnx_names[ir] = info.name

    def _dim(self, input_name: str, axis: int, dim) -> str:
        if dim.HasField("dim_value"):
            if dim.dim_value < 0:
                self.problems.append(
                    f"graph input {input_name!r}: dimension {axis} is {dim.dim_value}"
                )
            return str(max(dim.dim_value, 0))
        if dim.HasField("dim_param") and dim.dim_param:
            return self.names("size", dim.dim_param)
        return self.names("size", f"{input_name}_dim{axis}")  # unnamed: a size of its own

    def _convert(self, index: int, node: onnx.NodeProto, ops: dict) -> None:
        label = f"node {node.name!r}" if node.name else f"node #{index}"
        convert = ops.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        try:
            if convert is None:
                domain = f" in domain {node.domain!r}" if node.domain not in ("", "ai.onnx") else ""
                raise Unsupported(f"fusec has no {node.op_type}{domain}")
            extra = [o for o in node.output[1:] if o]
            if extra and node.op_type != "Dropout":
                raise Unsupported(f"only one output is supported, the node has {len(node.output)}")
            result = convert(NodeContext(self, node))
        except Unsupported as e:
            self.problems.append(f"{label} ({node.op_type}): {e}")
            for out in node.output:
                self.values.setdefault(out, self.names("value", out))
            return
        out = node.output[0]
        if isinstance(result, np.ndarray):  # Constant: folded into its uses
            self.constants[out] = result
        elif result == "" or out in self.values:
            raise OnnxImportError(f"{self.where}: {label} redefines {out!r}")
        else:
            self.values[out] = ir = self.names("value", out)
            self.statements.append(f"{ir} = {result}")

    def _output(self, info: onnx.ValueInfoProto) -> str:
        if info.name in self.values:
            ir = self.values[info.name]
        elif info.name in self.constants:
            ir = self.value(info.name)
            if ir not in self.bound:  # a rank-0 constant output needs a name and its dtype
                array = self.constants.pop(info.name)
                ir = self.names("value", info.name)
                self.params.append(f"{ir}: {DTYPES[self._np_type(array)]}")
                self.bound[ir] = array
        else:
            self.problems.append(f"graph output {info.name!r} is computed by no node")
            return "undefined"
        self.onnx_names.setdefault(ir, info.name)
        return ir


class NodeContext:
    """One node's inputs and attributes, as its converter in `ops` needs them."""

    def __init__(self, conv: Converter, node: onnx.NodeProto):
        self.conv, self.node = conv, node
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def has(self, i: int) -> bool:
        return i < len(self.node.input) and bool(self.node.input[i])

    def arg(self, i: int) -> str:
        if not self.has(i):
            raise Unsupported(f"input {i} is missing")
        return self.conv.value(self.node.input[i])

    def args(self) -> list[str]:
        return [self.arg(i) for i in range(len(self.node.input)) if self.has(i)]

    def const(self, i: int) -> np.ndarray | None:
        return self.conv.constants.get(self.node.input[i]) if self.has(i) else None

    def dtype(self, i: int) -> str | None:
        return DTYPES.get(self.conv.elem_type(self.node.input[i])) if self.has(i) else None

    def shape(self, i: int) -> list | None:
        return self.conv.shape(self.node.input[i])

    def rank(self, i: int) -> int:
        shape = self.shape(i)
        if shape is None:
            raise Unsupported(
                f"the rank of input {self.node.input[i]!r} is unknown (shape inference gave none)"
            )
        return len(shape)

    def attr(self, name: str, default=None):
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def opset(self) -> int:
        return next(o.version for o in self.conv.model.opset_import if o.domain in ("", "ai.onnx"))

    def add_constant(self, hint: str, array: np.ndarray) -> str:
        return self.conv.add_constant(hint, array)

    def temp(self, hint: str, expr: str) -> str:
        return self.conv.temp(hint, expr)
