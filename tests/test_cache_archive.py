"""`fusec cache export FILE` / `import FILE`: one archive, every entry verified on
import, and a damaged archive imports nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels_cache import KernelCache, cache_key
from kernels_cache.archive import (
    HEAD,
    HEAD_MAGIC,
    LENGTH,
    TRAILER,
    ArchiveError,
    export_archive,
    import_archive,
)
from kernels_cache.format import FORMAT_VERSION, encode_entry

REPO = Path(__file__).resolve().parents[1]


def key_of(name: str) -> str:
    return cache_key({"source": name})


def filled(folder: Path, names=("a", "b", "c")) -> KernelCache:
    cache = KernelCache(folder)
    for name in names:
        cache.put(key_of(name), name.encode() * 50, {"name": name, "build_seconds": 0.1})
    return cache


def craft(records: list[tuple[str, bytes]], count: int | None = None) -> bytes:
    """An archive with the given (key, entry bytes) records and a valid trailer."""
    body = HEAD.pack(HEAD_MAGIC, FORMAT_VERSION)
    for key, data in records:
        body += b"E" + bytes([len(key)]) + key.encode() + LENGTH.pack(len(data)) + data
    n = len(records) if count is None else count
    return body + b"Z" + TRAILER.pack(n, hashlib.sha256(body).digest())


def test_round_trip(tmp_path):
    source = filled(tmp_path / "a")
    archive = tmp_path / "cache.kca"
    assert export_archive(source, archive) == 3
    target = KernelCache(tmp_path / "b")
    result = import_archive(target, archive)
    assert (result.entries, result.stored) == (3, 3)
    for name in "abc":
        entry = target.get(key_of(name))
        assert entry.binary == name.encode() * 50 and entry.meta["name"] == name
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_empty_cache_exports_an_empty_archive(tmp_path):
    archive = tmp_path / "empty.kca"
    assert export_archive(KernelCache(tmp_path / "none"), archive) == 0
    assert import_archive(KernelCache(tmp_path / "b"), archive).entries == 0


def _damaged(good: bytes) -> dict[str, bytes]:
    key = key_of("x")
    entry = encode_entry(key, b"bin", {})
    return {
        "empty": b"",
        "garbage": os.urandom(500),
        "truncated in the middle": good[: len(good) // 2],
        "trailer cut off": good[:-10],
        "no trailer": good[: good.rindex(b"Z")],
        "bytes after the trailer": good + b"\0",
        "flipped byte in an entry": good[:100] + bytes([good[100] ^ 1]) + good[101:],
        "a path for a key": craft([("../../etc/passwd", entry)]),
        "a key not the entry's": craft([(key_of("y"), entry)]),
        "a wrong count": craft([(key, entry)], count=2),
        "another format version": HEAD.pack(HEAD_MAGIC, FORMAT_VERSION + 1) + good[HEAD.size :],
    }


def test_damaged_archives_import_nothing(tmp_path):
    archive = tmp_path / "good.kca"
    export_archive(filled(tmp_path / "a"), archive)
    good = archive.read_bytes()
    for why, data in _damaged(good).items():
        bad = tmp_path / "bad.kca"
        bad.write_bytes(data)
        target = KernelCache(tmp_path / "b")
        with pytest.raises(ArchiveError, match="nothing was imported|no such|damaged"):
            import_archive(target, bad)
        assert target.entries() == [], why
    assert not (tmp_path / "etc").exists()


def test_every_single_byte_flip_is_caught(tmp_path):
    archive = tmp_path / "good.kca"
    export_archive(filled(tmp_path / "a", names=("a",)), archive)
    good = archive.read_bytes()
    for offset in range(len(good)):
        archive.write_bytes(good[:offset] + bytes([good[offset] ^ 0x08]) + good[offset + 1 :])
        with pytest.raises(ArchiveError):
            import_archive(KernelCache(tmp_path / "b"), archive)
    assert KernelCache(tmp_path / "b").entries() == []


def test_an_archive_larger_than_the_cache_is_refused(tmp_path):
    archive = tmp_path / "big.kca"
    small = KernelCache(tmp_path / "b", max_size=10)  # import allows 1 MiB at least
    big = craft([(key_of(str(i)), encode_entry(key_of(str(i)), os.urandom(1 << 16), {}))
                 for i in range(20)])  # fmt: skip
    archive.write_bytes(big)
    with pytest.raises(ArchiveError, match="larger than"):
        import_archive(small, archive)
    assert small.entries() == []


def cli(*args, cache: Path, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(REPO), "FUSEC_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "fusec.cli", "cache", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)  # fmt: skip


def test_cli_export_import(tmp_path):
    filled(tmp_path / "a")
    archive = tmp_path / "ci.kca"
    out = cli("export", archive, cache=tmp_path / "a")
    assert out.returncode == 0 and "exported 3 entries" in out.stdout, out.stderr
    out = cli("import", archive, cache=tmp_path / "b")
    assert out.returncode == 0 and "imported 3 entries" in out.stdout, out.stderr
    assert len(KernelCache(tmp_path / "b").entries()) == 3

    archive.write_bytes(archive.read_bytes()[:-1])
    out = cli("import", archive, cache=tmp_path / "c")
    assert out.returncode == 1 and out.stderr.startswith("fusec: error: ")
    assert "nothing was imported" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert KernelCache(tmp_path / "c").entries() == []

    for args in (["export"], ["import"], ["stats", archive]):
        out = cli(*args, cache=tmp_path / "a")
        assert out.returncode == 2 and "take a FILE" in out.stderr and "Traceback" not in out.stderr
    out = cli("import", tmp_path / "missing.kca", cache=tmp_path / "a")
    assert out.returncode == 1 and "no such file" in out.stderr


def test_cli_import_of_a_fifo_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "fifo.kca")
    out = cli("import", tmp_path / "fifo.kca", cache=tmp_path / "a", timeout=60)
    assert out.returncode == 1 and "not a regular file" in out.stderr
