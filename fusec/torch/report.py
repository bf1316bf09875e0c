"""What the backend did with each FX graph: which nodes went into which fusec
graph (and its kernel count), and why every other node did not."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field


@dataclass
class PartitionReport:
    name: str
    nodes: list  # (FX node name, ATen op)
    kernels: int
    ir: str
    error: str = ""  # why the partition was not compiled (it runs in PyTorch)


@dataclass
class GraphReport:
    kind: str  # "forward", "backward" or "inference"
    fallbacks: list = field(default_factory=list)  # (FX node name, ATen op, reason)
    partitions: list = field(default_factory=list)
    failed: list = field(default_factory=list)

    def __str__(self) -> str:
        kernels = sum(p.kernels for p in self.partitions)
        fused = sum(len(p.nodes) for p in self.partitions)
        lines = [
            f"{self.kind} graph: {fused} node(s) in {len(self.partitions)} fusec graph(s), "
            f"{kernels} kernel(s); {len(self.fallbacks)} node(s) in PyTorch"
        ]
        for p in self.partitions:
            lines.append(
                f"  fusec graph {p.name}: {p.kernels} kernel(s) for {len(p.nodes)} node(s)"
            )
            lines += [f"    {n} = {op}" for n, op in p.nodes]
        for p in self.failed:
            lines.append(f"  partition {p.name} runs in PyTorch: {p.error}")
            lines += [f"    {n} = {op}" for n, op in p.nodes]
        if self.fallbacks:
            lines.append("  in PyTorch:")
            lines += [f"    {n} = {op}: {reason}" for n, op, reason in self.fallbacks]
        return "\n".join(lines)


class Explanation(list):
    """The GraphReports of one `explain` call, in compile order."""

    @property
    def kernels(self) -> int:
        return sum(p.kernels for g in self for p in g.partitions)

    @property
    def graphs(self) -> list:
        return [p for g in self for p in g.partitions]

    @property
    def fallbacks(self) -> list:
        return [f for g in self for f in g.fallbacks]

    def __str__(self) -> str:
        return "\n".join(str(g) for g in self) or "nothing was compiled (Dynamo found no graph)"


_sinks = threading.local()


def current_reports() -> list:
    return getattr(_sinks, "stack", [])


@contextlib.contextmanager
def collecting(sink: Explanation):
    _sinks.stack = [*current_reports(), sink]
    try:
        yield sink
    finally:
        _sinks.stack = [s for s in _sinks.stack if s is not sink]
