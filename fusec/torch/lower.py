"""One partition of an ATen FX graph as an IR graph (text): its placeholders
become parameters, its nodes statements (through `aten_ops.LOWERINGS`), and
FX names are mangled into IR names that are neither op names nor keywords."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from ..api import compile_graphs
from ..ir.keywords import KEYWORDS
from ..ir.registry import all_primitives
from .aten_ops import LOWERINGS, Inline, Unlowerable, literal
from .views import (
    absorbable_transpose,
    output_view,
    passed_transposed,
    resolve,
    transpose_of_transpose,
)

IR_DTYPES = {
    torch.float16: "f16",
    torch.float32: "f32",
    torch.float64: "f64",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.bool: "bool",
}


def ir_dtype(dtype) -> str:
    try:
        return IR_DTYPES[dtype]
    except KeyError:
        raise Unlowerable(f"dtype {dtype} (fusec has {', '.join(map(str, IR_DTYPES))})") from None


def ir_size(size) -> int | str:
    """An int, or the name of a symbolic size (`s0`); an expression of sizes has no IR spelling."""
    if isinstance(size, int):
        return size
    expr = size.node.expr
    if expr.is_Integer:
        return int(expr)
    if expr.is_Symbol:
        return str(expr)
    raise Unlowerable(f"the size {expr} is an expression of symbolic sizes")


def ir_type(value) -> str:
    if not isinstance(value, torch.Tensor):
        raise Unlowerable(f"an operand of type {type(value).__name__}")
    if value.device.type != "cpu":
        raise Unlowerable(f"a tensor on {value.device} (fusec takes CPU tensors)")
    if value.layout != torch.strided:
        raise Unlowerable(f"a tensor of layout {value.layout}")
    return f"{ir_dtype(value.dtype)}[{', '.join(str(ir_size(s)) for s in value.shape)}]"


RESERVED = frozenset(all_primitives()) | KEYWORDS


def mangle(name: str, taken: set) -> str:
    """A valid IR identifier for an FX name, unlike any op, keyword or name already used."""
    ident = re.sub(r"\W", "_", name) or "v"
    if ident[0].isdigit():
        ident = "v" + ident
    while ident in RESERVED or ident in taken:
        ident += "_"
    taken.add(ident)
    return ident


class Emitter:
    """What a lowering entry sees of the node it spells (see `aten_ops`)."""

    def __init__(
        self,
        names: dict,
        metas: dict,
        statements: list,
        taken: set,
        absorbed,
        transposed=frozenset(),
    ):
        self.names, self.metas, self.statements, self.taken = names, metas, statements, taken
        self.absorbed_nodes = absorbed
        self.transposed_inputs = transposed
        self.defined: set = set()  # the IR value names emitted so far
        self.node = None
        self._lets: dict = {}

    # operands
    def _operand(self, i):
        args = self.node.args
        return args[i] if i < len(args) else None

    def arg(self, i) -> str:
        a = self._operand(i)
        return self.name_of(a) if isinstance(a, torch.fx.Node) else literal(a)

    def name_of(self, node) -> str:
        try:
            value = self.names[node]
        except KeyError:  # a transpose only a GEMM can read
            raise Unlowerable(f"{node.name} has no IR value (a transpose)") from None
        if isinstance(value, tuple):
            raise Unlowerable(f"{node.name} has several results")
        return value

    def value_of(self, node):
        return self.names[node]

    def value(self, i, name, default=None):
        """A scalar operand given positionally (i) or by keyword (name)."""
        a = self._operand(i)
        if a is None and name is not None:
            a = self.node.kwargs.get(name)
        if isinstance(a, torch.fx.Node):
            raise Unlowerable(f"operand {name or i} is computed, fusec needs it as a constant")
        return default if a is None else a

    def meta(self, i):
        a = self._operand(i)
        return self.metas[a] if isinstance(a, torch.fx.Node) else None

    def rank(self, i) -> int:
        m = self.meta(i)
        return m.dim() if isinstance(m, torch.Tensor) else 0

    def is_float(self, i) -> bool:
        m = self.meta(i)
        return (
            m.dtype.is_floating_point
            if isinstance(m, torch.Tensor)
            else isinstance(self._operand(i), float)
        )

    def axis(self, i) -> int:
        if self.rank(0) == 0:
            raise Unlowerable("a softmax of a 0-d tensor")
        return self.value(i, "dim") % max(self.rank(0), 1)

    def dims(self, i) -> list[int]:
        dims = self.value(i, "dim")
        rank = self.rank(0)
        if rank == 0:  # torch reduces a 0-d tensor over dim 0 or -1: nothing to reduce
            return []
        if dims is None or (isinstance(dims, list | tuple) and len(dims) == 0):
            return list(range(rank))
        dims = [dims] if isinstance(dims, int) else dims
        return sorted({d % max(rank, 1) for d in dims})

    def static_count(self, dims) -> int:
        count = 1
        for d in dims:
            size = ir_size(self.meta(0).shape[d])
            if isinstance(size, str):
                raise Unlowerable("a variance correction over a symbolic size")
            count *= size
        return count

    def ir_dtype(self, dtype) -> str:
        return ir_dtype(dtype)

    def absorbed(self, node) -> bool:
        return node in self.absorbed_nodes

    def passed_transposed(self, node) -> bool:
        return node in self.transposed_inputs

    def let(self, expr: str) -> str:
        """A name for a subexpression that is used more than once."""
        if expr.isidentifier():
            return expr
        if expr not in self._lets:
            name = mangle("tmp", self.taken)
            self.statements.append(f"{name} = {expr}")
            self._lets[expr] = name
            self.defined.add(name)
        return self._lets[expr]


@dataclass
class Lowered:
    text: str
    transposed: list[int]  # placeholders passed as x.t(): the transpose of a contiguous matrix
    outputs: list[int]  # for each of the partition's outputs, which IR output holds it
    # for each of the partition's outputs, None, or the view PyTorch takes of
    # that IR output (see views.output_view)
    reshapes: list = field(default_factory=list)


def lower_partition(sub: torch.fx.GraphModule, inputs: list, name: str) -> Lowered:
    """IR graph `name` computing `sub` (a fused partition) from `inputs` (the
    fake tensors its placeholders receive)."""
    taken: set = set()
    placeholders = [n for n in sub.graph.nodes if n.op == "placeholder"]
    metas = {p: v for p, v in zip(placeholders, inputs, strict=True)}
    sizes = {ir_size(s) for v in inputs if isinstance(v, torch.Tensor) for s in v.shape}
    taken |= {s for s in sizes if isinstance(s, str)}
    names: dict = {}
    params = []
    transposed = [i for i, p in enumerate(placeholders) if passed_transposed(p, metas[p])]
    for i, p in enumerate(placeholders):
        names[p] = mangle(p.name, taken)
        params.append(f"{names[p]}: {ir_type(metas[p].t() if i in transposed else metas[p])}")
    statements: list[str] = []
    absorbed = {n for n in sub.graph.nodes if n.op == "call_function" and absorbable_transpose(n)}
    e = Emitter(names, metas, statements, taken, absorbed, {placeholders[i] for i in transposed})
    defined = e.defined
    defined |= {names[p] for p in placeholders}
    outputs: list = []
    for node in sub.graph.nodes:
        if node.op == "output":
            outputs = (
                list(node.args[0]) if isinstance(node.args[0], tuple | list) else [node.args[0]]
            )
            continue
        if node.op != "call_function":
            continue
        if node in absorbed:  # read transposed by a GEMM; t(t(x)) is x
            value, flipped = resolve(e, node)
            if transpose_of_transpose(node) and not flipped:
                names[node] = value
            continue
        metas[node] = node.meta.get("val")
        if node.target not in LOWERINGS:
            raise Unlowerable(f"no fusec lowering for {node.target}")
        e.node = node
        result = LOWERINGS[node.target](e, node)
        if isinstance(result, tuple | Inline) or result in defined:
            names[node] = (
                result  # several results, a literal, or another value's name (clone, getitem)
            )
        else:
            names[node] = mangle(node.name, taken)
            statements.append(f"{names[node]} = {result}")
            defined.add(names[node])
    returned, expected, positions, reshapes = [], [], [], []
    for out in outputs:
        if not isinstance(out, torch.fx.Node) or out not in names or out in e.transposed_inputs:
            raise Unlowerable(f"the partition returns {out}, which has no IR value")
        root, pattern = output_view(out, names, metas)
        value = e.name_of(root)
        if value not in returned:  # an output twice (x and its detach) is computed once
            returned.append(value)
            expected.append(metas.get(root, root.meta.get("val")))
        positions.append(returned.index(value))
        reshapes.append(pattern)
    text = f"graph {name}({', '.join(params)}) {{\n" + "".join(f"    {s}\n" for s in statements)
    return Lowered(_cast_outputs(text, returned, expected), transposed, positions, reshapes)


def _cast_outputs(head: str, returned: list[str], expected: list) -> str:
    """Close the graph, casting an output whose inferred dtype is not torch's
    (a 0-d tensor operand promotes in IR, where torch treats it as weak)."""
    text = head + f"    return {', '.join(returned)}\n}}\n"
    graph = compile_graphs(text).graphs[0]
    got = [graph.nodes[o] for o in graph.graph["outputs"]]
    fixed = []
    for name, node, want in zip(returned, got, expected, strict=True):
        want_type = ir_type(want)
        have = f"{node['dtype']}[{', '.join(str(s) for s in node['shape'])}]"
        if have != want_type and node["dtype"] != ir_dtype(want.dtype):
            name = f"cast({name}, dtype={ir_dtype(want.dtype)})"
            have = f"{ir_dtype(want.dtype)}{have[have.index('[') :]}"
        if have != want_type:
            raise Unlowerable(f"fusec infers {have} where torch has {want_type}")
        fixed.append(name)
    return head + f"    return {', '.join(fixed)}\n}}\n"
