"""Output arrays a partition returned before, written again once nothing holds them.

A new output array is fresh memory: on these machines the page faults of
first touching it cost more than the kernel that fills it (light chain f+b
at 2^20 floats: 1,508 minor faults and 3.4 ms a step with new arrays, 0 and
1.1 ms once the heap happened to be reused; Inductor 0-205 and 0.6-0.9 ms,
measured with resource.getrusage). So a partition keeps the arrays it
returned and passes one as `out=` when the tensor made from it is gone: a
tensor made by `torch.from_numpy` holds a reference to its array, as does
every view of it and every NumPy view, so an array that only this pool
refers to is free. A tensor the caller still holds, or AOTAutograd saved
for the backward, is never written.

At most SPARE arrays per output are kept (a loop that keeps its last
result while computing the next needs two), for at most SIGNATURES
different input shapes: memory held is bounded by a few sets of outputs
of each fusec graph, like a caching allocator's.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from ..runtime.memory import empty

SPARE = 2  # arrays kept per output shape and dtype
SIGNATURES = 8  # input shapes remembered per partition (dynamic shapes vary them)


class OutputPool:
    def __init__(self):
        self._outputs: dict = {}  # input shapes -> ((shape, dtype), ...) of the outputs
        self._arrays: dict = {}  # (shape, dtype) -> arrays this pool handed out
        self._lock = threading.Lock()  # two threads must never take one free array

    def take(self, key: tuple) -> tuple | None:
        """Arrays for the outputs of a call whose inputs have the shapes `key`,
        or None when no call with such inputs has been seen."""
        specs = self._outputs.get(key)
        if specs is None:
            return None
        taken: list = []  # holding a taken array makes it busy for the next output
        with self._lock:
            for spec in specs:
                taken.append(self._free(spec))
        return tuple(taken)

    def _free(self, spec):
        arrays = self._arrays.setdefault(spec, [])
        for i in range(len(arrays)):
            if sys.getrefcount(arrays[i]) == 2:  # the list's reference and the argument's
                return arrays[i]
        arr = empty(*spec)
        if len(arrays) < self._limit(spec):
            arrays.append(arr)
        return arr

    def _limit(self, spec) -> int:
        """SPARE sets of the outputs of this shape and dtype in one call."""
        return SPARE * max(specs.count(spec) for specs in self._outputs.values())

    def learn(self, key: tuple, results: tuple) -> None:
        """After a call fusec allocated for: its outputs' shapes, and the arrays
        themselves, reused once the caller drops them."""
        if not all(type(r) is np.ndarray and r.size for r in results):
            return  # a scalar, or an empty array: nothing to reuse
        specs = tuple((r.shape, r.dtype) for r in results)
        with self._lock:
            if len(self._outputs) >= SIGNATURES:
                dropped = self._outputs.pop(next(iter(self._outputs)))
                for spec in set(dropped) - {s for v in self._outputs.values() for s in v}:
                    self._arrays.pop(spec, None)
            self._outputs[key] = specs
            for spec, r in zip(specs, results, strict=True):
                arrays = self._arrays.setdefault(spec, [])
                if len(arrays) < self._limit(spec):
                    arrays.append(r)
