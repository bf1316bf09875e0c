"""`fusec.torch.function(graph)`: a graph compiled with `grad=True` as a tensor
callable that autograd differentiates with fusec's fused backward graph."""

from __future__ import annotations

import numpy as np
import torch

from ..api import CompiledGraph
from ..diagnostics import CallError
from ..ir import dtypes as dt


def as_tensors(result):
    """A call's outputs as tensors: when every tensor argument is 0-d, fusec's
    call path takes them as scalars and returns NumPy arrays (no copy back)."""
    if isinstance(result, tuple):
        return tuple(as_tensors(r) for r in result)
    return result if isinstance(result, torch.Tensor) else torch.from_numpy(np.asarray(result))


def function(graph: CompiledGraph):
    """`f = fusec.torch.function(fusec.compile(text, grad=True)["name"])`; then
    `f(x, w)` returns tensors, and `loss.backward()` runs `graph.backward`."""
    if not isinstance(graph, CompiledGraph):
        raise CallError(
            f"fusec.torch.function takes a compiled graph (fusec.compile(...)[name]), got {type(graph).__name__}"
        )
    if not graph.derived:
        raise CallError(
            f"{graph.name} was compiled without gradients: compile it with fusec.compile(..., grad=True)"
        )
    outputs = [graph.graph.nodes[o] for o in graph.graph.graph["outputs"]]
    float_outputs = [i for i, o in enumerate(outputs) if dt.is_float(o["dtype"])]
    grad_of = graph.backward.graph.graph["grad_of"]
    position = {name: i for i, name in enumerate(graph.param_names)}

    class FusecFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):
            # DLPack refuses a tensor that requires grad; the data is the same
            plain = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
            result = as_tensors(graph(*plain))
            ctx.save_for_backward(*[a for a in plain if isinstance(a, torch.Tensor)])
            ctx.arg_kinds = [isinstance(a, torch.Tensor) for a in plain]
            ctx.scalars = [None if isinstance(a, torch.Tensor) else a for a in plain]
            results = result if isinstance(result, tuple) else (result,)
            ctx.mark_non_differentiable(
                *[r for i, r in enumerate(results) if i not in float_outputs]
            )
            return result

        @staticmethod
        def backward(ctx, *grads):
            saved = iter(ctx.saved_tensors)
            inputs = [
                next(saved) if is_tensor else s
                for is_tensor, s in zip(ctx.arg_kinds, ctx.scalars, strict=True)
            ]
            cotangents = [grads[i] for i in float_outputs]
            result = as_tensors(graph.backward(*inputs, *cotangents))
            result = result if isinstance(result, tuple) else (result,)
            out: list = [None] * len(inputs)
            for name, grad in zip(grad_of, result, strict=True):
                if ctx.needs_input_grad[position[name]]:
                    out[position[name]] = grad
            return tuple(out)

    def call(*args, **kwargs):
        from ..api import bind_arguments

        bound = bind_arguments(graph.name, graph.param_names, args, kwargs)
        return FusecFunction.apply(*[bound[n] for n in graph.param_names])

    call.__name__ = graph.name
    call.__doc__ = (
        f"fusec graph {graph.name}({', '.join(graph.param_names)}), differentiable by autograd"
    )
    call.graph = graph
    return call
