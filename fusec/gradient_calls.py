"""The gradient half of a compiled graph's API: its derived backward graphs
and the calls that run them (`value_and_grad`, `vjp`). A mixin of
`fusec.api.CompiledGraph`, which supplies `name`, `graph`, `param_names`
and `derived`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .diagnostics import CallError
from .ir import dtypes as dt
from .runtime.arguments import bind_arguments

if TYPE_CHECKING:
    from .api import CompiledGraph


class GradientCalls:
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
                raise CallError(f"{self.name}: output {i} is {o['dtype']}, not float: its grad_outputs entry must be None")
            if i in floats and ct is None:
                raise CallError(f"{self.name}: grad_outputs[{i}] is None, but output {i} is float")
        return [grad_outputs[i] for i in floats]
