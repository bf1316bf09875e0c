"""A KernelCache with a remote tier behind its folder: a local miss reads the
remote before the caller builds, a put writes both, and the build lock spans
machines.  The local folder keeps all its rules (trust, verification, LRU)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from .format import encode_entry
from .remote import RemoteTier
from .store import CacheEntry, KernelCache, _seconds


class TieredCache(KernelCache):
    def __init__(
        self, directory: str | os.PathLike[str], remote: RemoteTier, max_size: int | str = 1 << 30
    ):
        super().__init__(directory, max_size=max_size)
        self.remote = remote
        remote.count = self._stats.add  # remote counters persist with the local ones

    def get(self, key: str) -> CacheEntry | None:
        entry = super().get(key)
        if entry is not None:
            return entry
        found = self.remote.get(key)
        if found is None:
            return None
        binary, meta = found
        # A local copy, so the next process hits on disk; Redis keeps the durable one.
        super().put(key, binary, meta, durable=False)
        self._seconds_of[key] = _seconds(meta)
        return CacheEntry(key, binary, meta)

    def put(self, key: str, binary: bytes, meta: dict[str, Any], durable: bool = True) -> bool:
        stored = super().put(key, binary, meta, durable)
        self.remote.put(key, encode_entry(key, bytes(binary), meta))
        return stored

    def drop(self, key: str, why: str) -> None:
        super().drop(key, why)
        self.remote.delete(key)  # the caller rebuilds and overwrites it anyway

    @contextlib.contextmanager
    def lock(self, key: str, timeout: float = 60.0) -> Iterator[bool]:
        """The local lock (processes of this machine), then the remote one (machines)."""
        deadline = time.monotonic() + timeout
        with super().lock(key, timeout=timeout) as local:
            remaining = max(0.0, deadline - time.monotonic())
            with self.remote.build_lock(key, timeout=remaining) as remote:
                yield local and remote

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "remote": self.remote.describe(),
                "remote_authenticated": self.remote.authenticated}  # fmt: skip
