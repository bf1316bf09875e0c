"""`fusec warmup`: compile every graph of every .ir file under some paths into the cache.

For CI: run it once and keep the cache directory between jobs; `--check`
builds nothing and fails if anything would need building, saying for each
miss which part of the cache key differs from the nearest cached entry.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from .diagnostics import CompileError

# What a graph's warm-up came to, and how a line of the log says it.
STATUS_TEXT = {
    "built": "built",
    "built_elsewhere": "built by another process meanwhile (loaded)",
    "cached": "already cached",
    "missing": "not in the cache",
    "failed": "failed",
}

# The cache key's components (Runtime.key_components), grouped as a person names them.
KEY_PARTS = {
    "source": "source",
    "options": "options",
    "platform": "device",
    "platform_version": "device",
    "device": "device",
    "device_version": "device",
    "driver_version": "driver",
    "producer": "fusec version",
}


@dataclass
class GraphResult:
    file: str
    graph: str | None  # None: the file itself failed (a diagnostic)
    status: str  # a key of STATUS_TEXT
    seconds: float = 0.0
    detail: str | None = None  # failed: the diagnostics; missing: why (which key part differs)

    @property
    def label(self) -> str:
        return f"{self.file}:{self.graph}" if self.graph else self.file


@dataclass
class WarmupReport:
    results: list[GraphResult]
    check: bool = False
    seconds: float = 0.0

    def _labels(self, status: str) -> list[str]:
        return [r.label for r in self.results if r.status == status]

    @property
    def built(self) -> list[str]:
        return self._labels("built")

    @property
    def built_elsewhere(self) -> list[str]:
        return self._labels("built_elsewhere")

    @property
    def cached(self) -> list[str]:
        return self._labels("cached")

    @property
    def missing(self) -> list[str]:
        return self._labels("missing")

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(r.label, r.detail or "") for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not any(r.status in ("failed", "missing") for r in self.results)

    def summary(self) -> str:
        need = f"{len(self.missing)} need building, " if self.missing else ""
        built = (
            ""
            if self.check
            else (f"{len(self.built)} built here, {len(self.built_elsewhere)} by another process, ")
        )
        return (
            f"{built}{len(self.cached)} already cached, {need}"
            f"{len(self.failed)} failed, {self.seconds:.1f} s"
        )

    def as_json(self) -> dict:
        counts = {status: sum(r.status == status for r in self.results) for status in STATUS_TEXT}
        return {
            "ok": self.ok,
            "check": self.check,
            "seconds": round(self.seconds, 3),
            "counts": counts,
            "graphs": [{**asdict(r), "seconds": round(r.seconds, 3)} for r in self.results],
        }


def find_ir_files(paths) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*.ir") if f.is_file())
        elif p.is_file():
            files.append(p)
        elif p.exists():  # a FIFO, a device: never read (as `fusec check` refuses them)
            raise FileNotFoundError(f"not a regular file or directory: {str(p)!r}")
        else:
            raise FileNotFoundError(f"no such file or directory: {str(p)!r}")
    return files


def explain_miss(components: dict, cached: list[tuple[str | None, dict]], name: str) -> str:
    """Which parts of the key differ from the nearest cached entry, or that there is none.

    `cached` holds (name, components) of the entries; the nearest is the one
    with the fewest differing parts, an entry of the same graph first.
    """
    if not cached:
        return "the cache has no entry to compare with"

    order = list(dict.fromkeys(KEY_PARTS.values()))

    def parts(other: dict) -> list[str]:
        keys = other.keys() | components.keys()
        differing = {KEY_PARTS.get(k, k) for k in keys if other.get(k) != components.get(k)}
        return sorted(differing, key=lambda p: order.index(p) if p in order else len(order))

    nearest_name, nearest = min(cached, key=lambda e: (len(parts(e[1])), e[0] != name))
    diff = parts(nearest)
    if not diff:
        return "an entry with the same key parts exists but did not load (damaged, or removed meanwhile)"
    said = [
        part
        if part == "source"  # kernel code: no short way to show it
        else f"{part} ({_show(nearest, part, components)!r} cached, {_show(components, part, nearest)!r} now)"
        for part in diff
    ]
    return f"nearest entry ({nearest_name or '?'}) differs in " + "; ".join(said)


def _show(components: dict, part: str, other: dict) -> str:
    """A key part as a person names it: a device by its platform and name (by its
    versions where the names agree with `other`'s), the driver and fusec by their versions."""

    def get(k):
        return str(components.get(k, "?")).strip()

    if part == "device":
        if all(components.get(k) == other.get(k) for k in ("platform", "device")):
            return f"{get('platform_version')}; {get('device_version')}"
        return f"{get('platform')}: {get('device')}"
    return get({"driver": "driver_version", "fusec version": "producer"}.get(part, part))


def warmup(
    paths,
    *,
    jobs: int = 1,
    check: bool = False,
    grad: bool = False,
    device=None,
    cache_dir=None,
    progress=None,
) -> WarmupReport:
    """Build (or with check=True, only look up) every graph under `paths`; with
    `grad`, their backward and forward+backward graphs too. `progress(done,
    total, result)` is called once with (0, total, None) when the graphs are
    known, then as each graph finishes."""
    from kernels_cache import cache_key

    from .api import compile as fusec_compile
    from .codegen.plan import BUILD_OPTIONS

    start = time.perf_counter()
    # in the order of the files and their graphs: a GraphResult already (a file
    # that failed), or (file, CompiledGraph) to look up or build
    tasks: list = []
    for f in find_ir_files(paths):
        try:
            prog = fusec_compile(f, device=device, grad=grad, cache_dir=cache_dir)
        except CompileError as e:
            tasks.append(GraphResult(str(f), None, "failed", detail=e.text))
            continue
        tasks += [(str(f), g) for g in prog.every_graph()]
    cached_keys = None  # (name, components) of every entry, read once for --check's explanations

    def entries(runtime):
        nonlocal cached_keys
        if cached_keys is None:
            cached_keys = [
                (e.name, e.meta["components"])
                for e in runtime.cache.entries()
                if isinstance(e.meta.get("components"), dict)
            ]
        return cached_keys

    def one(file, g) -> GraphResult:
        t0 = time.perf_counter()
        runtime = g.runtime
        if runtime.cache is not None and runtime.is_cached(g.source):
            return GraphResult(file, g.name, "cached", time.perf_counter() - t0)
        if check:
            why = (
                "the cache is off (FUSEC_CACHE=0)"
                if runtime.cache is None
                else explain_miss(
                    runtime.key_components(g.source, BUILD_OPTIONS), entries(runtime), g.name
                )
            )
            return GraphResult(file, g.name, "missing", detail=why)
        try:
            g.build()
        except CompileError as e:
            return GraphResult(file, g.name, "failed", time.perf_counter() - t0, e.text)
        # Not cached a moment ago; if this process did not build it, another one
        # did meanwhile (we waited on its build lock, or it finished first).
        status = "built" if g.source in runtime.built_here else "built_elsewhere"
        if (
            runtime.cache is None
            or not runtime.cache.entry_path(
                cache_key(runtime.key_components(g.source, BUILD_OPTIONS))
            ).is_file()
        ):  # a warmup that stored nothing warmed nothing: say so, exit 1
            where = (
                "the cache is off (FUSEC_CACHE=0)"
                if runtime.cache is None
                else (f"{runtime.cache.directory} refused it (see the warning)")
            )
            why = f"{file}:{g.name}: built, but not stored: {where}"
            return GraphResult(file, g.name, "failed", time.perf_counter() - t0, why)
        return GraphResult(file, g.name, status, time.perf_counter() - t0)

    results: list[GraphResult | None] = [t if isinstance(t, GraphResult) else None for t in tasks]
    done = 0
    lock = threading.Lock()

    def finished(i: int, r: GraphResult) -> None:
        nonlocal done
        with lock:
            results[i] = r
            done += 1
            if progress:
                progress(done, len(tasks), r)

    if progress:
        progress(0, len(tasks), None)  # the work is known: a bar can start
    for i, r in enumerate(results):
        if r is not None:
            finished(i, r)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {
            pool.submit(one, *t): i for i, t in enumerate(tasks) if not isinstance(t, GraphResult)
        }
        for fut in as_completed(futures):
            finished(futures[fut], fut.result())
    return WarmupReport(results, check, time.perf_counter() - start)


class ProgressLog:
    """A line per graph, and on a terminal a live bar under them (tqdm).

    Off a terminal (a CI log, a pipe) there is no bar and no carriage return:
    just the lines, each flushed as its graph finishes.
    """

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty()
        self.bar = None

    def __call__(self, done: int, total: int, r: GraphResult | None) -> None:
        from tqdm import tqdm

        if self.live and self.bar is None:
            # a terminal that reports no size (a bare pty) would get no bar at all
            size = {"dynamic_ncols": True} if _columns(self.stream) else {"ncols": 80, "nrows": 24}
            self.bar = tqdm(total=total, file=self.stream, unit="graph", leave=False, **size)
        if r is None:
            return
        took = f" in {r.seconds:.2f} s" if r.status in ("built", "built_elsewhere") else ""
        why = f": {r.detail}" if r.status == "missing" and r.detail else ""
        line = f"[{done}/{total}] {r.label}: {STATUS_TEXT[r.status]}{took}{why}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
            self.bar.update(1)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _columns(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return 0
