"""`fusec cache export FILE` / `import FILE`: move entries between machines as one
file (a CI cache action saves and restores it).

    b"KCARCHIV" | u16 entry format version                  -- the head
    then per entry: b"E" | u8 key length | key | u64 entry length | entry file bytes
    then b"Z" | u32 entry count | sha256 of everything before the b"Z"

Nothing in it names a path: an entry's place in the cache comes from its key,
which must be lowercase hex (format.check_key), so an archive cannot write
outside the cache or through a link.  Import reads the whole archive (bounded
by the cache's size limit), verifies every entry with the same decode as a disk
read and the trailer's count and digest, and only then stores anything: a
damaged archive imports nothing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .format import FORMAT_VERSION, CorruptEntry, check_key, decode_entry, encode_entry
from .safety import TooLarge, UnsafeFile, read_regular
from .store import KernelCache

HEAD = struct.Struct("<8sH")
HEAD_MAGIC = b"KCARCHIV"
LENGTH = struct.Struct("<Q")
TRAILER = struct.Struct("<I32s")


class ArchiveError(Exception):
    """An archive that cannot be read or does not verify; nothing was imported."""


@dataclass(frozen=True)
class ImportResult:
    entries: int  # verified entries in the archive
    stored: int  # of which the cache stored (it may refuse: an untrusted folder, a full disk)


def export_archive(cache: KernelCache, path: Path) -> int:
    """Write every verified entry of `cache` to `path` (atomically); the count written."""
    digest = hashlib.sha256()
    count = 0
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not an archive file", str(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # name the user's file, not our temporary one beside it
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:

            def write(data: bytes) -> None:
                digest.update(data)
                f.write(data)

            write(HEAD.pack(HEAD_MAGIC, FORMAT_VERSION))
            for info in cache.entries():
                entry = KernelCache.get(cache, info.key)  # the local folder only, verified
                if entry is None:
                    continue
                data = encode_entry(info.key, entry.binary, entry.meta)
                key = info.key.encode()
                write(b"E" + bytes([len(key)]) + key + LENGTH.pack(len(data)) + data)
                count += 1
            f.write(b"Z" + TRAILER.pack(count, digest.digest()))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return count


def read_archive(path: Path, limit: int) -> list[tuple[str, bytes, dict]]:
    """The verified (key, binary, meta) of every entry, or ArchiveError."""
    try:
        data, _ = read_regular(path, limit)
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such file") from None
    except TooLarge:
        raise ArchiveError(f"{path} is larger than the cache's size limit ({limit} bytes); "
                           "raise FUSEC_CACHE_MAX_SIZE to import it") from None  # fmt: skip
    except UnsafeFile as exc:
        raise ArchiveError(str(exc)) from None
    except OSError as exc:
        raise ArchiveError(f"{path}: {(exc.strerror or str(exc)).lower()}") from None
    if len(data) > limit:  # it grew while being read
        raise ArchiveError(f"{path} is larger than the cache's size limit ({limit} bytes)")
    try:
        return _parse(data)
    except (CorruptEntry, ValueError, IndexError, struct.error) as exc:
        raise ArchiveError(f"{path} is damaged or not a kernel cache archive ({exc}); "
                           "nothing was imported") from None  # fmt: skip


def _parse(data: bytes) -> list[tuple[str, bytes, dict]]:
    if len(data) < HEAD.size:
        raise CorruptEntry("shorter than the archive header")
    magic, version = HEAD.unpack_from(data)
    if magic != HEAD_MAGIC:
        raise CorruptEntry("bad magic")
    if version != FORMAT_VERSION:
        raise CorruptEntry(f"entry format {version}, this cache reads {FORMAT_VERSION}")
    found, at = [], HEAD.size
    while True:
        tag = data[at : at + 1]
        if tag == b"Z":
            count, digest = TRAILER.unpack_from(data, at + 1)
            if at + 1 + TRAILER.size != len(data):
                raise CorruptEntry("bytes after the trailer")
            if count != len(found) or hashlib.sha256(data[:at]).digest() != digest:
                raise CorruptEntry("the trailer's count or digest does not match")
            return found
        if tag != b"E":
            raise CorruptEntry(f"unexpected record at byte {at} (truncated?)")
        key_length = data[at + 1]
        key = data[at + 2 : at + 2 + key_length].decode("ascii")
        check_key(key)  # a key is a file name: hex only, so never a path
        (length,) = LENGTH.unpack_from(data, at + 2 + key_length)
        start = at + 2 + key_length + LENGTH.size
        if start + length > len(data):
            raise CorruptEntry(f"entry {key[:16]} runs past the end")
        binary, meta = decode_entry(key, data[start : start + length])
        found.append((key, binary, meta))
        at = start + length


def import_archive(cache: KernelCache, path: Path) -> ImportResult:
    """Store every entry of the archive into the local folder; ArchiveError (and
    nothing stored) if any part of it does not verify."""
    entries = read_archive(path, limit=max(cache.max_size, 1 << 20))
    # KernelCache.put, not a tier's: an archive's entries go to this machine's
    # folder, not (re-authenticated with this machine's secret) to a shared Redis.
    # No fsync and one prune at the end: per entry they cost 4 ms and a listing of the
    # whole folder, so an archive of 10^5 tiny entries would take hours. The archive
    # stays the durable copy; an entry damaged by a power cut is dropped when read.
    stored = sum(
        KernelCache.put(cache, key, binary, meta, durable=False, prune=False)
        for key, binary, meta in entries
    )
    cache.prune(cache.max_size)
    return ImportResult(len(entries), stored)
