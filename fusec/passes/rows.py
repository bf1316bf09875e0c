"""Row groups: chained reductions over the trailing axes of one row space, in one kernel.

softmax is `max` over each row, then `sum(exp(x - max))` over the same row,
then `exp(x - max) / sum` over the row again; LayerNorm is `mean`, then the
variance (reading the mean), then the normalised row; softmax's backward is
`sum(g * y)`, then `y * (g - sum)`. Each reduction's prologue reads the
earlier ones' results broadcast back along the row. As separate groups that
is two launches per reduction and one more for the output, each reading the
row from memory again. A row group computes all of it in one kernel: each
row's reductions one after another (a later one reads the earlier results
from registers, the row from cache: it was just read), then the wanted values
over the row (`items` of the row space's shape) and those over the result
(`items` of the reductions' result shape, the group's epilogue).

A reduction joins the chain of its row space (operand shape, first reduced
axis) when it reduces float values over trailing axes only, and every value
it reads from memory is computed before the chain starts (no path from a
member to it) and is constant along a row or matches the row. A chain is
worth a group with two reductions or more, or one and a wanted value over the
row; a lone reduction keeps the two-stage kernel (reduction.py), which also
splits long rows over several work-items.
"""

from __future__ import annotations

import networkx as nx

from ..ir import dtypes as dt
from ..ir.registry import lookup
from .fuse import _kind, _region, _split, view_root


def row_space(g: nx.DiGraph, r: int) -> tuple[tuple, int] | None:
    """(operand shape, first reduced axis) of a float reduction over trailing axes only."""
    data = g.nodes[r]
    if not dt.is_float(data["dtype"]):
        return None
    (operand,) = data["args"]
    shape = tuple(g.nodes[operand]["shape"])
    axes, _ = lookup(data["op"]).reduce_shape(shape, dict(data["attrs"]))
    split = len(shape) - len(axes)
    if not axes or not split or tuple(axes) != tuple(range(split, len(shape))):
        return None  # a reduction over every axis is one row: the two-stage kernel splits it
    return shape, split


def _fits_row(shape, space: tuple, split: int, constant: bool = False) -> bool:
    """Whether a value of `shape` read over the row space is constant along a
    row or (unless `constant`) matches the row there."""
    aligned = (1,) * (len(space) - len(shape)) + tuple(shape)
    tail = aligned[split:]
    return set(tail) <= {1} or (not constant and tail == space[split:])


class _Chain:
    def __init__(self, g, stored, order, space, split):
        self.g, self.stored, self.order = g, stored, order
        self.space, self.split = space, split
        self.members: list[int] = []
        self.after: set = set()  # everything computed from a member

    def in_registers(self) -> set:
        """Members and the views of them: values the kernel holds per row."""
        mine = set(self.members)
        return mine | {
            v for v in self.stored if _kind(self.g, v) == "view" and view_root(self.g, v) in mine
        }

    def region(self, roots) -> set:
        return _region(self.g, roots, self.stored)

    def reads_ok(self, region: set, row_space: bool) -> bool:
        """Every value of the region read from memory is ready before the chain
        starts; over the row space, each read fits the row layout."""
        g, held = self.g, self.in_registers()
        for n in region:
            if n in held:
                if row_space and not _fits_row(g.nodes[n]["shape"], self.space, self.split, True):
                    return False  # a [B] result read over [B, N] broadcasts along the row
                continue
            memory = g.nodes[n]["op"] == "param" or n in self.stored
            if not memory:
                continue
            if view_root(g, n) in self.after or n in self.after:
                return False
            if row_space and not _fits_row(g.nodes[n]["shape"], self.space, self.split):
                return False
        return True

    def try_add(self, r: int) -> None:
        (operand,) = self.g.nodes[r]["args"]
        region = self.region([operand]) if operand not in self.stored else {operand}
        if self.reads_ok(region, row_space=True):
            self.members.append(r)
            self.after |= nx.descendants(self.g, r)


def row_chains(g: nx.DiGraph, stored: set, order: dict, wanted: list) -> list[tuple[dict, list]]:
    """Each row chain worth a kernel, as fuse's spec dict (kind "rows") and
    the wanted items it computes (over the row space and over the result)."""
    spaces: dict[tuple, list] = {}
    for r in sorted((n for n in stored if _kind(g, n) == "reduction"), key=order.get):
        found = row_space(g, r)
        if found is not None:
            spaces.setdefault(found, []).append(r)
    chains, claimed = [], set()
    for (space, split), candidates in spaces.items():
        while candidates:  # a chain, then another of those that could not join it
            chain = _Chain(g, stored, order, space, split)
            for r in candidates:
                chain.try_add(r)
            if not chain.members:  # the first reads what does not fit a row: it stays alone
                candidates = candidates[1:]
                continue
            candidates = [r for r in candidates if r not in chain.members]
            found = _worth(g, chain, wanted, claimed)
            if found is not None:
                chains.append(found)
                claimed |= set(found[1])
    return chains


def _worth(g, chain: _Chain, wanted: list, claimed: set) -> tuple[dict, list] | None:
    """The chain's group and the items it computes, if the chain is worth one."""
    space = chain.space
    held = chain.in_registers()
    anchor = chain.members[-1]
    result_shape = tuple(g.nodes[anchor]["shape"])
    row_items, result_items = [], []
    for item in wanted:
        node = item[1]
        if item in claimed or node in chain.members:
            continue
        shape = tuple(g.nodes[node]["shape"])
        if shape not in (space, result_shape):
            continue
        region = chain.region([node])
        if not region & held:
            continue
        if shape == space and chain.reads_ok(region, row_space=True):
            row_items.append(item)
        elif shape == result_shape and chain.reads_ok(region, row_space=False):
            result_items.append(item)
    if len(chain.members) < 2 and not row_items:
        return None
    return _spec(g, chain, row_items, result_items)


def _spec(g, chain: _Chain, row_items: list, result_items: list) -> tuple[dict, list]:
    """The chain's fusion group as fuse's spec dict, and the items it computes."""
    stored, order = chain.stored, chain.order
    held = chain.in_registers()
    operands = [g.nodes[r]["args"][0] for r in chain.members]
    roots = [n for _, n in row_items]
    # an operand read from memory (a parameter, another kernel's value) is an input, not a root
    computed = roots + [o for o in operands if o not in stored and _kind(g, o)]
    region = chain.region(computed) | {o for o in operands if o not in computed}
    nodes, inputs = _split(g, region, stored, order, roots=computed, skip=held)
    # the epilogue: values over the result, computed once per row from the members
    epi_roots = [n for _, n in result_items]
    epilogue, epilogue_inputs = _split(
        g, chain.region(epi_roots) | held, stored, order, roots=epi_roots, skip=held
    )
    if {view_root(g, n) for n in epilogue_inputs} & {view_root(g, n) for n in inputs}:
        # one kernel, one argument per buffer: such a result waits for a later kernel
        result_items, epilogue, epilogue_inputs = [], (), ()
    items = row_items + result_items
    outputs = [(i, n) for i, n in items if i is not None]
    outputs += [(i, o) for i, o in enumerate(g.graph["outputs"]) if o in chain.members]
    ops = " -> ".join(g.nodes[r]["op"] for r in chain.members)
    spec = dict(
        shape=chain.space,
        nodes=nodes,
        inputs=inputs,
        outputs=tuple(outputs),
        kind="rows",
        anchor=chain.members[-1],
        reductions=tuple(chain.members),
        stores=[n for i, n in items if i is None],
        epilogue=epilogue,
        epilogue_inputs=epilogue_inputs,
        reason=f"{ops} over the rows of {list(chain.space)} (axes {chain.split} on) and the values "
        "that read them over the row: one kernel, each row read from memory once",
    )
    return spec, items
