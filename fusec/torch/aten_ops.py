"""How each ATen op becomes IR: one entry per op, an expression over its operands.

An entry is `emit(e, node) -> IR expression` (or a tuple of them for an op
with several results); `e.arg(i)` is operand i as IR (a value name or a
literal), `e.let(expr)` names a subexpression used more than once, and
`e.rank(i)` is an operand's rank. An entry raises `Unlowerable` for a use it
cannot express (an attribute fusec lacks); the node then runs in PyTorch.
"""

from __future__ import annotations

import math
import operator

import torch

from .errors import Unlowerable
from .views import ELEMENTWISE, RESHAPES, VIEW_LOWERINGS, gemm_expr

aten = torch.ops.aten


def literal(value) -> str:
    """A Python scalar as an IR literal (parenthesised when negative)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"({value})" if value < 0 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "(-inf)"
        text = repr(value)
        return f"({text})" if value < 0 else text
    raise Unlowerable(f"an operand of type {type(value).__name__}")


def attr_literal(value) -> str:
    """A literal in attribute position, where a negative number needs no parentheses."""
    text = literal(value)
    return text[1:-1] if text.startswith("(") else text


def unary(op):
    return lambda e, n: f"{op}({e.arg(0)})"


def binary(op):
    return lambda e, n: f"{op}({e.arg(0)}, {e.arg(1)})"


def scaled(op):
    """add/sub with `alpha`: x op alpha * y."""

    def emit(e, n):
        alpha = n.kwargs.get("alpha", 1)
        y = e.arg(1) if alpha == 1 else f"{literal(alpha)} * {e.arg(1)}"
        return f"{op}({e.arg(0)}, {y})"

    return emit


def rsub(e, n):
    alpha = n.kwargs.get("alpha", 1)
    x = e.arg(0) if alpha == 1 else f"{literal(alpha)} * {e.arg(0)}"
    return f"sub({e.arg(1)}, {x})"


def div(e, n):
    mode = n.kwargs.get("rounding_mode")
    if mode is None:
        return f"div({e.arg(0)}, {e.arg(1)})"
    if mode == "floor" and e.is_float(0):
        return f"floor(div({e.arg(0)}, {e.arg(1)}))"
    raise Unlowerable(f"div with rounding_mode={mode!r}")


def attr_op(op, *names):
    """An op whose trailing positional operands are attributes of the IR op."""

    def emit(e, n):
        values = [e.value(i + 1, name) for i, name in enumerate(names)]
        attrs = "".join(
            f", {name}={attr_literal(v)}"
            for name, v in zip(names, values, strict=True)
            if v is not None
        )
        return f"{op}({e.arg(0)}{attrs})"

    return emit


def gelu(e, n):
    approximate = n.kwargs.get("approximate", "none")
    return f'gelu({e.arg(0)}, approximate="{approximate}")'


def elu(e, n):
    alpha, scale, input_scale = (e.value(i, None, d) for i, d in ((1, 1.0), (2, 1.0), (3, 1.0)))
    if scale != 1 or input_scale != 1:
        if alpha == 1.6732632423543772 and scale == 1.0507009873554805 and input_scale == 1:
            return f"selu({e.arg(0)})"
        raise Unlowerable("elu with scale or input_scale other than 1")
    return f"elu({e.arg(0)}, alpha={attr_literal(float(alpha))})"


def clamp(e, n):
    lo, hi = e.value(1, "min"), e.value(2, "max")
    x = e.arg(0)
    if lo is not None and hi is not None:
        return f"clamp({x}, min={attr_literal(lo)}, max={attr_literal(hi)})"
    if lo is not None:
        return f"maximum({x}, {literal(lo)})"
    if hi is not None:
        return f"minimum({x}, {literal(hi)})"
    return x


def to_copy(e, n):
    """`_to_copy` as a cast: allowed when only the dtype changes (the support
    check has made sure the device, layout and memory format stay)."""
    dtype = n.kwargs.get("dtype")
    return e.arg(0) if dtype is None else f"cast({e.arg(0)}, dtype={e.ir_dtype(dtype)})"


def convert(e, n):
    return f"cast({e.arg(0)}, dtype={e.ir_dtype(n.args[1])})"


def boolean(op):
    """bitwise ops on bool tensors are the logical ones (on integers fusec has none)."""

    def emit(e, n):
        metas = [e.meta(i) for i in range(len(n.args))]
        if any(not isinstance(m, torch.Tensor) or m.dtype != torch.bool for m in metas):
            raise Unlowerable(f"bitwise {op} of integers")
        return f"{op}({', '.join(e.arg(i) for i in range(len(n.args)))})"

    return emit


def identity(e, n):
    return e.arg(0)


def where(e, n):
    return f"where({e.arg(0)}, {e.arg(1)}, {e.arg(2)})"


def mm(e, n):
    return gemm_expr(e, 0, 1)[0]


def addmm(e, n):
    if n.kwargs.get("beta", 1) != 1 or n.kwargs.get("alpha", 1) != 1:
        raise Unlowerable("addmm with beta or alpha other than 1")
    product, is_linear = gemm_expr(e, 1, 2)
    if is_linear and e.rank(0) == 1:
        return f"{product[:-1]}, {e.arg(0)})"  # linear(x, w, b)
    return f"{product} + {e.arg(0)}"


def reduce(op):
    """sum/mean/amax/amin over a list of dims: one IR reduction per dim, the
    highest first so that the others keep their numbers without keepdim."""

    def emit(e, n):
        x = e.arg(0)
        if n.kwargs.get("dtype") is not None:
            x = f"cast({x}, dtype={e.ir_dtype(n.kwargs['dtype'])})"
        dims = e.dims(1)
        keepdim = bool(e.value(2, "keepdim", False))
        for d in sorted(dims, reverse=True):
            x = f"{op}({x}, axis={d}, keepdim={literal(keepdim)})"
        return x

    return emit


def var_mean(e, n, *, both=True):
    dims = e.dims(1)
    if not dims:
        raise Unlowerable("a variance over no dimension")
    keepdim = bool(n.kwargs.get("keepdim", False))
    correction = n.kwargs.get("correction")
    correction = 1 if correction is None else correction
    x = e.let(e.arg(0))
    m = x
    for d in sorted(dims, reverse=True):
        m = f"mean({m}, axis={d}, keepdim=true)"
    m = e.let(m)
    sq = f"({x} - {m}) ** 2"
    for d in sorted(dims, reverse=True):
        sq = f"mean({sq}, axis={d}, keepdim={literal(keepdim)})"
    if correction:
        try:
            count = e.static_count(dims)
            sq = f"{sq} * {literal(count / (count - correction))}"
        except Unlowerable:  # a symbolic size: count the elements (ones in x's shape, NaN or not)
            ones = f"cast(where({x} == {x}, 1, 1), dtype={e.ir_dtype(e.meta(0).dtype)})"
            for d in sorted(dims, reverse=True):
                ones = f"sum({ones}, axis={d}, keepdim={literal(keepdim)})"
            count = e.let(ones)
            sq = f"{sq} * {count} / ({count} - {literal(correction)})"
    var = e.let(sq)
    if not both:
        return var
    mean = m
    if not keepdim:
        mean = e.arg(0)
        for d in sorted(dims, reverse=True):
            mean = f"mean({mean}, axis={d})"
    return var, e.let(mean)


def softmax(op):
    def emit(e, n):
        if n.args[2]:
            raise Unlowerable(f"{op} with half_to_float")
        return f"{op}({e.arg(0)}, axis={e.axis(1)})"

    return emit


# -- the backward ops AOTAutograd emits, as their formulas ---------------------------


def threshold_backward(e, n):
    return f"where({e.arg(1)} <= {e.arg(2)}, 0, {e.arg(0)})"


def gelu_backward(e, n):
    g, x = e.arg(0), e.let(e.arg(1))
    if n.kwargs.get("approximate", "none") == "tanh":
        beta, kappa = math.sqrt(2 / math.pi), 0.044715
        inner = e.let(f"tanh({beta!r} * ({x} + {kappa!r} * {x} * {x} * {x}))")
        left = f"0.5 * (1 + {inner})"
        right = f"0.5 * {x} * (1 - {inner} * {inner}) * {beta!r} * (1 + {3 * kappa!r} * {x} * {x})"
        return f"{g} * ({left} + {right})"
    cdf = f"0.5 * (1 + erf({x} * {math.sqrt(0.5)!r}))"
    pdf = f"exp(-0.5 * {x} * {x}) * {1 / math.sqrt(2 * math.pi)!r}"
    return f"{g} * ({cdf} + {x} * {pdf})"


def silu_backward(e, n):
    x = e.let(e.arg(1))
    s = e.let(f"sigmoid({x})")
    return f"{e.arg(0)} * {s} * (1 + {x} * (1 - {s}))"


def softmax_backward(e, n):
    g, y = e.let(e.arg(0)), e.let(e.arg(1))
    return f"{y} * ({g} - sum({g} * {y}, axis={e.axis(2)}, keepdim=true))"


def log_softmax_backward(e, n):
    g, y = e.let(e.arg(0)), e.arg(1)
    return f"{g} - exp({y}) * sum({g}, axis={e.axis(2)}, keepdim=true)"


def hardtanh_backward(e, n):
    lo, hi = literal(e.value(2, None)), literal(e.value(3, None))
    x = e.let(e.arg(1))
    return f"where(logical_or({x} <= {lo}, {x} >= {hi}), 0, {e.arg(0)})"


def leaky_relu_backward(e, n):
    x = e.let(e.arg(1))
    return f"where({x} > 0, {e.arg(0)}, {e.arg(0)} * {literal(e.value(2, None))})"


class Inline(str):
    """An IR expression that stands for a node in every use, with no value of
    its own (a literal)."""


def scalar_tensor(e, n):
    """A 0-d float32 constant (AOTAutograd's zero in a backward `where`, e.g.
    clamp's) as a weak literal: torch's 0-d float32 tensor decides the result
    dtype only against integer and boolean tensors, where a weak float literal
    gives float32 too. Inlined, so it is no partition input and no value."""
    value, dtype = n.args[0], n.kwargs.get("dtype") or torch.get_default_dtype()
    if dtype != torch.float32 or isinstance(value, bool) or not isinstance(value, int | float):
        raise Unlowerable(f"a scalar_tensor of {dtype} (a float32 one is a literal)")
    return Inline(literal(float(value)))


def getitem(e, n):
    values = e.value_of(n.args[0])
    if not isinstance(values, tuple):
        raise Unlowerable("getitem of a single value")
    return values[n.args[1]]


# ops that name their operand: a partition of these alone computes nothing
NOT_COMPUTING = {
    aten.clone.default,
    aten.alias.default,
    aten.detach.default,
    aten.scalar_tensor.default,  # a literal: alone, nothing to compute
    operator.getitem,
    aten.expand.default,
    *RESHAPES,
}

LOWERINGS = {
    aten.add.Tensor: scaled("add"),
    aten.add.Scalar: scaled("add"),
    aten.sub.Tensor: scaled("sub"),
    aten.sub.Scalar: scaled("sub"),
    aten.rsub.Scalar: rsub,
    aten.rsub.Tensor: rsub,
    aten.mul.Tensor: binary("mul"),
    aten.mul.Scalar: binary("mul"),
    aten.div.Tensor: div,
    aten.div.Scalar: div,
    aten.div.Tensor_mode: div,
    aten.pow.Tensor_Scalar: binary("pow"),
    aten.pow.Tensor_Tensor: binary("pow"),
    aten.pow.Scalar: binary("pow"),
    aten.neg.default: unary("neg"),
    aten.abs.default: unary("abs"),
    aten.reciprocal.default: unary("reciprocal"),
    aten.square.default: unary("square"),
    aten.maximum.default: binary("maximum"),
    aten.minimum.default: binary("minimum"),
    aten.exp.default: unary("exp"),
    aten.log.default: unary("log"),
    aten.log1p.default: unary("log1p"),
    aten.expm1.default: unary("expm1"),
    aten.sqrt.default: unary("sqrt"),
    aten.rsqrt.default: unary("rsqrt"),
    aten.sin.default: unary("sin"),
    aten.cos.default: unary("cos"),
    aten.tanh.default: unary("tanh"),
    aten.sigmoid.default: unary("sigmoid"),
    aten.erf.default: unary("erf"),
    aten.floor.default: unary("floor"),
    aten.ceil.default: unary("ceil"),
    aten.round.default: unary("round"),
    aten.sign.default: unary("sign"),
    aten.relu.default: unary("relu"),
    aten.leaky_relu.default: attr_op("leaky_relu", "alpha"),
    aten.elu.default: elu,
    aten.celu.default: attr_op("celu", "alpha"),
    aten.gelu.default: gelu,
    aten.silu.default: unary("silu"),
    aten.mish.default: unary("mish"),
    aten.softplus.default: attr_op("softplus", "beta", "threshold"),
    aten.hardtanh.default: attr_op("hardtanh", "min_val", "max_val"),
    aten.hardsigmoid.default: unary("hardsigmoid"),
    aten.hardswish.default: unary("hardswish"),
    aten._prelu_kernel.default: binary("prelu"),
    aten.clamp.default: clamp,
    aten.clamp_min.default: lambda e, n: f"maximum({e.arg(0)}, {e.arg(1)})",
    aten.clamp_max.default: lambda e, n: f"minimum({e.arg(0)}, {e.arg(1)})",
    aten.eq.Tensor: binary("eq"),
    aten.eq.Scalar: binary("eq"),
    aten.ne.Tensor: binary("ne"),
    aten.ne.Scalar: binary("ne"),
    aten.lt.Tensor: binary("lt"),
    aten.lt.Scalar: binary("lt"),
    aten.le.Tensor: binary("le"),
    aten.le.Scalar: binary("le"),
    aten.gt.Tensor: binary("gt"),
    aten.gt.Scalar: binary("gt"),
    aten.ge.Tensor: binary("ge"),
    aten.ge.Scalar: binary("ge"),
    aten.logical_and.default: binary("logical_and"),
    aten.logical_or.default: binary("logical_or"),
    aten.logical_not.default: unary("logical_not"),
    aten.where.self: where,
    aten.bitwise_not.default: boolean("logical_not"),
    aten.bitwise_and.Tensor: boolean("logical_and"),
    aten.bitwise_or.Tensor: boolean("logical_or"),
    aten._to_copy.default: to_copy,
    torch.ops.prims.convert_element_type.default: convert,
    aten.clone.default: identity,
    aten.alias.default: identity,
    aten.detach.default: identity,
    aten.mm.default: mm,
    aten.addmm.default: addmm,
    aten.sum.dim_IntList: reduce("sum"),
    aten.sum.default: reduce("sum"),
    aten.mean.dim: reduce("mean"),
    aten.mean.default: reduce("mean"),
    aten.amax.default: reduce("max"),
    aten.amin.default: reduce("min"),
    aten.var_mean.correction: var_mean,
    aten.var.correction: lambda e, n: var_mean(e, n, both=False),
    aten._softmax.default: softmax("softmax"),
    aten._log_softmax.default: softmax("log_softmax"),
    aten.threshold_backward.default: threshold_backward,
    aten.gelu_backward.default: gelu_backward,
    aten.silu_backward.default: silu_backward,
    aten.sigmoid_backward.default: lambda e, n: (
        f"{e.arg(0)} * {e.let(e.arg(1))} * (1 - {e.let(e.arg(1))})"
    ),
    aten.tanh_backward.default: lambda e, n: (
        f"{e.arg(0)} * (1 - {e.let(e.arg(1))} * {e.let(e.arg(1))})"
    ),
    aten._softmax_backward_data.default: softmax_backward,
    aten._log_softmax_backward_data.default: log_softmax_backward,
    aten.hardtanh_backward.default: hardtanh_backward,
    aten.leaky_relu_backward.default: leaky_relu_backward,
    aten.scalar_tensor.default: scalar_tensor,
    operator.getitem: getitem,
    **VIEW_LOWERINGS,
}

# ops whose tensor operands broadcast to their result (an absorbed expand's users)
ELEMENTWISE.update(
    set(LOWERINGS)
    - NOT_COMPUTING
    - {
        aten.mm.default,
        aten.addmm.default,
        aten.sum.dim_IntList,
        aten.sum.default,
        aten.mean.dim,
        aten.mean.default,
        aten.amax.default,
        aten.amin.default,
        aten.var_mean.correction,
        aten.var.correction,
        aten._softmax.default,
        aten._log_softmax.default,
        aten._softmax_backward_data.default,
        aten._log_softmax_backward_data.default,
    }
)
