"""KernelCache: a content-addressed store of compiled program binaries.

Safety rests on three plain rules, none of which needs a lock:
  * one entry is one file, written to a temp file in the same folder and
    os.replace'd into place, so a reader sees the old file, the new one or none;
  * every read is verified (magic, version, lengths, sha256, key), and a bad
    entry is a warning and a miss, never an exception;
  * failing to write is a warning and a False, never an exception.
The per-key lock only saves duplicate builds across processes.  And the cache
trusts only folders its user owns and alone may write (see safety.py).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

from .config import parse_size
from .format import (
    FORMAT_VERSION,
    CorruptEntry,
    cache_key,
    check_key,
    decode_entry,
    encode_entry,
    read_meta,
)
from .safety import (
    check_real_folder,
    make_private_dirs,
    open_regular,
    read_regular,
    untrusted_reason,
)
from .stats import Stats

SUFFIX = ".kc"
STALE_TEMP_SECONDS = 3600  # a temp file this old was left by a crashed writer


class CacheWarning(UserWarning):
    """The cache dropped a damaged entry, cannot write, or distrusts its folder; the program goes on."""


@dataclass(frozen=True)
class CacheEntry:
    key: str
    binary: bytes
    meta: dict[str, Any]


@dataclass(frozen=True)
class EntryInfo:
    key: str
    size: int  # bytes on disk
    mtime: float  # last use (put or hit)
    meta: dict[str, Any] = field(default_factory=dict)  # {} if the header is unreadable

    @property
    def name(self) -> str | None:
        return self.meta.get("name")

    @property
    def build_seconds(self) -> float:
        return _seconds(self.meta)


def _seconds(meta: dict[str, Any]) -> float:
    value = meta.get("build_seconds")  # an imported entry's meta may say anything: inf, -1, "x"
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf
    return float(value) if ok else 0.0


def _real_folder(path: Path) -> bool:
    try:
        check_real_folder(path)
        return True
    except OSError:
        return False


def _remove(path: Path) -> bool:
    """Remove a file (or a directory squatting on an entry's path); never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except OSError:
        return False


class KernelCache:
    def __init__(self, directory: str | os.PathLike[str], max_size: int | str = 1 << 30):
        self.directory = Path(directory)
        self.max_size = parse_size(max_size)
        self.root = self.directory / f"v{FORMAT_VERSION}"  # a new format starts afresh
        self._stats = Stats(self.root / "stats.json", trusted=self.trusted)
        self._verdict: bool | None = None  # the folder's trust, once it has been judged
        self._warned_write = False
        self._seconds_of: dict[str, float] = {}  # key -> build_seconds, for hits' savings

    def entry_path(self, key: str) -> Path:
        check_key(key)
        # Two-character fan-out keeps folders small on file systems that slow down with size.
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def trusted(self) -> bool:
        """Whether the folder may be used: ours, and writable by us alone (warns once if not)."""
        if self._verdict is not None:
            return self._verdict
        if not os.path.lexists(self.directory):
            return True  # nothing to distrust yet; put creates it private
        where, reason = self.directory, untrusted_reason(self.directory, follow=True)
        if reason is None:
            where, reason = self.root, untrusted_reason(self.root, follow=False)
        if reason is None:
            if self.root.is_dir():
                self._verdict = True  # only we (or root) can change that now
            return True
        self._verdict = False
        warnings.warn(
            f"kernel cache: not using {where}: {reason}; kernels are built without the "
            "disk cache (see docs/cache.md, 'Whom the cache trusts')",
            CacheWarning,
            stacklevel=3,
        )
        return False

    # -- entries -------------------------------------------------------------

    def get(self, key: str) -> CacheEntry | None:
        """The verified entry for key, or None. Counts nothing: see record_hit/record_miss."""
        path = self.entry_path(key)
        if not self.trusted():
            return None
        identity = None
        try:
            check_real_folder(path.parent)  # a link there: never read, or drop, through it
        except OSError:  # absent (a plain miss), or a link
            return None
        try:
            data, identity = read_regular(path, limit=max(self.max_size, 1 << 20))
            binary, meta = decode_entry(key, data)
        except (FileNotFoundError, NotADirectoryError):
            return None  # not cached (or no usable cache folder at all): a plain miss
        except (OSError, CorruptEntry) as exc:
            self._drop(path, identity, exc)
            return None
        try:
            os.utime(path)  # the mtime is the LRU clock
        except OSError:
            pass
        self._seconds_of[key] = _seconds(meta)
        return CacheEntry(key, binary, meta)

    def drop(self, key: str, why: str) -> None:
        """Remove key's entry because the caller found it unusable (say, its binary
        does not hold the expected kernels): one warning, counted in corrupt_dropped."""
        path = self.entry_path(key)
        if self.trusted() and _real_folder(path.parent) and os.path.lexists(path):
            self._drop(path, None, why)
        self._seconds_of.pop(key, None)

    def _drop(self, path: Path, identity: tuple[int, int] | None, why: object) -> None:
        warnings.warn(
            f"kernel cache: dropping damaged entry {path} ({why}); it will be rebuilt",
            CacheWarning,
            stacklevel=3,
        )
        # Another process may have replaced the bad file with a good one since we
        # opened it; only remove the file we actually read.
        try:
            st = os.stat(path)
            same = identity is None or identity == (st.st_dev, st.st_ino)
        except OSError:
            same = False
        if same:
            _remove(path)
        self._stats.add(corrupt_dropped=1)

    def put(
        self,
        key: str,
        binary: bytes,
        meta: dict[str, Any],
        durable: bool = True,
        prune: bool = True,
    ) -> bool:
        """Store an entry atomically; False (and one warning per instance) if the disk refuses.

        durable=False skips the fsync (4 ms here) for a copy that exists elsewhere:
        after a power cut the file may be damaged, which a read detects and drops.
        prune=False leaves the size limit to the caller (an import of n entries
        prunes once, not n times: each prune lists the whole folder)."""
        path = self.entry_path(key)
        data = encode_entry(key, bytes(binary), meta)
        tmp = None
        if not self.trusted():
            return False
        try:
            make_private_dirs(path.parent)
            check_real_folder(path.parent)  # never write through a link to elsewhere
            if not self.trusted():  # someone else's folder appeared at our path meanwhile
                return False
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if durable:
                    os.fsync(f.fileno())  # the data must be on disk before the name points at it
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            if not self._warned_write:
                self._warned_write = True
                warnings.warn(
                    f"kernel cache: cannot write to {self.directory} ({exc}); "
                    "kernels will be rebuilt instead of cached",
                    CacheWarning,
                    stacklevel=2,
                )
            return False
        finally:
            if tmp is not None:
                _remove(Path(tmp))
        self._seconds_of[key] = _seconds(meta)
        if prune:
            self.prune(self.max_size)
        return True

    def _scan(self) -> list[tuple[float, str, int, Path]]:
        """(mtime, key, size, path) of every entry; removes stale temp files on the way."""
        found = []
        now = time.time()
        if not self.trusted():
            return []
        try:
            # follow_symlinks=False: clear and prune delete what they find, so they must
            # never list the files a link inside the cache points at
            folders = [
                d
                for d in os.scandir(self.root)
                if d.is_dir(follow_symlinks=False) and len(d.name) == 2
            ]
        except OSError:
            return []
        for folder in folders:
            try:
                items = list(os.scandir(folder.path))
            except OSError:
                continue
            for item in items:
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed by another process meanwhile
                if item.name.endswith(SUFFIX):
                    found.append(
                        (st.st_mtime, item.name[: -len(SUFFIX)], st.st_size, Path(item.path))
                    )
                elif item.name.endswith(".tmp") and now - st.st_mtime > STALE_TEMP_SECONDS:
                    _remove(Path(item.path))
        return found

    def entries(self) -> list[EntryInfo]:
        """All entries, most recently used first, reading only headers and metadata."""
        infos = []
        for mtime, key, size, path in self._scan():
            try:
                with open_regular(path) as f:
                    meta = read_meta(f)
            except (OSError, CorruptEntry):
                meta = {}
            infos.append(EntryInfo(key, size, mtime, meta))
        infos.sort(key=lambda info: (-info.mtime, info.key))
        return infos

    def prune(self, max_size: int | str) -> int:
        """Evict least recently used entries until the total is <= max_size; the count removed."""
        limit = parse_size(max_size)
        found = sorted(self._scan())  # oldest first; the key breaks mtime ties
        total = sum(size for _, _, size, _ in found)
        removed = 0
        for _, key, size, path in found:
            if total <= limit:
                break
            total -= size  # even if another process removed it first
            if _remove(path):
                removed += 1
                self._seconds_of.pop(key, None)
                if _real_folder(self.root / "locks"):
                    _remove(self.root / "locks" / f"{key}.lock")
        return removed

    def clear(self) -> int:
        """Remove every entry (and lock file); the number of entries removed."""
        removed = sum(_remove(path) for _, _, _, path in self._scan())
        if not self.trusted():
            return removed
        shutil.rmtree(self.root / "locks", ignore_errors=True)
        self._seconds_of.clear()
        return removed

    # -- locking -------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: str, timeout: float = 60.0) -> Iterator[bool]:
        """Hold the build lock for key; yields False (and proceeds) if it cannot be had."""
        check_key(key)
        path = self.root / "locks" / f"{key}.lock"
        held = None
        try:
            if not self.trusted():
                raise PermissionError("untrusted cache folder")
            make_private_dirs(path.parent)
            check_real_folder(path.parent)
            candidate = filelock.FileLock(str(path), timeout=timeout)
            candidate.acquire()
            held = candidate
        except (OSError, filelock.Timeout):
            pass  # correctness never depends on the lock: at worst we build twice
        try:
            yield held is not None
        finally:
            if held is not None:
                with contextlib.suppress(OSError):
                    held.release()

    # -- stats ---------------------------------------------------------------

    def record_hit(self, key: str | None = None) -> None:
        saved = 0.0
        if key is not None:
            if key not in self._seconds_of:
                self._seconds_of[key] = self._read_seconds(key)
            saved = self._seconds_of[key]
        self._stats.add(hits=1, build_seconds_saved=saved)

    def record_miss(self, key: str | None = None) -> None:
        # key is accepted for symmetry with record_hit; a miss saves nothing to look up.
        self._stats.add(misses=1)

    def record_build(self, seconds: float) -> None:
        self._stats.add(builds=1, build_seconds=float(seconds))

    def _read_seconds(self, key: str) -> float:
        if not self.trusted():
            return 0.0
        try:
            with open_regular(self.entry_path(key)) as f:
                return _seconds(read_meta(f))
        except (OSError, CorruptEntry):
            return 0.0

    def flush(self) -> bool:
        """Persist buffered counters to stats.json; False if that failed (they stay buffered)."""
        return self._stats.flush()

    def stats(self) -> dict[str, Any]:
        self.flush()
        found = self._scan()
        return {
            "directory": str(self.directory),
            "max_size": self.max_size,
            "entries": len(found),
            "bytes": sum(size for _, _, size, _ in found),
            **self._stats.totals(),
        }

    # -- diagnostics -----------------------------------------------------------

    def explain_miss(self, components: dict[str, str]) -> str:
        """Say which key component differs from the closest cached entry."""
        key = cache_key(components)
        if self.entry_path(key).is_file():
            return f"an entry with this key exists ({key[:12]}); the miss was not caused by the key"
        cached = [
            info.meta["components"]
            for info in self.entries()
            if isinstance(info.meta.get("components"), dict)
        ]
        same_source = [c for c in cached if c.get("source") == components.get("source")]
        if not same_source:
            return f"no entry with this source ({len(cached)} entries record their components)"

        def differing(other: dict[str, Any]) -> list[str]:
            names = sorted(other.keys() | components.keys())
            return [n for n in names if other.get(n, _ABSENT) != components.get(n, _ABSENT)]

        # entries() is most recent first and min() keeps the first of equals.
        closest = min(same_source, key=lambda c: len(differing(c)))
        diffs = differing(closest)
        if not diffs:
            return "an entry with the same components exists under another key"
        return "; ".join(
            f"{n} differs: {_show(closest.get(n, _ABSENT))} cached vs "
            f"{_show(components.get(n, _ABSENT))} now"
            for n in diffs
        )


_ABSENT = object()


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "absent"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
