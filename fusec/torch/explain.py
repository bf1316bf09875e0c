"""`fusec.torch.explain(fn, *args)`: compile `fn` with the fusec backend, run
it once (and its backward, when its outputs need gradients) and say which
nodes went into which fusec graph, with its kernel count, and why every other
node stayed in PyTorch."""

from __future__ import annotations

import torch

from .compiler import backend
from .report import Explanation, collecting


def explain(fn, *args, dynamic: bool | None = None, **kwargs) -> Explanation:
    """The report of every graph compiled while running `fn(*args, **kwargs)`
    once; `str()` of it is the readable form. Gradients are computed with
    `torch.autograd.grad` (the backward graph is compiled too), so no `.grad`
    of the caller's tensors or parameters changes."""

    def explaining(gm, example_inputs):  # a backend of its own: Dynamo's cached code is not reused
        return backend(gm, example_inputs)

    compiled = torch.compile(fn, backend=explaining, dynamic=dynamic)
    with collecting(Explanation()) as report:
        result = compiled(*args, **kwargs)
        outputs = [t for t in _tensors(result) if t.requires_grad and t.grad_fn is not None]
        wrt = [t for t in _tensors((args, kwargs)) if t.requires_grad and t.is_leaf]
        if isinstance(fn, torch.nn.Module):
            wrt += [p for p in fn.parameters() if p.requires_grad]
        if outputs and wrt:
            torch.autograd.grad(
                outputs, wrt, [torch.ones_like(t) for t in outputs], allow_unused=True
            )
    return report


def _tensors(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []
