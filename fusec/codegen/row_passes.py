"""A row group's reductions as passes over the row (row_reduction.py).

Consecutive members whose operands read none of each other's results share
one pass: each element is loaded and computed once for all of them.
log_softmax's backward sums the cotangent in the max's pass; softmax's sums
`exp(x - max)` and `g * exp(x - max)` in one; LayerNorm's variance and its
backward's `sum(g * w * (x - mean))` both read only the mean. A member whose
operand is kept in an output (the stash) has a pass of its own.

On CPUs the vector loop keeps ACCUMULATORS independent accumulators per
member: with one, each vector waits for the last compare-and-select (max) or
add (3-5 cycles) where the core could start several (4096 x 1024
log_softmax, Intel's CPU runtime, loaded Zen 5: 0.97-1.03 ms with one,
0.73-0.76 with four). They are combined pairwise in a fixed order, then the
vector's lanes (lane_tree), then the scalar tail. GPUs keep one per
work-item and combine the work-group's through local memory.
"""

from __future__ import annotations

from ..ir import dtypes as dt
from ..ir.registry import lookup
from ..passes.fuse import view_root
from .opencl_c import COMPUTE, convert, render
from .reduction_steps import lane_tree
from .row_terms import const_leaves, render_const, split_sum

ACCUMULATORS = 4  # per member in a CPU pass's vector loop (a power of two)


class Member:
    """One reduction of the group: its operand, accumulator type and steps."""

    def __init__(self, kernel, r: int):
        data = kernel.g.nodes[r]
        self.r = r
        self.prim, self.attrs = lookup(data["op"]), dict(data["attrs"])
        self.acc = COMPUTE[data["dtype"]]
        (self.operand,) = data["args"]
        self.dtype = kernel.g.nodes[self.operand]["dtype"]
        self.want = data["operand_dtypes"][0]
        category = "float" if dt.is_float(data["dtype"]) else "int"
        self.template = self.prim.template_for(category, quirks=kernel.device.quirks)
        self.split = None
        if kernel.stash is None or kernel.stash[0] != r:
            self.split = split_sum(kernel, r, members_read)
        # what is accumulated over the row: the operand, or each varying term of a split sum
        varying = [v for _, v in self.split if v is not None] if self.split else [self.operand]
        self.sums = [(v, f"{r}t{j}" if self.split else str(r)) for j, v in enumerate(varying)]

    def reads(self, kernel) -> set:
        """The members what this member accumulates reads."""
        return set().union(set(), *(members_read(kernel, v) for v, _ in self.sums))

    def combine(self, a: str, x: str, width: int = 1) -> str:
        return render(
            self.template, {"acc": a, "x": x}, self.acc, self.attrs, width, width, self.acc
        )

    def init(self, width: int) -> str:
        return render(self.prim.reduce_init, {}, self.acc, self.attrs, width, width, self.acc)

    @property
    def scalar(self) -> str:
        return f"a{self.r}"

    def total(self, kernel) -> list[str]:
        """Lines leaving a split sum's value in its scalar: each term's sum times its constant."""
        if not self.split:
            return []
        leaves = [n for c, _ in self.split for n in const_leaves(c)]
        lines, names = kernel._phase([n for n in leaves if n in kernel.group.nodes], 1, "rb")
        sums = dict((v, f"a{tag}") for v, tag in self.sums)
        parts = []
        for c, v in self.split:
            value = render_const(c, lambda n: kernel._operand(n, names, 1))
            parts.append(f"{value} * {sums[v] if v is not None else f'(({self.acc})(inner))'}")
        return ["{", *("    " + x for x in lines), f"    {self.scalar} = {' + '.join(parts)};", "}"]


def members_read(kernel, node) -> set:
    """The members (or views of them) computing `node` reads."""
    found, seen, stack = set(), set(), [node]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in kernel.held:
            found.add(view_root(kernel.g, n))
        elif n in kernel.group.nodes:
            stack.extend(kernel.g.nodes[n]["args"])
    return found


def row_passes(kernel) -> list[list[int]]:
    """The members in passes, in order."""
    stash = kernel.stash[0] if kernel.stash is not None else None
    passes: list[list[int]] = []
    for r in kernel.group.reductions:
        joins = (
            passes
            and stash not in (r, passes[-1][-1])
            and not Member(kernel, r).reads(kernel) & set(passes[-1])
        )
        if joins:
            passes[-1].append(r)
        else:
            passes.append([r])
    return passes


def pass_lines(kernel, rs: list[int], w: int) -> list[str]:
    """Lines leaving each member's result for this row in r<member>."""
    members = [Member(kernel, r) for r in rs]
    stash = kernel.stash if kernel.stash is not None and kernel.stash[0] in rs else None
    gpu = not kernel.device.is_cpu

    sums = [(m, v, tag) for m in members for v, tag in m.sums]

    def step(width, base, k=0):
        lines, names = kernel._phase([v for _, v, _ in sums], width, base)
        for m, v, tag in sums:
            dtype = kernel.g.nodes[v]["dtype"]
            value = convert(kernel._operand(v, names, width), dtype, m.want, width)
            name = f"v{tag}_{k}" if width > 1 else f"a{tag}"
            lines.append(f"{name} = {m.combine(name, value, width)};")
        if stash:  # kept for the output pass, in the output's memory
            m = members[0]
            lines.append(kernel._store(f"out{stash[1]}", m.dtype, names[m.operand], width, base))
        return lines

    body = [f"{m.acc} {m.scalar};" for m in members if m.split]
    if w > 1:
        count = 1 if gpu else ACCUMULATORS
        body += [
            f"{m.acc}{w} v{tag}_{k} = {m.init(w)};" for m, _, tag in sums for k in range(count)
        ]
        body += kernel._loops(w, step)[0] if gpu else _unrolled(w, step, sums)
        for m, _, tag in sums:  # the vector's lanes
            folded, last = lane_tree(f"v{tag}_0", w, m.acc, m.combine, "const ")
            body += [f"{m.acc} a{tag};", "{", *("    " + x for x in folded)]
            body += [f"    a{tag} = {last};", "}"]
    else:
        body += [f"{m.acc} a{tag} = {m.init(1)};" for m, _, tag in sums]
    body += kernel._loops(w, lambda width, base: step(width, base))[1]
    for m, _, tag in sums if gpu else ():  # the work-group's values, through local memory
        red, a = f"red_{m.acc}", f"a{tag}"
        body += [
            f"{red}[lid] = {a};",
            "barrier(CLK_LOCAL_MEM_FENCE);",
            "for (int s = L / 2; s > 0; s >>= 1) {",
            f"    if (lid < s) {red}[lid] = {m.combine(f'{red}[lid]', f'{red}[lid + s]')};",
            "    barrier(CLK_LOCAL_MEM_FENCE);",
            "}",
            f"{a} = {red}[0];",
            "barrier(CLK_LOCAL_MEM_FENCE);  // the next reduction writes it again",
        ]
    if stash:
        kernel.loaded[members[0].operand] = f"out{stash[1]}"
    for m in members:
        body += m.total(kernel)
        if m.prim.reduce_finish:
            fields = {"acc": m.scalar, "count": f"(({m.acc})(inner))"}
            finish = render(m.prim.reduce_finish, fields, m.acc, m.attrs, 1, 1, m.acc)
            body.append(f"{m.scalar} = {finish};")
        body.append(f"r{m.r} = {m.scalar};")
    return [f"{m.acc} r{m.r};" for m in members] + ["{", *("    " + x for x in body), "}"]


def _unrolled(w: int, step, sums: list) -> list[str]:
    """The CPU's vector loop: ACCUMULATORS vectors a step, each into its own
    accumulators, then one vector a step; the accumulators combined pairwise."""
    span = ACCUMULATORS * w
    # each block's column c (a broadcast [N] operand is read at c) and element i
    out = ["{", "    long c0 = 0;", f"    for (; c0 + {span} <= inner; c0 += {span}) {{"]
    for k in range(ACCUMULATORS):
        column = f"c0 + {k * w}" if k else "c0"
        out += ["        {", f"            const long c = {column}, i = rb + c;"]
        out += ["            " + x for x in step(w, "i", k)] + ["        }"]
    out += ["    }", f"    for (; c0 + {w} <= inner; c0 += {w}) {{"]
    out += ["        const long c = c0, i = rb + c;"]
    out += ["        " + x for x in step(w, "i", 0)] + ["    }", "}"]
    for m, _, tag in sums:
        accs = [f"v{tag}_{k}" for k in range(ACCUMULATORS)]
        while len(accs) > 1:  # pairwise, in a fixed order
            pairs = list(zip(accs[::2], accs[1::2], strict=True))
            out += [f"{a} = {m.combine(a, b, w)};" for a, b in pairs]
            accs = [a for a, _ in pairs]
    return out
