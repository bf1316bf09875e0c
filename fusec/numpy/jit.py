"""`@fusec.jit`: a Python function traced once per signature into an IR graph.

The signature of a call is each argument's kind and dtype, its rank, which of
its axes have length 1, and which sizes are equal to which: sizes become
symbols (`N0`, `N1`, ...), so a call with new lengths of the same pattern
reuses the graph, and the same IR text reuses the program and the disk cache.
"""

from __future__ import annotations

import functools
import inspect
import threading
import types
import weakref
from dataclasses import dataclass

import numpy as np

from ..api import compile as compile_ir
from ..diagnostics import CallError, CompileError, TraceError
from ..ir import dtypes as dt
from ..ir.registry import generation
from .array import TracedArray
from .tracer import Tracer, ir_name

_PYTHON_SCALARS = (bool, int, float)


def _array_info(value):
    """(NumPy dtype, shape) of an array argument, or None for anything else."""
    if isinstance(value, np.ndarray | np.generic):
        return value.dtype, value.shape
    if hasattr(value, "__dlpack__") or hasattr(value, "__array_interface__"):
        try:
            view = np.from_dlpack(value) if hasattr(value, "__dlpack__") else np.asarray(value)
        except (TypeError, RuntimeError, BufferError):
            return None
        return view.dtype, view.shape
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # pyopencl.array.Array
        return np.dtype(value.dtype), tuple(value.shape)
    return None


def scalar_dtype(value, array_dtypes) -> str:
    """A Python number's parameter dtype: like NumPy 2's weak scalars, it takes the
    widest dtype of its kind among the array arguments (f32 / i64 if none)."""
    if isinstance(value, bool):
        return "bool"
    kinds = dt.FLOATS if isinstance(value, float) else dt.INTS
    present = [d for d in array_dtypes if d in kinds]
    if present:
        return max(present, key=dt.DTYPES.index)
    return "f32" if isinstance(value, float) else "i64"


def signature(names, values, static):
    """The cache key of a call and, per argument, what the tracer declares:
    ("array", dtype, dims) with dims symbols or 1, ("scalar", dtype), ("static", value)."""
    infos = [None if n in static else _array_info(v) for n, v in zip(names, values, strict=True)]
    array_dtypes = [dt.FROM_NUMPY[i[0]] for i in infos if i is not None and i[0] in dt.FROM_NUMPY]
    symbols: dict[int, str] = {}
    spec = []
    for name, value, info in zip(names, values, infos, strict=True):
        if name in static:
            spec.append(("static", value))
        elif info is not None:
            dtype, shape = info
            if dtype not in dt.FROM_NUMPY:
                raise CallError(
                    f"argument {name!r} has dtype {dtype}; fusec has {', '.join(dt.DTYPES)}"
                )
            dims = tuple(1 if n == 1 else symbols.setdefault(n, f"N{len(symbols)}") for n in shape)
            spec.append(("array", dt.FROM_NUMPY[dtype], dims))
        elif isinstance(value, _PYTHON_SCALARS):
            spec.append(("scalar", scalar_dtype(value, array_dtypes)))
        else:
            raise CallError(
                f"argument {name!r} is a {type(value).__name__}: fusec.jit takes arrays and numbers"
                " (name it in static_argnames to trace with its value)"
            )
    return tuple(spec)


@dataclass(frozen=True)
class Traced:
    """One signature's graph: its IR text, the compiled graph, its parameters'
    IR names and the Python arguments they stand for, and the output container."""

    text: str
    graph: object
    params: list
    arg_names: list
    structure: type | tuple | None  # tuple, list, a dict's keys, or None (one array)


class JitFunction:
    """A function compiled by fusec on its first call per signature."""

    def __init__(self, fn, *, grad=False, static_argnames=(), device=None):
        fn = _ufunc_as_function(fn) if isinstance(fn, np.ufunc) else fn
        self.fn, self.grad, self.device = fn, grad, device
        self.static = frozenset(static_argnames)
        self.signature_of_fn = inspect.signature(fn)
        self._positional = [
            p.name
            for p in self.signature_of_fn.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        self._simple = len(self._positional) == len(self.signature_of_fn.parameters)
        self._traces: dict = {}  # by signature
        self._by_exact_shape: dict = {}  # by exact shapes: a bounded memo over _traces
        # positional calls without static arguments: exact shapes -> (graph, container)
        # (`out=` is passed on to the graph, which checks it)
        self._positional_calls: dict = {}
        self._plain = self._simple and not self.static
        self._lock = threading.RLock()  # a traced function may call another jitted one
        self._methods = weakref.WeakKeyDictionary()  # instance -> its bound JitFunction
        functools.update_wrapper(self, fn)

    def __get__(self, instance, owner=None):
        """`@fusec.jit` on a method: `obj.method` is the function bound to `obj`,
        jitted with the same options (one per instance, so each keeps its traces)."""
        if instance is None:
            return self
        try:
            return self._methods[instance]
        except (KeyError, TypeError):  # TypeError: an instance that cannot be weakly keyed
            pass
        bound = JitFunction(
            types.MethodType(self.fn, instance),
            grad=self.grad,
            static_argnames=self.static,
            device=self.device,
        )
        try:
            self._methods[instance] = bound
        except TypeError:
            pass  # not cached: the next access traces again (the compile cache keeps the build)
        return bound

    def _arguments(self, args, kwargs) -> tuple[list[str], list]:
        if self._simple and not kwargs and len(args) == len(self._positional):
            return self._positional, list(args)  # the fast path: no inspect.bind
        try:
            bound = self.signature_of_fn.bind(*args, **kwargs)
        except TypeError as e:
            raise CallError(f"{self.fn.__name__}(): {e}") from None
        bound.apply_defaults()
        names, values = [], []
        for name, value in bound.arguments.items():
            kind = self.signature_of_fn.parameters[name].kind
            if kind == inspect.Parameter.VAR_POSITIONAL:
                names += [f"{name}_{i}" for i in range(len(value))]
                values += list(value)
            elif kind == inspect.Parameter.VAR_KEYWORD:
                names += list(value)
                values += list(value.values())
            else:
                names.append(name)
                values.append(value)
        return names, values

    def _traced(self, names, values) -> Traced:
        # Exact shapes first: a dict lookup for repeat calls, without working out
        # the symbolic signature (which sizes equal which) each time.
        exact = (
            tuple(names),
            tuple(
                ("static", v)
                if n in self.static
                else (type(v), getattr(v, "dtype", None), getattr(v, "shape", None))
                for n, v in zip(names, values, strict=True)
            ),
            generation(),
        )
        try:
            traced = self._by_exact_shape.get(exact)
        except TypeError:  # an unhashable static argument: the slow path says so
            traced, exact = None, None
        if traced is None:
            traced = self._traced_by_signature(names, values)
            if exact is not None:
                with self._lock:  # calls may come from many threads
                    if len(self._by_exact_shape) >= 64:
                        self._by_exact_shape.pop(next(iter(self._by_exact_shape)))
                    self._by_exact_shape[exact] = traced
        return traced

    def _traced_by_signature(self, names, values) -> Traced:
        spec = signature(names, values, self.static)
        key = (
            tuple(names),
            tuple(s if s[0] != "static" else ("static", _hashable(s[1])) for s in spec),
            generation(),
        )
        traced = self._traces.get(key)
        if traced is None:
            with self._lock:
                traced = self._traces.get(key) or self._trace(names, values, spec)
                self._traces[key] = traced
        return traced

    def _trace(self, names, values, spec) -> Traced:
        tracer = Tracer()
        inputs, params, arg_names = [], [], []
        for name, value, s in zip(names, values, spec, strict=True):
            if s[0] == "static":
                inputs.append(value)
            else:
                inputs.append(tracer.parameter(name, s[1], s[2] if s[0] == "array" else ()))
                params.append(inputs[-1].name)
                arg_names.append(name)
        rebuilt = _rebuild(
            self.signature_of_fn,
            names,
            inputs,
            self._simple and len(names) == len(self._positional),
        )
        result = self.fn(*rebuilt[0], **rebuilt[1])
        structure = _structure(result)
        outputs = (
            list(result.values() if isinstance(result, dict) else result) if structure else [result]
        )
        for i, out in enumerate(outputs):
            if not isinstance(out, TracedArray):
                key = structure[i] if isinstance(structure, tuple) else i
                where = f"output {key!r}" if structure else "the result"
                raise TraceError(
                    f"{self.fn.__name__} returned {type(out).__name__} as {where}: a traced function"
                    " must return arrays computed from its arguments",
                    self.fn.__code__.co_filename,
                    self.fn.__code__.co_firstlineno,
                )
        text = tracer.text(ir_name(self.fn.__name__, set()), outputs)
        try:
            program = compile_ir(text, grad=self.grad, device=self.device)
        except CompileError as e:
            raise tracer.located(e) from None
        graph = program[program.graphs[0]]
        return Traced(text, graph, params, arg_names, structure)

    def __call__(self, *args, out=None, **kwargs):
        if self._plain and not kwargs:
            try:
                hit = self._positional_calls.get(_exact_key(args))
            except (TypeError, TraceError):  # unhashable, or a TracedArray (its shape is
                hit = None  # symbolic): the path below says what is wrong, or inlines
            if hit is not None:  # a repeat of an earlier call's shapes: straight to the graph
                return _contained(hit[0](*args, out=out), hit[1])
        if out is None and any(isinstance(a, TracedArray) for a in (*args, *kwargs.values())):
            return self.fn(*args, **kwargs)  # called while another function is traced: inline it
        names, values = self._arguments(args, kwargs)
        traced = self._traced(names, values)
        arrays = [v for n, v in zip(names, values, strict=True) if n not in self.static]
        result = _contained(traced.graph(*arrays, out=out), traced.structure)
        if self._plain and not kwargs and len(args) == len(self._positional):
            self._remember(args, traced)
        return result

    def _remember(self, args, traced: Traced) -> None:
        key = _exact_key(args)
        try:
            hash(key)
        except TypeError:  # an unhashable argument (its call failed or took another path)
            return
        with self._lock:
            if len(self._positional_calls) >= 64:
                self._positional_calls.pop(next(iter(self._positional_calls)))
            self._positional_calls[key] = (traced.graph, traced.structure)

    def ir(self, *args, **kwargs) -> str:
        """The IR text traced for these arguments' signature."""
        return self._traced(*self._arguments(args, kwargs)).text

    def value_and_grad(self, *args, grad_outputs=None, **kwargs):
        """The outputs and {argument name: gradient} of every float argument."""
        traced, arrays = self._for_grad(args, kwargs)
        grad_outputs = _in_output_order(grad_outputs, traced.structure)
        outputs, grads = traced.graph.value_and_grad(*arrays, grad_outputs=grad_outputs)
        return _contained(outputs, traced.structure), _by_argument(traced, grads)

    def vjp(self, *args, grad_outputs=None, **kwargs) -> dict:
        traced, arrays = self._for_grad(args, kwargs)
        grad_outputs = _in_output_order(grad_outputs, traced.structure)
        return _by_argument(traced, traced.graph.vjp(*arrays, grad_outputs=grad_outputs))

    def _for_grad(self, args, kwargs):
        if not self.grad:
            raise CallError(
                f"{self.fn.__name__} was jitted without gradients; use fusec.jit(fn, grad=True)"
            )
        names, values = self._arguments(args, kwargs)
        return self._traced(names, values), [
            v for n, v in zip(names, values, strict=True) if n not in self.static
        ]


def _ufunc_as_function(ufunc):
    """`fusec.jit(np.tanh)`: the ufunc's array operands only (its signature's
    `out`, `where`, ... keywords are no arrays to trace)."""

    def call(*operands):
        return ufunc(*operands)

    call.__name__ = call.__qualname__ = ufunc.__name__
    positional = inspect.Parameter.POSITIONAL_ONLY
    call.__signature__ = inspect.Signature(
        [inspect.Parameter(f"x{i + 1}", positional) for i in range(ufunc.nin)]
    )
    return call


def _exact_key(args) -> tuple:
    """Arguments' kinds, dtypes and exact shapes, with the registry's generation
    (an op registered since may change a trace)."""
    return (
        generation(),
        *[(type(a), getattr(a, "dtype", None), getattr(a, "shape", None)) for a in args],
    )


def _structure(result):
    """How the traced function returned its outputs: tuple, list, the keys of a
    dict (in its order), or None for one array."""
    if isinstance(result, dict):
        return tuple(result)
    return type(result) if isinstance(result, tuple | list) else None


def _contained(result, structure):
    """The graph's result in the container the traced function returned."""
    if isinstance(structure, tuple):  # a dict's keys
        return dict(zip(structure, result if isinstance(result, tuple) else (result,), strict=True))
    if structure is list:
        return list(result) if isinstance(result, tuple) else [result]
    if structure is tuple and not isinstance(result, tuple):
        return (result,)
    return result


def _in_output_order(grad_outputs, structure):
    """Cotangents given as a dict for a function that returned a dict: in its key order."""
    if isinstance(grad_outputs, dict) and isinstance(structure, tuple):
        missing = [k for k in structure if k not in grad_outputs]
        if missing:
            raise CallError(f"grad_outputs lacks the output(s) {missing}")
        return tuple(grad_outputs[k] for k in structure)
    return grad_outputs


def _by_argument(traced: Traced, grads: dict) -> dict:
    by_param = dict(zip(traced.params, traced.arg_names, strict=True))
    return {by_param[k]: v for k, v in grads.items()}


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        raise CallError(f"static argument {value!r} is not hashable") from None
    return value


def _rebuild(sig, names, inputs, simple):
    """(args, kwargs) for the traced call, undoing `_arguments`' flattening
    (`*rest` became rest_0, rest_1, ...; `**kw` its keys)."""
    if simple:
        return inputs, {}
    by_name = dict(zip(names, inputs, strict=True))
    params = sig.parameters.values()
    rest = next((p.name for p in params if p.kind == p.VAR_POSITIONAL), None)

    def from_rest(n):
        return rest is not None and n.startswith(f"{rest}_") and n[len(rest) + 1 :].isdigit()

    args, kwargs = [], {}
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            args += [by_name[n] for n in names if from_rest(n)]
        elif p.kind == p.VAR_KEYWORD:
            kwargs.update(
                {n: v for n, v in by_name.items() if n not in sig.parameters and not from_rest(n)}
            )
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            args.append(by_name[p.name])
        else:
            kwargs[p.name] = by_name[p.name]
    return args, kwargs


def jit(fn=None, *, grad=False, static_argnames=(), device=None):
    """`@fusec.jit` or `fusec.jit(fn, grad=True, static_argnames=("axis",))`."""
    if fn is None:
        return lambda f: JitFunction(f, grad=grad, static_argnames=static_argnames, device=device)
    return JitFunction(fn, grad=grad, static_argnames=static_argnames, device=device)
