"""Views in a partition that fusec expresses without a copy.

Transposes: a 2-D transpose whose every user is an operand of `mm`/`addmm`
(or another such transpose) has no IR value of its own; the GEMM reads its
operand transposed in place (`linear(x, w)` is x @ wᵀ, `gemm(a, b, ta=true)`
is aᵀ @ b). Two transposes in a row are their operand itself, whatever uses
them. A partition input that is the transpose of a contiguous matrix and is
only such an operand is passed as its (contiguous) transpose, no copy.
"""

from __future__ import annotations

import torch

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


def gemm_expr(e, i, j) -> tuple[str, bool, bool]:
    """IR for operands i @ j of the node being lowered: (expression, whether
    it is `linear`, the one form that takes a bias operand)."""
    a, ta = resolve(e, e.node.args[i])
    b, tb = resolve(e, e.node.args[j])
    if ta:
        return f"gemm({a}, {b}, ta=true, tb={'true' if tb else 'false'})", False
    if tb:
        return f"linear({a}, {b})", True
    return f"matmul({a}, {b})", False
