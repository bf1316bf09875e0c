"""The Redis tier (issue 14), against a real redis-server on a loopback port:
verified and authenticated entries, one build across processes, and faults
(a killed, sleeping, full or lying server) that never fail a compile."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from kernels_cache import (
    KernelCache,
    RemoteSettings,
    RemoteTier,
    RemoteWarning,
    TieredCache,
    cache_key,
)
from kernels_cache import remote as remote_module
from kernels_cache.format import FORMAT_VERSION, HEADER, MAGIC, encode_entry

REPO = Path(__file__).resolve().parents[1]
X = np.arange(1, 9, dtype=np.float32)


class RedisServer:
    """A throw-away redis-server on a free 127.0.0.1 port, without persistence."""

    def __init__(self, executable: str, folder: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder), "--enable-debug-command", "local"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 15
        while not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING on port {self.port}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:
            return False

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path):
    executable = shutil.which("redis-server")
    missing = "redis-server is not installed" if executable is None else None
    try:
        import redis  # noqa: F401
    except ImportError:
        missing = "the redis package is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; CI must run these tests (.ci/run installs it)")
        pytest.skip(missing)
    (tmp_path / "redis").mkdir()
    server = RedisServer(executable, tmp_path / "redis")
    yield server
    server.kill()


@pytest.fixture(autouse=True)
def fresh_reports(monkeypatch):
    # "Reported once" is per process; each test is a process of its own here.
    monkeypatch.setattr(remote_module, "_reported", set())


def tier(server: RedisServer, **settings) -> RemoteTier:
    return RemoteTier(RemoteSettings(url=server.url, **settings))


def key_of(name: str) -> str:
    return cache_key({"source": name})


def remote_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RemoteWarning)]


# -- entries ------------------------------------------------------------------------------


def test_a_local_miss_reads_redis_and_keeps_a_local_copy(tmp_path, redis_server):
    writer = TieredCache(tmp_path / "a", tier(redis_server))
    key = key_of("k")
    assert writer.put(key, b"binary", {"name": "k", "build_seconds": 0.5})
    assert redis_server.client().exists(f"fusec:kc:v1:{key}")

    reader = TieredCache(tmp_path / "b", tier(redis_server))
    entry = reader.get(key)
    assert (entry.binary, entry.meta["name"]) == (b"binary", "k")
    assert KernelCache(tmp_path / "b").get(key).binary == b"binary"  # now on disk too
    assert reader.get(key) is not None  # from disk: Redis is not asked again
    assert reader.get(key_of("absent")) is None
    stats = reader.stats()
    assert (stats["remote_hits"], stats["remote_misses"], stats["remote_errors"]) == (1, 1, 0)
    assert writer.stats()["remote_writes"] == 1
    assert "unauthenticated" in stats["remote"] and stats["remote_authenticated"] is False


def test_ttl_and_size_limit(tmp_path, redis_server):
    key, big = key_of("k"), key_of("big")
    cache = TieredCache(tmp_path, tier(redis_server, ttl=60, max_entry=1000))
    cache.put(key, b"small", {})
    cache.put(big, b"x" * 2000, {})
    client = redis_server.client()
    assert 0 < client.pttl(f"fusec:kc:v1:{key}") <= 60_000
    assert not client.exists(f"fusec:kc:v1:{big}")  # too large to share
    client.set(f"fusec:kc:v1:{big}", b"y" * 5000)
    with pytest.warns(RemoteWarning, match="over the"):
        assert tier(redis_server, max_entry=1000).get(big) is None


def test_password_is_not_shown(redis_server):
    shown = tier(redis_server).describe()
    assert redis_server.url in shown
    url = redis_server.url.replace("redis://", "redis://user:hunter2@")
    assert "hunter2" not in RemoteTier(RemoteSettings(url=url)).describe()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1/0", "redis://127.0.0.1:notaport/0", "nonsense"]
)
def test_bad_urls_are_refused(url):
    with pytest.raises(ValueError):
        RemoteTier(RemoteSettings(url=url))


def _poison(server, key: str, how: str, secret: bytes | None) -> None:
    client, name = server.client(), f"fusec:kc:v1:{key}"
    good = tier(server, secret=secret)
    if how == "garbage":
        client.set(name, os.urandom(300))
    elif how == "another key's entry":
        good.put(key_of("other"), encode_entry(key_of("other"), b"other", {}))
        client.set(name, client.get(f"fusec:kc:v1:{key_of('other')}"))
    elif how == "flipped byte":
        good.put(key, encode_entry(key, b"binary", {}))
        value = bytearray(client.get(name))
        value[-1] ^= 1
        client.set(name, bytes(value))
    elif how == "wrong HMAC":
        good.put(key, encode_entry(key, b"binary", {}))
        value = bytearray(client.get(name))
        value[10] ^= 1  # inside the MAC
        client.set(name, bytes(value))
    elif how == "another secret":
        tier(server, secret=b"someone else").put(key, encode_entry(key, b"forged", {}))
    elif how == "unauthenticated":
        tier(server).put(key, encode_entry(key, b"forged", {}))
    elif how == "a list":
        client.rpush(name, b"x")
    elif how == "nested metadata":  # a valid sha256 around [[[[...: json.loads recursed
        body = b'{"key": "' + key.encode() + b'", "meta": ' + b"[" * 10**5 + b"]" * 10**5 + b"}"
        digest = hashlib.sha256(body + b"bin").digest()
        entry = HEADER.pack(MAGIC, FORMAT_VERSION, len(body), 3, digest) + body + b"bin"
        client.set(name, remote_module.WRAP.pack(remote_module.WRAP_MAGIC, 0, bytes(32)) + entry)


@pytest.mark.parametrize(
    "how, secret, counter",
    [
        ("garbage", None, "remote_corrupt"),
        ("another key's entry", None, "remote_corrupt"),
        ("flipped byte", None, "remote_corrupt"),
        ("garbage", b"s3cret", "remote_corrupt"),
        ("another key's entry", b"s3cret", "remote_auth_failures"),
        ("wrong HMAC", b"s3cret", "remote_auth_failures"),
        ("another secret", b"s3cret", "remote_auth_failures"),
        ("unauthenticated", b"s3cret", "remote_auth_failures"),
        ("a list", None, "remote_errors"),
        ("nested metadata", None, "remote_corrupt"),
    ],
)
def test_poisoned_values_are_never_loaded(tmp_path, redis_server, how, secret, counter):
    key = key_of("victim")
    _poison(redis_server, key, how, secret)
    cache = TieredCache(tmp_path, tier(redis_server, secret=secret))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.get(key) is None
        assert cache.get(key) is None
    assert len(remote_warnings(caught)) == 1, remote_warnings(caught)
    assert cache.stats()[counter] >= 1 and cache.stats()["remote_hits"] == 0
    assert KernelCache(tmp_path).get(key) is None  # nothing bad reached the disk


def test_a_rebuilt_entry_overwrites_a_bad_one(tmp_path, redis_server):
    key = key_of("victim")
    _poison(redis_server, key, "another secret", b"mine")
    cache = TieredCache(tmp_path / "a", tier(redis_server, secret=b"mine"))
    with pytest.warns(RemoteWarning, match="authentication"):
        assert cache.get(key) is None
    cache.put(key, b"rebuilt", {})
    fresh = TieredCache(tmp_path / "b", tier(redis_server, secret=b"mine"))
    assert fresh.get(key).binary == b"rebuilt"


# -- faults ---------------------------------------------------------------------------------


def test_a_killed_server_costs_one_warning_and_little_time(tmp_path, redis_server):
    cache = TieredCache(tmp_path, tier(redis_server))
    assert cache.get(key_of("a")) is None
    redis_server.kill()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.monotonic()
        assert cache.get(key_of("b")) is None
        first = time.monotonic() - start
        start = time.monotonic()
        for name in "cdefgh":
            assert cache.get(key_of(name)) is None
            assert cache.put(key_of(name), b"bin", {})  # the local tier still works
            with cache.lock(key_of(name), timeout=5) as locked:
                assert locked is False
        later = time.monotonic() - start
    assert (
        len(remote_warnings(caught)) == 1
        and "kernels are built locally" in remote_warnings(caught)[0]
    )
    assert first < 2 and later < 1, (first, later)  # the circuit breaker leaves Redis alone
    assert cache.stats()["remote_errors"] == 1


def test_an_unreachable_address_costs_the_connect_timeout(tmp_path):
    # 127.0.0.1 port 1: nothing listens, refused at once; the breaker stops later tries.
    cache = TieredCache(tmp_path, RemoteTier(RemoteSettings(url="redis://127.0.0.1:1/0")))
    with pytest.warns(RemoteWarning):
        start = time.monotonic()
        for i in range(20):
            assert cache.get(key_of(str(i))) is None
        assert time.monotonic() - start < 2


def test_a_sleeping_server_times_out(tmp_path, redis_server):
    cache = TieredCache(tmp_path, tier(redis_server))
    assert cache.get(key_of("warm")) is None  # connected
    sleeper = threading.Thread(
        target=lambda: redis_server.client().execute_command("DEBUG", "SLEEP", 3)
    )
    sleeper.start()
    time.sleep(0.2)
    try:
        with pytest.warns(RemoteWarning, match="TimeoutError|Timeout"):
            start = time.monotonic()
            assert cache.get(key_of("slow")) is None
            assert time.monotonic() - start < 2
    finally:
        sleeper.join(timeout=10)


def test_a_full_server_keeps_serving_reads(tmp_path, redis_server):
    writer = TieredCache(tmp_path / "a", tier(redis_server))
    writer.put(key_of("old"), b"old", {})
    client = redis_server.client()
    client.set("filler", b"x" * (2 << 20))
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1mb")
    cache = TieredCache(tmp_path / "b", tier(redis_server))
    with pytest.warns(RemoteWarning, match="OutOfMemory|OOM") as caught:
        assert cache.put(key_of("new"), b"new", {}) is True  # stored locally all the same
        assert cache.put(key_of("newer"), b"newer", {}) is True
    assert len(caught) == 1
    assert cache.get(key_of("old")).binary == b"old"  # reads go on
    assert cache.stats()["remote_errors"] == 1 and cache.stats()["remote_hits"] == 1


# -- one build across machines ----------------------------------------------------------------


def test_a_dead_holders_lock_expires(redis_server):
    key = key_of("k")
    holder = subprocess.run(
        [sys.executable, "-c",
         "import sys, os; from kernels_cache import *; from kernels_cache.remote import *\n"
         "t = RemoteTier(RemoteSettings(url=sys.argv[1]))\n"
         "cm = t.build_lock(sys.argv[2], timeout=5, life=1); assert cm.__enter__()\n"
         "os._exit(0)  # dies holding it\n", redis_server.url, key],
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, capture_output=True, text=True,
    )  # fmt: skip
    assert holder.returncode == 0, holder.stderr
    start = time.monotonic()
    with tier(redis_server).build_lock(key, timeout=10) as held:
        assert held is True
    assert time.monotonic() - start < 5  # freed by the expiry, not by the wait's end


def test_a_live_holder_keeps_its_lock_past_its_life(redis_server):
    key = key_of("k")
    with tier(redis_server).build_lock(key, timeout=5, life=1) as held:
        assert held
        time.sleep(2.5)  # a long build: the lock would have expired twice without renewal
        with tier(redis_server).build_lock(key, timeout=0.5, life=1) as other:
            assert other is False
        assert redis_server.client().pttl(f"fusec:kc:v1:{key}:lock") > 0
    assert not redis_server.client().exists(f"fusec:kc:v1:{key}:lock")  # released at the end


def test_a_waiter_stops_when_the_entry_appears(redis_server):
    key = key_of("k")
    holder, waiter = tier(redis_server), tier(redis_server)
    with holder.build_lock(key, timeout=5) as held:
        assert held
        threading.Timer(0.3, lambda: holder.put(key, encode_entry(key, b"b", {}))).start()
        start = time.monotonic()
        with waiter.build_lock(key, timeout=10) as waited:
            assert waited is False
        assert time.monotonic() - start < 3


def fusec_env(cache: Path, server: RedisServer, **extra) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "FUSEC_CACHE_DIR": str(cache),
            "FUSEC_REMOTE_CACHE": server.url, **extra}  # fmt: skip


def test_four_cold_processes_build_each_kernel_once(tmp_path, redis_server):
    models = tmp_path / "models"
    models.mkdir()
    for i in range(4):
        (models / f"m{i}.ir").write_text(
            f"graph g{i}(x: f32[N]) {{\n return tanh(x * {i + 2}) + {i}\n}}\n"
        )
    procs = [
        subprocess.Popen([sys.executable, "-m", "fusec.cli", "warmup", str(models)], cwd=REPO,
                         env=fusec_env(tmp_path / f"cache{p}", redis_server),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for p in range(4)
    ]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    stats = [KernelCache(tmp_path / f"cache{p}").stats() for p in range(4)]
    assert sum(s["builds"] for s in stats) == 4, (stats, outs)
    assert sum(s["remote_writes"] for s in stats) == 4
    assert sum(s["remote_hits"] for s in stats) == 12
    assert all(s["entries"] == 4 for s in stats)


def test_compiles_survive_a_server_killed_mid_run(tmp_path, redis_server):
    script = (
        "import sys, time, warnings, numpy as np, fusec\n"
        "warnings.simplefilter('always')\n"
        "x = np.arange(1, 9, dtype=np.float32)\n"
        "assert (fusec.compile('graph f(x: f32[N]) {\\n return x * 3.0\\n}')['f'](x) == x * 3).all()\n"
        "print('first', flush=True); sys.stdin.readline()\n"  # the test kills Redis now
        "start = time.perf_counter()\n"
        "for i in range(3):\n"
        "    g = fusec.compile(f'graph f(x: f32[N]) {{\\n return x + {i}.0\\n}}')['f']\n"
        "    assert (g(x) == x + i).all()\n"
        "print('done', time.perf_counter() - start)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, text=True,
                            env=fusec_env(tmp_path / "cache", redis_server),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout.readline().strip() == "first"
    redis_server.kill()
    out, err = proc.communicate("go\n", timeout=300)
    assert proc.returncode == 0 and out.startswith("done"), err
    assert err.count("RemoteWarning") == 1, err
    assert "Traceback" not in err


def test_a_wrong_secret_rebuilds_and_overwrites(tmp_path, redis_server):
    script = (
        "import numpy as np, fusec\n"
        "x = np.arange(1, 9, dtype=np.float32)\n"
        "print(fusec.compile('graph f(x: f32[N]) {\\n return x * 2.0\\n}')['f'](x).tolist())\n"
    )

    def run(cache: str, secret: str):
        env = fusec_env(tmp_path / cache, redis_server, FUSEC_CACHE_SECRET=secret)
        return subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    expected = str((X * 2).tolist())
    first = run("a", "alpha")
    assert first.returncode == 0 and first.stdout.strip() == expected, first.stderr
    second = run("b", "beta")
    assert second.returncode == 0 and second.stdout.strip() == expected, second.stderr
    assert second.stderr.count("failed authentication") == 1, second.stderr
    b = KernelCache(tmp_path / "b").stats()
    # Counted per read (the miss, then the re-read under the build lock), reported once.
    assert b["remote_auth_failures"] >= 1 and (b["builds"], b["remote_writes"]) == (1, 1)
    third = run("c", "beta")  # beta's rebuild overwrote alpha's entry
    c = KernelCache(tmp_path / "c").stats()
    assert third.stdout.strip() == expected and (c["remote_hits"], c["builds"]) == (1, 0), (
        third.stderr
    )


# -- settings and `fusec cache stats` --------------------------------------------------------


def fusec_cache_stats(env: dict[str, str]):
    return subprocess.run([sys.executable, "-m", "fusec.cli", "cache", "stats"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_cache_stats_reports_the_tier(tmp_path, redis_server):
    cache = TieredCache(tmp_path / "cache", tier(redis_server))
    assert cache.get(key_of("absent")) is None
    assert cache.flush()
    out = fusec_cache_stats(fusec_env(tmp_path / "cache", redis_server))
    assert out.returncode == 0, out.stderr
    assert f"remote: {redis_server.url}, unauthenticated" in out.stdout
    assert "remote_misses: 1" in out.stdout and "remote_auth_failures: 0" in out.stdout
    out = fusec_cache_stats(fusec_env(tmp_path / "cache", redis_server, FUSEC_CACHE_SECRET="s"))
    assert "authenticated (HMAC-SHA256)" in out.stdout and "unauthenticated" not in out.stdout
    plain = {k: v for k, v in fusec_env(tmp_path / "cache", redis_server).items()
             if k != "FUSEC_REMOTE_CACHE"}  # fmt: skip
    assert "remote" not in fusec_cache_stats(plain).stdout


@pytest.mark.parametrize(
    "name, value",
    [("FUSEC_REMOTE_CACHE", "http://example.invalid/"), ("FUSEC_REMOTE_CACHE", "redis://h:x/0"),
     ("FUSEC_REMOTE_CACHE_TTL", "soon"), ("FUSEC_REMOTE_CACHE_MAX_ENTRY", "9" * 400)],
)  # fmt: skip
def test_bad_remote_settings_are_one_line_errors(tmp_path, name, value):
    env = {**os.environ, "PYTHONPATH": str(REPO), "FUSEC_CACHE_DIR": str(tmp_path),
           "FUSEC_REMOTE_CACHE": "redis://127.0.0.1:1/0", name: value}  # fmt: skip
    out = fusec_cache_stats(env)
    assert out.returncode == 1 and out.stderr.startswith(f"fusec: error: {name}: "), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_local_hits_never_import_redis(tmp_path, redis_server):
    script = (
        "import sys, numpy as np, fusec\n"
        "x = np.ones(8, np.float32)\n"
        "fusec.compile('graph f(x: f32[N]) {\\n return x * 2.0\\n}')['f'](x)\n"
        "print('redis' in sys.modules)\n"
    )
    env = fusec_env(tmp_path / "cache", redis_server)
    runs = [subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]  # fmt: skip
    assert [r.stdout.strip() for r in runs] == ["True", "False"], [r.stderr for r in runs]


@pytest.mark.parametrize("reply", [b":99999999999999\r\n", b"+OK\r\n", b"\x00garbage\xff\r\n"])
def test_a_server_answering_nonsense_never_fails_a_get(tmp_path, reply):
    """Something at the URL that is not Redis, or lies: an integer, a status, or noise
    for every command. A miss and one warning; never an exception or a huge allocation."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while conn.recv(65536):
                    conn.sendall(reply * 4)

    threading.Thread(target=serve, daemon=True).start()
    try:
        cache = TieredCache(tmp_path, RemoteTier(RemoteSettings(url=f"redis://127.0.0.1:{port}/0")))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for name in "abc":
                assert cache.get(key_of(name)) is None
                cache.put(key_of(name), b"bin", {})
                with cache.lock(key_of(name), timeout=2):
                    pass
        assert 1 <= len(remote_warnings(caught)) <= 2, remote_warnings(caught)
        assert KernelCache(tmp_path).get(key_of("a")).binary == b"bin"
    finally:
        listener.close()
