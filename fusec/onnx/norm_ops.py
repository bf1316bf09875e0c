"""ONNX's normalizations and Flatten as IR, registered into `ops.OPS`: what
`torch.onnx.export` writes for BatchNorm (in eval mode), LayerNorm and
nn.Flatten of an already flat input."""

from __future__ import annotations

from .convert import NodeContext, Unsupported
from .ops import lit, op


def _per_channel(ctx: NodeContext, i: int, rank: int) -> str:
    """A [C] input as [C, 1, ...]: it broadcasts along axis 1 of a rank-`rank` x."""
    expr = ctx.arg(i)
    for _ in range(rank - 2):
        expr = f"unsqueeze({expr}, axis=-1)"
    return expr


@op("BatchNormalization")
def batch_normalization(ctx: NodeContext):
    if ctx.attr("training_mode", 0) or any(ctx.node.output[1:]):
        raise Unsupported("training mode (fusec imports inference graphs: running statistics)")
    rank = ctx.rank(0)
    if rank < 2:
        raise Unsupported(f"X has {rank} dimension(s); BatchNormalization needs [N, C, ...]")
    scale, bias, mean, var = (_per_channel(ctx, i, rank) for i in (1, 2, 3, 4))
    eps = lit(ctx.attr("epsilon", 1e-5))
    return f"({ctx.arg(0)} - {mean}) * ({scale} * rsqrt({var} + {eps})) + {bias}"


@op("LayerNormalization")
def layer_normalization(ctx: NodeContext):
    rank = ctx.rank(0)
    if int(ctx.attr("axis", -1)) % max(rank, 1) != rank - 1:
        raise Unsupported("normalizing over more than the last axis")
    if any(ctx.node.output[1:]):
        raise Unsupported("its Mean or InvStdDev output is used")
    x = ctx.arg(0)
    centered = ctx.temp("centered", f"{x} - mean({x}, axis=-1, keepdim=true)")
    var = f"mean({centered} * {centered}, axis=-1, keepdim=true)"
    y = f"{centered} * rsqrt({var} + {lit(ctx.attr('epsilon', 1e-5))}) * {ctx.arg(1)}"
    return f"{y} + {ctx.arg(2)}" if ctx.has(2) else y


@op("Flatten")
def flatten(ctx: NodeContext):
    """[d0 .. dk-1, dk .. dn] -> [d0 * .. * dk-1, dk * .. * dn]: without a reshape
    in the IR, only where each side has at most one dimension other than 1."""
    dims = ctx.shape(0)
    if dims is None:
        raise Unsupported("the rank of its input is unknown")
    axis = int(ctx.attr("axis", 1))
    axis += len(dims) if axis < 0 else 0  # ONNX: [-r, r]
    sides = (range(axis), range(axis, len(dims)))
    kept = [[i for i in side if dims[i] != 1] for side in sides]
    if any(len(k) > 1 for k in kept):
        raise Unsupported(
            f"it merges dimensions {['?' if d is None else d for d in dims]} at axis {axis}"
            " (fusec's IR has no reshape)"
        )
    expr = ctx.arg(0)
    for i in reversed(range(len(dims))):  # drop the 1s, from the last
        if dims[i] == 1:
            expr = f"squeeze({expr}, axis={i})"
    if not kept[0]:
        expr = f"unsqueeze({expr}, axis=0)"
    if not kept[1]:
        expr = f"unsqueeze({expr}, axis=1)"
    return expr
