"""The Python API: `fusec.compile(...)` -> Program -> CompiledGraph(...)."""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import networkx as nx

from .diagnostics import CallError, CompileError, Diagnostic
from .frontend.collector import collections_paused
from .frontend.lower import lower_module
from .frontend.parser import parse
from .frontend.source import read_source
from .ir import dtypes as dt
from .ir.graph import verify
from .ir.keywords import KEYWORDS
from .ir.registry import Primitive, check_template, register
from .passes import PIPELINE, fuse, grad_graph, place_views, simplify
from .passes.autodiff import check_backward
from .passes.views import materialize_view_outputs


@dataclass
class FrontEnd:
    """A file's graphs after the device-independent pipeline."""

    filename: str
    source: str
    graphs: list[nx.DiGraph]
    # with grad=True: graph name -> {"backward": vjp graph, "forward_backward": both}
    derived: dict = field(default_factory=dict)


def compile_graphs(path_or_text, *, filename: str | None = None, grad: bool = False) -> FrontEnd:
    """Parse, check and simplify every graph of a file (and with `grad`, build
    and simplify its backward graphs); no device involved."""
    name, text = read_source(path_or_text)
    return _front_end(filename or name, text, grad)


@collections_paused()  # the front end's millions of small objects: no collection mid-way
def _front_end(name: str, text: str, grad: bool) -> FrontEnd:
    try:
        graphs, derived = [], {}
        for g in lower_module(parse(text)):
            for _, stage in PIPELINE:
                g = stage(g)
            verify(g)  # once, after the last stage: each costs a walk of the graph
            graphs.append(g)
            if grad:
                derived[g.graph["name"]] = {
                    kind: materialize_view_outputs(
                        simplify(place_views(grad_graph(g, with_forward=with_forward)))
                    )
                    for kind, with_forward in (("backward", False), ("forward_backward", True))
                }
                for d in derived[g.graph["name"]].values():
                    verify(d)
    except CompileError as e:
        raise e.with_source(name, text) from None
    return FrontEnd(name, text, graphs, derived)


def compile(
    path_or_text, *, grad: bool = False, device=None, queue=None, cache_dir=None
) -> Program:
    """Compile every graph of an IR file (a path, or the text) for an OpenCL device."""
    from .runtime import Runtime

    name, text = read_source(path_or_text)
    runtime = (
        Runtime(device, queue, cache_dir)
        if queue is not None
        else Runtime.shared(device, cache_dir)
    )
    # A repeat compile of the same text for the same runtime is a dict lookup.
    from .ir.registry import generation

    key = (name, text, id(runtime), generation(), grad)
    prog = _COMPILED.get(key)
    if prog is None or prog.runtime is not runtime:
        # the text read, never read_source'd again: an empty file's "" is not a path
        prog = Program(_front_end(name, text, grad), runtime)
        if len(_COMPILED) >= 256:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = prog
    return prog


_COMPILED: dict = {}


class Program:
    def __init__(self, front: FrontEnd, runtime):
        self.filename = front.filename
        self.runtime = runtime
        self._graphs = {g.graph["name"]: CompiledGraph(g, runtime, front) for g in front.graphs}
        for name, graphs in front.derived.items():
            self._graphs[name].derived = {
                k: CompiledGraph(d, runtime, front) for k, d in graphs.items()
            }

    @property
    def graphs(self) -> list[str]:
        return list(self._graphs)

    def __getitem__(self, name: str) -> CompiledGraph:
        try:
            return self._graphs[name]
        except KeyError:
            raise KeyError(
                f"no graph {name!r} in {self.filename} (graphs: {', '.join(self._graphs)})"
            ) from None

    def __iter__(self):
        return iter(self._graphs.values())

    def __contains__(self, name) -> bool:  # by name, as `prog[name]` (iteration gives graphs)
        return name in self._graphs if isinstance(name, str) else name in self._graphs.values()

    def __len__(self) -> int:
        return len(self._graphs)

    def every_graph(self) -> list[CompiledGraph]:
        """Each graph, followed (with grad=True) by its backward and forward+backward graphs."""
        return [d for g in self for d in (g, *g.derived.values())]


class CompiledGraph:
    """One graph, compiled for a device: call it like a function."""

    def __init__(self, g: nx.DiGraph, runtime, front: FrontEnd):
        from .codegen import generate

        self.graph = g
        self.name = g.graph["name"]
        self.runtime = runtime
        self.groups = fuse(g, runtime.info.max_parameter_size)
        try:
            self.source, self.kernels = generate(g, self.groups, runtime.info)
        except CompileError as e:  # what only the device decides, positioned in the file
            raise e.with_source(front.filename, front.source) from None
        self.plan = self._plan()
        self.params = [g.nodes[p] for p in g.graph["params"]]
        self._front = front
        self.param_names = [p["name"] for p in self.params]
        if not runtime.info.fp64 and any(p.get("dtype") == "f64" for _, p in g.nodes(data=True)):
            pos = next(p["pos"] for _, p in g.nodes(data=True) if p.get("dtype") == "f64")
            raise CompileError(
                [Diagnostic(f"f64 needs cl_khr_fp64, which {runtime.info.name} lacks", pos)],
                front.filename,
                front.source,
            )
        self._launcher = None
        self._build_lock = threading.Lock()
        self.derived: dict[
            str, CompiledGraph
        ] = {}  # with grad=True: "backward", "forward_backward"

    def build(self):
        """Build (or load) the program; on a compiler crash, retry with narrower vectors."""
        from .codegen import generate
        from .runtime.launcher import Launcher

        with self._build_lock:
            while self._launcher is None:
                try:
                    program = self.runtime.program(self.source, self.name, self._trials())
                except CompileError as e:
                    width = self.kernels[0].device.vector_width
                    if not getattr(e, "crashed", False) or width == 1:
                        raise e.with_source(self._front.filename, self._front.source) from None
                    # The compiler crashed on vector code (PoCL 3.0 on some float16
                    # kernels): 8 lanes are the next safest, scalar code the last.
                    narrower = 8 if width > 8 else 1
                    reason = e.diagnostics[0].message
                    warnings.warn(
                        f"fusec: {reason}; retrying {self.name} with vectors of {narrower}",
                        stacklevel=2,
                    )
                    info = dataclasses.replace(
                        self.kernels[0].device,
                        vector_width=narrower,
                        vectors_per_item=self.kernels[0].device.vectors_per_item
                        if narrower > 1
                        else 1,
                    )
                    self.source, self.kernels = generate(self.graph, self.groups, info)
                    self.plan = self._plan()
                    continue
                self._launcher = Launcher(self.runtime, self.graph, self.kernels, program)
        return self._launcher.program

    def _plan(self) -> dict:
        """The launch plan, naming the device its source was generated for."""
        from .codegen.plan import make_plan  # codegen loads when a graph is built, not for `check`

        plan = make_plan(self.graph, self.kernels)
        plan["device"] = self.runtime.device_names
        return plan

    def _trials(self):
        """What the build worker launches (with n = 0) so that lazy drivers generate code there."""
        return [trial for k in self.kernels for trial in k.trial_launches()]

    def __repr__(self) -> str:
        sig = ", ".join(f"{p['name']}: {p['dtype']}{list(p['shape'])}" for p in self.params)
        return f"<fusec graph {self.name}({sig}), {len(self.kernels)} kernel(s)>"

    # -- calling -------------------------------------------------------------------

    def __call__(self, *args, out=None, **kwargs):
        """The graph's outputs (a tuple for several). Arrays go in and come out as
        the first array argument's kind (NumPy, a DLPack array such as a PyTorch
        CPU tensor, or a pyopencl array); `out=` writes into the caller's arrays."""
        if self._launcher is not None and not kwargs:
            result = self._launcher.fast_call(args, out=out)
            if result is not None:  # a warm call with NumPy arrays like an earlier one's
                return result
        bound = bind_arguments(self.name, self.param_names, args, kwargs)
        launcher = self._launcher or (self.build() and self._launcher)
        return launcher.call(bound, out)

    def bind(self, **constants) -> BoundGraph:
        """This graph with some parameters fixed, e.g. a layer's weights for
        inference: `layer = g.bind(w=w, b=b); y = layer(x)`. The values are
        copied to the device once (later changes to the arrays are not seen),
        and weights that a GEMM repacks are packed once, at the first call."""
        return BoundGraph(self, constants)

    # -- gradients (compiled with grad=True) ---------------------------------------

    @property
    def backward(self) -> CompiledGraph:
        """The vector-Jacobian product alone: forward inputs and cotangents in, gradients out."""
        return self._derived("backward")

    @property
    def forward_backward(self) -> CompiledGraph:
        """Outputs and gradients in one pass (what `value_and_grad` runs)."""
        return self._derived("forward_backward")

    def _derived(self, kind: str) -> CompiledGraph:
        if kind not in self.derived:
            raise CallError(f"{self.name} was compiled without gradients; compile with grad=True")
        return self.derived[kind]

    def value_and_grad(self, *args, grad_outputs=None, **kwargs):
        """The outputs (as a call returns them) and {parameter name: gradient}
        for every float parameter. `grad_outputs`: the cotangent of each output
        (one array for a single output, else a sequence with None for
        non-float outputs); it may be left out when every float output is a
        scalar, as in PyTorch's `backward()`."""
        fb = self.forward_backward
        results = fb(*self._inputs(args, kwargs), *self._cotangents(grad_outputs))
        results = results if isinstance(results, tuple) else (results,)
        n = fb.graph.graph["forward_outputs"]
        outputs = results[0] if n == 1 else tuple(results[:n])
        return outputs, dict(zip(fb.graph.graph["grad_of"], results[n:], strict=True))

    def vjp(self, *args, grad_outputs=None, **kwargs) -> dict:
        """{parameter name: gradient}: the backward pass alone, from the forward's inputs."""
        bwd = self.backward
        results = bwd(*self._inputs(args, kwargs), *self._cotangents(grad_outputs))
        results = results if isinstance(results, tuple) else (results,)
        return dict(zip(bwd.graph.graph["grad_of"], results, strict=True))

    def _inputs(self, args, kwargs) -> list:
        bound = bind_arguments(self.name, self.param_names, args, kwargs)
        return [bound[name] for name in self.param_names]

    def _cotangents(self, grad_outputs) -> list:
        """The cotangent arguments of the derived graphs, in their parameter order."""
        outs = [self.graph.nodes[o] for o in self.graph.graph["outputs"]]
        floats = [i for i, o in enumerate(outs) if dt.is_float(o["dtype"])]
        if grad_outputs is None:
            if any(outs[i]["shape"] for i in floats):
                raise CallError(
                    f"{self.name}: grad_outputs is needed (one cotangent per output); only scalar"
                    " outputs default to 1"
                )
            return [dt.NUMPY[outs[i]["dtype"]].type(1) for i in floats]
        if len(outs) == 1 and not isinstance(grad_outputs, tuple | list):
            grad_outputs = (grad_outputs,)
        if not isinstance(grad_outputs, tuple | list) or len(grad_outputs) != len(outs):
            raise CallError(f"{self.name}: grad_outputs needs one entry per output ({len(outs)})")
        for i, (o, ct) in enumerate(zip(outs, grad_outputs, strict=True)):
            if i not in floats and ct is not None:
                raise CallError(
                    f"{self.name}: output {i} is {o['dtype']}, not float: its grad_outputs entry must be None"
                )
            if i in floats and ct is None:
                raise CallError(f"{self.name}: grad_outputs[{i}] is None, but output {i} is float")
        return [grad_outputs[i] for i in floats]


class BoundGraph:
    """A compiled graph with some parameters fixed (`CompiledGraph.bind`); called
    with the others, positionally in the graph's order or by name. Bound values
    are copied to the device once; what depends on them alone (a GEMM's packed
    weight, a weight's cast) is computed by the first call and kept."""

    def __init__(self, graph: CompiledGraph, constants: dict):
        from .runtime.launcher import pin

        self.graph = graph
        self.name = graph.name
        bad = [k for k in constants if k not in graph.param_names]
        if bad:
            raise CallError(
                f"{graph.name}() has no parameter {bad[0]!r} (parameters: {', '.join(graph.param_names)})"
            )
        self.param_names = [n for n in graph.param_names if n not in constants]
        self._pinned = pin(graph.runtime, graph.graph, graph.kernels, constants)

    @property
    def values(self) -> dict:
        return self._pinned.values

    @property
    def computed_once(self) -> list[str]:
        """The launches the first call ran and later calls skip: packing a bound
        weight (`<group>_pack`), groups computing from bound values alone."""
        return sorted(self._pinned.done)

    def __call__(self, *args, out=None, **kwargs):
        launcher = self.graph._launcher
        if launcher is not None and not kwargs:
            result = launcher.fast_call(args, self._pinned, out)
            if result is not None:
                return result
        if again := [k for k in kwargs if k in self.values]:
            raise CallError(f"{self.name}(): {again[0]!r} is bound (by bind); call it without it")
        bound = bind_arguments(self.name, self.param_names, args, kwargs)
        launcher = self.graph._launcher or (self.graph.build() and self.graph._launcher)
        return launcher.call(bound, out, self._pinned)

    def __repr__(self) -> str:
        return f"<fusec graph {self.name} with {', '.join(self.values)} bound>"


def bind_arguments(graph: str, names: list[str], args, kwargs) -> dict:
    """{parameter name: value} for a call, or a CallError naming what is wrong."""
    takes = f"{graph}() takes {len(names)} argument{'s' * (len(names) != 1)} ({', '.join(names)})"
    if len(args) > len(names):
        raise CallError(f"{takes}, got {len(args)}")
    bound = dict(zip(names, args, strict=False))
    for k, v in kwargs.items():
        if k not in names:
            raise CallError(f"{graph}() has no parameter {k!r} (parameters: {', '.join(names)})")
        if k in bound:
            raise CallError(f"{graph}() got parameter {k!r} twice")
        bound[k] = v
    missing = [n for n in names if n not in bound]
    if missing:
        raise CallError(f"{takes}, got {len(bound)}: missing {', '.join(map(repr, missing))}")
    return bound


def register_primitive(
    name: str,
    inputs: tuple[str, ...] | list[str],
    forward: str | Mapping[str, str],
    numpy: Callable,
    *,
    dtype_rule: str = "float",
    attrs: Mapping[str, object] | None = None,
    backward: Mapping[str, str] | None = None,
    replace: bool = False,
) -> Primitive:
    """Add an elementwise op from Python; it is usable from IR text afterwards.

    `forward` is an OpenCL C expression template (see `Primitive`), e.g.
    `register_primitive("cube", ["x"], "{x} * {x} * {x}", lambda x: x**3,
    backward={"x": "g * 3 * x * x"})`. A backward template is an IR
    expression over registry ops (see `Primitive.backward_for`); an input
    without one makes the op's gradient an error.
    """
    if not name.isidentifier() or name in KEYWORDS:
        raise ValueError(f"invalid primitive name {name!r}")
    prim = Primitive(
        name=name,
        inputs=tuple(inputs),
        forward=forward,
        numpy=numpy,
        dtype_rule=dtype_rule,
        attrs=dict(attrs or {}),
        backward=dict(backward or {}),
    )
    check_template(prim)
    for template in [forward] if isinstance(forward, str) else forward.values():
        if inputs and not any(f"{{{i}}}" in template for i in inputs):  # a bare `x` is C's
            raise ValueError(
                f"template of {name!r}, {template!r}, uses none of its inputs: write them in "
                f"braces, as {{{inputs[0]}}}"
            )
    check_backward(prim)  # backward templates are IR text: checked now, not at a gradient
    return register(prim, replace=replace)
