"""Tests for kernels_cache: the content-addressed store of program binaries."""

from __future__ import annotations

import errno
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from kernels_cache import (
    FORMAT_VERSION,
    CacheWarning,
    KernelCache,
    cache_key,
    default_cache_dir,
    parse_size,
)
from kernels_cache.format import HEADER

# A CacheWarning nobody expected is a failure; pytest.warns still catches expected ones.
pytestmark = pytest.mark.filterwarnings("error::kernels_cache.CacheWarning")

COMPONENTS = {
    "source": "__kernel void f(__global float *x) { x[get_global_id(0)] *= 2.0f; }",
    "options": "-cl-fast-relaxed-math",
    "platform": "Portable Computing Language",
    "platform_version": "OpenCL 3.0 PoCL 6.0",
    "device": "cpu-haswell-AMD EPYC",
    "device_version": "OpenCL 3.0 PoCL HSTR: cpu",
    "driver_version": "1.2",
    "producer": "fusec 0.1.0",
}


def key_of(name: str) -> str:
    return cache_key({"source": name})


def payload(name: str) -> bytes:
    return name.encode() * 100


def all_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


# -- round trip and keys ---------------------------------------------------------


def test_put_get_round_trip(tmp_path):
    cache = KernelCache(tmp_path)
    key = cache_key(COMPONENTS)
    meta = {"name": "f", "build_seconds": 0.25, "components": COMPONENTS}
    assert cache.put(key, b"\x00binary\xff", meta) is True
    entry = cache.get(key)
    assert entry is not None
    assert (entry.key, entry.binary, entry.meta) == (key, b"\x00binary\xff", meta)
    assert cache.entry_path(key) == tmp_path / f"v{FORMAT_VERSION}" / key[:2] / f"{key}.kc"
    assert cache.entry_path(key).is_file()


def test_miss_returns_none_without_warning(tmp_path):
    cache = KernelCache(tmp_path)
    assert cache.get(key_of("never stored")) is None
    assert KernelCache(tmp_path / "does" / "not" / "exist").get(key_of("x")) is None


def test_put_overwrites(tmp_path):
    cache = KernelCache(tmp_path)
    key = key_of("k")
    cache.put(key, b"old", {})
    cache.put(key, b"new", {"n": 2})
    assert cache.get(key).binary == b"new"
    assert len(cache.entries()) == 1


def test_every_component_changes_the_key_and_order_does_not():
    base = cache_key(COMPONENTS)
    assert len(base) == 64 and int(base, 16) >= 0
    keys = {base}
    for name in COMPONENTS:
        keys.add(cache_key(COMPONENTS | {name: COMPONENTS[name] + " "}))
        keys.add(cache_key({n: v for n, v in COMPONENTS.items() if n != name}))
    assert len(keys) == 1 + 2 * len(COMPONENTS)
    assert cache_key(dict(reversed(list(COMPONENTS.items())))) == base
    assert cache_key(COMPONENTS | {"extra": ""}) != base


def test_bad_keys_are_refused(tmp_path):
    cache = KernelCache(tmp_path)
    for bad in ["../../etc/passwd", "ABCDEF", "", "a", "zz" * 10]:
        with pytest.raises(ValueError):
            cache.get(bad)


# -- corruption ----------------------------------------------------------------------


def _directory(path: Path, data: bytes) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside").write_bytes(data)


def _other_keys_entry(path: Path, data: bytes) -> None:
    # A valid file of another key, copied onto this key's path.
    other = KernelCache(path.parents[2])
    other.put(key_of("other"), b"other binary", {})
    path.write_bytes(other.entry_path(key_of("other")).read_bytes())


DAMAGE = {
    "truncated": lambda path, data: path.write_bytes(data[: len(data) // 2]),
    "flipped binary": lambda path, data: path.write_bytes(data[:-1] + bytes([data[-1] ^ 1])),
    "flipped JSON length": lambda path, data: path.write_bytes(
        data[:8] + bytes([data[8] ^ 0x10]) + data[9:]
    ),
    "garbage": lambda path, data: path.write_bytes(bytes(range(256)) * 8),
    "empty": lambda path, data: path.write_bytes(b""),
    "directory": _directory,
    "another key's entry": _other_keys_entry,
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_entry_is_a_warned_miss_and_is_dropped(tmp_path, damage):
    cache = KernelCache(tmp_path)
    key = key_of("victim")
    cache.put(key, payload("victim"), {"name": "victim"})
    path = cache.entry_path(key)
    damage(path, path.read_bytes())

    with pytest.warns(CacheWarning) as caught:
        assert cache.get(key) is None
    assert len(caught) == 1
    assert key in str(caught[0].message)
    assert not path.exists()
    assert cache.stats()["corrupt_dropped"] == 1

    assert cache.get(key) is None  # now a plain miss: no second warning
    assert cache.put(key, payload("victim"), {"name": "victim"})
    assert cache.get(key).binary == payload("victim")


def test_every_single_byte_flip_is_caught(tmp_path):
    cache = KernelCache(tmp_path)
    key = key_of("small")
    cache.put(key, b"0123456789abcdef", {"name": "small"})
    path = cache.entry_path(key)
    good = path.read_bytes()
    assert len(good) > HEADER.size
    for offset in range(len(good)):
        path.write_bytes(good[:offset] + bytes([good[offset] ^ 0x04]) + good[offset + 1 :])
        with pytest.warns(CacheWarning):
            assert cache.get(key) is None, f"flip at byte {offset} went unnoticed"
        assert not path.exists()
    assert cache.stats()["corrupt_dropped"] == len(good)


# -- atomicity and concurrency ----------------------------------------------------------


def test_put_leaves_no_temp_files(tmp_path):
    cache = KernelCache(tmp_path)
    for i in range(10):
        assert cache.put(key_of(str(i)), payload(str(i)), {"i": i})
    cache.flush()
    names = {p.name for p in all_files(tmp_path)}
    assert not [n for n in names if n.endswith(".tmp")]
    assert len([n for n in names if n.endswith(".kc")]) == 10


def test_stale_temp_files_are_cleaned(tmp_path):
    cache = KernelCache(tmp_path)
    cache.put(key_of("a"), b"a", {})
    folder = cache.entry_path(key_of("a")).parent
    stale, fresh = folder / ".dead.stale.tmp", folder / ".live.fresh.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    cache.prune(cache.max_size)
    assert not stale.exists() and fresh.exists()


def _worker(args: tuple[str, int, int]) -> tuple[int, int, bool]:
    """One process of the concurrency test: puts and gets of shared and own keys."""
    directory, worker_id, max_size = args
    cache = KernelCache(directory, max_size=max_size)
    errors = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(50):
            name = f"shared-{i % 5}" if i % 2 == 0 else f"own-{worker_id}-{i}"
            key = key_of(name)
            with cache.lock(key, timeout=5):
                errors += not cache.put(key, payload(name), {"name": name})
            entry = cache.get(key)
            if entry is None:
                errors += max_size >= 1 << 20  # only eviction may take it away
            else:
                errors += entry.binary != payload(name) or entry.meta != {"name": name}
                cache.record_hit(key)
    flushed = any(cache.flush() for _ in range(20))
    return errors, len(caught), flushed


@pytest.fixture(scope="module")
def spawn_pool():
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        yield pool


@pytest.mark.parametrize("max_size", [1 << 30, 12_000], ids=["roomy", "evicting"])
def test_concurrent_processes_never_corrupt(tmp_path, spawn_pool, max_size):
    results = spawn_pool.map(_worker, [(str(tmp_path), w, max_size) for w in range(4)])
    assert [errors for errors, _, _ in results] == [0] * 4
    assert [warned for _, warned, _ in results] == [0] * 4
    assert all(flushed for _, _, flushed in results)

    cache = KernelCache(tmp_path)
    infos = cache.entries()
    assert infos
    for info in infos:  # every entry left verifies (an unexpected warning fails the test)
        assert cache.get(info.key).binary == payload(info.name)
    assert not [p for p in all_files(tmp_path) if p.name.endswith(".tmp")]
    if max_size == 1 << 30:
        assert len(infos) == 5 + 4 * 25
        assert cache.stats()["hits"] == 4 * 50


# -- size limit ---------------------------------------------------------------------


def _put_three(cache: KernelCache) -> tuple[list[str], int]:
    keys = [key_of(name) for name in "abc"]
    for name, key in zip("abc", keys, strict=True):
        assert cache.put(key, payload("x"), {"name": name})
    now = time.time()
    for age, key in zip((300, 200, 100), keys, strict=True):  # a is the oldest
        os.utime(cache.entry_path(key), (now - age, now - age))
    return keys, cache.entry_path(keys[0]).stat().st_size


def test_prune_evicts_least_recently_used(tmp_path):
    cache = KernelCache(tmp_path)
    (a, b, c), size = _put_three(cache)
    assert cache.get(a) is not None  # a hit makes a the most recent
    assert [info.key for info in cache.entries()] == [a, c, b]
    assert cache.prune(2 * size) == 1
    assert cache.get(b) is None and cache.get(a) and cache.get(c)
    assert cache.prune(2 * size) == 0
    assert cache.prune(0) == 2
    assert cache.entries() == []


def test_put_evicts_down_to_max_size(tmp_path):
    probe = KernelCache(tmp_path / "probe")
    _, size = _put_three(probe)
    cache = KernelCache(tmp_path / "cache", max_size=int(2.5 * size))
    a, b = key_of("a"), key_of("b")
    cache.put(a, payload("x"), {"name": "a"})
    cache.put(b, payload("x"), {"name": "b"})
    now = time.time()
    os.utime(cache.entry_path(a), (now - 200, now - 200))
    os.utime(cache.entry_path(b), (now - 100, now - 100))
    cache.put(key_of("c"), payload("x"), {"name": "c"})
    assert [info.name for info in cache.entries()] == ["c", "b"]
    assert cache.stats()["bytes"] <= cache.max_size


def test_clear_counts_and_empties(tmp_path):
    cache = KernelCache(tmp_path)
    _put_three(cache)
    with cache.lock(key_of("a")):
        pass
    assert cache.clear() == 3
    assert cache.entries() == [] and cache.clear() == 0
    assert cache.stats()["entries"] == 0


def test_entries_summary(tmp_path):
    cache = KernelCache(tmp_path)
    (a, b, c), size = _put_three(cache)
    infos = cache.entries()
    assert [(i.key, i.name, i.size) for i in infos] == [
        (c, "c", size),
        (b, "b", size),
        (a, "a", size),
    ]
    assert infos[0].mtime > infos[1].mtime > infos[2].mtime
    assert infos[0].build_seconds == 0.0


# -- a cache that cannot be written -------------------------------------------------


def _check_degraded(cache: KernelCache) -> None:
    with pytest.warns(CacheWarning) as caught:
        assert cache.put(key_of("a"), b"a", {}) is False
        assert cache.put(key_of("b"), b"b", {}) is False
    assert len(caught) == 1
    assert "cannot write" in str(caught[0].message)
    assert cache.get(key_of("a")) is None
    cache.record_miss()
    assert cache.stats()["misses"] == 1  # kept in memory when it cannot be saved


def test_cache_dir_under_a_regular_file(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    cache = KernelCache(tmp_path / "file" / "cache")
    _check_degraded(cache)
    assert cache.entries() == [] and cache.clear() == 0 and cache.prune(0) == 0
    with cache.lock(key_of("a"), timeout=0.1) as locked:
        assert locked is False


def test_disk_full_on_replace(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    cache = KernelCache(tmp_path)
    monkeypatch.setattr(os, "replace", full)
    _check_degraded(cache)
    assert not [p for p in all_files(tmp_path) if p.name.endswith(".tmp")]
    monkeypatch.undo()
    assert KernelCache(tmp_path).put(key_of("a"), b"a", {})  # a fresh instance works again


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores modes")
def test_read_only_directory(tmp_path):
    KernelCache(tmp_path).put(key_of("kept"), b"kept", {})
    modes = [(p, p.stat().st_mode) for p in [tmp_path, *tmp_path.rglob("*")] if p.is_dir()]
    for p, _ in modes:
        p.chmod(0o500)
    try:
        cache = KernelCache(tmp_path)
        assert cache.get(key_of("kept")).binary == b"kept"
        _check_degraded(cache)
        with cache.lock(key_of("a"), timeout=0.1) as locked:
            assert locked is False
    finally:
        for p, mode in modes:
            p.chmod(mode)


# -- locks ----------------------------------------------------------------------------


def test_lock_timeout_proceeds_without_raising(tmp_path):
    cache = KernelCache(tmp_path)
    key = key_of("k")
    with cache.lock(key) as first:
        assert first is True
        start = time.monotonic()
        with cache.lock(key, timeout=0.1) as second:
            assert second is False
        assert time.monotonic() - start < 5
    with pytest.raises(RuntimeError), cache.lock(key, timeout=0.1):
        raise RuntimeError("the body's error passes through and the lock is released")
    with cache.lock(key, timeout=0.1) as again:
        assert again is True


# -- stats ----------------------------------------------------------------------------


def test_stats_count_and_persist(tmp_path):
    cache = KernelCache(tmp_path)
    key = key_of("k")
    assert cache.get(key) is None
    cache.record_miss(key)
    cache.record_build(2.0)
    cache.put(key, b"bin", {"build_seconds": 2.0})
    assert cache.get(key) is not None
    cache.record_hit(key)
    stats = cache.stats()
    assert stats["entries"] == 1 and stats["bytes"] == cache.entry_path(key).stat().st_size
    assert (stats["hits"], stats["misses"], stats["builds"]) == (1, 1, 1)
    assert stats["build_seconds"] == 2.0 and stats["build_seconds_saved"] == 2.0
    assert stats["directory"] == str(tmp_path) and stats["max_size"] == 1 << 30

    again = KernelCache(tmp_path)  # a new process, in effect
    again.record_hit(key)  # never got it here: the saving is read from the entry
    again.record_hit()
    stats = again.stats()
    assert (stats["hits"], stats["misses"], stats["builds"]) == (3, 1, 1)
    assert stats["build_seconds_saved"] == 4.0


def test_damaged_stats_file_is_ignored(tmp_path):
    cache = KernelCache(tmp_path)
    cache.record_hit()
    cache.flush()
    (tmp_path / f"v{FORMAT_VERSION}" / "stats.json").write_text("{not json")
    cache.record_hit()
    assert cache.stats()["hits"] == 1


def test_hit_is_cheap(tmp_path):
    cache = KernelCache(tmp_path)
    key = key_of("big")
    cache.put(key, bytes(range(256)) * 256, {"build_seconds": 0.5})  # 64 KiB
    times = []
    for _ in range(200):
        start = time.perf_counter()
        assert cache.get(key) is not None
        cache.record_hit(key)
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 1e-3


# -- explaining misses -----------------------------------------------------------------


def test_explain_miss(tmp_path):
    cache = KernelCache(tmp_path)
    assert cache.explain_miss(COMPONENTS).startswith("no entry with this source")
    cache.put(cache_key(COMPONENTS), b"bin", {"components": COMPONENTS})

    assert "exists" in cache.explain_miss(COMPONENTS)
    newer_driver = COMPONENTS | {"driver_version": "1.3"}
    assert cache.explain_miss(newer_driver) == "driver_version differs: '1.2' cached vs '1.3' now"
    two = newer_driver | {"options": ""}
    assert cache.explain_miss(two) == (
        "driver_version differs: '1.2' cached vs '1.3' now; "
        "options differs: '-cl-fast-relaxed-math' cached vs '' now"
    )
    no_options = {n: v for n, v in COMPONENTS.items() if n != "options"}
    assert "options differs: '-cl-fast-relaxed-math' cached vs absent now" in cache.explain_miss(
        no_options
    )
    assert cache.explain_miss(COMPONENTS | {"source": "other"}).startswith(
        "no entry with this source"
    )


# -- configuration ----------------------------------------------------------------------


SIZES = {123: 123, "123": 123, "0": 0, "64k": 64 << 10, "500M": 500 << 20, "1G": 1 << 30,
         "1.5GiB": 3 << 29, "2GB": 2 * 10**9, " 10 MiB ": 10 << 20, "1t": 1 << 40}  # fmt: skip


@pytest.mark.parametrize("text, size", SIZES.items())
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "abc", "-1", "1.2.3", "5 parsecs", "1e9", "inf", -5, None, True]
)
def test_parse_size_errors(text):
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


def test_max_size_accepts_a_size_string(tmp_path):
    assert KernelCache(tmp_path, max_size="1.5GiB").max_size == 3 << 29


def test_default_cache_dir():
    assert "fusec" in default_cache_dir().parts
    assert "other" in default_cache_dir("other").parts


def test_imports_neither_fusec_nor_pyopencl():
    code = (
        "import sys, kernels_cache\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fusec', 'pyopencl')]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
