"""AST -> dataflow graph: name resolution, attribute checks, and the
expressions the registry writes in IR text (backward templates)."""

from __future__ import annotations

import difflib
import functools
import math

import networkx as nx

from ..diagnostics import CompileError, Diagnostic, Pos, error
from ..ir.dtypes import DTYPES
from ..ir.graph import add_node, ir_repr, new_graph
from ..ir.keywords import KEYWORDS
from ..ir.registry import Required, all_primitives, lookup
from .parser import Call, GraphDef, Literal, Module, Name, Return, parse


@functools.cache
def template_ast(template: str):
    """An IR expression written in the registry (a backward or a lowering), parsed."""
    module = parse(f"graph template() {{\n    return {template}\n}}\n")
    (value,) = module.graphs[0].body[0].values
    return value


def evaluate(root, leaf, call, enter=None):
    """Post-order over an expression AST without recursion: `leaf(e)` for a
    name or literal, `call(e, operand_results)` for a call, after its operands,
    and `enter(e)` for a call before them (a check that must come first).
    Iterative because depth is data: generated IR nests 10,000 deep."""
    values: list = []
    work = [(root, False)]
    while work:
        e, operands_done = work.pop()
        if not isinstance(e, Call):
            values.append(leaf(e))
        elif operands_done:
            k = len(values) - len(e.args)
            operands = values[k:]
            del values[k:]
            values.append(call(e, operands))
        else:
            if enter:
                enter(e)
            work.append((e, True))
            work.extend((a, False) for a in reversed(e.args))
    (result,) = values
    return result


def add_expression(g: nx.DiGraph, expr, env: dict, attrs: dict, pos, on_add=None) -> int:
    """Add the nodes of an expression AST to `g`. Names are looked up in `env`
    (node ids), then in `attrs` (values, which become literals); every node
    gets `pos`, and `on_add(node)` is called on each as it is added."""

    def added(n: int) -> int:
        if on_add:
            on_add(n)
        return n

    def leaf(e) -> int:
        if isinstance(e, Name) and e.id in env:
            return env[e.id]
        value = e.value if isinstance(e, Literal) else attrs[e.id]
        return added(add_node(g, "const", pos=pos, value=value))

    def call(e, args) -> int:
        return added(add_node(g, e.op, args, _check_attrs(lookup(e.op), e), pos))

    return evaluate(expr, leaf, call)


def lower_module(module: Module) -> list[nx.DiGraph]:
    """Every graph of a file, checked for name errors; diagnostics gathered per file."""
    seen: dict[str, Pos] = {}
    graphs, diags = [], []
    for gdef in module.graphs:
        if gdef.name in seen:
            p = seen[gdef.name]
            diags.append(
                Diagnostic(f"graph {gdef.name!r} is already defined at line {p.line}", gdef.pos)
            )
            continue
        seen[gdef.name] = gdef.pos
        try:
            graphs.append(lower_graph(gdef))
        except CompileError as e:
            diags.extend(e.diagnostics)
    if diags:
        raise CompileError(diags)
    return graphs


def _literal_key(value) -> tuple:
    # by type and spelling: 1 and 1.0 and true differ, and nan equals nan
    return (type(value), repr(value))


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# A graph costs about 4 kB of memory per node while it compiles (networkx
# dicts, a few copies): 600,000 nodes took 2.3 GB. The bound keeps any input
# within a few GB; generated graphs of 100,000 parameters stay far below it.
MAX_GRAPH_NODES = 500_000


def _bounded(g: nx.DiGraph, pos: Pos) -> None:
    if g.graph["next_node"] >= MAX_GRAPH_NODES:
        raise error(
            f"graph {g.graph['name']!r} has more than {MAX_GRAPH_NODES:,} values (parameters,"
            " literals and operations), the most fusec compiles; split it into several graphs",
            pos,
        )


def lower_graph(gdef: GraphDef) -> nx.DiGraph:
    g = new_graph(gdef.name, gdef.pos)
    scope: dict[str, int] = {}
    ops = all_primitives()

    def define(name: str, pos: Pos):
        if name in KEYWORDS:
            raise error(f"{name!r} is a keyword and cannot name a value", pos)
        if name in ops and not ops[name].internal:
            raise error(f"{name!r} is an op and cannot name a value", pos)
        if name in scope:
            p = g.nodes[scope[name]]["pos"]
            raise error(
                f"{name!r} is already defined at line {p.line}; a name is assigned once, so"
                " give this value a new name",
                pos,
            )

    for p in gdef.params:
        _bounded(g, p.pos)
        define(p.name, p.pos)
        node = add_node(g, "param", pos=p.pos, name=p.name, dtype=p.dtype, shape=p.shape)
        scope[p.name] = node
        g.graph["params"].append(node)

    later = {s.target: s.pos for s in gdef.body if not isinstance(s, Return)}

    current = {"target": None}  # the statement being lowered
    # One node per distinct literal operand: 10,000 statements `y1 = y0 * 2.0 + 1.0`
    # were 20,000 literal nodes that every pass then walked and CSE merged.
    # A literal that is a whole statement's value keeps its own node (and name).
    literals: dict = {}

    def new_literal(e: Literal) -> int:
        _bounded(g, e.pos)
        return add_node(g, "const", pos=e.pos, value=e.value)

    def literal(e: Literal) -> int:
        key = _literal_key(e.value)
        if key not in literals:
            literals[key] = new_literal(e)
        return literals[key]

    def leaf(e) -> int:
        if isinstance(e, Literal):
            return literal(e)
        if e.id in scope:
            return scope[e.id]
        if e.id == current["target"] and e.id not in scope:
            raise error(f"{e.id!r} is used in its own definition", e.pos)
        if e.id in later:
            raise error(f"{e.id!r} is used before its definition at line {later[e.id].line}", e.pos)
        if lookup(e.id) is not None and not lookup(e.id).internal:
            raise error(f"{e.id!r} is an op; call it as {e.id}(...)", e.pos)
        if e.id in DTYPES:
            raise error(
                f"{e.id!r} is a dtype, not a value; to convert, write cast(x, dtype={e.id})", e.pos
            )
        if e.id in KEYWORDS:
            raise error(f"unexpected keyword {e.id!r}; expected an expression", e.pos)
        raise error(f"unknown name {e.id!r}" + _suggest(e.id, scope), e.pos)

    def enter(e: Call) -> None:
        prim = lookup(e.op)
        if prim is None or prim.internal:  # internal ops are made by passes only
            hint = _suggest(e.op, [k for k, v in ops.items() if not v.internal])
            if e.op in scope:
                raise error(f"{e.op!r} is a value, not an op; only ops can be called", e.pos)
            raise error(f"unknown op {e.op!r}" + hint, e.pos)

    def call(e: Call, args: list[int]) -> int:
        _bounded(g, e.pos)
        prim = lookup(e.op)
        attrs = _check_attrs(prim, e)
        if lowering := prim.lowering_for(len(args)):  # a composite: its definition, here
            text = lowering.format(**{k: ir_repr(v) for k, v in attrs})
            return add_expression(
                g, template_ast(text), dict(zip(prim.inputs, args, strict=True)), {}, e.pos
            )
        return add_node(g, e.op, args, attrs, e.pos, infix=e.infix)

    def expr(e) -> int:
        if isinstance(e, Literal):
            return new_literal(e)
        return evaluate(e, leaf, call, enter)

    returns = [s for s in gdef.body if isinstance(s, Return)]
    if not returns:
        raise error(f"graph {gdef.name!r} ends without a return statement", gdef.end or gdef.pos)
    for stmt in gdef.body:
        if isinstance(stmt, Return):
            if stmt is not gdef.body[-1]:
                raise error(f"return must be the last statement of graph {gdef.name!r}", stmt.pos)
            g.graph["outputs"] = [expr(v) for v in stmt.values]
        else:
            current["target"] = stmt.target
            value = expr(stmt.value)
            define(stmt.target, stmt.pos)
            if g.nodes[value].get("name") is None:
                g.nodes[value]["name"] = stmt.target
            scope[stmt.target] = value
    return g


def _check_attrs(prim, call: Call):
    counts = (prim.arity, len(prim.inputs)) if prim.optional_inputs else (prim.arity,)
    if len(call.args) not in counts:
        want = " or ".join(map(str, counts)) + " operand" + ("s" if counts[-1] != 1 else "")
        names = ", ".join(prim.inputs[: prim.arity]) + "".join(
            f"[, {n}]" for n in prim.optional_inputs
        )
        hint = ""
        if len(call.args) > counts[-1] and prim.attrs:
            hint = "; attributes are given by name: " + ", ".join(f"{a}=..." for a in prim.attrs)
        # too many: point at the first operand too many
        pos = call.args[counts[-1]].pos if len(call.args) > counts[-1] else call.pos
        raise error(f"{prim.name} takes {want} ({names}), got {len(call.args)}{hint}", pos)
    given = {}
    for name, value, pos in call.attrs:
        if name not in prim.attrs:
            if not prim.attrs:
                raise error(f"{prim.name} takes no attributes, got {name!r}", pos)
            raise error(
                f"{prim.name} has no attribute {name!r}"
                + _suggest(name, prim.attrs)
                + f" (it takes {', '.join(prim.attrs)})",
                pos,
            )
        if name in given:
            raise error(f"attribute {name!r} is given twice", pos)
        choices = prim.attr_choices.get(name)
        if choices is not None and value not in choices:
            shown = ", ".join(ir_repr(c) for c in choices[:-1])
            shown = f"{shown} or {ir_repr(choices[-1])}" if shown else ir_repr(choices[-1])
            hint = ""
            if isinstance(value, str) and ("dtype", value) in choices:
                hint = f"; a dtype is written without quotes: {name}={value}"
            raise error(f"{prim.name}'s {name} must be {shown}, got {ir_repr(value)}{hint}", pos)
        default = prim.attrs[name]
        like = default.like if isinstance(default, Required) else default
        if like is not None and (why := _attr_type_error(like, value)) is not None:
            raise error(f"{prim.name}'s {name} {why}" + _quoted_hint(name, value), pos)
        given[name] = value
    for name, default in prim.attrs.items():
        if name not in given:
            if isinstance(default, Required):
                raise error(f"{prim.name} needs the attribute {name}=", call.pos)
            given[name] = default
    return tuple(given.items())


def _attr_type_error(default, value) -> str | None:
    """What `value` should have been, by the type of the attribute's default;
    None if it is fine. Any truthy value counted as true before, so
    keepdim="false" kept the dimension."""
    got = f", got {ir_repr(value)}"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false" + got
    if isinstance(default, int):
        return (
            None
            if isinstance(value, int) and not isinstance(value, bool)
            else "must be an integer" + got
        )
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return "is out of range" + got + " (integers are int64)"
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number" + got
        if math.isnan(value):
            return "cannot be nan"
        if math.isinf(value) and not math.isinf(default):
            return "must be finite" + got
    return None


def _quoted_hint(name: str, value) -> str:
    if isinstance(value, str) and value in ("true", "false"):
        return f"; write {name}={value} without quotes"
    return ""
