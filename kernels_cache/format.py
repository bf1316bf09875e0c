"""The key and the one-file entry format.

An entry file is a fixed header followed by a JSON document and the binary:

    magic b"KCACHE" | u16 format version | u32 JSON length | u64 binary length
    | 32-byte sha256 of (JSON + binary)          -- little-endian, 52 bytes
    JSON {"key": ..., "meta": {...}}
    binary

The key is stored inside the checksummed part, so a valid file copied or
renamed onto another key's path is still rejected.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from typing import Any, BinaryIO

# Bump when the layout or the meaning of a key changes: the new version gets a
# fresh v<N> folder and old entries are simply never read again.
FORMAT_VERSION = 1
MAGIC = b"KCACHE"
HEADER = struct.Struct("<6sHIQ32s")

_KEY = re.compile(r"[0-9a-f]{2,128}")


class CorruptEntry(Exception):
    """An entry file that does not verify; the message says why."""


def cache_key(components: dict[str, str]) -> str:
    """Hex sha256 of the components (order-insensitive) and the format version."""
    if not all(isinstance(name, str) for name in components):
        raise TypeError("cache_key: component names must be strings")
    canonical = json.dumps(
        {"format_version": FORMAT_VERSION, "components": components},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_key(key: str) -> None:
    # Keys become file names: refuse anything that could escape the cache folder.
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(
            f"invalid cache key {key!r}: expected lowercase hex, e.g. from cache_key()"
        )


def encode_entry(key: str, binary: bytes, meta: dict[str, Any]) -> bytes:
    # json.dumps raises TypeError for meta it cannot store: a caller bug, not a disk problem.
    body = json.dumps({"key": key, "meta": meta}, sort_keys=True).encode("utf-8")
    digest = hashlib.sha256(body + binary).digest()
    return HEADER.pack(MAGIC, FORMAT_VERSION, len(body), len(binary), digest) + body + binary


def _check_header(header: bytes) -> tuple[int, int, bytes]:
    if len(header) < HEADER.size:
        raise CorruptEntry(f"{len(header)} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, meta_len, bin_len, digest = HEADER.unpack_from(header)
    if magic != MAGIC:
        raise CorruptEntry(f"bad magic {magic!r}")
    if version != FORMAT_VERSION:
        raise CorruptEntry(f"format version {version}, expected {FORMAT_VERSION}")
    return meta_len, bin_len, digest


def _parse_body(body: bytes) -> dict[str, Any]:
    try:
        stored = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptEntry(f"unreadable metadata ({exc})") from None
    except RecursionError:  # [[[[...: the checksum is unkeyed, so anyone can forge one
        raise CorruptEntry("unreadable metadata (nested too deeply)") from None
    if not isinstance(stored, dict) or not isinstance(stored.get("meta"), dict):
        raise CorruptEntry("metadata is not an object")
    return stored


def decode_entry(key: str, data: bytes) -> tuple[bytes, dict[str, Any]]:
    """The (binary, meta) of a whole entry file, or CorruptEntry."""
    meta_len, bin_len, digest = _check_header(data)
    expected = HEADER.size + meta_len + bin_len
    if len(data) != expected:
        raise CorruptEntry(f"{len(data)} bytes, the header says {expected}")
    body = memoryview(data)[HEADER.size :]
    if hashlib.sha256(body).digest() != digest:
        raise CorruptEntry("checksum mismatch")
    stored = _parse_body(body[:meta_len].tobytes())
    if stored.get("key") != key:
        raise CorruptEntry(f"holds key {stored.get('key')!r}")
    return body[meta_len:].tobytes(), stored["meta"]


def read_meta(f: BinaryIO) -> dict[str, Any]:
    """The meta of an entry, reading only the header and the JSON (no checksum)."""
    meta_len, _, _ = _check_header(f.read(HEADER.size))
    # Read in pieces: f.read(n) allocates n bytes first, and a header may claim 4 GiB.
    pieces, left = [], meta_len
    while left and (piece := f.read(min(left, 1 << 20))):
        pieces.append(piece)
        left -= len(piece)
    body = b"".join(pieces)
    if len(body) != meta_len:
        raise CorruptEntry("truncated metadata")
    return _parse_body(body)["meta"]
