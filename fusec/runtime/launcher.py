"""A call's values bound to the kernels' arguments, and the launches enqueued.

Per call, only what depends on the call's own arrays is done. What depends on
the shapes alone (global sizes, extents and counts, scratch buffers, which
launches run) is prepared once per shape signature and thread, in kernel
objects whose other arguments are already set: a warm call sets one argument
per array and enqueues. Each thread has its own kernel objects (an OpenCL
kernel's arguments are state), so a graph may be called from many at once.

Host arrays reach the kernels in place where the device shares the host's
memory at any address (fine-grained system SVM: Intel's CPU runtime; PoCL's
CPU device where it reports it); elsewhere they are copied through pooled
device buffers.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pyopencl as cl
import pyopencl.array as cla

from ..codegen.kernel_args import Count, Extent, KernelArg, Output, Param, Scratch, Stored
from ..codegen.opencl_c import COMPUTE, CTYPE_BYTES, STORAGE
from ..diagnostics import CallError
from ..ir import dtypes as dt
from . import device_fast_calls, fast_calls, tensor_calls
from .arguments import SCALAR_ARG, check_argument, check_arguments, check_out
from .device_outputs import new_device_array
from .memory import empty

PREPARED_PER_THREAD = 8  # shape signatures a thread keeps prepared (with their scratch memory)


@dataclass
class Pinned:
    """What `CompiledGraph.bind` fixes: parameter values kept on the device, and
    what is computed from them alone, once, by the first call."""

    values: dict = field(default_factory=dict)  # parameter name -> array on the device, or a number
    sizes: dict = field(default_factory=dict)  # symbols the bound values fix
    constant_kernels: set = field(default_factory=set)  # groups reading only bound values
    packed_w: set = field(default_factory=set)  # GEMM groups whose w is bound
    kept: dict = field(default_factory=dict)  # (group or node, bytes) -> buffer, made once
    done: set = field(default_factory=set)  # launches that ran once and need not run again
    result_kind: str = "numpy"  # outputs' kind when the call itself passes no array
    lock: threading.Lock = field(default_factory=threading.Lock)
    # each thread's prepared shape signatures for this binding: they point at its buffers
    local: threading.local = field(default_factory=threading.local)


def pin(runtime, graph: nx.DiGraph, kernels: list, constants: dict) -> Pinned:
    """Bound parameter values checked and copied to the device (the caller may
    change theirs), and what can be computed from them alone."""
    pinned = Pinned()
    for p in (graph.nodes[n] for n in graph.graph["params"]):
        if p["name"] not in constants:
            continue
        value, kind = check_argument(p, constants[p["name"]], pinned.sizes, runtime.context)
        if p["shape"]:  # a private device copy
            value = (
                value.copy()
                if isinstance(value, cla.Array)
                else cla.to_device(runtime.queue, value)
            )
            if pinned.result_kind == "numpy" and kind == "device":
                pinned.result_kind = "device"
        pinned.values[p["name"]] = value
    # Values computed from bound parameters alone (a weight's cast to f32,
    # w * 2), and the kernels that compute nothing else: run once, kept.
    constant = set()
    for n in nx.topological_sort(graph):
        data = graph.nodes[n]
        if (
            data["op"] == "const"
            or (data["op"] == "param" and data["name"] in constants)
            or (data["op"] != "param" and data["args"] and all(a in constant for a in data["args"]))
        ):
            constant.add(n)
    for k in kernels:
        group = k.group
        reads = {*group.inputs, *group.operands, *group.epilogue_inputs, *group.prologue_inputs}
        # a GEMM running a row kernel's rows (codegen/gemm_rows.py) runs every call
        tail = getattr(k, "tail", None)
        if not group.outputs and group.stores and reads <= constant and tail is None:
            pinned.constant_kernels.add(group.name)
        if group.kind == "gemm" and k.packs and group.operands[1] in constant:
            pinned.packed_w.add(group.name)
    return pinned


@dataclass
class PreparedLaunch:
    kernel: cl.Kernel  # this thread's kernel object, arguments that do not change already set
    global_size: tuple
    local_size: tuple | None
    per_call: tuple  # (argument index, source) set on every call
    once: object = None  # a bound graph's launch that runs at the first call only


@dataclass
class Prepared:
    launches: list[PreparedLaunch]
    output_shapes: list[tuple[int, ...]]
    keep_alive: list  # scratch buffers the kernel objects point at


class Launcher:
    """Runs one compiled graph's kernels from its built program."""

    def __init__(self, runtime, graph: nx.DiGraph, kernels: list, program: cl.Program):
        self.runtime, self.graph, self.kernels, self.program = runtime, graph, kernels, program
        self.params = [graph.nodes[p] for p in graph.graph["params"]]
        self.outputs = [graph.nodes[o] for o in graph.graph["outputs"]]
        self.output_dtypes = [dt.NUMPY[dt.concrete(o["dtype"])] for o in self.outputs]
        self.output_index = {node: i for i, node in enumerate(graph.graph["outputs"])}
        self.symbols = sorted(
            {d for p in self.params for d in p["shape"] if not isinstance(d, int)}
        )
        self._local = threading.local()

    # -- a call --------------------------------------------------------------------

    def fast_call(self, args: tuple, pinned: Pinned | None = None, out=None):
        """The outputs of a call like one `call` recorded (fast_calls.py), or None."""
        fast = getattr(pinned.local if pinned is not None else self._local, "fast", None)
        entry = fast.get(fast_calls.exact_key(args)) if fast else None
        views = tensor_calls.numpy_views(args) if entry is None and fast else None
        if views is not None:  # PyTorch CPU tensors
            entry = fast.get(fast_calls.exact_key(views))
            return (
                None
                if entry is None
                else tensor_calls.run(entry, args, views, self.runtime.queue, out)
            )
        if entry is None and fast and pinned is None and out is None:  # device arrays
            key = device_fast_calls.device_key(args, self.runtime.context)
            entry = fast.get(key) if key is not None else None
            return None if entry is None else device_fast_calls.run(entry, args, self.runtime)
        return None if entry is None else fast_calls.run(entry, args, self.runtime.queue, out)

    def call(self, bound: dict, out=None, pinned: Pinned | None = None):
        values = check_arguments(self.params, bound, self.runtime.context, pinned)
        key = tuple(values.sizes.get(s) for s in self.symbols)
        local = pinned.local if pinned is not None else self._local
        cache = self._thread_cache(local)
        prepared = cache.get(key)
        if prepared is None:
            prepared = self._prepare(values.sizes, pinned)
            cache[key] = prepared
            if len(cache) > PREPARED_PER_THREAD:  # its kernel objects serve the next new signature
                _, evicted = cache.popitem(last=False)
                local.fast = {}  # some of its records point at the evicted kernel objects
                spare = self._spare_kernels()
                for launch in evicted.launches:
                    spare.setdefault(launch.kernel.function_name, []).append(launch.kernel)
        else:
            cache.move_to_end(key)
        on_device = values.result_kind == "device"
        outputs = (
            check_out(out, prepared.output_shapes, self.output_dtypes) if out is not None else None
        )
        if outputs is None:
            outputs = [
                self._new_output(shape, dtype, on_device)
                for shape, dtype in zip(prepared.output_shapes, self.output_dtypes, strict=True)
            ]
        queue = self.runtime.queue
        copies = []  # (host array, device buffer): outputs copied back to the host after the launches
        out_args = [self._array_arg(arr, copies) for arr in outputs]
        in_args = {
            name: self._array_arg(v, None) if isinstance(v, np.ndarray | cla.Array) else v
            for name, v in values.arrays.items()
        }
        for launch in prepared.launches:
            if launch.once is None:
                self._enqueue(launch, out_args, in_args)
                continue
            with (
                pinned.lock
            ):  # enqueued before any other thread's launch that reads what it computes
                if launch.once not in pinned.done:
                    self._enqueue(launch, out_args, in_args)
                    pinned.done.add(launch.once)
        for host, buf in copies:
            cl.enqueue_copy(queue, host, buf, is_blocking=False)
        # Only a call whose arrays all live on the device returns before its kernels
        # finish; with any host array in it, the caller may read or reuse that array now.
        if not all(
            isinstance(a, cla.Array)
            for a in (*outputs, *values.arrays.values())
            if not _is_scalar(a)
        ):
            queue.finish()
        if self.runtime.system_svm and values.result_kind in ("numpy", "foreign"):
            # a tensor's checked NumPy view: tensor_calls replays it
            checked = bound if values.result_kind == "numpy" else values.arrays
            fast_calls.remember(local, self, checked, prepared, pinned)
        elif on_device and pinned is None and out is None:
            device_fast_calls.remember(local, self, bound, prepared)
        results = (
            [values.convert_output(o) for o in outputs] if out is None else list(_as_tuple(out))
        )
        return results[0] if len(results) == 1 else tuple(results)

    def _enqueue(self, launch: PreparedLaunch, out_args: list, in_args: dict) -> None:
        kernel = launch.kernel
        for index, src in launch.per_call:
            if isinstance(src, Output):
                kernel.set_arg(index, out_args[src.index])
            elif isinstance(src, Stored):  # a graph output a later kernel reads
                kernel.set_arg(index, out_args[self.output_index[src.node]])
            else:
                kernel.set_arg(index, in_args[src.name])
        cl.enqueue_nd_range_kernel(
            self.runtime.queue, kernel, launch.global_size, launch.local_size
        )

    @staticmethod
    def _thread_cache(local: threading.local) -> OrderedDict:
        cache = getattr(local, "prepared", None)
        if cache is None:
            cache = local.prepared = OrderedDict()
        return cache

    def _array_arg(self, arr, copies):
        """What a kernel argument is set to for an array: the device's view of it."""
        if isinstance(arr, cla.Array):
            return arr.base_data if arr.size else self._dummy()
        if not arr.size:
            return self._dummy()
        if self.runtime.system_svm:  # used where it is
            return cl.SVM(arr if arr.flags.writeable else _writable_alias(arr))
        buf = self._alloc(arr.nbytes)
        if copies is None:  # an input: copied in (the in-order queue runs it before the kernels)
            cl.enqueue_copy(self.runtime.queue, buf, arr, is_blocking=False)
        else:
            copies.append((arr, buf))
        return buf

    def _new_output(self, shape, dtype, on_device: bool):
        try:
            if on_device:
                with self.runtime.allocator_lock:
                    return new_device_array(
                        self.runtime.queue, shape, dtype, self.runtime.allocator
                    )
            return empty(shape, dtype)
        except (MemoryError, cl.MemoryError, ValueError) as e:
            nbytes = math.prod(shape) * np.dtype(dtype).itemsize
            raise CallError(
                f"cannot allocate an output of shape {list(shape)} ({nbytes:,} bytes): {e}"
            ) from None

    # -- preparing a shape signature ----------------------------------------------

    def _prepare(self, sizes: dict, pinned: Pinned | None) -> Prepared:
        g = self.graph
        keep, launches = [], []
        stored: dict[int, object] = {}  # node -> buffer, for values that are not outputs

        def resolve(shape):
            return tuple(d if isinstance(d, int) else sizes[d] for d in shape)

        def buffer_for(dtype: str, count: int, compute: bool, kept_as=None):
            nbytes = max(1, count) * CTYPE_BYTES[(COMPUTE if compute else STORAGE)[dtype]]
            if kept_as is not None:  # made once for a bound graph, shared by every thread
                with pinned.lock:
                    buf = pinned.kept.get((kept_as, nbytes))
                    if buf is None:
                        buf = pinned.kept[(kept_as, nbytes)] = self._alloc(nbytes)
                return buf
            buf = self._alloc(nbytes)
            keep.append(buf)
            return buf

        for kernel in self.kernels:
            group = kernel.group
            constant = pinned is not None and group.name in pinned.constant_kernels
            for node in group.stores:
                count = math.prod(resolve(g.nodes[node]["shape"]))
                stored[node] = buffer_for(
                    g.nodes[node]["dtype"], count, False, node if constant else None
                )
            shape = resolve(group.shape)
            counts = kernel.counts(shape, sizes)
            if group.kind == "reduction" and counts["m"] == 0:
                continue
            if group.kind == "rows" and counts["rows"] == 0:
                continue
            if group.kind not in ("reduction", "columns", "rows") and math.prod(shape) == 0:
                continue
            spaces = {"group": shape}
            if group.anchor is not None:  # a reduction's epilogue indexes its result
                spaces["result"] = resolve(g.nodes[group.anchor]["shape"])
            if group.operands:  # a GEMM's prologue indexes x
                spaces["prologue"] = resolve(g.nodes[group.operands[0]]["shape"])
            options, scratch = {}, {}
            w_bound = pinned is not None and group.name in pinned.packed_w
            if group.kind == "gemm":
                options = {"w_bound": w_bound}
                dtype = g.nodes[group.anchor]["dtype"]
                scratch["packed"] = buffer_for(
                    dtype,
                    kernel.packed_elements(counts, w_bound),
                    True,
                    group.name if w_bound else None,
                )
                scratch["xpacked"] = buffer_for(dtype, kernel.packed_x_elements(counts), True)
            elif group.kind == "reduction":
                scratch["partial"] = buffer_for(
                    g.nodes[group.anchor]["dtype"], counts["m"] * counts["chunks"], True
                )
            elif group.kind == "columns":
                scratch["partial"] = buffer_for(kernel.dtype, kernel.partial_elements(counts), True)
            for launch in kernel.launches(shape, sizes, **options):
                # a bound graph computes these at its first call only
                once = (
                    launch.entry
                    if constant or (w_bound and launch.entry == f"{group.name}_pack")
                    else None
                )
                cl_kernel = self._kernel(launch.entry)
                per_call = []
                for index, arg in enumerate(launch.args):
                    value = self._constant_value(arg, spaces, counts, scratch, stored, pinned)
                    if value is _PER_CALL:
                        per_call.append((index, arg.source))
                    else:
                        cl_kernel.set_arg(index, value)
                launches.append(
                    PreparedLaunch(
                        cl_kernel, launch.global_size, launch.local_size, tuple(per_call), once
                    )
                )
        output_shapes = [resolve(o["shape"]) for o in self.outputs]
        return Prepared(launches, output_shapes, keep)

    def _constant_value(self, arg: KernelArg, spaces, counts, scratch, stored, pinned):
        """The argument's value if it is the same for every call of this shape, else _PER_CALL."""
        src = arg.source
        if isinstance(src, Extent):
            shape = spaces[src.space]
            return np.int64(math.prod(shape) if src.axis is None else shape[src.axis])
        if isinstance(src, Count):
            return np.int64(counts[src.name])
        if isinstance(src, Scratch):
            return scratch[src.role]
        if isinstance(src, Stored):
            return stored[src.node] if src.node in stored else _PER_CALL
        if isinstance(src, Param) and pinned is not None and src.name in pinned.values:
            value = pinned.values[src.name]
            if src.by_value:
                return SCALAR_ARG[arg.dtype](value)
            return value.base_data if value.size else self._dummy()
        return _PER_CALL  # a parameter's array or number, an output

    def _kernel(self, entry: str) -> cl.Kernel:
        """A kernel object of this thread's own, for one shape signature: an
        evicted signature's (its arguments are all set again), else a new one
        (clCreateKernel costs ~0.6 ms on Intel's runtime)."""
        spare = self._spare_kernels().get(entry)
        return spare.pop() if spare else cl.Kernel(self.program, entry)

    def _spare_kernels(self) -> dict:
        spare = getattr(self._local, "spare", None)
        if spare is None:
            spare = self._local.spare = {}
        return spare

    def _alloc(self, nbytes: int):
        with self.runtime.allocator_lock:  # the memory pool is shared by every thread and graph
            try:
                return self.runtime.allocator(max(1, nbytes))
            except (cl.MemoryError, cl.LogicError) as e:  # LogicError: over the largest buffer
                raise CallError(
                    f"cannot allocate {nbytes:,} bytes on {self.runtime.info.name}: {e}"
                ) from None

    def _dummy(self):
        dummy = getattr(self._local, "dummy", None)
        if dummy is None:  # an empty array: a kernel over it launches (and reads nothing)
            dummy = self._local.dummy = self._alloc(8)
        return dummy


_PER_CALL = object()


def _writable_alias(arr: np.ndarray) -> np.ndarray:
    """The same memory as a writable array: pyopencl's SVM wrapper insists on one,
    though the kernels never write their inputs."""
    raw = (ctypes.c_char * arr.nbytes).from_address(arr.ctypes.data)
    return np.frombuffer(raw, np.uint8)


def _is_scalar(value) -> bool:
    return isinstance(value, np.generic)


def _as_tuple(out):
    return out if isinstance(out, tuple | list) else (out,)
