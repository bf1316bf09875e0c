"""Partition a graph into fusion groups, one kernel (or one launch sequence) each.

- An elementwise group is "all the work for the wanted values of one shape":
  graph outputs, and values other kernels read, of one shape share one index
  space and one kernel.
- A reduction ends a group: its kernel computes its elementwise prologue
  (every elementwise op feeding it) in registers and combines.
- A GEMM (`linear`, `matmul`, autodiff's `gemm`) reads its operands from
  memory, so a computed operand is stored by the group that computes it.
- A reduction or GEMM also takes the wanted values of its result's shape
  that it is the last of (bias, activation, residual...): its epilogue.
- A view (`unsqueeze`) is never computed: its kernel reads its root's
  memory under the view's shape, so a computed root is stored.

Only reduction and GEMM results, GEMM operands and views' roots live in
memory between kernels; shared elementwise values are recomputed in each
kernel that needs them (an elementwise op costs less than a round trip
through memory). Groups come out in dependency order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import networkx as nx

from ..ir import dtypes as dt
from ..ir.registry import lookup


@dataclass(frozen=True)
class FusionGroup:
    name: str
    shape: tuple  # the kernel's index space: its outputs' shape, a reduction's operand's, a GEMM's result's
    nodes: tuple  # compute nodes, in topological order
    inputs: tuple  # nodes read from memory: params in signature order, then stored values
    outputs: tuple  # (position in the graph's return, node id)
    reason: str  # why the group boundary is where it is
    kind: str = "elementwise"  # or "reduction", "gemm", "rows" (passes/rows.py)
    anchor: int | None = None  # the reduction or GEMM node of such a group (rows: its last)
    reductions: tuple = ()  # a rows group's reductions, in order (in registers, per row)
    stores: tuple = ()  # nodes whose values later groups read (kept in temporary buffers)
    operands: tuple = ()  # a GEMM's operands (x, w), read from memory
    # A reduction's epilogue: elementwise nodes over its result (outputs and
    # stores above include theirs), and what they read from memory
    epilogue: tuple = ()
    epilogue_inputs: tuple = ()
    # A GEMM's prologue: elementwise nodes computing its x operand as it is
    # loaded (see gemm_prologue), and the params they read
    prologue: tuple = ()
    prologue_inputs: tuple = ()
    # A column group's sums over its leading axes (or all of them), each
    # (result node, summed node); `split`: how many leading axes those are
    sums: tuple = ()
    split: int = 0


def _kind(g, n) -> str | None:
    op = g.nodes[n]["op"]
    return None if op in ("param", "const") else lookup(op).kind


def view_root(g: nx.DiGraph, n: int) -> int:
    """The node whose memory a view (or a chain of them) reads; n itself otherwise."""
    while _kind(g, n) == "view":
        (n,) = g.nodes[n]["args"]
    return n


PROLOGUE_MAX_OPS = 4  # a GEMM recomputes its x prologue once per column panel: only cheap ones


def gemm_prologue(g: nx.DiGraph, gemm: int) -> tuple[tuple, tuple] | None:
    """(nodes, inputs) when a GEMM's x operand is a few elementwise ops on
    parameters that nothing else reads: the GEMM computes it as it loads x."""
    data = g.nodes[gemm]
    x, w = data["args"]
    ta, _ = lookup(data["op"]).transposed(dict(data["attrs"]))
    if (
        ta
        or x == w
        or _kind(g, x) != "elementwise"
        or x in g.graph["outputs"]
        or g.out_degree(x) != 1
    ):
        return None
    region = nx.ancestors(g, x) | {x}
    nodes = [n for n in region if _kind(g, n)]
    if len(nodes) > PROLOGUE_MAX_OPS or any(_kind(g, n) != "elementwise" for n in nodes):
        return None
    inputs = tuple(p for p in g.graph["params"] if p in region)
    if any(g.nodes[p]["dtype"] == "f16" for p in inputs):
        # a half converts as it loads (vload_half), which PoCL calls out of line
        # inside the GEMM's inner loop: f16 linear ran at 28 GFLOP/s there. One
        # elementwise pass storing x as f32 costs ~1% of the product instead.
        return None
    order = {n: i for i, n in enumerate(nx.lexicographical_topological_sort(g))}
    return tuple(sorted(nodes, key=order.get)), inputs


def stored_nodes(g: nx.DiGraph) -> set:
    """Values that live in memory between kernels: reduction and GEMM results,
    computed GEMM operands (a GEMM reads its operands from memory, but for a
    cheap x prologue) and the computed values views look at."""
    anchors = {n for n in g.nodes if _kind(g, n) in ("reduction", "gemm")}
    operands = {a for n in anchors if _kind(g, n) == "gemm" for a in g.nodes[n]["args"]}
    operands -= {
        g.nodes[n]["args"][0] for n in anchors if _kind(g, n) == "gemm" and gemm_prologue(g, n)
    }
    operands |= {view_root(g, n) for n in g.nodes if _kind(g, n) == "view"}
    return anchors | {a for a in operands if _kind(g, a) not in (None, "view")}


def views(g: nx.DiGraph) -> set:
    return {n for n in g.nodes if _kind(g, n) == "view"}


def _region(g: nx.DiGraph, roots, stored: set) -> set:
    """`roots` and what they need, up to (and including) params and stored values
    (a root is computed even when it is stored: it is what the group stores)."""
    seen, stack, roots = set(), list(roots), set(roots)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if g.nodes[n]["op"] == "param" or (n in stored and n not in roots):
            continue
        stack.extend(g.nodes[n]["args"])
    return seen


def _split(g, region: set, stored: set, order: dict, roots=(), skip=()) -> tuple[tuple, tuple]:
    """(compute nodes, inputs) of a region; `skip`: boundary values the kernel has in registers."""
    compute = tuple(
        sorted(
            (
                n
                for n in region
                if _kind(g, n) and (n not in stored or n in roots) and n not in skip
            ),
            key=order.get,
        )
    )
    params = [p for p in g.graph["params"] if p in region]
    inputs = tuple(
        params
        + sorted(
            (n for n in region if n in stored and n not in roots and n not in skip), key=order.get
        )
    )
    return compute, inputs


def fuse(g: nx.DiGraph, max_arg_bytes: int | None = None) -> list[FusionGroup]:
    """The graph's fusion groups; with `max_arg_bytes` (the device's
    CL_DEVICE_MAX_PARAMETER_SIZE), none passes more to its kernel (passes/budget.py)."""
    from .budget import group_bytes, within_budget  # it builds on this module's helpers

    order = {n: i for i, n in enumerate(nx.lexicographical_topological_sort(g))}
    # Regions stop at what is in memory: stored values, and views of them or of params.
    stored = stored_nodes(g) | views(g)
    gname = g.graph["name"]
    outputs = list(enumerate(g.graph["outputs"]))
    reductions = sorted((n for n in stored if _kind(g, n) == "reduction"), key=order.get)
    gemms = sorted((n for n in stored if _kind(g, n) == "gemm"), key=order.get)
    anchors = set(reductions) | set(gemms)
    # What elementwise code must produce: graph outputs, and stored values that
    # are not anchors (a GEMM's computed operand), as (output position or None, node).
    wanted = [(i, o) for i, o in outputs if o not in anchors]
    wanted += [(None, s) for s in sorted(stored - anchors - views(g), key=order.get)]
    specs = []  # dicts, made into FusionGroups once every store is known

    # Chained reductions over the rows of one shape, and the values over those
    # rows that read them (softmax, LayerNorm): one kernel (passes/rows.py).
    from .rows import row_chains  # it builds on this module's helpers

    rowed = set()  # the wanted items row groups compute
    for k, (spec, items) in enumerate(row_chains(g, stored, order, wanted)):
        specs.append({"name": f"{gname}_w{k}", **spec})
        rowed |= set(items)
    chained = {r for spec in specs for r in spec["reductions"]}
    reductions = [r for r in reductions if r not in chained]

    # Each wanted value of an anchor's result shape goes to the last anchor
    # before it, as an epilogue computed from its result in registers: a GEMM's
    # or a reduction's last kernel computes it. Not when it also reads a value
    # computed from that anchor's result (softmax(linear(x, w)) reads the row
    # max of the product): that waits for a later kernel.
    epilogue = {a: [] for a in anchors}
    for item in wanted:
        node = item[1]
        if item in rowed:
            continue
        region = _region(g, [node], stored)
        before = [
            n
            for n in region
            if n in anchors and n not in chained and g.nodes[n]["shape"] == g.nodes[node]["shape"]
        ]
        if not before:
            continue
        last = max(before, key=order.get)
        if not any(
            n in stored and n != last and nx.has_path(g, last, n) for n in region if n != node
        ):
            epilogue[last].append(item)
    taken = {item for items in epilogue.values() for item in items} | rowed

    def epilogue_parts(a):
        """(nodes, inputs, outputs, stores) of anchor a's epilogue; a itself is in registers."""
        mine = epilogue[a]
        roots = [n for _, n in mine]
        nodes, inputs = _split(
            g, _region(g, roots, stored) | {a}, stored, order, roots=roots, skip=[a]
        )
        outs = tuple((i, n) for i, n in mine if i is not None) + tuple(
            (i, o) for i, o in outputs if o == a
        )
        return nodes, inputs, outs, [n for i, n in mine if i is None]

    for k, r in enumerate(reductions):
        (operand,) = g.nodes[r]["args"]
        region = _region(g, [operand], stored) if operand not in stored else {operand}
        nodes, inputs = _split(
            g, region, stored, order, roots=[] if operand in stored else [operand]
        )
        epi_nodes, epi_inputs, outs, stores = epilogue_parts(r)
        specs.append(
            dict(
                name=f"{gname}_r{k}",
                shape=tuple(g.nodes[operand]["shape"]),
                nodes=nodes,
                inputs=inputs,
                outputs=outs,
                kind="reduction",
                anchor=r,
                stores=stores,
                epilogue=epi_nodes,
                epilogue_inputs=epi_inputs,
                reason=f"{g.nodes[r]['op']} to {list(g.nodes[r]['shape'])}: a reduction ends a group"
                + (
                    "; the elementwise ops on its result run after it, in its last kernel"
                    if epi_nodes
                    else ""
                ),
            )
        )

    for k, G in enumerate(gemms):
        nodes, inputs, outs, stores = epilogue_parts(G)
        shape = tuple(g.nodes[G]["shape"])
        prologue, prologue_inputs = gemm_prologue(g, G) or ((), ())
        specs.append(
            dict(
                name=f"{gname}_g{k}",
                shape=shape,
                nodes=nodes,
                inputs=inputs,
                outputs=outs,
                kind="gemm",
                anchor=G,
                stores=stores,
                operands=tuple(g.nodes[G]["args"]),
                prologue=prologue,
                prologue_inputs=prologue_inputs,
                reason=f"{g.nodes[G]['op']} starts a group; elementwise ops on its result of shape {list(shape)} "
                "run in its epilogue",
            )
        )

    levels: dict = {}  # which kernel of its shape computes each item (see _level)
    ancestors = functools.cache(lambda n: nx.ancestors(g, n))
    for item in sorted((it for it in wanted if it not in taken), key=lambda it: order[it[1]]):
        levels[item] = _level(g, item[1], levels, anchors, stored, ancestors)
    by_shape: dict[tuple, list] = {}
    for item in wanted:
        if item not in taken:
            by_shape.setdefault((tuple(g.nodes[item[1]]["shape"]), levels[item]), []).append(item)
    several = len(by_shape) > 1 or bool(anchors)
    for k, ((shape, _), items) in enumerate(by_shape.items()):
        roots = [n for _, n in items]
        nodes, inputs = _split(g, _region(g, roots, stored), stored, order, roots=roots)
        specs.append(
            dict(
                name=f"{gname}_k{k}",
                shape=shape,
                nodes=nodes,
                inputs=inputs,
                outputs=tuple((i, n) for i, n in items if i is not None),
                stores=[n for i, n in items if i is None],
                reason=(
                    f"outputs of shape {list(shape)}; other outputs have other shapes, or follow a reduction or GEMM"
                    if several
                    else "every output has one shape: the whole graph is one kernel"
                ),
            )
        )

    # An anchor other kernels read is stored too.
    read = {
        view_root(g, n)
        for spec in specs
        for n in (
            *spec["inputs"],
            *spec.get("operands", ()),
            *spec.get("epilogue_inputs", ()),
            *spec.get("prologue_inputs", ()),
        )
    }
    for spec in specs:
        for a in (spec.get("anchor"), *spec.get("reductions", ())):
            if a in read and a not in spec["stores"]:
                spec["stores"].append(a)
        # a value that is also a graph output is read back from the output's buffer
        written = {n for _, n in spec["outputs"]}
        spec["stores"] = [n for n in spec["stores"] if n not in written]
    groups = [FusionGroup(**{**spec, "stores": tuple(spec["stores"])}) for spec in specs]
    merged = merge_column_sums(g, groups, order)
    if merged is not groups and group_bytes(g, merged[-1]) <= (max_arg_bytes or math.inf):
        try:
            return _in_dependency_order(g, within_budget(g, merged, max_arg_bytes, order))
        except AssertionError:  # the merge would wait on itself: keep the groups apart
            pass
    return _in_dependency_order(g, within_budget(g, groups, max_arg_bytes, order))


def _level(g, node, levels: dict, anchors: set, stored: set, ancestors) -> int:
    """Which kernel of its shape computes a wanted value: one kernel cannot
    compute a value that reads an anchor (a GEMM, a reduction) which needs
    another of its values (`linear(y, w)` and `linear(b * sum(matmul(y, v)), w)`:
    `b * ...` waits for the sum of a product of `y`), so such a value goes to
    a later kernel of that shape. `levels`: the items before it in topological order."""
    shape = g.nodes[node]["shape"]
    read = [n for n in _region(g, [node], stored) if n in anchors and n != node]
    if not read:
        return 0
    needed = set().union(*(ancestors(a) for a in read))
    after = [
        lv + 1 for (_, n), lv in levels.items() if n in needed and g.nodes[n]["shape"] == shape
    ]
    return max(after, default=0)


def _reads(g, grp: FusionGroup) -> set:
    """The values a group reads from memory (a view's: its root's)."""
    read = (*grp.inputs, *grp.operands, *grp.epilogue_inputs, *grp.prologue_inputs)
    return {view_root(g, n) for n in read}


def _column_sum(g, grp: FusionGroup, groups) -> tuple | None:
    """(result, summed node, leading axes or None for all) when a reduction group
    is a float sum over leading axes, or a sum over all axes, of a value, and
    no other kernel reads its result. A row sum summed again to a scalar (a
    loss) counts as one sum over all axes."""
    if grp.kind != "reduction" or grp.epilogue:
        return None
    data = g.nodes[grp.anchor]
    if data["op"] not in ("sum", "sum_to") or not dt.is_float(data["dtype"]):
        return None
    readers = [h for h in groups if grp.anchor in _reads(g, h)]
    axes, _ = lookup(data["op"]).reduce_shape(tuple(grp.shape), dict(data["attrs"]))
    (operand,) = data["args"]
    if len(axes) == len(grp.shape):
        return (grp.anchor, operand, None) if not readers else None
    if readers or axes != tuple(range(len(axes))):
        if len(readers) != 1 or axes != tuple(range(len(grp.shape) - len(axes), len(grp.shape))):
            return None
        outer = _column_sum(g, readers[0], groups)  # a row sum summed to a scalar?
        if outer is None or outer[2] is not None or grp.outputs or g.out_degree(grp.anchor) != 1:
            return None
        return outer[0], operand, None
    return grp.anchor, operand, len(axes)


def merge_column_sums(g: nx.DiGraph, groups: list, order: dict) -> list:
    """One "columns" group for an index space's elementwise outputs and the sums
    over its leading axes of values in it (a broadcast parameter's gradient:
    dw, db), with sums of such values over all axes (a loss) if any: one pass
    over the space (codegen/column_reduction.py). `groups` itself when none apply."""
    by_space: dict[tuple, list] = {}
    for grp in groups:
        found = _column_sum(g, grp, groups)
        if found:
            by_space.setdefault(grp.shape, []).append((grp, found))
    for shape, found in by_space.items():
        split = {f[2] for _, f in found} - {None}
        if len(split) != 1 or len({g.nodes[f[0]]["dtype"] for _, f in found}) != 1:
            continue  # no sum over leading axes to lay out the columns by, or mixed dtypes
        results = {f[0] for _, f in found}
        taken = [h for h in groups if any(h is grp for grp, _ in found) or h.anchor in results]
        taken += [h for h in groups if h.kind == "elementwise" and h.shape == shape]
        nodes = {n for h in taken for n in h.nodes}
        stores = tuple(n for h in taken if h.kind == "elementwise" for n in h.stores)
        # a value the pass stores for later kernels is in its registers
        inputs = {n for h in taken for n in h.inputs} - results - {h.anchor for h in taken}
        inputs -= set(stores)
        params = [p for p in g.graph["params"] if p in inputs]
        written = {o for h in taken for _, o in h.outputs}
        merged = FusionGroup(
            name=f"{g.graph['name']}_c0",
            shape=shape,
            nodes=tuple(sorted(nodes, key=order.get)),
            inputs=tuple(params + sorted(inputs - set(params), key=order.get)),
            outputs=tuple((i, o) for i, o in enumerate(g.graph["outputs"]) if o in written),
            reason=f"{len(found)} sums over leading axes (or all axes) of values of shape "
            f"{list(shape)} and its elementwise outputs: one pass over it, and one small "
            "kernel that finishes the sums",
            kind="columns",
            stores=stores,
            sums=tuple((f[0], f[1]) for _, f in found),
            split=split.pop(),
        )
        return [h for h in groups if not any(h is t for t in taken)] + [merged]
    return groups


def _in_dependency_order(g, groups: list[FusionGroup]) -> list[FusionGroup]:
    """Groups ordered so that each runs after those storing what it reads (stable)."""
    # a parameter returned as an output is copied by a group, but every group can read it from the start
    producer = {
        n: grp.name
        for grp in groups
        for n in (*grp.stores, *(o for _, o in grp.outputs))
        if g.nodes[n]["op"] != "param"
    }
    done, ordered, pending = set(), [], list(groups)
    while pending:
        for grp in pending:
            read = [
                view_root(g, n)
                for n in (*grp.inputs, *grp.operands, *grp.epilogue_inputs, *grp.prologue_inputs)
            ]
            needs = {producer[n] for n in read if n in producer} - {grp.name}
            if needs <= done:
                ordered.append(grp)
                done.add(grp.name)
                pending.remove(grp)
                break
        else:
            raise AssertionError("fusion groups depend on each other in a cycle")
    return ordered
