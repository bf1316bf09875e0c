"""What a careless or hostile neighbour can leave for fusec (REDTEAM pass): links
inside the cache folder, forged entries and archives, a stats file, and a remote
"server" that drips or floods its replies. No OpenCL here: the cache only."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_cache_archive import craft

from kernels_cache import CacheWarning, KernelCache, RemoteSettings, RemoteTier, TieredCache
from kernels_cache import remote as remote_module
from kernels_cache.archive import ArchiveError, import_archive
from kernels_cache.format import FORMAT_VERSION, HEADER, MAGIC, cache_key, encode_entry

REPO = Path(__file__).resolve().parents[1]
NESTED = b"[" * 100_000 + b"]" * 100_000  # json.loads recurses once per bracket


def key_of(name: str) -> str:
    return cache_key({"source": name})


def forged(key: str, body: bytes, binary: bytes = b"bin") -> bytes:
    """An entry file with a valid (unkeyed) checksum around any JSON body."""
    digest = hashlib.sha256(body + binary).digest()
    return HEADER.pack(MAGIC, FORMAT_VERSION, len(body), len(binary), digest) + body + binary


def nested_entry(key: str) -> bytes:
    return forged(key, b'{"key": "' + key.encode() + b'", "meta": ' + NESTED + b"}")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


# -- links inside the cache folder ----------------------------------------------------------


def test_a_linked_fanout_folder_is_never_written_read_or_emptied(tmp_path):
    cache = KernelCache(tmp_path / "cache")
    mine = key_of("mine")
    cache.put(mine, b"mine", {})
    outside = tmp_path / "outside"
    outside.mkdir()
    theirs = key_of("theirs")
    (outside / "precious.kc").write_bytes(b"not the cache's")
    (outside / f"{theirs}.kc").write_bytes(encode_entry(theirs, b"planted", {}))
    (outside / "old.tmp").write_bytes(b"x")
    os.utime(outside / "old.tmp", (0, 0))  # older than the stale-temp-file age
    before = snapshot(outside)
    (cache.root / theirs[:2]).symlink_to(outside, target_is_directory=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.get(theirs) is None  # never read through the link
        assert cache.put(theirs, b"new", {}) is False  # nor written
        cache.drop(theirs, "test")
        cache.prune(0)
        cache.clear()
    assert snapshot(outside) == before
    assert any("symbolic link" in str(w.message) for w in caught if w.category is CacheWarning)
    assert cache.get(mine) is None  # the real folders were emptied as asked


def test_a_linked_locks_folder_is_never_used(tmp_path):
    cache = KernelCache(tmp_path / "cache")
    key = key_of("k")
    cache.put(key, b"bin", {})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / f"{key}.lock").write_bytes(b"someone's")
    (cache.root / "locks").symlink_to(outside, target_is_directory=True)
    with cache.lock(key, timeout=1) as held:
        assert held is False  # proceeds without the lock
    assert cache.prune(0) == 1
    cache.clear()
    assert snapshot(outside) == {f"{key}.lock": b"someone's"}


# -- forged entries, archives and stats ------------------------------------------------------


def test_deeply_nested_metadata_is_a_damaged_entry(tmp_path):
    cache = KernelCache(tmp_path)
    key = key_of("nested")
    path = cache.entry_path(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(nested_entry(key))
    with pytest.warns(CacheWarning, match="nested too deeply"):
        assert cache.get(key) is None
    assert not path.exists()


def test_an_archive_with_deeply_nested_metadata_imports_nothing(tmp_path):
    key = key_of("nested")
    archive = tmp_path / "a.kca"
    archive.write_bytes(craft([(key_of("ok"), encode_entry(key_of("ok"), b"b", {})),
                               (key, nested_entry(key))]))  # fmt: skip
    with pytest.raises(ArchiveError, match="nested too deeply"):
        import_archive(KernelCache(tmp_path / "cache"), archive)
    assert KernelCache(tmp_path / "cache").entries() == []


@pytest.mark.parametrize(
    "text", [NESTED, b'{"hits": 1e999, "misses": -5, "builds": NaN, "build_seconds": 2.5}']
)
def test_a_damaged_stats_file_counts_as_zeros(tmp_path, text):
    cache = KernelCache(tmp_path)
    cache.put(key_of("k"), b"bin", {})
    (cache.root / "stats.json").write_bytes(text)
    cache.record_miss()
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["builds"]) == (0, 1, 0)
    assert stats["build_seconds"] == (2.5 if b"2.5" in text else 0)


def test_a_header_claiming_huge_metadata_allocates_nothing_huge(tmp_path):
    cache = KernelCache(tmp_path)
    key = key_of("k")
    cache.put(key, b"bin", {"name": "k"})
    path = cache.entry_path(key)
    data = bytearray(path.read_bytes())
    data[8:12] = (2**32 - 1).to_bytes(4, "little")  # the JSON length: 4 GiB
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        [info] = cache.entries()  # cache ls, export, explain_miss read headers this way
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (
        info.meta == {} and peak < 64 << 20
    )  # was a 4 GiB bytes object (MemoryError under ulimit -v)


def test_a_cache_hit_allocates_about_its_entry_not_the_size_limit(tmp_path):
    cache = KernelCache(tmp_path, max_size="1G")
    key = key_of("k")
    cache.put(key, b"b" * 1000, {})
    tracemalloc.start()
    try:
        assert cache.get(key).binary == b"b" * 1000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # was 1 GiB: read(limit + 1) allocates its argument first


def test_an_imported_build_time_that_is_not_a_duration_counts_as_zero(tmp_path):
    cache = KernelCache(tmp_path)
    for name, seconds in [("inf", float("inf")), ("neg", -3.0), ("str", "1"), ("ok", 0.25)]:
        cache.put(key_of(name), b"bin", {"build_seconds": seconds})
    assert sorted(e.build_seconds for e in cache.entries()) == [0, 0, 0, 0.25]


def test_an_import_of_many_entries_lists_the_folder_once(tmp_path, monkeypatch):
    keys = [key_of(str(i)) for i in range(200)]
    archive = tmp_path / "many.kca"
    archive.write_bytes(craft([(k, encode_entry(k, b"b", {})) for k in keys]))
    cache = KernelCache(tmp_path / "cache")
    scans = []
    real_scan = KernelCache._scan
    monkeypatch.setattr(KernelCache, "_scan", lambda self: scans.append(1) or real_scan(self))
    assert import_archive(cache, archive).stored == 200
    assert len(scans) == 1  # one prune for the archive, not one per entry (quadratic)
    assert all(cache.get(k).binary == b"b" for k in keys)


def test_cache_ls_prints_no_escape_sequences_from_metadata(tmp_path):
    cache = KernelCache(tmp_path)
    cache.put(key_of("evil"), b"bin", {"name": "\x1b]0;owned\x07\x1b[2J\nfake row"})
    cache.put(key_of("list"), b"bin", {"name": ["not", "a", "name"]})
    env = {**os.environ, "PYTHONPATH": str(REPO), "FUSEC_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "fusec", "cache", "ls"], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert len(out.stdout.splitlines()) == 3  # the heading and one line per entry
    assert "\\x1b]0;owned" in out.stdout
    assert any(line.endswith("  ?") for line in out.stdout.splitlines())  # a list is no name


# -- a remote "server" that drips or floods ---------------------------------------------------


@pytest.fixture
def fake_server(monkeypatch):
    """A loopback server answering HELLO like Redis 7 and every other command with
    `reply(conn)`; yields (start(reply) -> url, bytes sent to clients)."""
    monkeypatch.setattr(remote_module, "_reported", set())
    listener = socket.create_server(("127.0.0.1", 0))
    sent = [0]

    def start(reply):
        def serve(conn):
            with conn:
                try:
                    while data := conn.recv(65536):
                        if b"HELLO" in data:
                            conn.sendall(b"%1\r\n$5\r\nproto\r\n:3\r\n")
                        elif b"STRLEN" in data or b"GETRANGE" in data:
                            reply(conn, sent)
                        else:
                            conn.sendall(b"+OK\r\n" * data.count(b"*"))
                except OSError:
                    pass

        def accept():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return f"redis://127.0.0.1:{listener.getsockname()[1]}/0"

    yield start, sent
    listener.close()


def _get_in_a_thread(cache, key):
    """cache.get(key) in a thread; (finished within 60 s, the warnings it gave)."""
    caught = []

    def run():
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            cache.get(key)
        caught.extend(str(w.message) for w in got)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)  # a hang detector, not a speed test: the deadline below is 0.5 s
    return not worker.is_alive(), caught


def test_a_server_that_drips_its_reply_is_cut_at_the_deadline(tmp_path, fake_server):
    start, _ = fake_server

    def drip(conn, sent):  # each byte arrives within the 0.4 s socket timeout, forever
        while True:
            conn.sendall(b"+")
            threading.Event().wait(0.05)

    settings = RemoteSettings(url=start(drip), op_deadline=0.5)
    cache = TieredCache(tmp_path, RemoteTier(settings))
    finished, caught = _get_in_a_thread(cache, key_of("k"))
    assert finished
    assert any("no complete reply within 0.5 s" in m for m in caught), caught


def test_a_reply_claiming_a_gigabyte_is_not_read(tmp_path, fake_server):
    start, sent = fake_server

    def flood(conn, sent):
        conn.sendall(b":5\r\n$1073741824\r\n")
        chunk = bytes(1 << 20)
        for _ in range(1024):
            conn.sendall(chunk)
            sent[0] += len(chunk)

    settings = RemoteSettings(url=start(flood), max_entry=1 << 20, op_deadline=30)
    cache = TieredCache(tmp_path, RemoteTier(settings))
    finished, caught = _get_in_a_thread(cache, key_of("k"))
    assert finished
    assert any("larger than" in m for m in caught), caught
    assert sent[0] < 64 << 20  # the client stopped reading long before the gigabyte


# -- .npy inputs ------------------------------------------------------------------------------


def test_npy_files_in_other_layouts_hold_the_same_numbers(tmp_path):
    from fusec.frontend.source import InputFileError, load_npy

    want = np.arange(14, dtype=np.float32).reshape(7, 2) / 3
    for name, array in [("big", want.astype(">f4")), ("fortran", np.asfortranarray(want))]:
        np.save(tmp_path / f"{name}.npy", array)
        got = load_npy(tmp_path / f"{name}.npy")
        assert got.dtype == np.float32 and got.dtype.isnative
        np.testing.assert_array_equal(got, want)
    negative = tmp_path / "negative.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (-7,)}
    with open(negative, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(28))
    with pytest.raises(InputFileError, match="negative dimension"):
        load_npy(negative)


# -- IR text ------------------------------------------------------------------------------------


def test_ir_bytes_that_are_not_utf8_get_the_files_positioned_error():
    import fusec

    with pytest.raises(fusec.CompileError) as info:
        fusec.compile(b"graph f(x: f32[N]) {\n  y = x; # caf\xe9\n  return y\n}\n")
    assert "not UTF-8 text (byte 0xe9)" in str(info.value) and "<input>:2:" in str(info.value)
    # a byte-order mark, as in a file, is not part of the text
    program = fusec.compile("\ufeffgraph f(x: f32[N]) {\n  return x\n}\n".encode())
    assert program.graphs == ["f"]


def test_an_error_on_a_megabyte_line_shows_a_window_of_it():
    import fusec

    text = "graph f(x: f32[N]) {\n  y = x" + " + x" * 250_000 + " + ;\n  return y\n}\n"
    with pytest.raises(fusec.CompileError) as info:
        fusec.compile(text)
    head, shown, caret = str(info.value).splitlines()[:3]
    column = int(head.split(":")[2])
    assert column > 10**6 and len(shown) <= 166 and shown.startswith("...")
    assert caret.endswith("^") and shown[len(caret) - 1] == text.splitlines()[1][column - 1] == ";"


def test_an_empty_input_with_a_huge_dimension_is_a_call_error(tmp_path):
    """A 128-byte .npy of shape (2**40, 0) is a valid empty array, but the sum over
    its empty axis is 4 TiB: a CallError (NumPy: MemoryError), not pyopencl's LogicError."""
    import fusec

    program = fusec.compile("graph g(x: f32[N, M]) {\n  return sum(x, axis=1)\n}\n")
    with pytest.raises(fusec.CallError, match="cannot allocate 4,398,046,511,104 bytes"):
        program["g"](np.zeros((2**40, 0), np.float32))
    np.testing.assert_array_equal(program["g"](np.zeros((5, 0), np.float32)), np.zeros(5))
