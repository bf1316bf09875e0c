#!/usr/bin/env python
"""The Redis tier: what a shared cache saves, and what a dead one costs (~1 min).

    python bench/cache_remote.py      # also run at the end of bench/cache.py

Starts its own redis-server on a free 127.0.0.1 port (none: the section is
skipped), and runs fresh processes, each with its own empty FUSEC_CACHE_DIR
and POCL_KERNEL_CACHE=0 (so PoCL's own cache hides nothing):

  a  remote warm   compile + first call of each graph in a process whose local
                   folder is empty and whose Redis holds the kernels: timed in
                   the process after `import fusec` and `import redis` (target
                   <= 10 ms median; the first graph also makes the OpenCL context),
                   the whole process's wall time (Python start-up included), and
                   what `import redis` costs on its own
     local warm    the same with the local folder warm (no Redis), for reference
  b  four cold     four processes at once, empty folders, one empty Redis: builds
                   summed over the four (target: the number of distinct kernels)
  c  dead Redis    time spent inside the remote tier by a process whose Redis is
                   dead: killed (the port refuses) and stopped (SIGSTOP: connects,
                   never answers) (target <= 0.5 s)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_WARM_MS = 10.0
TARGET_DEAD_S = 0.5
GRAPHS = {  # name -> IR; every graph takes x and y, f32[N]
    "light1": "graph light1(x: f32[N], y: f32[N]) {\n return x * y\n}\n",
    "light8": "graph light8(x: f32[N], y: f32[N]) {\n return clamp(relu(x * y + y) * y + y, min=-1.0, max=1.0)\n}\n",
    "heavy4": "graph heavy4(x: f32[N], y: f32[N]) {\n return sqrt(exp(tanh(sigmoid(x * y))))\n}\n",
    "mixed": "graph mixed(x: f32[N], y: f32[N]) {\n return tanh(x) * y + relu(y - x)\n}\n",
}


def child() -> None:
    """Compile and call every graph; print per-graph ms, remote time and stats as JSON."""
    import numpy as np
    import redis  # noqa: F401 - imported before the timing: (c) times Redis, not the import

    import fusec
    from kernels_cache import remote

    spent = [0.0]

    def timed(fn):
        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[0] += time.perf_counter() - start

        return wrapper

    for name in ("get", "put", "exists", "delete"):
        setattr(remote.RemoteTier, name, timed(getattr(remote.RemoteTier, name)))
    plain_lock = remote.RemoteTier.build_lock

    def build_lock(self, *a, **kw):
        cm = plain_lock(self, *a, **kw)
        start = time.perf_counter()
        held = cm.__enter__()
        spent[0] += time.perf_counter() - start

        class Timed:
            def __enter__(self):
                return held

            def __exit__(self, *exc):
                start = time.perf_counter()
                cm.__exit__(*exc)
                spent[0] += time.perf_counter() - start

        return Timed()

    remote.RemoteTier.build_lock = build_lock
    x = np.linspace(-1, 1, 1024, dtype=np.float32)
    rows = {}
    for name, text in GRAPHS.items():
        start = time.perf_counter()
        fusec.compile(text)[name](x, x)
        rows[name] = (time.perf_counter() - start) * 1e3
    from fusec.runtime import Runtime

    runtime = Runtime.shared()
    device = f"{runtime.device.platform.name.strip()} / {runtime.device.name.strip()}"
    print(
        json.dumps(
            {"ms": rows, "remote_s": spent[0], "stats": runtime.cache.stats(), "device": device}
        )
    )


def start_redis(folder: str):
    exe = shutil.which("redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    import redis

    client = redis.Redis(port=port, socket_timeout=5)
    for _ in range(300):
        try:
            client.ping()
            return proc, f"redis://127.0.0.1:{port}/0", client
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def run(root: str, url: str | None, local: str | None = None, wait=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEC_") or k == "FUSEC_DEVICE"}
    os.makedirs(os.path.join(root, "pocl"), exist_ok=True)
    env.update(FUSEC_CACHE_DIR=local or tempfile.mkdtemp(dir=root), POCL_KERNEL_CACHE="0",
               POCL_CACHE_DIR=tempfile.mkdtemp(dir=os.path.join(root, "pocl")))  # fmt: skip
    if url:
        env["FUSEC_REMOTE_CACHE"] = url
    cmd = [sys.executable, os.path.abspath(__file__), "--child"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc, start
    return finish(proc, start)


def finish(proc, start):
    out, err = proc.communicate(timeout=600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_ms"] = wall * 1e3
    result["warnings"] = err.count("RemoteWarning")
    return result


def med(xs) -> float:
    return statistics.median(xs)


def main(repeats: int = 5) -> list[str]:
    lines = []
    add = lines.append
    try:
        import redis  # noqa: F401
    except ImportError:
        return ["remote tier: skipped (pip install 'fusec[redis]')"]
    if shutil.which("redis-server") is None:
        return ["remote tier: skipped (no redis-server)"]
    root = tempfile.mkdtemp(prefix="fusec-bench-remote-")
    server, url, client = start_redis(root)
    try:
        add(f"remote tier (bench/cache_remote.py): graphs {', '.join(GRAPHS)}; "
            f"{repeats} fresh processes per row, POCL_KERNEL_CACHE=0")  # fmt: skip
        load = os.getloadavg()
        add(
            f"device: {run(root, url)['device']}; load average {load[0]:.2f} {load[1]:.2f} "
            f"{load[2]:.2f} at the start"
        )  # fmt: skip  (this first process fills Redis)
        warm_local = tempfile.mkdtemp(dir=root)
        run(root, None, local=warm_local)
        remote_runs = [run(root, url) for _ in range(repeats)]
        local_runs = [run(root, None, local=warm_local) for _ in range(repeats)]
        add("a  compile + first call, ms     first graph  other graphs (median, max)  process wall")
        for label, runs in (
            ("remote warm, local empty", remote_runs),
            ("local warm (reference)", local_runs),
        ):
            first = [r["ms"][next(iter(GRAPHS))] for r in runs]
            rest = [v for r in runs for n, v in r["ms"].items() if n != next(iter(GRAPHS))]
            every = [v for r in runs for v in r["ms"].values()]
            add(f"   {label:<28} {med(first):8.1f}     {med(rest):6.1f} {max(rest):6.1f}"
                f"                 {med(r['wall_ms'] for r in runs):6.0f}")  # fmt: skip
            if label.startswith("remote"):
                hits = sorted({r["stats"]["remote_hits"] for r in remote_runs})
                met = "yes" if med(every) <= TARGET_WARM_MS else "NO"
                add(f"   all graphs median {med(every):.1f} ms (target <= {TARGET_WARM_MS:g}: {met}); "
                    f"remote hits per process {hits}, builds {sorted({r['stats']['builds'] for r in runs})}")  # fmt: skip

        probe = "import time; s = time.perf_counter(); import redis; print(time.perf_counter() - s)"
        imports = [float(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                        text=True).stdout) * 1e3 for _ in range(3)]  # fmt: skip
        add(f"   not in the times above: `import redis`, {med(imports):.0f} ms, paid once by a process "
            "at its first local miss")  # fmt: skip
        client.flushall()
        folders = [tempfile.mkdtemp(dir=root) for _ in range(4)]
        start = time.perf_counter()
        procs = [run(root, url, local=f, wait=False) for f in folders]
        four = [finish(p, s) for p, s in procs]
        wall = time.perf_counter() - start
        builds = sum(r["stats"]["builds"] for r in four)
        add(f"b  four cold processes, one Redis: {builds} builds for {len(GRAPHS)} distinct kernels "
            f"({'met' if builds == len(GRAPHS) else 'NOT met'}), remote hits "
            f"{sum(r['stats']['remote_hits'] for r in four)}, wall {wall:.1f} s")  # fmt: skip

        server.kill()
        server.wait()
        refused = [run(root, url) for _ in range(3)]
        add("c  time inside the remote tier with a dead Redis, s (median, max; target <= "
            f"{TARGET_DEAD_S:g})")  # fmt: skip
        server, url, client = start_redis(root)
        os.kill(server.pid, signal.SIGSTOP)
        try:
            stopped = [run(root, url) for _ in range(3)]
        finally:
            os.kill(server.pid, signal.SIGCONT)
        for label, runs in (("killed (port refuses)", refused), ("stopped (no answer)", stopped)):
            spent = [r["remote_s"] for r in runs]
            add(f"   {label:<28} {med(spent):.4f} {max(spent):.4f}  "
                f"{'met' if max(spent) <= TARGET_DEAD_S else 'NOT met'}; warnings per process "
                f"{sorted({r['warnings'] for r in runs})}, remote errors "
                f"{sorted({r['stats']['remote_errors'] for r in runs})}")  # fmt: skip
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)
    return lines


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        print("\n".join(main()))
