"""The Python API: `fusec.compile(...)` -> Program -> CompiledGraph(...)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

from .codegen.plan import make_plan
from .diagnostics import CompileError, Diagnostic
from .frontend.lower import lower_module
from .frontend.parser import parse
from .frontend.source import read_source
from .gradient_calls import GradientCalls
from .ir import dtypes as dt
from .ir.graph import verify
from .ir.keywords import KEYWORDS
from .ir.registry import Primitive, check_template, register
from .passes import PIPELINE, fuse, grad_graph, simplify
from .passes.autodiff import check_backward
from .runtime.arguments import aligned_empty, bind_arguments, check_argument, resolve

if TYPE_CHECKING:
    from .bound import BoundGraph


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
    name = filename or name
    try:
        graphs, derived = [], {}
        for g in lower_module(parse(text)):
            for _, stage in PIPELINE:
                g = stage(g)
                verify(g)
            graphs.append(g)
            if grad:
                derived[g.graph["name"]] = {
                    kind: simplify(grad_graph(g, with_forward=with_forward))
                    for kind, with_forward in (("backward", False), ("forward_backward", True))
                }
                for d in derived[g.graph["name"]].values():
                    verify(d)
    except CompileError as e:
        raise e.with_source(name, text) from None
    return FrontEnd(name, text, graphs, derived)


def compile(path_or_text, *, grad: bool = False, device=None, queue=None, cache_dir=None) -> Program:
    """Compile every graph of an IR file (a path, or the text) for an OpenCL device."""
    from .runtime import Runtime

    name, text = read_source(path_or_text)
    runtime = Runtime(device, queue, cache_dir) if queue is not None else Runtime.shared(device, cache_dir)
    # A repeat compile of the same text for the same runtime is a dict lookup.
    from .ir.registry import generation

    key = (name, text, id(runtime), generation(), grad)
    prog = _COMPILED.get(key)
    if prog is None or prog.runtime is not runtime:
        prog = Program(compile_graphs(text, filename=name, grad=grad), runtime)
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
            self._graphs[name].derived = {k: CompiledGraph(d, runtime, front) for k, d in graphs.items()}

    @property
    def graphs(self) -> list[str]:
        return list(self._graphs)

    def __getitem__(self, name: str) -> CompiledGraph:
        try:
            return self._graphs[name]
        except KeyError:
            raise KeyError(f"no graph {name!r} in {self.filename} (graphs: {', '.join(self._graphs)})") from None

    def __iter__(self):
        return iter(self._graphs.values())

    def every_graph(self) -> list[CompiledGraph]:
        """Each graph, followed (with grad=True) by its backward and forward+backward graphs."""
        return [d for g in self for d in (g, *g.derived.values())]


class CompiledGraph(GradientCalls):
    def __init__(self, g: nx.DiGraph, runtime, front: FrontEnd):
        from .codegen import generate

        self.graph = g
        self.name = g.graph["name"]
        self.runtime = runtime
        self.groups = fuse(g)
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
        self._program = None
        self.derived: dict[str, CompiledGraph] = {}  # with grad=True: "backward", "forward_backward"

    def build(self):
        """Build (or load) the program; on a compiler crash, retry with narrower vectors."""
        import dataclasses
        import warnings

        import pyopencl as cl

        from .codegen import generate

        while self._program is None:
            try:
                self._program = self.runtime.program(self.source, self.name, self._trials())
            except CompileError as e:
                width = self.kernels[0].device.vector_width
                if not getattr(e, "crashed", False) or width == 1:
                    raise e.with_source(self._front.filename, self._front.source) from None
                # The compiler crashed on vector code (PoCL 3.0 on some float16
                # kernels): 8 lanes are the next safest, scalar code the last.
                narrower = 8 if width > 8 else 1
                reason = e.diagnostics[0].message
                warnings.warn(
                    f"fusec: {reason}; retrying {self.name} with vectors of {narrower}", stacklevel=2
                )
                info = dataclasses.replace(
                    self.kernels[0].device,
                    vector_width=narrower,
                    vectors_per_item=self.kernels[0].device.vectors_per_item if narrower > 1 else 1,
                )
                self.source, self.kernels = generate(self.graph, self.groups, info)
                self.plan = self._plan()
        if not hasattr(self, "_cl_kernels"):
            self._cl_kernels = {
                name: cl.Kernel(self._program, name) for k in self.kernels for name in k.entry_points
            }
            # Declared scalar types let PyOpenCL pack scalars itself: a scalar
            # argument costs 0.1 us instead of 6 (measured with PyOpenCL
            # 2026.1 on PoCL and Intel's runtime), 50 us per GEMM launch.
            from .runtime.build_worker import SCALAR_KINDS

            for name, kinds, _ in self._trials():
                self._cl_kernels[name].set_scalar_arg_dtypes(
                    [None if k == "buffer" else np.dtype(SCALAR_KINDS[k]) for k in kinds]
                )
        return self._program

    def _plan(self) -> dict:
        """The launch plan, naming the device its source was generated for."""
        dev = self.runtime.device
        plan = make_plan(self.graph, self.kernels)
        plan["device"] = {"name": dev.name.strip(), "platform": dev.platform.name.strip()}
        return plan

    def _trials(self):
        """What the build worker launches (with n = 0) so that lazy drivers generate code there."""
        return [trial for k in self.kernels for trial in k.trial_launches()]

    def __repr__(self) -> str:
        sig = ", ".join(f"{p['name']}: {p['dtype']}{list(p['shape'])}" for p in self.params)
        return f"<fusec graph {self.name}({sig}), {len(self.kernels)} kernel(s)>"

    # -- calling -------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        import pyopencl.array as cla

        bound = bind_arguments(self.name, self.param_names, args, kwargs)
        on_device = any(isinstance(v, cla.Array) for v in bound.values())
        return self._run(bound, on_device)

    def bind(self, **constants) -> BoundGraph:
        """This graph with some parameters fixed, e.g. a layer's weights for
        inference: `layer = g.bind(w=w, b=b); y = layer(x)`. The values are
        copied to the device once (later changes to the arrays are not seen),
        and weights that a GEMM repacks are packed once, at the first call."""
        from .bound import BoundGraph

        return BoundGraph(self, constants)

    def _run(self, bound: dict, on_device: bool, pinned: BoundGraph | None = None):
        import pyopencl as cl
        import pyopencl.array as cla

        sizes: dict[str, int] = dict(pinned.sizes) if pinned else {}
        values = dict(pinned.values) if pinned else {}
        for p in self.params:
            if p["name"] not in values:
                values[p["name"]] = check_argument(p, bound[p["name"]], sizes, self.runtime.context)
        self.build()
        queue = self.runtime.queue
        # On a device sharing the host's memory (a CPU), NumPy arrays are used
        # in place: no copy in, outputs written straight into NumPy arrays.
        zero_copy = not on_device and self.runtime.host_memory
        buffers = dict(pinned.buffers) if pinned else {}
        for p in self.params:
            v = values[p["name"]]
            if p["name"] in buffers:
                continue
            if len(p["shape"]) and v.size:
                buffers[p["name"]] = v.data if isinstance(v, cla.Array) else self._input_buffer(v, zero_copy)
            elif len(p["shape"]):  # empty: a reduction over it still launches (and reads nothing)
                buffers[p["name"]] = self._scratch(p["dtype"], 1)
        out_arrays, out_buffers = [], []
        for o in self.graph.graph["outputs"]:
            data = self.graph.nodes[o]
            shape = tuple(resolve(d, sizes) for d in data["shape"])
            dtype = dt.NUMPY[dt.concrete(data["dtype"])]
            if zero_copy:
                arr = aligned_empty(shape, dtype, self.runtime.info.host_ptr_alignment)
                buf = cl.Buffer(self.runtime.context, cl.mem_flags.WRITE_ONLY | cl.mem_flags.USE_HOST_PTR, hostbuf=arr) if arr.size else None
            else:
                arr = cla.empty(queue, shape, dtype, allocator=self.runtime.allocator)
                buf = arr.data if arr.size else None
            out_arrays.append(arr)
            out_buffers.append(buf)
        from .runtime.programs import SCALAR_ARG

        # values kernels leave for later kernels: node -> buffer (an output's own, if it is one)
        stored = {o: buf for o, buf in zip(self.graph.graph["outputs"], out_buffers, strict=True)}
        for kernel in self.kernels:
            group = kernel.group
            # a kernel computing only from bound values ran at the first call: its results are kept
            constant = pinned is not None and group.name in pinned.constant_kernels
            if constant and group.name in pinned.kept:
                stored.update(pinned.kept[group.name])
                continue
            for node in group.stores:
                data = self.graph.nodes[node]
                count = math.prod(resolve(d, sizes) for d in data["shape"])
                stored[node] = self._scratch(data["dtype"], count)
            if constant:
                pinned.kept[group.name] = {node: stored[node] for node in group.stores}
            shape = tuple(resolve(d, sizes) for d in group.shape)
            counts = kernel.counts(shape, sizes)
            if group.kind == "reduction":
                if counts["m"] == 0:
                    continue
                dtype = self.graph.nodes[group.anchor]["dtype"]
                partial = self._scratch(dtype, counts["m"] * counts["chunks"], compute=True)
            elif math.prod(shape) == 0:
                continue
            kept, gemm_options = None, {}
            if group.kind == "gemm" and kernel.packs:
                # a bound w is packed once, by the first call, and kept
                keep = pinned is not None and group.operands[1] in pinned.constant_nodes
                kept = pinned.packed.get(group.name) if keep else None
                gemm_options = {"w_bound": keep}
                packed = kept or self._scratch(
                    self.graph.nodes[group.anchor]["dtype"], kernel.packed_elements(counts, keep), compute=True
                )
                if keep and kept is None:
                    pinned.packed[group.name] = packed
                if kernel.packs_x:
                    xpacked = self._scratch(self.graph.nodes[group.anchor]["dtype"], kernel.packed_x_elements(counts), compute=True)
            n = math.prod(shape)
            # a reduction's epilogue indexes its result
            oshape = tuple(resolve(d, sizes) for d in self.graph.nodes[group.anchor]["shape"]) if group.anchor is not None else ()
            for entry, spec, global_size, local_size in kernel.launches(shape, sizes, **gemm_options):
                if kept is not None and entry == f"{group.name}_pack":
                    continue
                call_args = []
                for name, kind, dtype in spec:
                    if kind == "size":
                        call_args.append(np.int64(n))
                    elif kind == "dim":
                        call_args.append(np.int64(shape[int(name[1:])]))
                    elif kind in ("psize", "pdim"):  # a GEMM's x prologue indexes x
                        xshape = tuple(resolve(d, sizes) for d in self.graph.nodes[group.operands[0]]["shape"])
                        call_args.append(np.int64(math.prod(xshape) if kind == "psize" else xshape[int(name[1:])]))
                    elif kind == "osize":
                        call_args.append(np.int64(math.prod(oshape)))
                    elif kind == "odim":
                        call_args.append(np.int64(oshape[int(name[1:])]))
                    elif kind == "count":
                        call_args.append(np.int64(counts[name]))
                    elif kind == "scalar":
                        call_args.append(SCALAR_ARG[dtype](values[name]))
                    elif kind == "buffer":
                        call_args.append(buffers[name])
                    elif kind == "operand":  # a GEMM's x or w: a parameter's buffer or a stored value
                        call_args.append(buffers[name] if name in buffers else stored[int(name[4:])])
                    elif kind in ("temp", "store"):
                        call_args.append(stored[int(name[4:])])
                    elif kind == "partial":
                        call_args.append(partial)
                    elif kind == "packed":
                        call_args.append(xpacked if name == "xpacked" else packed)
                    else:
                        call_args.append(out_buffers[int(name[3:])])
                self._cl_kernels[entry](queue, global_size, local_size, *call_args)
        if on_device:
            result = out_arrays
        elif zero_copy:
            for arr, buf in zip(out_arrays, out_buffers, strict=True):
                if buf is not None:  # mapping makes the device's writes visible in `arr`
                    mapped, _ = cl.enqueue_map_buffer(queue, buf, cl.map_flags.READ, 0, arr.shape, arr.dtype)
                    mapped.base.release(queue)
            queue.finish()
            result = out_arrays
        else:
            result = [o.get(queue) for o in out_arrays]
        return result[0] if len(result) == 1 else tuple(result)

    def _scratch(self, dtype: str, count: int, compute: bool = False):
        """A device buffer for `count` values of `dtype` (in its compute type if `compute`)."""
        from .codegen.opencl_c import COMPUTE, CTYPE_BYTES, STORAGE

        ctype = (COMPUTE if compute else STORAGE)[dtype]
        return self.runtime.allocator(max(1, count) * CTYPE_BYTES[ctype])

    def _input_buffer(self, arr: np.ndarray, zero_copy: bool):
        import pyopencl as cl

        if zero_copy and arr.ctypes.data % self.runtime.info.host_ptr_alignment == 0:
            return cl.Buffer(self.runtime.context, cl.mem_flags.READ_ONLY | cl.mem_flags.USE_HOST_PTR, hostbuf=arr)
        # A copy into a pooled buffer: creating a buffer from host memory
        # allocates (and page-faults) afresh every call, 1.8 ms for 4 MiB on
        # Intel's runtime against 0.1 ms for this. The queue is in order and the
        # call waits for it before returning, so `arr` outlives the copy.
        buf = self.runtime.allocator(arr.nbytes)
        cl.enqueue_copy(self.runtime.queue, buf, arr, is_blocking=False)
        return buf


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
    check_backward(prim)  # backward templates are IR text: checked now, not at a gradient
    return register(prim, replace=replace)
