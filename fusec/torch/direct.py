"""An inference graph called without AOTAutograd's run-time wrappers, where
AOTAutograd's own analysis says they would do nothing.

AOTAutograd traces every graph (functionalized, decomposed: fusec needs that
ATen graph), and wraps the compiled result in code that runs on every call:
copies back mutated inputs, regenerates outputs that alias inputs, turns grad
mode off for an inference graph, handles effect tokens, tensor subclasses,
RNG state, deduplicated inputs and lifted parameters (light chain at 2^10:
about 4 us of a 27 us call). For an inference graph compiled with grad mode
and autocast off (Dynamo guards on both, so every call runs so too) whose
metadata shows none of those, the wrapper's work is the compiled forward
call itself: the compiled model is then that forward, after one call through
AOTAutograd's function (its first call checks custom ops' aliasing). Training
graphs, and anything unusual here, keep AOTAutograd's function.
"""

from __future__ import annotations

import contextlib
import threading

import torch

_captured = threading.local()  # a thread's inference compiles while the backend runs


@contextlib.contextmanager
def capturing():
    """Collects (forward, AOTAutograd metadata, placeholder count) of the
    inference graphs compiled inside, with `note_inference`."""
    outer = getattr(_captured, "seen", None)
    _captured.seen = seen = []
    try:
        yield seen
    finally:
        _captured.seen = outer


def note_inference(gm: torch.fx.GraphModule, forward) -> None:
    seen = getattr(_captured, "seen", None)
    context = torch._guards.TracingContext.try_get()
    if seen is not None:
        placeholders = sum(1 for n in gm.graph.nodes if n.op == "placeholder")
        seen.append((forward, getattr(context, "fw_metadata", None), placeholders))


def callable_for(dynamo_gm, example_inputs, compiled, seen: list):
    """The compiled forward itself where AOTAutograd's wrapper would only call it,
    else `compiled` (what AOTAutograd returned)."""
    if len(seen) != 1 or not _wrapper_is_a_call(dynamo_gm, example_inputs, *seen[0]):
        return compiled
    forward = seen[0][0]
    first = [True]

    def inference(*args):
        if first[0]:
            first[0] = False
            return compiled(*args)
        return forward(*args)

    return inference


def _wrapper_is_a_call(dynamo_gm, example_inputs, forward, meta, placeholders) -> bool:
    try:
        from torch._functorch._aot_autograd.schemas import OutputType, SubclassCreationMeta

        if torch.is_grad_enabled() or torch._C._is_any_autocast_enabled():
            return False
        if torch._functorch.config.functionalize_rng_ops or meta is None:
            return False
        # nested inputs (compiled autograd's) are flattened by a wrapper;
        # lifted parameters and buffers are prepended to the arguments; a
        # deduplicated or synthetic-base input changes their count
        if any(isinstance(x, list | tuple | dict) for x in example_inputs):
            return False
        if next(dynamo_gm.parameters(), None) is not None:
            return False
        if next(dynamo_gm.buffers(), None) is not None or placeholders != len(example_inputs):
            return False
        if any(
            i.mutates_data or i.mutates_metadata or i.mutates_storage_metadata
            for i in meta.input_info
        ):
            return False
        if any(o.output_type != OutputType.non_alias for o in meta.output_info):
            return False
        subclass_meta = [*meta.subclass_inp_meta, *meta.subclass_fw_graph_out_meta]
        if any(isinstance(m, SubclassCreationMeta) for m in subclass_meta):
            return False
        return not (meta.num_intermediate_bases or meta.tokens or meta.num_graphsafe_rng_states)
    except (AttributeError, ImportError):  # another torch's metadata: keep AOTAutograd's wrapper
        return False
