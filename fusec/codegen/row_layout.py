"""The row layout of an elementwise kernel with broadcast operands (issue 15).

The index space is `rows` rows of `inner` contiguous elements: the output's
axes from `split` on. Each broadcast operand is either constant along a row
(`[B, 1]`, NCHW's `[C, 1, 1]`: one value per row, splat) or equal to the
output there (`[D]`: vector loads at the row's offset + the column). Its
offset is computed once per work-item, in 32 bits where that fits, so the
vector path has no per-element index arithmetic. Mixed into ElementwiseKernel.
"""

from __future__ import annotations

from ..ir import dtypes as dt
from . import streaming
from .opencl_c import COMPUTE

ROW_COUNTS = ("inner", "rows")
# vectors per work-item on CPUs (measured: 1 divided too often, NCHW ~15% slower;
# 2 left [B, D] * [D] at 0.90x the flat chain's bandwidth, 4 at 0.96-1.00x)
ROW_VECTORS_CPU = 4


class RowLayout:
    def _aligned(self, p: int) -> tuple:
        shape = self.g.nodes[p]["shape"]
        return (1,) * (self.ndim - len(shape)) + tuple(shape)

    def _row_split(self) -> int | None:
        """The first axis of a row (rows: the axes before it), the smallest for
        which every broadcast operand is constant along a row or matches the
        output there; None when no operand is broadcast (the flat launch)."""
        if not self._broadcast_inputs():
            return None
        for s in range(1, self.ndim):
            if self._splits_at(s):
                return s
        return None  # not reached: an operand's last axis is 1 or the output's

    def _broadcast_inputs(self) -> list[int]:
        return [p for p in self.group.inputs if self.input_kind[p] in ("row", "column")]

    def _splits_at(self, s: int) -> bool:
        """Whether rows from axis s on suit every broadcast operand (constant along a row, or whole)."""
        shape = tuple(self.group.shape)
        return all(
            set(self._aligned(p)[s:]) == {1} or self._aligned(p)[s:] == shape[s:]
            for p in self._broadcast_inputs()
        )

    def _row_offsets(self, rows: str) -> list[str]:
        """`const long ob<p> = ...;` for each broadcast operand, at row `row` of `rows`."""
        out = []
        for p in self._broadcast_inputs():
            offset = self._row_offset(p)
            if (
                "%" in offset or "/" in offset
            ):  # 64-bit division is slow on CPUs: 32 bits where it fits
                offset = f"(({rows} >> 32) ? {offset} : {self._row_offset(p, narrow=True)})"
            out.append(f"const long ob{p} = {offset};")
        return out

    def _row_offset(self, p: int, narrow: bool = False) -> str:
        """Operand p's flat offset at the start of row `row` (over the row axes);
        `narrow`: its coordinates divided in 32 bits (rows < 2^32)."""
        a, s, d = self._aligned(p), self.split, self.dim_prefix
        cast = "(uint)" if narrow else ""
        terms = []
        for i in range(s):
            if a[i] == 1:
                continue
            inner = "".join(f" / {cast}{d}{j}" for j in range(i + 1, s))
            coord = f"({cast}row{inner} % {cast}{d}{i})" if i else f"({cast}row{inner})"
            coord = f"(long){coord}" if narrow else coord
            terms.append(
                coord + "".join(f" * {d}{j}" for j in range(i + 1, self.ndim) if a[j] != 1)
            )
        return " + ".join(terms) or "0"

    def _row_body(self, w: int, u: int) -> list[str]:
        """The row layout's kernel body: work-item t takes vector position
        t % items of row t / items (see the module's doc). One row per
        work-item: a loop over several (for short rows) ran 2-3x slower on
        Intel's CPU runtime, even where it ran once."""
        e = w * u
        out = [
            "    const long t = get_global_id(0);",
            f"    const long items = (inner + {e - 1}) / {e};",
            # one division per work-item; 32-bit where it fits (64-bit division is slow on CPUs)
            "    const long row = ((t | items) >> 32) ? t / items : (long)((uint)t / (uint)items);",
            f"    const long c0 = (t - row * items) * {e};",
            # streaming: no return, the group's last work-item fences its stores
            "    if (row < rows)" if self._streaming else "    if (row >= rows) return;",
            "    {",
            "        const long rb = row * inner;",
        ]
        out += ["        " + line for line in self._row_offsets("rows")]
        scalar = ["const long j = rb + c;", *self.body(1, "j")]
        if w == 1:
            return (
                out
                + ["        for (long c = c0; c < min(inner, c0 + " + str(e) + "); ++c) {"]
                + ["            " + line for line in scalar]
                + ["        }", "    }"]
            )
        out += [f"        if (c0 + {e} <= inner) {{"]
        vector = self.body(w, "i")
        for k in range(u):
            out += [f"            {{ const long c = c0 + {k * w}; const long i = rb + c;"]
            out += ["                " + line for line in vector] + ["            }"]
        out += ["        } else {", "            for (long c = c0; c < inner; ++c) {"]
        out += ["                " + line for line in scalar] + [
            "            }",
            "        }",
            "    }",
        ]
        return out + (["    " + streaming.FENCE] if self._streaming else [])

    @property
    def _row_length(self) -> str | None:
        """The row layout's row length (its count `inner`), None for the flat launch."""
        return None if self.split is None else "inner"

    def _hint(self, w: int) -> str:
        values = (
            [n for _, n in self.group.outputs] + list(self.group.stores) + list(self.group.inputs)
        )
        ct = COMPUTE[dt.concrete(self.g.nodes[values[0]]["dtype"])] if values else "float"
        return f"__attribute__((vec_type_hint({ct}{w})))"

    def _row_vector(self, p: int) -> bool:
        """Whether broadcast operand p matches the output along a row (else it is constant there)."""
        return set(self._aligned(p)[self.split :]) != {1}
