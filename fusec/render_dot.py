"""The fusion as a picture: `fusec compile --emit dot|svg`.

Graphviz DOT with one cluster per kernel (`subgraph cluster_<kernel>`), its
ops inside. What goes through memory is drawn apart from what stays in
registers: parameters (blue boxes), stored intermediates (orange cylinders)
and outputs (green double boxes) sit outside the kernels; an edge read from
memory is dashed, one written to memory bold, one in registers plain. An op
that several kernels recompute appears in each of them, as it runs.

Built from the front end and the fusion pass alone: no device is involved.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import networkx as nx

from .diagnostics import FusecError
from .passes.fuse import FusionGroup, fuse, view_root

SVG_TIMEOUT = 60.0  # seconds Graphviz may take; a picture of a large graph takes one or two

PARAM = 'shape=box, style="rounded,filled", fillcolor="#dbe8f7"'
STORED = 'shape=cylinder, style=filled, fillcolor="#f7e3c4"'
OUTPUT = 'shape=box, peripheries=2, style=filled, fillcolor="#d8f0d8"'
OP = 'shape=ellipse, style=filled, fillcolor="white"'
CONST = "shape=plaintext"
READ, WRITE = "style=dashed", "style=bold"  # an edge in registers is plain
LEGEND = "plain edge: in registers    dashed: read from memory    bold: written to memory"


def _id(text: str) -> str:
    """A DOT ID: bare when it is an identifier, else quoted."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(*lines: str) -> str:
    return '"' + "\\n".join(s.replace("\\", "\\\\").replace('"', '\\"') for s in lines) + '"'


def _type(node: dict) -> str:
    return f"{node['dtype']}[{', '.join(map(str, node['shape']))}]"


def fusion_dot(graphs: list[nx.DiGraph]) -> str:
    """One DOT digraph for these graphs (each a cluster of kernel clusters)."""
    out = [
        "digraph fusion {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, labelloc=b, '
        f"label={_label(LEGEND)}];",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for g in graphs:
        out += ["  " + line for line in _graph(g)]
    out.append("}")
    return "\n".join(out) + "\n"


def _graph(g: nx.DiGraph) -> list[str]:
    gname = g.graph["name"]
    groups = fuse(g)
    stored = {n for grp in groups for n in grp.stores}
    lines = [
        f"subgraph {_id('cluster_graph_' + gname)} {{",
        f"  label={_label('graph ' + gname)}; labelloc=t;",
        '  style=dashed; color="#888888";',
    ]
    nodes, edges = [], []

    def memory(n: int) -> str:
        return _id(f"{gname}/m{n}")

    for p in g.graph["params"]:
        attrs = g.nodes[p]
        nodes.append(f"{memory(p)} [{PARAM}, label={_label(attrs['name'], _type(attrs))}];")
    for n in sorted(stored):
        attrs = g.nodes[n]
        nodes.append(
            f"{memory(n)} [{STORED}, label={_label(attrs.get('name') or attrs['op'], _type(attrs))}];"
        )
    outputs = [_id(f"{gname}/out{i}") for i in range(len(g.graph["outputs"]))]
    for i, o in enumerate(g.graph["outputs"]):
        nodes.append(f"{outputs[i]} [{OUTPUT}, label={_label(f'out{i}', _type(g.nodes[o]))}];")

    written = set()
    for grp in groups:
        body, more_edges = _kernel(g, grp, memory, outputs, stored)
        lines += ["  " + line for line in body]
        edges += more_edges
        written |= {i for i, _ in grp.outputs}
    for i, o in enumerate(
        g.graph["outputs"]
    ):  # returned as it is in memory: a param, a stored value
        if i not in written:
            edges.append(f"{memory(view_root(g, o))} -> {outputs[i]} [{READ}];")
    return lines + ["  " + line for line in nodes + edges] + ["}"]


def _is_view(g: nx.DiGraph, n: int) -> bool:
    return view_root(g, n) != n


def _kernel(
    g: nx.DiGraph, grp: FusionGroup, memory, outputs, stored
) -> tuple[list[str], list[str]]:
    """The cluster of one kernel, and the edges into and out of its ops."""
    prefix = f"{g.graph['name']}/{grp.name}/"
    computed = [n for n in (*grp.prologue, grp.anchor, *grp.nodes, *grp.epilogue) if n is not None]
    computed += [r for r in grp.reductions if r != grp.anchor]  # a row group's others
    local = set(computed)
    body = [
        f"subgraph {_id('cluster_' + grp.name)} {{",
        f"  label={_label(f'{grp.name} ({grp.kind})')}; labelloc=t; labeljust=l; tooltip={_label(grp.reason)};",
        '  style="rounded,filled"; fillcolor="#f4f4f4"; color="#555555";',
    ]
    edges = []
    drawn = set()

    def op_node(n: int) -> str:
        ident = _id(f"{prefix}n{n}")
        if n not in drawn:
            drawn.add(n)
            attrs = g.nodes[n]
            name = attrs.get("name")
            body.append(
                f"  {ident} [{OP}, label={_label(attrs['op'], name) if name else _label(attrs['op'])}];"
            )
        return ident

    def source(a: int, via: str = "") -> tuple[str, str]:
        """Where an op's operand comes from: (node, edge attributes)."""
        label = f", label={_label(via)}" if via else ""
        attrs = g.nodes[a]
        if a in local:
            return op_node(a), label.lstrip(", ")
        if attrs["op"] == "const":
            ident = _id(f"{prefix}c{a}")
            if a not in drawn:
                drawn.add(a)
                body.append(f"  {ident} [{CONST}, label={_label(str(attrs['value']))}];")
            return ident, ""
        if attrs["op"] == "param" or a in stored:
            return memory(a), READ + label
        if _is_view(g, a):
            (root,) = attrs["args"]
            return source(root, attrs["op"])
        local.add(a)  # computed here though no list of the group names it: draw it where it runs
        wire(a)
        return op_node(a), label.lstrip(", ")

    def wire(n: int) -> None:
        target = op_node(n)
        for a in g.nodes[n]["args"]:
            src, style = source(a)
            edges.append(f"{src} -> {target}" + (f" [{style}]" if style else "") + ";")

    for n in computed:
        wire(n)
    for n in grp.stores:
        edges.append(f"{op_node(n)} -> {memory(n)} [{WRITE}];")
    for i, n in grp.outputs:
        if n in local:
            src = op_node(n)
        else:  # the kernel copies a value it reads (a returned parameter) to the output
            src = _id(f"{prefix}copy{i}")
            body.append(f'  {src} [{OP}, label="copy"];')
            from_node, style = source(n)
            edges.append(f"{from_node} -> {src}" + (f" [{style}]" if style else "") + ";")
        edges.append(f"{src} -> {outputs[i]} [{WRITE}];")
    return body + ["}"], edges


def render_svg(dot: str, timeout: float = SVG_TIMEOUT) -> str | None:
    """The picture as SVG, drawn by Graphviz's `dot`; None where it is not installed."""
    program = shutil.which("dot")
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "-Tsvg"], input=dot, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise FusecError(
            f"Graphviz's dot took more than {timeout:.0f} s to draw the graph; "
            "--emit dot gives the graph to draw another way"
        ) from None
    except OSError as e:
        raise FusecError(f"cannot run Graphviz's dot ({program}): {e.strerror or e}") from None
    if done.returncode != 0:
        raise FusecError(f"Graphviz's dot failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout
