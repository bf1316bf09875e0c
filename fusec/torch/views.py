"""Views in a partition that fusec expresses without a copy.

Reshapes: `view`, `reshape`, `_unsafe_view`, `unsqueeze`, `squeeze`, and a
`permute` or `t` that moves only dimensions of size 1, when they insert or
remove dimensions of size 1 and keep the others in order, are IR `squeeze`
and `unsqueeze` (views: read in place). One that merges, splits or reorders
dimensions has no IR spelling: it stays a view in PyTorch, a boundary
between two fusec graphs (the value between them is stored, contiguous, and
PyTorch's view of it costs nothing).

Broadcasts: `expand(x, shape)` is x itself where each user is elementwise
and its operands, x among them unexpanded, broadcast to the user's shape
(broadcasting does what expand did). Elsewhere (a reduction, an output) it
stays in PyTorch.

Transposes: a 2-D transpose whose every user is an operand of `mm`/`addmm`
(or another such transpose) has no IR value of its own; the GEMM reads its
operand transposed in place (`linear(x, w)` is x @ wᵀ, `gemm(a, b, ta=true)`
is aᵀ @ b). Two transposes in a row are their operand itself, whatever uses
them. A partition input that is the transpose of a contiguous matrix and is
only such an operand is passed as its (contiguous) transpose, no copy.
"""

from __future__ import annotations

import torch

from .errors import Unlowerable

aten = torch.ops.aten

TRANSPOSES = {aten.t.default, aten.permute.default}
# the operand positions of the GEMMs that may read a transposed operand
GEMM_SLOTS = {aten.mm.default: (0, 1), aten.addmm.default: (1, 2)}


def _is_2d_transpose(node) -> bool:
    if not isinstance(node, torch.fx.Node) or node.op != "call_function":
        return False
    if node.target not in TRANSPOSES:
        return False
    if node.target is aten.permute.default and list(node.args[1]) != [1, 0]:
        return False
    source = node.args[0].meta.get("val") if isinstance(node.args[0], torch.fx.Node) else None
    return isinstance(source, torch.Tensor) and source.dim() == 2


def _reads_transposed(user, node) -> bool:
    """`user` takes `node` only as a GEMM operand, or transposes it back."""
    if user.target in GEMM_SLOTS:
        slots = GEMM_SLOTS[user.target]
        return all(a is not node for i, a in enumerate(user.args) if i not in slots)
    return _is_2d_transpose(user)


def absorbable_transpose(node) -> bool:
    """A transpose fusec expresses without an IR value of its own (see the module doc)."""
    if not _is_2d_transpose(node):
        return False
    if transpose_of_transpose(node):
        return True
    return bool(node.users) and all(_reads_transposed(u, node) for u in node.users)


def transpose_of_transpose(node) -> bool:
    """t(t(x)), the inner one absorbed: the node is x itself."""
    inner = node.args[0]
    return (
        _is_2d_transpose(inner)
        and bool(inner.users)
        and all(_reads_transposed(u, inner) for u in inner.users)
    )


def passed_transposed(p, value) -> bool:
    """A partition input that is the transpose of a contiguous matrix, read
    only as a GEMM operand: passed as value.t() (contiguous, no copy)."""
    if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.is_contiguous():
        return False
    if not value.t().is_contiguous():
        return False
    return bool(p.users) and all(
        _reads_transposed(u, p) and (u.target in GEMM_SLOTS or absorbable_transpose(u))
        for u in p.users
    )


def resolve(e, node) -> tuple[str, bool]:
    """The IR value a GEMM operand reads and whether it reads it transposed."""
    flipped = False
    while e.absorbed(node):
        node, flipped = node.args[0], not flipped
    if e.passed_transposed(node):
        flipped = not flipped
    return e.name_of(node), flipped


def gemm_expr(e, i, j) -> tuple[str, bool]:
    """IR for operands i @ j of the node being lowered: (expression, whether
    it is `linear`, the one form that takes a bias operand)."""
    a, ta = resolve(e, e.node.args[i])
    b, tb = resolve(e, e.node.args[j])
    if ta:
        return f"gemm({a}, {b}, ta=true, tb={'true' if tb else 'false'})", False
    if tb:
        return f"linear({a}, {b})", True
    return f"matmul({a}, {b})", False


def reshape(e, n):
    """A reshape that only inserts or removes dimensions of size 1: squeezes
    (from the last) then unsqueezes (from the first) of operand 0."""
    from .lower import ir_size

    src = [ir_size(d) for d in e.meta(0).shape]
    dst = [ir_size(d) for d in n.meta["val"].shape]
    if [d for d in src if d != 1] != [d for d in dst if d != 1]:
        raise Unlowerable(
            f"a reshape of {src} to {dst} merges, splits or reorders dimensions "
            "(fusec's IR has no reshape)"
        )
    x = e.arg(0)
    if src == dst:
        return x
    if not src or not dst:
        raise Unlowerable("a reshape to or from a 0-d tensor")
    for i in reversed(range(len(src))):
        if src[i] == 1:
            x = f"squeeze({x}, axis={i})"
    for i, d in enumerate(dst):
        if d == 1:
            x = f"unsqueeze({x}, axis={i})"
    return x


def expand(e, n):
    """x itself, when every user broadcasts it to the expanded shape anyway."""
    from .lower import ir_size

    want = [ir_size(d) for d in n.meta["val"].shape]
    for user in n.users:
        if user.op != "call_function" or user.target not in ELEMENTWISE:
            raise Unlowerable(f"an expand read by {user.target}, which does not broadcast it")
        shapes = []
        for a in user.all_input_nodes:
            source = a.args[0] if a is n else a
            value = e.metas.get(source, source.meta.get("val"))
            if isinstance(value, torch.Tensor):
                shapes.append([ir_size(d) for d in value.shape])
        got = _broadcast(shapes)
        if got is None or got[-len(want) :] != want or len(got) < len(want):
            raise Unlowerable("an expand whose users do not broadcast to its shape without it")
    return e.arg(0)


def _broadcast(shapes):
    """NumPy's broadcast of IR shapes, or None where it cannot tell (N against 5)."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0} - {1}
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return out


RESHAPES = {
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.unsqueeze.default,
    aten.squeeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.t.default,
    aten.permute.default,
}
VIEW_LOWERINGS = {**dict.fromkeys(RESHAPES, reshape), aten.expand.default: expand}
# filled by aten_ops: the ops whose operands broadcast elementwise
ELEMENTWISE: set = set()


def output_view(out, names: dict, metas: dict):
    """(node, pattern): a partition output that is a reshape of a value the
    partition computes is returned as that value and viewed by PyTorch (free
    on the fresh contiguous output; in IR a view output is a copy kernel).
    pattern[i] is the value's dimension that is dimension i, or None for a 1."""
    from .lower import ir_size

    root = out
    while root.op == "call_function" and root.target in RESHAPES and not absorbable_transpose(root):
        root = root.args[0]
    if root is out or root.op != "call_function" or not isinstance(names.get(root), str):
        return out, None
    src = [ir_size(d) for d in metas.get(root, root.meta.get("val")).shape]
    dst = [ir_size(d) for d in out.meta["val"].shape]
    kept = [i for i, d in enumerate(src) if d != 1]
    if [src[i] for i in kept] != [d for d in dst if d != 1]:
        return out, None
    taken = iter(kept)
    return root, [None if d == 1 else next(taken) for d in dst]


def apply_view(tensor, pattern):
    if pattern is None:
        return tensor
    return tensor.view([1 if p is None else tensor.shape[p] for p in pattern])
