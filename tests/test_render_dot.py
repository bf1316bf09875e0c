"""`fusec compile --emit dot|svg`: the fusion as a Graphviz picture.

The DOT text is checked for its structure here without Graphviz (a small
reader of the subset we write: nested subgraphs, node and edge statements),
and, where Graphviz's `dot` is installed, by drawing it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fusec.api import compile_graphs
from fusec.passes.fuse import fuse
from fusec.render_dot import fusion_dot

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "mlp.ir"
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|->|[{}\[\];=,]|[A-Za-z_][A-Za-z0-9_.#]*|-?[0-9.]+|\S')


def read_dot(text: str) -> dict:
    """Nodes (id -> (attributes, enclosing cluster names)), edges ((tail, head, attributes)),
    and clusters; fails on unbalanced braces, brackets or quotes."""
    tokens = TOKEN.findall(text)
    assert tokens[:3] == ["digraph", "fusion", "{"], tokens[:3]
    assert all(t != '"' for t in tokens), "an unterminated string"
    nodes, edges, clusters, stack = {}, [], [], []
    i = 3

    def attrs(j):
        found = {}
        if j < len(tokens) and tokens[j] == "[":
            j += 1
            while tokens[j] != "]":
                key, eq, value = tokens[j], tokens[j + 1], tokens[j + 2]
                assert eq == "=", tokens[j : j + 3]
                found[key] = value.strip('"')
                j += 3
                if tokens[j] == ",":
                    j += 1
            j += 1
        return found, j

    while i < len(tokens):
        t = tokens[i]
        if t == "subgraph":
            name = tokens[i + 1].strip('"')
            assert tokens[i + 2] == "{"
            stack.append(name)
            clusters.append(name)
            i += 3
        elif t == "}":
            if not stack:
                assert i == len(tokens) - 1, "text after the graph's closing brace"
                return {"nodes": nodes, "edges": edges, "clusters": clusters}
            stack.pop()
            i += 1
        elif t == ";":
            i += 1
        elif t in ("graph", "node", "edge"):
            _, i = attrs(i + 1)
        elif tokens[i + 1] == "=":  # a cluster's attribute: label="...";
            i += 3
        elif tokens[i + 1] == "->":
            found, j = attrs(i + 3)
            edges.append((t.strip('"'), tokens[i + 2].strip('"'), found))
            i = j
        else:
            found, i = attrs(i + 1)
            ident = t.strip('"')
            assert ident not in nodes, f"{ident} declared twice"
            nodes[ident] = (found, tuple(stack))
    raise AssertionError("the graph's braces do not close")


@pytest.fixture(scope="module")
def mlp():
    front = compile_graphs(MLP)
    return front, read_dot(fusion_dot(front.graphs))


def test_each_kernel_is_a_cluster_holding_its_ops(mlp):
    front, dot = mlp
    groups = {g.graph["name"]: fuse(g) for g in front.graphs}
    kernels = [grp.name for gs in groups.values() for grp in gs]
    assert kernels == [
        "mlp_g0",
        "mlp_g1",
        "mlp_loss_g0",
        "mlp_loss_g1",
        "mlp_loss_w0",  # log_softmax and the per-row loss: one row group
        "mlp_loss_r0",
    ]
    assert [c for c in dot["clusters"] if not c.startswith("cluster_graph_")] == [
        f"cluster_{k}" for k in kernels
    ]
    ops = {ident: stack for ident, (a, stack) in dot["nodes"].items() if a["shape"] == "ellipse"}
    for ident, stack in ops.items():
        graph, kernel, _ = ident.split("/")
        assert stack == (f"cluster_graph_{graph}", f"cluster_{kernel}"), ident
    in_g0 = sorted(dot["nodes"][i][0]["label"] for i in ops if "/mlp_g0/" in i)
    assert in_g0 == ["add", "linear", "relu\\nh"]  # the bias and relu run in the GEMM's epilogue
    # an op is drawn in the kernel that computes it: the logits' bias add, in
    # the row group that reads the product (each row pass recomputes it in registers)
    (add,) = [i for i in ops if dot["nodes"][i][0]["label"] == "add\\nlogits"]
    assert "/mlp_loss_w0/" in add


def test_what_goes_through_memory_is_marked(mlp):
    _, dot = mlp
    nodes, edges = dot["nodes"], dot["edges"]
    shape = {ident: a["shape"] for ident, (a, _) in nodes.items()}
    memory = {i for i, s in shape.items() if s in ("box", "cylinder")}
    assert {nodes[i][0]["label"] for i in memory if i.startswith("mlp/") and shape[i] == "box"} == {
        "x\\nf32[B, 784]",
        "w1\\nf32[256, 784]",
        "b1\\nf32[256]",
        "w2\\nf32[10, 256]",
        "b2\\nf32[10]",
        "out0\\nf32[B, 10]",
    }
    assert nodes["mlp/out0"][0]["peripheries"] == "2"
    assert (
        shape["mlp/m7"] == "cylinder" and nodes["mlp/m7"][0]["label"] == "h\\nf32[B, 256]"
    )  # relu, stored
    for tail, head, a in edges:
        assert tail in nodes and head in nodes, (tail, head)
        if tail in memory:
            assert a.get("style") == "dashed", (tail, head)  # read from memory
        elif head in memory:
            assert a.get("style") == "bold", (tail, head)  # written to memory
        else:
            assert "style" not in a, (tail, head)  # in registers
    assert ("mlp/mlp_g0/n7", "mlp/m7", {"style": "bold"}) in edges
    assert ("mlp/m7", "mlp/mlp_g1/n8", {"style": "dashed"}) in edges


def test_grad_graphs_and_views():
    front = compile_graphs(MLP, grad=True)
    derived = [d for kinds in front.derived.values() for d in kinds.values()]
    dot = read_dot(fusion_dot(derived))
    assert "cluster_graph_mlp_loss_bwd" in dot["clusters"]
    # a view is no kernel: its root is read from memory under the view's shape
    assert any(
        a.get("label") == "unsqueeze" and a.get("style") == "dashed" for _, _, a in dot["edges"]
    )


def test_a_returned_parameter_is_copied_by_a_kernel():
    front = compile_graphs("graph f(x: f32[N]) {\n  return x, x * 2\n}\n")
    dot = read_dot(fusion_dot(front.graphs))
    # the kernel copies x to out0 as it computes out1
    assert ("f/m0", "f/f_k0/copy0", {"style": "dashed"}) in dot["edges"]
    assert ("f/f_k0/copy0", "f/out0", {"style": "bold"}) in dot["edges"]
    assert ("f/f_k0/n2", "f/out1", {"style": "bold"}) in dot["edges"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_draws_it():
    front = compile_graphs(MLP, grad=True)
    graphs = [d for g in front.graphs for d in (g, *front.derived[g.graph["name"]].values())]
    done = subprocess.run(
        ["dot", "-Tsvg"], input=fusion_dot(graphs), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "<svg" in done.stdout and "mlp_loss_bwd" in done.stdout


# -- the command line, in-process ------------------------------------------------------


@pytest.fixture
def cli(capsys, monkeypatch):
    from fusec.cli import main

    monkeypatch.chdir(ROOT)

    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_emit_dot(cli):
    code, out, err = cli("compile", "examples/mlp.ir", "--emit", "dot", "--graph", "mlp")
    assert (code, err) == (0, "")
    dot = read_dot(out)
    assert "cluster_mlp_g0" in dot["clusters"] and "cluster_mlp_loss_g0" not in dot["clusters"]


def test_emit_dot_unknown_graph(cli):
    code, out, err = cli("compile", "examples/mlp.ir", "--emit", "dot", "--graph", "nope")
    assert (code, out) == (1, "")
    assert err == "fusec: error: no graph 'nope' in examples/mlp.ir (graphs: mlp, mlp_loss)\n"


def test_emit_svg_without_graphviz_is_a_clear_error(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    code, out, err = cli("compile", "examples/act.ir", "--emit", "svg")
    assert (code, out) == (1, "")
    assert err.startswith(
        "fusec: error: --emit svg needs Graphviz's `dot` program, which is not installed"
    )


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_emit_svg(cli):
    code, out, err = cli("compile", "examples/act.ir", "--emit", "svg")
    assert (code, err) == (0, "")
    assert out.lstrip().startswith("<?xml") and out.rstrip().endswith("</svg>") and "act_k0" in out


def test_emit_picture_with_outdir_is_a_usage_error(cli, tmp_path):
    code, out, err = cli("compile", "examples/act.ir", "--emit", "dot", "-o", tmp_path)
    assert code == 2 and "--emit dot prints a picture and builds nothing" in err
    assert not any(tmp_path.iterdir())
