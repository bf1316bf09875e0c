"""A Redis tier behind the local folder, shared by many machines.

Everything read from Redis is untrusted: it goes through the same verified
decode as a disk entry (magic, version, lengths, sha256, key) and, with a
secret, an HMAC-SHA256 over the Redis key and the entry.  Redis only ever
saves work: a dead, slow, full or lying server costs a bounded delay per
process (short timeouts, then a circuit breaker), one warning, and never a
failed compile or a wrong kernel.  So every Redis operation catches any
Exception (redis-py 8 raises AttributeError when a server answers its HELLO
with nonsense); the warning names the exception's type, so a bug still shows.
See docs/cache.md, "The remote tier".
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .format import FORMAT_VERSION, CorruptEntry, check_key, decode_entry

NAMESPACE = f"fusec:kc:v{FORMAT_VERSION}:"  # a new format never reads old entries
# A remote value: magic | flags (1: authenticated) | HMAC-SHA256 (zeros without a secret) | entry
WRAP = struct.Struct("<4sB32s")
WRAP_MAGIC = b"KCR1"
AUTHENTICATED = 1
LOCK_LIFE = 10.0  # seconds a build lock outlives a holder that died

# Warnings already given in this process, by (redacted url, kind): a tier reports
# each kind of trouble once, however many KernelCaches share it.
_reported: set[tuple[str, str]] = set()
_reported_mutex = threading.Lock()


class _Never(Exception):
    """Stands for redis.ResponseError until redis is imported."""


class RemoteWarning(UserWarning):
    """The remote tier failed, or served an entry that does not verify; fusec goes on."""


@dataclass(frozen=True)
class RemoteSettings:
    url: str  # redis://[user:password@]host:port/db, rediss://..., unix:///path
    secret: bytes | None = None  # entries are authenticated with it when set
    ttl: float | None = None  # seconds an entry lives in Redis; None: until evicted
    max_entry: int = 64 << 20  # bytes; larger entries are neither written nor read
    connect_timeout: float = 0.25
    op_timeout: float = 0.4  # per socket read: a stalled server costs this once (bench: <= 0.5 s)
    op_deadline: float = 2.0  # per operation, however the server drips its reply...
    slow_link: float = 4 << 20  # ...plus a second per this many bytes a put sends
    break_seconds: float = 30.0  # after a failure, Redis is left alone this long


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class RemoteTier:
    """get/put/delete of verified entries in Redis, and a build lock across machines."""

    def __init__(self, settings: RemoteSettings, count: Callable[..., None] | None = None):
        if importlib.util.find_spec("redis") is None:
            raise ValueError("the remote cache needs the redis package: pip install 'fusec[redis]'")
        parts = urlsplit(settings.url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"{redact(settings.url)!r} is not a redis://, rediss:// or unix:// URL"
            )
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
            db = parts.path.strip("/")
            if parts.scheme != "unix" and db and not db.isdigit():
                raise ValueError(f"the database must be a number, not {db!r}")
        except ValueError as exc:
            raise ValueError(f"{redact(settings.url)!r}: {exc}") from None
        self._client = None
        self._client_mutex = threading.Lock()
        self._response_error: type[BaseException] = _Never
        self.settings = settings
        self.where = redact(settings.url)
        self.count = count or (lambda **_: None)
        self._down_until = 0.0  # monotonic time before which Redis is not asked
        self._no_writes_until = 0.0  # the same for writes only (a full server still serves)

    @property
    def client(self):
        """The redis-py client, made on first use: `import redis` takes 50-120 ms
        here, and a process whose kernels all hit the local folder never needs it."""
        with self._client_mutex:
            if self._client is None:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                from .remote_reply import capped_parser

                self._response_error = redis.ResponseError
                self._client = redis.Redis.from_url(
                    self.settings.url,
                    socket_connect_timeout=self.settings.connect_timeout,
                    socket_timeout=self.settings.op_timeout,
                    retry=Retry(NoBackoff(), 0),  # a retry doubles what a dead server costs
                    health_check_interval=0,
                    # the largest reply we ask for, plus room for the protocol's framing
                    parser_class=capped_parser(WRAP.size + self.settings.max_entry + 4096),
                )
            return self._client

    @property
    def authenticated(self) -> bool:
        return self.settings.secret is not None

    def describe(self) -> str:
        how = (
            "authenticated (HMAC-SHA256)"
            if self.authenticated
            else (
                "unauthenticated: entries are checked for integrity only (set FUSEC_CACHE_SECRET)"
            )
        )
        return f"{self.where}, {how}"

    # -- faults ----------------------------------------------------------------

    def _available(self, writing: bool = False) -> bool:
        now = time.monotonic()
        return now >= self._down_until and (not writing or now >= self._no_writes_until)

    def _fail(self, exc: BaseException, what: str, writes_only: bool = False) -> None:
        self.count(remote_errors=1)
        until = time.monotonic() + self.settings.break_seconds
        if writes_only:
            self._no_writes_until = until
        else:
            self._down_until = until
        scope = "writing to" if writes_only else "using"
        self._report(
            "down" if not writes_only else "write",
            f"remote kernel cache {self.where}: {what} failed ({type(exc).__name__}: {exc}); "
            f"not {scope} it for {self.settings.break_seconds:g} s, kernels are built locally",
        )

    def _report(self, kind: str, message: str) -> None:
        with _reported_mutex:
            if (self.where, kind) in _reported:
                return
            _reported.add((self.where, kind))
        warnings.warn(message, RemoteWarning, stacklevel=4)

    @contextlib.contextmanager
    def _bounded(self, sending: int = 0) -> Iterator[None]:
        """One operation within op_deadline seconds (more for a large put). The socket
        timeout bounds each read, but a server sending a byte every 0.3 s restarts it
        forever: past the deadline the connections are cut, so the operation fails
        (and the breaker opens)."""
        fired = threading.Event()
        deadline = self.settings.op_deadline + sending / self.settings.slow_link
        timer = threading.Timer(deadline, self._cut, args=(fired,))
        timer.daemon = True
        timer.start()
        try:
            yield
        except Exception:
            if fired.is_set():
                raise TimeoutError(f"no complete reply within {deadline:g} s") from None
            raise
        finally:
            timer.cancel()

    def _cut(self, fired: threading.Event) -> None:
        fired.set()
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                client.connection_pool.disconnect()  # wakes the blocked reader

    # -- entries ---------------------------------------------------------------

    def _name(self, key: str) -> str:
        check_key(key)
        return NAMESPACE + key

    def _mac(self, name: str, entry: bytes) -> bytes:
        assert self.settings.secret is not None
        return hmac.new(
            self.settings.secret, name.encode() + b"\0" + entry, hashlib.sha256
        ).digest()

    def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        """The verified (binary, meta) stored for key, or None (absent, bad, or Redis down)."""
        name = self._name(key)
        if not self._available():
            return None
        limit = WRAP.size + self.settings.max_entry
        try:
            with self._bounded():
                pipe = self.client.pipeline(transaction=False)
                pipe.strlen(name)
                pipe.getrange(name, 0, limit - 1)  # never pull more than the limit
                size, value = pipe.execute()
        except Exception as exc:  # any fault of the tier: see the docstring
            self._fail(exc, "reading")
            return None
        if size == 0:
            self.count(remote_misses=1)
            return None
        try:
            # A server (or something posing as one) may answer anything: bytes(n) of
            # an integer reply would allocate n bytes.
            if not isinstance(size, int) or not isinstance(value, bytes):
                raise CorruptEntry(
                    f"unexpected replies {type(size).__name__}, {type(value).__name__}"
                )
            if size > limit:
                raise CorruptEntry(f"{size} bytes, over the {limit}-byte limit")
            entry = self._unwrap(name, bytes(value))
            if entry is None:
                return None
            found = decode_entry(key, entry)
        except CorruptEntry as exc:
            self.count(remote_corrupt=1)
            self._report("corrupt", f"remote kernel cache {self.where}: entry {key[:16]} does "
                                    f"not verify ({exc}); it is rebuilt and overwritten")  # fmt: skip
            return None
        self.count(remote_hits=1)
        return found

    def _unwrap(self, name: str, value: bytes) -> bytes | None:
        if len(value) < WRAP.size:
            raise CorruptEntry(f"{len(value)} bytes, shorter than the remote header")
        magic, flags, mac = WRAP.unpack_from(value)
        if magic != WRAP_MAGIC:
            raise CorruptEntry(f"bad magic {magic!r}")
        entry = value[WRAP.size :]
        if self.settings.secret is not None:
            # Never load what the secret does not vouch for; compare in constant time.
            if flags != AUTHENTICATED or not hmac.compare_digest(mac, self._mac(name, entry)):
                self.count(remote_auth_failures=1)
                self._report("auth", f"remote kernel cache {self.where}: an entry failed "
                                     "authentication (another secret, or forged); it is never "
                                     "loaded, and is rebuilt and overwritten")  # fmt: skip
                return None
        return entry

    def put(self, key: str, entry: bytes) -> bool:
        """Store an encoded entry (format.encode_entry); False if skipped or Redis refused."""
        name = self._name(key)
        if len(entry) > self.settings.max_entry or not self._available(writing=True):
            return False
        flags, mac = (0, bytes(32))
        if self.settings.secret is not None:
            flags, mac = AUTHENTICATED, self._mac(name, entry)
        ttl = self.settings.ttl
        try:
            with self._bounded(sending=len(entry)):
                self.client.set(name, WRAP.pack(WRAP_MAGIC, flags, mac) + entry,
                                px=max(1, int(ttl * 1000)) if ttl else None)  # fmt: skip
        except self._response_error as exc:  # full (OOM), read-only replica: reads go on
            self._fail(exc, "writing", writes_only=True)
            return False
        except Exception as exc:  # any fault of the tier: see the docstring
            self._fail(exc, "writing")
            return False
        self.count(remote_writes=1)
        return True

    def delete(self, key: str) -> None:
        name = self._name(key)
        if self._available(writing=True):
            try:
                with self._bounded():
                    self.client.delete(name)
            except Exception as exc:  # any fault of the tier: see the docstring
                self._fail(exc, "deleting")

    def exists(self, key: str) -> bool:
        name = self._name(key)
        if not self._available():
            return False
        try:
            with self._bounded():
                return bool(self.client.exists(name))
        except Exception as exc:  # any fault of the tier: see the docstring
            self._fail(exc, "reading")
            return False

    # -- one build across machines -----------------------------------------------

    @contextlib.contextmanager
    def build_lock(self, key: str, timeout: float, life: float = LOCK_LIFE) -> Iterator[bool]:
        """Yield True while holding key's build lock, or False once another holder's
        entry is in Redis, the wait passed `timeout`, or Redis failed.  The lock has a
        token and lives `life` seconds, renewed by its live holder, so a holder that
        dies frees it within `life`.  It only saves duplicate builds: the caller
        re-reads the cache and builds if the entry is still missing."""
        name = self._name(key) + ":lock"
        held = None
        if self._available():
            deadline = time.monotonic() + timeout
            delay = 0.01
            try:
                lock = self.client.lock(name, timeout=life, blocking=False, thread_local=False)
                while True:
                    with self._bounded():
                        if lock.acquire(blocking=False):
                            held = lock
                            break
                        there = self.client.exists(self._name(key))
                    if there or time.monotonic() >= deadline:
                        break
                    time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                    delay = min(delay * 2, 0.5)  # waiters back off: many machines, one server
            except Exception as exc:  # any fault of the tier: see the docstring
                self._fail(exc, "locking")
        stop = threading.Event()
        if held is not None:
            threading.Thread(target=_renew, args=(held, life, stop), daemon=True).start()
        try:
            yield held is not None
        finally:
            stop.set()
            if held is not None:
                try:
                    with self._bounded():
                        held.release()  # token-checked: never frees a lock that expired and moved on
                except Exception:  # releasing is best effort: the lock expires
                    pass


def _renew(lock, life: float, stop: threading.Event) -> None:
    """Keep a held lock alive however long the build takes (every third of its life)."""
    while not stop.wait(life / 3):
        try:
            lock.reacquire()  # token-checked, like release
        except Exception:  # lost it (expired, Redis gone): a second build is harmless
            return
