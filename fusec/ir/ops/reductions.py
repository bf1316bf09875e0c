"""Reductions: `sum mean max min (x, axis=-1, keepdim=false)`, and autodiff's
`sum_to` (the gradient of a broadcast operand is the cotangent summed back to
the operand's own shape: NumPy broadcasting run backwards).

A reduction ends a fusion group: the elementwise ops feeding it run in its
kernel (its prologue). Each entry gives the combining step (`forward` over
`{acc}` and `{x}`), the starting value, the result's shape and, for mean, a
last step over the count.
"""

from __future__ import annotations

import numpy as np

from ..registry import REQUIRED, REQUIRED_INT, Primitive, register


def sum_to_axes(shape, target) -> tuple[int, ...]:
    """The axes of `shape` that summing down to `target` removes or sets to 1."""
    lead = len(shape) - len(target)
    return tuple(i for i, d in enumerate(shape) if i < lead or (target[i - lead] == 1 and d != 1))


def _sum_to_shape(shape, attrs):
    return sum_to_axes(tuple(shape), tuple(attrs["shape"])), tuple(attrs["shape"])


def _axis_shape(shape, attrs):
    """`axis` (negative counts from the end) removed, or kept as 1 with keepdim."""
    ndim, axis = len(shape), attrs["axis"]
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    if ndim == 0:
        raise ValueError("cannot reduce a scalar: it has no axis")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"axis {axis} is out of range for {ndim} dimension{'s' if ndim > 1 else ''}"
        )
    axis %= ndim
    kept = list(shape)
    if attrs["keepdim"]:
        kept[axis] = 1
    else:
        del kept[axis]
    return (axis,), tuple(kept)


def _sum_to(x, shape):
    axes = sum_to_axes(x.shape, tuple(shape))
    out = np.sum(x, axis=axes, keepdims=True, dtype=x.dtype)
    return out.reshape(shape)


def _np_sum(x, axis=-1, keepdim=False):
    out_dtype = (
        x.dtype if np.issubdtype(x.dtype, np.floating) else np.int64
    )  # torch: ints sum to i64
    return np.sum(x, axis=axis, keepdims=keepdim, dtype=out_dtype)


def _np_mean(x, axis=-1, keepdim=False):
    return np.mean(x, axis=axis, keepdims=keepdim, dtype=x.dtype)


def _np_max(x, axis=-1, keepdim=False):
    return np.max(x, axis=axis, keepdims=keepdim)  # NumPy's max propagates NaN, as torch's


def _np_min(x, axis=-1, keepdim=False):
    return np.min(x, axis=axis, keepdims=keepdim)


def _np_softmax(x, axis=-1):
    with np.errstate(all="ignore"):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype, copy=False)


def _np_log_softmax(x, axis=-1):
    with np.errstate(all="ignore"):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return (shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))).astype(
            x.dtype, copy=False
        )


# The row's max only keeps exp from overflowing: softmax does not depend on
# it, so its gradient is 0 (torch's softmax backward leaves it out) and
# stop_gradient says so; differentiated, it added a reduction (sum(x == max))
# and a kernel to every backward, for rounding noise.
_SHIFTED = "(x - stop_gradient(max(x, axis={axis}, keepdim=true)))"
SOFTMAX = f"exp({_SHIFTED}) * reciprocal(sum(exp({_SHIFTED}), axis={{axis}}, keepdim=true))"
LOG_SOFTMAX = f"{_SHIFTED} - log(sum(exp({_SHIFTED}), axis={{axis}}, keepdim=true))"


def _unsqueeze_shape(shape, attrs):
    """A 1 inserted where a reduction without keepdim removed `axis` (counted
    on the reduction's operand, which has one dimension more)."""
    if not -len(shape) - 1 <= attrs["axis"] <= len(shape):
        raise ValueError(f"axis {attrs['axis']} is out of range for {len(shape) + 1} dimension(s)")
    at = attrs["axis"] % (len(shape) + 1)
    return tuple(shape[:at]) + (1,) + tuple(shape[at:])


def _np_unsqueeze(x, axis):
    return np.expand_dims(x, axis % (x.ndim + 1))


def _squeeze_shape(shape, attrs):
    """`axis` removed; it must be a dimension of size 1 (torch.squeeze(x, dim)
    leaves other sizes alone, which fusec would have no way to tell apart)."""
    if not shape:
        raise ValueError("a scalar has no dimension to remove")
    if not -len(shape) <= attrs["axis"] < len(shape):
        raise ValueError(f"axis {attrs['axis']} is out of range for {len(shape)} dimension(s)")
    at = attrs["axis"] % len(shape)
    if shape[at] != 1:
        raise ValueError(f"axis {attrs['axis']} has size {shape[at]}, not 1")
    return tuple(shape[:at]) + tuple(shape[at + 1 :])


def _np_squeeze(x, axis):
    return np.squeeze(x, axis % x.ndim)


def _np_axis_count(x, axis=-1, keepdim=False):
    out = np.sum(np.ones_like(x), axis=axis, keepdims=keepdim)
    return np.asarray(out, dtype=x.dtype)


AXIS = {"axis": -1, "keepdim": False}


# A reduction's gradient, written for keepdim; `{K}(v)` marks where a result of
# the reduction (g, out) gets its axis back when keepdim is false.
def _reduction_backward(template: str) -> dict:
    plain = template.replace("{K}", "")
    restored = template.replace("{K}", "unsqueeze").replace(
        "unsqueeze(g)", "unsqueeze(g, axis={axis})"
    )
    restored = restored.replace("unsqueeze(out)", "unsqueeze(out, axis={axis})")
    return {"x": restored, "x|keepdim=True": plain}


# d sum / dx: g back over the axis; mean: divided by the axis' length; max and
# min: shared evenly among the elements equal to the result (torch.amax's rule).
SUM_BACKWARD = _reduction_backward("{K}(g) + zeros_like(x)")
MEAN_BACKWARD = _reduction_backward(
    "{K}(g) / axis_count(x, axis={axis}, keepdim=true) + zeros_like(x)"
)
EXTREMUM_BACKWARD = _reduction_backward(
    "where(x == {K}(out), {K}(g) / sum(x == {K}(out), axis={axis}, keepdim=true), 0)"
)
# NaN wins: once the accumulator is NaN it stays; a NaN element replaces it.
MAX = {
    "float": "((isnan({acc}) || {acc} >= {x}) ? {acc} : {x})",
    "int": "({acc} >= {x} ? {acc} : {x})",
}
MIN = {
    "float": "((isnan({acc}) || {acc} <= {x}) ? {acc} : {x})",
    "int": "({acc} <= {x} ? {acc} : {x})",
}
# Without NaN (the kernel tracks it apart): ties keep the accumulator, as above.
# The NaN test on the accumulator made each step three dependent operations
# (compare, or, select) on it; this is one (a row max of 4096 x 1024 with four
# accumulators: 0.24-0.27 -> 0.13-0.18 ms, the flag included).
MAX_UNORDERED = "({x} > {acc} ? {x} : {acc})"
MIN_UNORDERED = "({x} < {acc} ? {x} : {acc})"

for entry in [
    Primitive(
        "sum_to",
        ("x",),
        "({acc} + {x})",
        _sum_to,
        kind="reduction",
        reduce_init="{ZERO}",
        reduce_shape=_sum_to_shape,
        attrs={"shape": REQUIRED},
        internal=True,
        # g has `shape`, x's shape with leading axes gone and some set to 1: it broadcasts back
        backward={"x": "g + zeros_like(x)"},
        doc="x summed over its broadcast axes down to `shape` (autodiff's, and nested"
        " sums folded by simplify; not written in IR)",
    ),
    Primitive(
        "sum",
        ("x",),
        "({acc} + {x})",
        _np_sum,
        dtype_rule="sum",
        kind="reduction",
        reduce_init="{ZERO}",
        reduce_shape=_axis_shape,
        attrs=AXIS,
        backward=SUM_BACKWARD,
        doc="torch.sum(x, dim=axis, keepdim); integers and bools sum to i64",
    ),
    Primitive(
        "mean",
        ("x",),
        "({acc} + {x})",
        _np_mean,
        dtype_rule="float",
        kind="reduction",
        reduce_init="{ZERO}",
        reduce_finish="({acc} / {count})",
        reduce_shape=_axis_shape,
        attrs=AXIS,
        backward=MEAN_BACKWARD,
        doc="torch.mean(x, dim=axis, keepdim); float operands only",
    ),
    # The length of an axis, as a reduction's count: what mean's gradient divides by.
    Primitive(
        "axis_count",
        ("x",),
        "({acc})",
        _np_axis_count,
        dtype_rule="float",
        kind="reduction",
        reduce_init="{ZERO}",
        reduce_finish="({count})",
        reduce_shape=_axis_shape,
        attrs=AXIS,
        internal=True,
        doc="the number of elements each result of a reduction over `axis` combines",
    ),
    Primitive(
        "stop_gradient",
        ("x",),
        "{x}",
        np.copy,
        backward={"x": "0"},
        internal=True,
        doc="x, whose gradient is 0 (jax.lax.stop_gradient, torch's detach): softmax's max",
    ),
    Primitive(
        "unsqueeze",
        ("x",),
        "",
        _np_unsqueeze,
        kind="view",
        attrs={"axis": REQUIRED_INT},
        reduce_shape=_unsqueeze_shape,
        backward={"x": "squeeze(g, axis={axis})"},
        doc="torch.unsqueeze(x, dim=axis): a dimension of 1 inserted; a view (no copy)",
    ),
    Primitive(
        "squeeze",
        ("x",),
        "",
        _np_squeeze,
        kind="view",
        attrs={"axis": REQUIRED_INT},
        reduce_shape=_squeeze_shape,
        backward={"x": "unsqueeze(g, axis={axis})"},
        doc="torch.squeeze(x, dim=axis) of a dimension of size 1; a view (no copy)",
    ),
    # Composites, numerically stable (the row's max subtracted first). Their
    # parts fuse as any graph's: two reductions and one elementwise kernel.
    Primitive(
        "softmax",
        ("x",),
        "",
        _np_softmax,
        dtype_rule="float",
        kind="reduction",
        attrs={"axis": -1},
        lowering=SOFTMAX,
        doc="torch.softmax(x, dim=axis)",
    ),
    Primitive(
        "log_softmax",
        ("x",),
        "",
        _np_log_softmax,
        dtype_rule="float",
        kind="reduction",
        attrs={"axis": -1},
        lowering=LOG_SOFTMAX,
        doc="torch.log_softmax(x, dim=axis)",
    ),
    Primitive(
        "max",
        ("x",),
        MAX,
        _np_max,
        kind="reduction",
        reduce_unordered=MAX_UNORDERED,
        reduce_init="{LOWEST}",
        backward=EXTREMUM_BACKWARD,
        reduce_shape=_axis_shape,
        attrs=AXIS,
        doc="torch.amax(x, dim=axis, keepdim); NaN propagates",
    ),
    Primitive(
        "min",
        ("x",),
        MIN,
        _np_min,
        kind="reduction",
        reduce_unordered=MIN_UNORDERED,
        reduce_init="{HIGHEST}",
        backward=EXTREMUM_BACKWARD,
        reduce_shape=_axis_shape,
        attrs=AXIS,
        doc="torch.amin(x, dim=axis, keepdim); NaN propagates",
    ),
]:
    register(entry)
