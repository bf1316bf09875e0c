"""`fusec warmup` fills the cache; `--check` is the CI gate."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fusec(*args, cache, cwd=REPO):
    env = {**os.environ, "FUSEC_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "fusec", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_warmup_then_check(tmp_path):
    src = tmp_path / "models"
    (src / "sub").mkdir(parents=True)
    (src / "a.ir").write_text("graph a(x: f32[N]) {\n return tanh(x) * 3\n}\n")
    (src / "sub" / "b.ir").write_text(
        "graph b(x: f32[N], y: f32[N]) {\n return x * y + 1, relu(x)\n}\n"
    )
    cache = tmp_path / "cache"

    before = fusec("warmup", str(src), "--check", cache=cache)
    assert before.returncode == 1
    assert "2 need building" in before.stdout
    assert "a.ir:a: not in the cache: the cache has no entry to compare with" in before.stdout

    first = fusec("warmup", str(src), "--jobs", "2", cache=cache)
    assert first.returncode == 0, first.stderr
    assert "2 built here, 0 by another process, 0 already cached" in first.stdout

    again = fusec("warmup", str(src), cache=cache)
    assert (
        again.returncode == 0
        and "0 built here, 0 by another process, 2 already cached" in again.stdout
    )

    after = fusec("warmup", str(src), "--check", cache=cache)
    assert after.returncode == 0 and "2 already cached" in after.stdout


def test_warmup_reports_bad_files_and_fails(tmp_path):
    (tmp_path / "good.ir").write_text("graph g(x: f32[N]) {\n return x + 1\n}\n")
    (tmp_path / "bad.ir").write_text("graph g(x: f32[N]) {\n return y\n}\n")
    out = fusec("warmup", str(tmp_path), cache=tmp_path / "cache")
    assert out.returncode == 1
    assert "bad.ir:3:9: error: unknown name 'y'" in out.stderr or "bad.ir:2:" in out.stderr
    assert "1 built" in out.stdout and "1 failed" in out.stdout
    assert "Traceback" not in out.stderr


def test_warmup_missing_path_is_a_clean_error(tmp_path):
    out = fusec("warmup", str(tmp_path / "nope"), cache=tmp_path / "cache")
    assert out.returncode == 1 and "no such file or directory" in out.stderr
    assert "Traceback" not in out.stderr


def test_concurrent_warmups_build_each_kernel_once_and_leave_valid_entries(tmp_path):
    """Three processes warming the same files at once: all succeed, the cache verifies."""
    src = tmp_path / "models"
    src.mkdir()
    for i in range(4):
        (src / f"m{i}.ir").write_text(
            f"graph g{i}(x: f32[N]) {{\n return tanh(x * {i + 2}) + {i}\n}}\n"
        )
    cache = tmp_path / "cache"
    env = {**os.environ, "FUSEC_CACHE_DIR": str(cache)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fusec", "warmup", str(src), "--json"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    # each graph is built here by one process; the others load it (built by
    # another process meanwhile) or find it cached
    counts = [json.loads(out)["counts"] for out, _ in outs]
    assert sum(c["built"] for c in counts) == 4, counts
    assert all(c["built"] + c["built_elsewhere"] + c["cached"] == 4 for c in counts), counts
    check = fusec("warmup", str(src), "--check", cache=cache)
    assert check.returncode == 0 and "4 already cached" in check.stdout

    from kernels_cache import KernelCache

    store = KernelCache(cache)
    entries = store.entries()
    assert len(entries) == 4 and all(store.get(e.key) is not None for e in entries)
    assert store.stats()["builds"] == 4, outs  # the lock made each kernel build in one process only


def test_off_a_terminal_a_line_per_graph(tmp_path):
    """A CI log shows progress: one plain line per graph on stdout, no carriage returns,
    then the summary (the spec: when stdout is not a terminal)."""
    for name in "abc":
        (tmp_path / f"{name}.ir").write_text(
            f"graph {name}(x: f32[N]) {{\n return exp(x) + 1\n}}\n"
        )
    out = fusec("warmup", str(tmp_path), cache=tmp_path / "cache")
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stdout and out.stderr == ""
    lines = out.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines[:3]] == [
        f"[{i}/3] {tmp_path}/{n}.ir:{n}" for i, n in zip((1, 2, 3), "abc", strict=True)
    ]
    assert all(": built in " in line and line.endswith(" s") for line in lines[:3])
    assert lines[3].startswith("warmup: 3 built here") and len(lines) == 4


def test_on_a_terminal_a_live_bar():
    from fusec.warmup import GraphResult, ProgressLog

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    log = ProgressLog(term)
    log(0, 2, None)
    log(1, 2, GraphResult("m.ir", "a", "built", 0.5))
    log(2, 2, GraphResult("m.ir", "b", "cached"))
    log.close()
    text = term.getvalue()
    assert "\r" in text and "2/2" in text  # the bar redraws itself
    assert "[1/2] m.ir:a: built in 0.50 s\n" in text and "[2/2] m.ir:b: already cached\n" in text


def test_check_says_which_key_part_differs(tmp_path):
    src = tmp_path / "models"
    src.mkdir()
    (src / "a.ir").write_text("graph a(x: f32[N]) {\n return tanh(x) * 3\n}\n")
    cache = tmp_path / "cache"
    assert fusec("warmup", str(src), cache=cache).returncode == 0
    (src / "a.ir").write_text("graph a(x: f32[N]) {\n return tanh(x) * 4\n}\n")
    out = fusec("warmup", str(src), "--check", "--json", cache=cache)
    assert out.returncode == 1
    assert "a.ir:a: not in the cache: nearest entry (a) differs in source\n" in out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is False and doc["check"] is True
    assert doc["counts"] == {
        "built": 0,
        "built_elsewhere": 0,
        "cached": 0,
        "missing": 1,
        "failed": 0,
    }
    (g,) = doc["graphs"]
    assert g == {
        "file": str(src / "a.ir"),
        "graph": "a",
        "status": "missing",
        "seconds": 0.0,
        "detail": "nearest entry (a) differs in source",
    }


def test_explain_miss_names_the_key_parts():
    from fusec.warmup import explain_miss

    now = {
        "source": "s",
        "options": "-cl-std=CL1.2",
        "platform": "P",
        "platform_version": "1",
        "device": "D",
        "device_version": "1",
        "driver_version": "2.0",
        "producer": "fusec 0.2.0",
    }
    older = {**now, "driver_version": "1.0", "producer": "fusec 0.1.0"}
    other_device = {**now, "platform": "Q", "device": "E", "source": "t"}
    assert explain_miss(now, [], "g") == "the cache has no entry to compare with"
    assert explain_miss(now, [("g", older), ("h", other_device)], "g") == (
        "nearest entry (g) differs in driver ('1.0' cached, '2.0' now); "
        "fusec version ('fusec 0.1.0' cached, 'fusec 0.2.0' now)"
    )
    assert explain_miss(now, [("h", other_device)], "g") == (
        "nearest entry (h) differs in source; device ('Q: E' cached, 'P: D' now)"
    )
    assert explain_miss(now, [("g", {**now, "options": "-O0"})], "g") == (
        "nearest entry (g) differs in options ('-O0' cached, '-cl-std=CL1.2' now)"
    )


def test_warmup_json_lists_every_graph_in_file_order(tmp_path):
    (tmp_path / "m.ir").write_text(
        "graph a(x: f32[N]) {\n return x + 1\n}\ngraph b(x: f32[N]) {\n return x * 3\n}\n"
    )
    (tmp_path / "z.ir").write_text("graph g(x: f32[N]) {\n return y\n}\n")
    out = fusec("warmup", str(tmp_path), "--json", "--jobs", "2", cache=tmp_path / "cache")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert set(doc) == {"ok", "check", "seconds", "counts", "graphs"}
    assert [(g["graph"], g["status"]) for g in doc["graphs"]] == [
        ("a", "built"),
        ("b", "built"),
        (None, "failed"),
    ]
    assert "unknown name 'y'" in doc["graphs"][2]["detail"]


def test_a_graph_another_process_built_meanwhile_is_told_apart(tmp_path, monkeypatch):
    """Not cached when looked up, then loaded rather than built: another process built it."""
    from fusec.runtime import Runtime
    from fusec.warmup import warmup

    (tmp_path / "m.ir").write_text("graph m(x: f32[N]) {\n return sin(x) * 5\n}\n")
    cache = tmp_path / "cache"
    assert fusec("warmup", str(tmp_path / "m.ir"), cache=cache).returncode == 0  # the other process
    monkeypatch.setattr(Runtime, "is_cached", lambda self, source: False)  # it had not finished yet
    report = warmup([tmp_path / "m.ir"], cache_dir=cache)
    assert [(r.graph, r.status) for r in report.results] == [("m", "built_elsewhere")]
    assert report.summary().startswith("0 built here, 1 by another process, 0 already cached")


def test_on_a_real_terminal_the_bar_runs_and_the_lines_stay(tmp_path):
    """A pseudo-terminal that reports no size, as CI runners' and `script`'s do: still a bar."""
    import pty

    (tmp_path / "t.ir").write_text("graph t(x: f32[N]) {\n return cos(x) + 2\n}\n")
    leader, follower = pty.openpty()
    env = {**os.environ, "FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "fusec", "warmup", str(tmp_path)],
        stdout=follower,  # the spec keys the bar on stdout being a terminal
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the terminal is closed and drained
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    shown = b"".join(chunks).decode()
    assert proc.returncode == 0, shown
    assert "0/1 [" in shown and "graph/s]" in shown  # tqdm's bar, from before the first build
    assert f"[1/1] {tmp_path}/t.ir:t: built in " in shown and "warmup: 1 built here" in shown
