"""Parts of a reduction kernel's code apart from its loops (reduction.py).

NanFlagSteps: max and min without NaN on the accumulator's chain. The
registry's `reduce_unordered` step (one compare and select) combines the
elements; `isnan` of each is ORed into a flag, and the result is NaN where
it is set. The isnan test on the accumulator made each step three dependent
operations (isnan, or, select) where this is one.

lane_tree: a vector's lanes folded in halves, shared with row_reduction.py.

merged_args: the arguments of a reduction's partial and finish stages as one
kernel's (reduction.py's `_single`).
"""

from __future__ import annotations

from ..ir import dtypes as dt
from .kernel_args import KernelArg, c_parameter
from .opencl_c import literal, render


class NanFlagSteps:
    """Mixed into ReductionKernel: uses its prim, dtype, acc, attrs and _combine."""

    @property
    def _nan_flag(self) -> bool:
        return bool(self.prim.reduce_unordered) and dt.is_float(self.dtype)

    def _nan_flag_init(self, w: int) -> list[str]:
        if not self._nan_flag:
            return []
        return [f"{render('{M}', {}, self.acc, {}, w, w, self.acc)} nan_seen = 0;"]

    def _combine_unordered(self, acc: str, x: str, w: int = 1) -> str:
        fields = {"acc": acc, "x": x}
        return render(self.prim.reduce_unordered, fields, self.acc, self.attrs, w, w, self.acc)

    def _vector_step(self, acc: str, value: str, w: int) -> list[str]:
        """`acc` combined with `value` (w lanes); with a NaN flag, the compare
        and select without NaN, and each element's isnan ORed into the flag."""
        if not self._nan_flag:
            return [f"{acc} = {self._combine(acc, value, w)};"]
        return [
            f"const {self.acc}{w} elem = {value};",
            "nan_seen |= isnan(elem);",
            f"{acc} = {self._combine_unordered(acc, 'elem', w)};",
        ]

    def _nan_flag_apply(self, acc: str, w: int) -> list[str]:
        """`acc` (w lanes of the flag's width, or a scalar for any lane) made NaN where it is set."""
        if not self._nan_flag:
            return []
        nan = literal(float("nan"), self.acc, w)
        if w == 1:
            return [f"if (any(nan_seen)) {acc} = {nan};"]
        return [f"{acc} = select({acc}, {nan}, nan_seen);"]


def merged_args(args: list[KernelArg]) -> list[KernelArg] | None:
    """Two kernels' arguments as one kernel's: one parameter per C name (an
    input both read); None where one name would stand for two things."""
    seen: dict[str, KernelArg] = {}
    out = []
    for a in args:
        name = c_parameter(a).split()[-1]
        if name in seen:
            if seen[name] != a:
                return None
            continue
        seen[name] = a
        out.append(a)
    return out


def lane_tree(v: str, w: int, ctype: str, merge, qualifier: str = "") -> tuple[list[str], str]:
    """Lines folding the `w` lanes of vector `v` in halves (log2(w) vector steps,
    not w - 1 scalar ones: short rows spend much of their time here), and the
    name of the scalar they end in. `merge(a, b, width)` combines two values."""
    lines = []
    while w > 1:
        w //= 2
        name = f"h{w}"
        lines.append(
            f"{qualifier}{ctype}{w if w > 1 else ''} {name} = {merge(f'{v}.lo', f'{v}.hi', w)};"
        )
        v = name
    return lines, v
