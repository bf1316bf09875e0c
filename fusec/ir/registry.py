"""The primitive registry: one frozen entry per op, in one table.

An entry holds everything fusec knows about an op: its inputs, attributes and
their defaults, how its dtype follows from its inputs', what kind of fusion it
takes part in, its OpenCL template and a NumPy reference. Code generation
reads templates from here and knows no op by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Required:
    """An attribute default meaning "must be given"; a given value is checked
    against the type of `like` (None: checked by the op, as cast's dtype is)."""

    like: object = None


REQUIRED = Required()
REQUIRED_INT = Required(0)  # an axis: `squeeze(x, axis=f64)` is an error, not a crash

# How an op's operand and result dtypes follow from its inputs:
#   promote  operands promoted together (PyTorch rules); result of that dtype
#   float    like promote, then integers/bools go to f32 (exp of an int is f32)
#   compare  operands promoted together; result bool
#   logical  operands read as bool; result bool
#   where    first operand read as bool, the others promoted; result of that dtype
#   cast     result is the `dtype` attribute; operand as it is
#   sum      like promote, but integers and bools accumulate and result in i64 (torch.sum)
#   bounds   like promote, with the numeric attributes given (not infinite) as weak
#            literals: clamp(k, min=1.5) of an integer k is f32, as torch.clamp's
DTYPE_RULES = ("promote", "float", "compare", "logical", "where", "cast", "sum", "bounds")
# view: the operand's memory under another shape (autodiff's unsqueeze); never
# computed in a kernel, its operand is read from memory with the view's shape
KINDS = ("elementwise", "gemm", "reduction", "view")


@dataclass(frozen=True)
class Primitive:
    """One op.

    `forward` is an OpenCL C expression template, or a mapping from a dtype
    category ("float", "int", "bool") to one. Placeholders: `{x}`, `{a}`, ...
    the operands by the names in `inputs`; an attribute by its name (rendered
    as a literal of the compute type); `{T}` the compute type of the value
    (`float`, `float8`, `double`, `int4`...), `{S}` its scalar type, `{M}` the
    matching integer mask type, `{W}` the vector width suffix ("" or "8"),
    `{ONE}`, `{ZERO}` literals of T. Templates
    must be valid for scalar and vector T alike.
    """

    name: str
    inputs: tuple[str, ...]
    forward: str | Mapping[str, str]
    numpy: Callable
    dtype_rule: str = "promote"
    attrs: Mapping[str, object] = field(default_factory=dict)
    attr_choices: Mapping[str, tuple] = field(default_factory=dict)
    kind: str = "elementwise"
    # The vector-Jacobian product, one IR expression per input (see `backward_for`).
    backward: Mapping[str, str] = field(default_factory=dict)
    # Reductions: the accumulator's starting value, a template like `forward`,
    # whose `{acc}` and `{x}` are the running value and the next element.
    reduce_init: str = ""
    # Reductions: (operand shape, attrs) -> (reduced axes, result shape); views:
    # (operand shape, attrs) -> result shape. ValueError with the user's message.
    reduce_shape: Callable | None = None
    # Reductions: the result from the combined value, over `{acc}` and `{count}`
    # (the elements combined into it); "" keeps `{acc}` (mean's is {acc} / {count}).
    reduce_finish: str = ""
    # Reductions that propagate NaN (max, min): the float combining step for
    # operands that are not NaN (one compare and select: the vector max
    # instruction). A kernel using it ORs `isnan` of each element into a flag
    # and makes the result NaN where it is set, off the accumulator's chain.
    reduce_unordered: str = ""
    # False: a bool operand is an error (torch refuses -b and b - b; NumPy too)
    bool_operands: bool = True
    # inputs that may not be a negative literal when the op computes in an
    # integer dtype (pow's exponent: torch refuses k ** -1 for an integer k)
    int_nonnegative: tuple[str, ...] = ()
    internal: bool = False  # made by passes (autodiff's sum_to); not callable from IR text
    # A composite op: an IR expression over other ops that replaces each call
    # (inputs by name, attribute values by `{name}`), e.g. softmax's.
    # A mapping from a number of operands to the expression, for ops whose
    # optional inputs (linear's b) make the difference.
    lowering: str | Mapping[int, str] = ""
    optional_inputs: tuple[str, ...] = ()  # inputs a call may leave out
    # GEMMs: (operand shapes..., **attrs) -> result shape; ValueError with the user's message.
    gemm_shape: Callable | None = None
    # GEMMs: whether a and b enter transposed (attributes ta, tb override)
    gemm_transposed: tuple[bool, bool] = (False, False)
    infix: str | None = None  # IR sugar (`+`, `**`, ...) that lowers to this op
    # Widest vector the template may run on, per compute dtype; wider vectors
    # are split into halves (.lo/.hi). For builtins a driver gets wrong when wide.
    max_width: Mapping[str, int] = field(default_factory=dict)
    doc: str = ""

    def __post_init__(self):
        assert self.dtype_rule in DTYPE_RULES, self.dtype_rule
        assert self.kind in KINDS, self.kind
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))
        object.__setattr__(self, "attr_choices", MappingProxyType(dict(self.attr_choices)))
        object.__setattr__(self, "max_width", MappingProxyType(dict(self.max_width)))
        object.__setattr__(self, "backward", MappingProxyType(dict(self.backward)))
        if not isinstance(self.forward, str):
            object.__setattr__(self, "forward", MappingProxyType(dict(self.forward)))
        if not isinstance(self.lowering, str):
            object.__setattr__(self, "lowering", MappingProxyType(dict(self.lowering)))

    @property
    def arity(self) -> int:
        """Operands of the op itself (without optional inputs)."""
        return len(self.inputs) - len(self.optional_inputs)

    def template_for(
        self,
        category: str,
        attrs: Mapping[str, object] = MappingProxyType({}),
        quirks: frozenset[str] = frozenset(),
    ) -> str:
        """The forward template for a dtype category ("float", "int" or "bool").

        A key `"float|approximate=tanh"` holds the variant for that attribute
        value; a key `"float@QUIRK"` the variant for a device with that quirk
        (`DeviceInfo.quirks`: a driver bug the plain template would meet).
        """
        if isinstance(self.forward, str):
            return self.forward
        for cat in (category, "int" if category == "bool" else None, "float"):
            for quirk in sorted(quirks):
                if f"{cat}@{quirk}" in self.forward:
                    return self.forward[f"{cat}@{quirk}"]
            for name, value in attrs.items():
                key = f"{cat}|{name}={value}"
                if key in self.forward:
                    return self.forward[key]
            if cat in self.forward:
                return self.forward[cat]
        raise KeyError(f"{self.name} has no template for {category}")

    def lowering_for(self, operands: int) -> str:
        """The expression a call with this many operands is written as ("" for none)."""
        if isinstance(self.lowering, str):
            return self.lowering
        return self.lowering.get(operands, "")

    def transposed(self, attrs: Mapping[str, object]) -> tuple[bool, bool]:
        """A GEMM's (ta, tb) for a node's attributes."""
        return (
            bool(attrs.get("ta", self.gemm_transposed[0])),
            bool(attrs.get("tb", self.gemm_transposed[1])),
        )

    def backward_for(
        self, input_name: str, attrs: Mapping[str, object] = MappingProxyType({})
    ) -> str | None:
        """The IR expression giving this input's share of the gradient, or None.

        The expression is written in the IR itself, over registry ops. Its
        names: the op's inputs, `out` (the op's result), `g` (the cotangent of
        the result) and the attributes. `"0"` declares the gradient zero (floor,
        sign: PyTorch's convention); a key `"x|approximate=tanh"` holds the
        variant for that attribute value, `"a|ta=True,tb=False"` the one for
        that combination (every attribute, sorted by name).
        """
        # a variant for a combination of attributes: "a|ta=True,tb=False" (gemm's)
        combined = ",".join(f"{name}={value}" for name, value in sorted(attrs.items()))
        if f"{input_name}|{combined}" in self.backward:
            return self.backward[f"{input_name}|{combined}"]
        for name, value in attrs.items():
            key = f"{input_name}|{name}={value}"
            if key in self.backward:
                return self.backward[key]
        return self.backward.get(input_name)


REGISTRY: dict[str, Primitive] = {}
_generation = [0]  # bumped on every registration: compiled programs keyed on it go stale


def generation() -> int:
    return _generation[0]


def register(prim: Primitive, *, replace: bool = False) -> Primitive:
    if prim.name in REGISTRY and not replace:
        raise ValueError(f"primitive {prim.name!r} is already registered")
    REGISTRY[prim.name] = prim
    _generation[0] += 1
    return prim


def check_template(prim: Primitive) -> None:
    """Reject templates naming placeholders that will never be filled."""
    import string

    known = (
        set(prim.inputs)
        | set(prim.attrs)
        | {"T", "S", "M", "W", "ONE", "ZERO", "LOWEST", "HIGHEST", "acc", "count"}
    )
    templates = [prim.forward] if isinstance(prim.forward, str) else list(prim.forward.values())
    for template in templates:
        for _, field_name, _, _ in string.Formatter().parse(template):
            if field_name is not None and field_name not in known:
                raise ValueError(
                    f"template of {prim.name!r} names {{{field_name}}}, "
                    f"which is neither an input nor an attribute"
                )


def lookup(name: str) -> Primitive | None:
    _load_builtin_ops()
    return REGISTRY.get(name)


def all_primitives() -> dict[str, Primitive]:
    _load_builtin_ops()
    return REGISTRY


_loaded = False


def _load_builtin_ops() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from . import ops  # noqa: F401  (each module registers its entries)
