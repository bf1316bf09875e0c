"""`fusec warmup`: compile every graph of every .ir file under some paths into the cache.

For CI: run it once and keep the cache directory between jobs; `--check`
builds nothing and fails if anything would need building.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import CompileError


@dataclass
class WarmupReport:
    built: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # --check: would need building
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing

    def summary(self) -> str:
        need = f"{len(self.missing)} need building, " if self.missing else ""
        return (
            f"{len(self.built)} built, {len(self.cached)} already cached, {need}"
            f"{len(self.failed)} failed, {self.seconds:.1f} s"
        )


def find_ir_files(paths) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*.ir") if f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such file or directory: {str(p)!r}")
    return files


def warmup(
    paths, *, jobs: int = 1, check: bool = False, grad: bool = False, device=None, progress=None
) -> WarmupReport:
    """Build (or with check=True, only look up) every graph under `paths`; with
    `grad`, their backward and forward+backward graphs too."""
    from .api import compile as fusec_compile

    start = time.perf_counter()
    report = WarmupReport()
    tasks = []  # (label, CompiledGraph)
    for f in find_ir_files(paths):
        try:
            prog = fusec_compile(f, device=device, grad=grad)
        except CompileError as e:
            report.failed.append((str(f), e.text))
            continue
        tasks += [(f"{f}:{g.name}", g) for g in prog.every_graph()]
    lock = threading.Lock()
    done = 0

    def one(label, g):
        runtime = g.runtime
        if runtime.cache is not None and runtime.is_cached(g.source):
            return label, "cached", None
        if check:
            return label, "missing", None
        try:
            g.build()
        except CompileError as e:
            return label, "failed", e.text
        return label, "built", None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, label, g) for label, g in tasks]
        for fut in as_completed(futures):
            label, status, err = fut.result()
            with lock:
                done += 1
                if status == "cached":
                    report.cached.append(label)
                elif status == "built":
                    report.built.append(label)
                elif status == "missing":
                    report.missing.append(label)
                else:
                    report.failed.append((label, err))
                if progress:
                    progress(done, len(tasks), label, status)
    report.seconds = time.perf_counter() - start
    return report


def terminal_progress(stream=sys.stderr):
    """A one-line progress display when `stream` is a terminal, else nothing."""
    if not stream.isatty():
        return None

    def show(done, total, label, status):
        width = 24
        filled = width * done // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        stream.write(f"\r[{bar}] {done}/{total} {status:<7} {label[-40:]:<40}")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show
