"""`torch.compile(model, backend="fusec")`: AOTAutograd hands fusec the ATen
forward and backward graphs; torch's capability-based partitioner cuts each
into maximal runs of ops fusec can lower, each run becomes one fusec graph,
and every other node stays a PyTorch op."""

from __future__ import annotations

import dataclasses
import hashlib
import operator
import os
import sys
import warnings

import numpy as np
import torch
from torch._decomp import get_decompositions
from torch._dynamo.backends.common import aot_autograd
from torch._functorch.aot_autograd import make_boxed_func
from torch._functorch.partitioners import min_cut_rematerialization_partition
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from ..api import compile as fusec_compile
from ..diagnostics import FusecError
from . import direct
from .aten_ops import LOWERINGS, NOT_COMPUTING, Unlowerable
from .function import as_tensors
from .lower import Emitter, ir_type, lower_partition
from .outputs import OutputPool
from .report import GraphReport, PartitionReport, current_reports
from .views import absorbable_transpose, apply_view

aten = torch.ops.aten

# Composite ops decomposed before partitioning, into ops that have lowerings
# (LayerNorm into var_mean/rsqrt/mul/add, its backward into sums and products).
DECOMPOSITIONS = get_decompositions(
    [
        aten.native_layer_norm,
        aten.native_layer_norm_backward,
        aten.mse_loss,
        aten.mse_loss_backward,
        aten.hardswish_backward,
        aten.hardsigmoid_backward,
        aten.elu_backward,
        aten.softplus_backward,
        aten.mish_backward,
        aten.addcmul,
        aten.addcdiv,
        # BatchNorm (train: batch statistics and running-stat updates; eval:
        # the running stats) and its backward: means, products and sums
        aten._native_batch_norm_legit_functional,
        aten._native_batch_norm_legit_no_training,
        aten._native_batch_norm_legit,
        aten.native_batch_norm_backward,
        # masked_fill becomes where (cross entropy's label_smoothing and ignore_index)
        aten.masked_fill,
        # dropout's backward: grad * mask * scale (the forward's RNG stays in PyTorch)
        aten.native_dropout_backward,
        aten.lerp,
        # detach becomes alias, as in Inductor's decompositions: the min-cut
        # partitioner may recompute through alias, not through detach, so a
        # detach made it save every value it read (two full-size tensors more
        # from the light chain's forward than its output)
        aten.detach,
    ]
)


def why_not(node) -> str | None:
    """None if fusec can run this node, else the reason it stays in PyTorch."""
    if node.op != "call_function":
        return f"{node.op} nodes stay in PyTorch"
    if absorbable_transpose(node):
        return None
    if node.target not in LOWERINGS:
        return f"no fusec lowering for {node.target}"
    if node.target is aten._to_copy.default:
        extra = {k: v for k, v in node.kwargs.items() if k != "dtype" and v is not None}
        if (
            extra.get("layout", torch.strided) != torch.strided
            or torch.device(extra.get("device", "cpu")).type != "cpu"
        ):
            return "a _to_copy that changes layout or device"
    try:
        values = node.meta.get("val")
        for v in values if isinstance(values, tuple | list) else [values]:
            ir_type(v)
        if node.target is operator.getitem and node.args[0].target not in LOWERINGS:
            return f"a result of {node.args[0].target}, which stays in PyTorch"
        for a in node.all_input_nodes:
            if node.target is not operator.getitem:
                ir_type(a.meta.get("val"))
        probe = Emitter(_ProbeNames(), _ProbeMetas(node), [], set(), _AbsorbedAll())
        probe.node = node
        LOWERINGS[node.target](probe, node)
    except Unlowerable as e:
        return str(e)
    return None


class _ProbeNames(dict):
    """Every operand has a name while probing whether a node lowers."""

    def __missing__(self, node):
        return (node.name, node.name) if node.target is aten.var_mean.correction else node.name


class _ProbeMetas(dict):
    def __init__(self, node):
        super().__init__({a: a.meta.get("val") for a in node.all_input_nodes})


class _AbsorbedAll:
    def __contains__(self, node):
        return absorbable_transpose(node)


class FusecSupport(OperatorSupportBase):
    def __init__(self, reasons: dict):
        self.reasons = reasons

    def is_node_supported(self, submodules, node) -> bool:
        if node.op in ("placeholder", "output"):
            return False  # a graph's inputs and outputs are not computations
        reason = why_not(node)
        if reason is not None:
            self.reasons[node] = reason
        return reason is None


class FusecPartition(torch.nn.Module):
    """A partition as a call of its fusec graph, falling back to the
    partition's own PyTorch code for a call fusec cannot take."""

    def __init__(self, graph, torch_module, lowered):
        super().__init__()
        self.graph = graph
        self.torch_module = torch_module
        self.transposed = frozenset(lowered.transposed)
        self.outputs = lowered.outputs
        self.reshapes = lowered.reshapes or [None] * len(self.outputs)
        # every result once, in order, none a view: the arrays become the tensors as they are
        self.as_is = self.outputs == list(range(len(self.outputs))) and not any(self.reshapes)
        self.pool = OutputPool()

    def forward(self, *args):
        try:
            arrays = self._arrays(args)
        except (AttributeError, TypeError, RuntimeError):
            # not a plain CPU tensor (a Python number, another device, a
            # tensor subclass): the checked call says what fusec takes
            return self._call_checked(args)
        key = tuple(a.shape for a in arrays)
        out = self.pool.take(key)  # outputs of an earlier call that nothing holds now
        try:
            result = self.graph(*arrays) if out is None else self.graph(*arrays, out=out)
        except FusecError as e:
            _log("fusion", f"fusec: {self.graph.name} ran in PyTorch: {e}")
            return self.torch_module(*args)
        if out is None:
            result = result if isinstance(result, tuple) else (result,)
            self.pool.learn(key, result)
            out = result
        return self._picked(out)

    # The GraphModule calls a partition once per call of the compiled model:
    # straight to `forward`, past nn.Module's hook dispatch (no hooks are ever
    # set on a partition; ~0.5 us a call, measured)
    __call__ = forward

    def _arrays(self, args) -> list:
        """NumPy views of the tensors (no copy): fusec's prepared-call path
        takes NumPy arrays like those of an earlier call without checking them
        again. A tensor that requires grad (a parameter, a saved input) is
        viewed with `numpy(force=True)`, detach and view in one step (0.67 us,
        `detach().numpy()` 0.97); only CPU tensors reach a partition (`why_not`)."""
        if not self.transposed:
            return [a.numpy(force=True) if a.requires_grad else a.numpy() for a in args]
        return [
            (a.detach() if a.requires_grad else a).t().numpy()
            if i in self.transposed
            else (a.detach() if a.requires_grad else a).numpy()
            for i, a in enumerate(args)
        ]

    def _call_checked(self, args):
        if not all(isinstance(a, torch.Tensor) and a.device.type == "cpu" for a in args):
            return self.torch_module(*args)
        # DLPack refuses tensors that require grad; AOTAutograd passes parameters as they are
        plain = [a.detach().t() if i in self.transposed else a.detach() for i, a in enumerate(args)]
        try:
            result = self.graph(*plain)
        except FusecError as e:
            _log("fusion", f"fusec: {self.graph.name} ran in PyTorch: {e}")
            return self.torch_module(*args)
        return self._picked(result)

    def _picked(self, result):
        """The partition's outputs, as tensors sharing the memory of fusec's."""
        if self.as_is and type(result) is tuple:  # the common case first (~1 us less)
            if len(result) == 1 and type(result[0]) is np.ndarray:
                return torch.from_numpy(result[0])
            if all(type(r) is np.ndarray for r in result):
                return tuple(map(torch.from_numpy, result))
        result = as_tensors(result)
        result = result if isinstance(result, tuple) else (result,)
        picked = [
            apply_view(result[i], v) for i, v in zip(self.outputs, self.reshapes, strict=True)
        ]
        return picked[0] if len(picked) == 1 else tuple(picked)


def named_by_content(lowered):
    """The graph named after a hash of its text: the same partition compiled
    again (a recompile, another instance of a block) is the same fusec
    program, found in fusec's compile cache and its kernel cache."""
    digest = hashlib.sha1(lowered.text.encode()).hexdigest()[:12]
    text = lowered.text.replace("graph fx_partition(", f"graph fx_{digest}(", 1)
    return dataclasses.replace(lowered, text=text)


LOG_KINDS = ("fusion", "ir")
_warned_log_values: set = set()


def _log(kind: str, text: str) -> None:
    value = os.environ.get("FUSEC_LOG", "")
    kinds = value.replace(" ", "").split(",")
    unknown = sorted(set(kinds) - {*LOG_KINDS, ""})
    if unknown and value not in _warned_log_values:  # a typo would silence the log
        _warned_log_values.add(value)
        warnings.warn(
            f"FUSEC_LOG={value!r}: unknown {', '.join(unknown)}; it takes"
            f" {', '.join(LOG_KINDS)} (comma-separated)",
            stacklevel=2,
        )
    if kind in kinds:
        print(text, file=sys.stderr)


def compile_aten_graph(gm: torch.fx.GraphModule, example_inputs, kind: str):
    """Partition an ATen graph and put a fusec graph in place of every partition."""
    reasons: dict = {}
    partitioner = CapabilityBasedPartitioner(
        gm, FusecSupport(reasons), allows_single_node_partition=True
    )
    computing = []
    for p in partitioner.propose_partitions():
        # a partition of views and identities alone (a lone detach) would be a copy kernel
        if any(
            n.op == "call_function" and n.target in LOWERINGS and n.target not in NOT_COMPUTING
            for n in p.nodes
        ):
            computing.append(p)
        else:
            reasons.update(
                {n: "only views and identities here: nothing for fusec to compute" for n in p.nodes}
            )
    members = [[(n.name, str(n.target)) for n in gm.graph.nodes if n in p.nodes] for p in computing]
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    fallbacks = [(n.name, str(n.target), reasons[n]) for n in sorted(reasons, key=order.get)]
    report = GraphReport(kind=kind, fallbacks=fallbacks)
    # fuse_partitions names the i-th partition's submodule fused_<i>
    fused = partitioner.fuse_partitions(computing)
    calls = {n.target: n for n in fused.graph.nodes if n.op == "call_module"}
    for i, nodes in enumerate(members):
        node = calls[f"fused_{i}"]
        sub = getattr(fused, node.target)
        name = f"{kind} {node.target}"
        try:
            lowered = named_by_content(
                lower_partition(sub, [a.meta.get("val") for a in node.args], "fx_partition")
            )
            name = lowered.text.split("(", 1)[0].removeprefix("graph ")
            graph = fusec_compile(lowered.text)[name]
            graph.build()
        except (Unlowerable, FusecError) as e:
            report.failed.append(PartitionReport(name, nodes, 0, "", str(e)))
            continue
        except Exception as e:  # a fusec bug must not break the user's model: PyTorch runs it
            warnings.warn(
                f"fusec: {name} runs in PyTorch after an internal error: {e!r}", stacklevel=2
            )
            report.failed.append(PartitionReport(name, nodes, 0, "", f"internal error: {e!r}"))
            continue
        report.partitions.append(PartitionReport(name, nodes, len(graph.kernels), lowered.text))
        partition = FusecPartition(graph, sub, lowered)
        setattr(fused, node.target, partition)
        # also an instance attribute: the generated code's `self.fused_<i>`
        # finds it without nn.Module.__getattr__ (~0.4 us a call, measured)
        fused.__dict__[node.target] = partition
        _log("ir", lowered.text)
    fused.recompile()
    # A lazily recompiled GraphModule's `forward` is a stub that recompiles,
    # then calls the module through GraphModule.__call__ and nn.Module's
    # dispatch, every call, when kept as a bound method: generate the code now
    # and keep the generated forward itself (~2 us a call, measured)
    getattr(fused, "real_recompile", lambda: None)()
    for sink in current_reports():
        sink.append(report)
    _log("fusion", str(report))
    return fused.forward


def _forward(gm, example_inputs):
    return make_boxed_func(compile_aten_graph(gm, example_inputs, "forward"))


def _backward(gm, example_inputs):
    return make_boxed_func(compile_aten_graph(gm, example_inputs, "backward"))


def _inference(gm, example_inputs):
    forward = compile_aten_graph(gm, example_inputs, "inference")
    direct.note_inference(gm, forward)
    return make_boxed_func(forward)


_aot = aot_autograd(
    fw_compiler=_forward,
    bw_compiler=_backward,
    inference_compiler=_inference,
    decompositions=DECOMPOSITIONS,
    # Save only what is costly to recompute (Inductor's choice): the default
    # partition saves every intermediate, and a chain's forward then writes
    # each of them to memory for the backward, where fusec recomputes in registers.
    partition_fn=min_cut_rematerialization_partition,
)


def backend(gm: torch.fx.GraphModule, example_inputs, *, mode=None, options=None, **kwargs):
    """The Dynamo backend: `torch.compile(fn, backend="fusec")` (through the
    `torch_dynamo_backends` entry point) or `backend=fusec.torch.backend`.
    `torch.compile`'s `mode` is accepted and changes nothing (fusec compiles
    one way); its `options` are Inductor's, which fusec has none of: named
    in a warning. Other keywords go to AOTAutograd, as for any backend."""
    if options:
        warnings.warn(
            f"fusec's torch.compile backend has no options; ignoring {sorted(options)}",
            stacklevel=2,
        )
    with direct.capturing() as inference:
        compiled = _aot(gm, example_inputs, **kwargs)
    return direct.callable_for(gm, example_inputs, compiled, inference)
