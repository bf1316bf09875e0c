"""Reverse-mode autodiff: a graph -> the graph of its vector-Jacobian product.

Each op's gradient is a backward template in its registry entry, written in
the IR itself (relu's is `where(out > 0, g, 0)`). Walking the forward graph in
reverse topological order, every node's cotangent is pushed through its
templates to its operands; a value used several times sums its shares; a
share of an operand that was broadcast is summed back to its shape
(`sum_to`). The result is an ordinary graph, typed as it is built, that
simplify and fuse treat like any other: forward values the backward needs are
recomputed in its kernels, not saved.
"""

from __future__ import annotations

import networkx as nx

from ..diagnostics import error
from ..frontend.lower import add_expression, template_ast
from ..frontend.parser import Call, Literal, Name
from ..ir import dtypes as dt
from ..ir.graph import add_node, ir_repr
from ..ir.registry import Primitive, Required, lookup
from .infer import infer_node

COTANGENT_PREFIX = "grad_out"  # the backward's extra parameters: grad_out0, grad_out1, ...


def grad_graph(g: nx.DiGraph, *, with_forward: bool) -> nx.DiGraph:
    """The VJP of a typed graph.

    Parameters: g's, then one cotangent per float output (`grad_out<i>`, the
    output's shape and dtype). Outputs: g's outputs when `with_forward`, then
    the gradient of every float parameter, in signature order.
    """
    j = g.copy()
    j.graph["name"] = g.graph["name"] + ("_fwd_bwd" if with_forward else "_bwd")
    j.graph["params"] = list(g.graph["params"])
    order = list(nx.lexicographical_topological_sort(g))
    float_params = [p for p in g.graph["params"] if dt.is_float(g.nodes[p]["dtype"])]
    needs = set(float_params)  # float values that depend on a float parameter
    for n in order:
        data = g.nodes[n]
        if data["op"] not in ("param", "const") and dt.is_float(data["dtype"]):
            if any(a in needs for a in data["args"]):
                needs.add(n)

    taken = {g.nodes[p]["name"] for p in g.graph["params"]}
    cotangent: dict[int, int] = {}
    cotangent_params = []
    for i, out in enumerate(g.graph["outputs"]):
        if not dt.is_float(g.nodes[out]["dtype"]):
            continue
        name = f"{COTANGENT_PREFIX}{i}"
        while name in taken:
            name += "_"
        data = g.nodes[out]
        c = add_node(
            j, "param", pos=data["pos"], name=name, dtype=data["dtype"], shape=data["shape"]
        )
        cotangent_params.append(c)
        if out in needs:
            _accumulate(j, cotangent, out, c)
    j.graph["params"] += cotangent_params

    for n in reversed(order):
        data = g.nodes[n]
        if n not in cotangent or data["op"] in ("param", "const"):
            continue
        prim = lookup(data["op"])
        attrs = dict(data["attrs"])
        given = prim.inputs[: len(data["args"])]  # without optional inputs left out
        for arg, input_name in zip(data["args"], given, strict=True):
            if arg not in needs:
                continue
            template = prim.backward_for(input_name, attrs)
            if template is None:
                raise error(
                    f"{prim.name} has no gradient for its operand {input_name!r}", data["pos"]
                )
            env = dict(zip(given, data["args"], strict=True))
            env.update(out=n, g=cotangent[n])
            share = instantiate(j, template, env, attrs, data["pos"])
            if share is None:  # "0": this operand gets nothing from this use
                continue
            share = _fit(j, share, g.nodes[arg], data["pos"])
            _accumulate(j, cotangent, arg, share)

    grads = []
    for p in float_params:
        if p in cotangent:
            grads.append(cotangent[p])
        else:  # no differentiable path from p to an output: zeros
            grads.append(_typed(j, "zeros_like", (p,), (), g.nodes[p]["pos"]))
    j.graph["outputs"] = (list(g.graph["outputs"]) if with_forward else []) + grads
    j.graph["grad_of"] = [g.nodes[p]["name"] for p in float_params]
    j.graph["forward_outputs"] = len(g.graph["outputs"]) if with_forward else 0
    j.graph["forward_nodes"] = tuple(sorted(g.nodes))  # for the plan: what is recomputed
    return j


def _accumulate(j, cotangent: dict, node: int, share: int) -> None:
    if node in cotangent:
        share = _typed(j, "add", (cotangent[node], share), (), j.nodes[share]["pos"])
    cotangent[node] = share


def _fit(j, share: int, target: dict, pos) -> int:
    """A share of an operand's gradient in the operand's shape and dtype."""
    if tuple(j.nodes[share]["shape"]) != tuple(target["shape"]):
        share = _typed(j, "sum_to", (share,), (("shape", tuple(target["shape"])),), pos)
    if j.nodes[share]["dtype"] != target["dtype"]:
        share = _typed(j, "cast", (share,), (("dtype", ("dtype", target["dtype"])),), pos)
    return share


def _typed(j, op: str, args, attrs, pos) -> int:
    n = add_node(j, op, args, attrs, pos)
    infer_node(j, n)
    return n


def instantiate(j, template: str, env: dict, attrs: dict, pos) -> int | None:
    """Add a backward template's nodes to `j`, each typed as it is added; None for `0`.
    `{name}` in the template is an attribute's value, as IR text (a reduction's axis)."""
    if "{" in template:
        template = template.format(**{k: ir_repr(v) for k, v in attrs.items()})
    expr = template_ast(template)
    if isinstance(expr, Literal) and expr.value == 0:
        return None
    return add_expression(j, expr, env, attrs, pos, on_add=lambda n: infer_node(j, n))


def check_backward(prim: Primitive) -> None:
    """Reject a backward template that does not parse or names unknown values."""
    known = set(prim.inputs) | set(prim.attrs) | {"out", "g"}
    for key, template in prim.backward.items():
        input_name = key.split("|")[0]
        if input_name not in prim.inputs:
            raise ValueError(f"backward of {prim.name!r} is keyed by {key!r}, not an input")
        try:
            defaults = {
                k: ir_repr(0 if isinstance(v, Required) else v) for k, v in prim.attrs.items()
            }
            expr = template_ast(template.format(**defaults) if "{" in template else template)
        except Exception as e:  # a CompileError from the parser: say which template
            raise ValueError(
                f"backward of {prim.name!r} for {key!r} does not parse: {template!r}"
            ) from e
        stack = [expr]
        while stack:
            e = stack.pop()
            if isinstance(e, Name) and e.id not in known:
                raise ValueError(f"backward of {prim.name!r} for {key!r} names {e.id!r}")
            if isinstance(e, Call):
                if lookup(e.op) is None:
                    raise ValueError(
                        f"backward of {prim.name!r} for {key!r} calls unknown op {e.op!r}"
                    )
                stack.extend(e.args)
