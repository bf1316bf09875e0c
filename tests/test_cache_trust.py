"""The kernel cache trusts only its owner: another user's folder, a folder others
may write, a link or a FIFO at an entry's path, an entry whose binary is not
its source's, and bad settings are refused without harm (issue 13, item 1)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from kernels_cache import FORMAT_VERSION, CacheWarning, KernelCache, cache_key

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534
VICTIM = "graph f(x: f32[N]) {\n return x * 2.0\n}\n"
PLANTED = "graph f(x: f32[N]) {\n return x * 1000.0\n}\n"
X = np.arange(1, 9, dtype=np.float32)
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as another user"
)


def key_of(name: str) -> str:
    return cache_key({"source": name})


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def as_user(uid: int, action) -> None:
    """Run action() in a child process with another uid (the tests run as root)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgid(uid)
            os.setuid(uid)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def shared_tmp():
    """A world-writable folder like /tmp, where another user can create things."""
    path = Path(tempfile.mkdtemp(prefix="fusec-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def built_entry(tmp_path: Path, text: str):
    """(key, binary, meta) of the single entry that compiling and running `text` makes."""
    import fusec

    folder = tmp_path / f"scratch-{abs(hash(text))}"
    g = fusec.compile(text, cache_dir=folder)["f"]
    g(X)
    cache = KernelCache(folder)
    (info,) = cache.entries()
    entry = cache.get(info.key)
    return info.key, entry.binary, entry.meta


def victim_key(tmp_path: Path) -> str:
    key, _, _ = built_entry(tmp_path, VICTIM)
    return key


# -- folders ----------------------------------------------------------------------------


def test_new_folders_are_private(tmp_path):
    cache = KernelCache(tmp_path / "a" / "cache")
    assert cache.put(key_of("k"), b"bin", {})
    with cache.lock(key_of("k")):
        pass
    cache.record_hit()
    assert cache.flush()
    for folder in [tmp_path / "a", cache.directory, cache.root, cache.entry_path(key_of("k")).parent,
                   cache.root / "locks"]:  # fmt: skip
        assert mode_of(folder) == 0o700, folder


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_folder_others_may_write_is_not_used(tmp_path, mode):
    folder = tmp_path / "cache"
    KernelCache(folder).put(key_of("k"), b"bin", {})
    folder.chmod(mode)
    cache = KernelCache(folder)
    with pytest.warns(CacheWarning, match="group or others may write") as caught:
        assert cache.get(key_of("k")) is None
        assert cache.put(key_of("j"), b"bin", {}) is False
        assert cache.entries() == []
        with cache.lock(key_of("k"), timeout=0.1) as locked:
            assert locked is False
    assert len(caught) == 1 and str(folder) in str(caught[0].message)
    assert not cache.entry_path(key_of("j")).exists()


def test_a_linked_version_folder_is_not_used(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    KernelCache(elsewhere).put(key_of("k"), b"bin", {})
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    (folder / f"v{FORMAT_VERSION}").symlink_to(elsewhere / f"v{FORMAT_VERSION}")
    with pytest.warns(CacheWarning, match="symbolic link"):
        assert KernelCache(folder).get(key_of("k")) is None


def test_an_owned_private_folder_is_used_quietly(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o755)  # others may read, not write: fine, as for ~/.ssh
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache = KernelCache(folder)
        assert cache.put(key_of("k"), b"bin", {}) and cache.get(key_of("k")).binary == b"bin"


@needs_root
def test_another_users_folder_is_not_used(shared_tmp):
    folder = shared_tmp / "cache"

    def plant():
        KernelCache(folder).put(key_of("k"), b"planted", {})

    as_user(NOBODY, plant)
    assert folder.stat().st_uid == NOBODY and mode_of(folder) == 0o700
    cache = KernelCache(folder)
    with pytest.warns(CacheWarning, match=f"owned by uid {NOBODY}") as caught:
        assert cache.get(key_of("k")) is None
        assert cache.put(key_of("k"), b"mine", {}) is False
    assert len(caught) == 1


@needs_root
def test_a_planted_entry_in_another_users_folder_does_not_change_the_result(tmp_path, shared_tmp):
    """The demonstrated attack: another uid makes the shared cache folder and plants
    x * 1000.0 under the key of the victim's x * 2.0."""
    import fusec

    key = victim_key(tmp_path)
    planted_key, binary, meta = built_entry(tmp_path, PLANTED)
    assert planted_key != key
    folder = shared_tmp / "cache"

    def plant():
        KernelCache(folder).put(key, binary, meta)
        folder.chmod(0o755)  # or 0777: either way not the victim's

    as_user(NOBODY, plant)

    # The plant works on a cache that trusts it (the kernels have the same names),
    # so the owner check is what protects the victim.
    trusting = tmp_path / "trusting"
    KernelCache(trusting).put(key, binary, meta)
    np.testing.assert_allclose(fusec.compile(VICTIM, cache_dir=trusting)["f"](X), X * 1000)

    with pytest.warns(CacheWarning, match=f"not using {folder}.*owned by uid {NOBODY}"):
        result = fusec.compile(VICTIM, cache_dir=folder)["f"](X)
    np.testing.assert_allclose(result, X * 2)


# -- entries ------------------------------------------------------------------------------


def test_a_link_at_an_entry_path_is_not_followed(tmp_path):
    cache = KernelCache(tmp_path / "cache")
    real = tmp_path / "real"
    KernelCache(real).put(key_of("k"), b"bin", {})
    cache.put(key_of("other"), b"x", {})  # makes the folders
    path = cache.entry_path(key_of("k"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(KernelCache(real).entry_path(key_of("k")))
    with pytest.warns(CacheWarning, match="symbolic link"):
        assert cache.get(key_of("k")) is None
    assert not os.path.lexists(path)
    assert KernelCache(real).get(key_of("k")).binary == b"bin"  # the target is untouched


FIFO_SCRIPT = """
import os, sys, warnings
from kernels_cache import KernelCache, cache_key
cache = KernelCache(sys.argv[1])
key = cache_key({"source": "k"})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert cache.get(key) is None
    print(len(caught), caught[0].message if caught else "", os.path.lexists(cache.entry_path(key)))
"""


def test_a_fifo_at_an_entry_path_does_not_hang(tmp_path):
    cache = KernelCache(tmp_path)
    cache.put(key_of("other"), b"x", {})
    path = cache.entry_path(key_of("k"))
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", FIFO_SCRIPT, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    count, rest = out.stdout.split(" ", 1)
    assert count == "1" and "not a regular file" in rest and rest.strip().endswith("False")


def test_a_compile_with_a_fifo_at_its_entry_path_does_not_hang(tmp_path):
    key = victim_key(tmp_path)
    cache = KernelCache(tmp_path / "cache")
    cache.put(key_of("other"), b"x", {})
    path = cache.entry_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    script = ("import numpy as np, fusec\n"
              "x = np.arange(1, 9, dtype=np.float32)\n"
              f"print(fusec.compile({VICTIM!r})['f'](x).tolist())\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "FUSEC_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == str((X * 2).tolist()), out.stderr
    assert "not a regular file" in out.stderr and "Traceback" not in out.stderr
    assert KernelCache(tmp_path / "cache").get(key) is not None  # rebuilt in the FIFO's place


def test_entries_skip_a_fifo_without_hanging(tmp_path):
    cache = KernelCache(tmp_path)
    cache.put(key_of("good"), b"x", {"name": "good"})
    os.mkfifo(cache.entry_path(key_of("good")).parent / f"{key_of('fifo')}.kc")
    infos = cache.entries()  # would block forever reading the FIFO's header
    assert {(i.name, i.key) for i in infos} >= {("good", key_of("good"))}


def test_a_wrong_binary_entry_is_dropped_and_rebuilt(tmp_path):
    """A valid checksum around another program's binary used to fail every run
    with INVALID_KERNEL_NAME; now the entry is dropped and the kernel rebuilt."""
    import fusec

    key = victim_key(tmp_path)
    other = "graph g(x: f32[N]) {\n return x + 5.0\n}\n"
    folder = tmp_path / "other"
    fusec.compile(other, cache_dir=folder)["g"](X)
    (info,) = KernelCache(folder).entries()
    wrong = KernelCache(folder).get(info.key)
    cache_dir = tmp_path / "victim"
    KernelCache(cache_dir).put(key, wrong.binary, wrong.meta)

    env = {**os.environ, "FUSEC_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(REPO)}
    (models := tmp_path / "models").mkdir()
    (models / "f.ir").write_text(VICTIM)
    check = subprocess.run([sys.executable, "-m", "fusec.cli", "warmup", str(models), "--check"],
                           capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert check.returncode == 1 and "f.ir:f: not in the cache" in check.stdout, check.stdout
    assert "lacks kernel(s)" in check.stdout + check.stderr and "Traceback" not in check.stderr

    KernelCache(cache_dir).put(key, wrong.binary, wrong.meta)  # --check dropped it: plant again
    with pytest.warns(CacheWarning, match="lacks kernel"):
        np.testing.assert_allclose(fusec.compile(VICTIM, cache_dir=cache_dir)["f"](X), X * 2)
    entry = KernelCache(cache_dir).get(key)
    assert entry is not None and entry.binary != wrong.binary  # rebuilt in its place
    again = subprocess.run([sys.executable, "-m", "fusec.cli", "warmup", str(models), "--check"],
                           capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert again.returncode == 0 and "1 already cached" in again.stdout, again.stderr


# -- settings -----------------------------------------------------------------------------


def fusec_cli(*args, env=None):
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "fusec.cli", *args], capture_output=True,
                          text=True, env=full, cwd=REPO, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    "name, value",
    [
        ("FUSEC_CACHE_MAX_SIZE", "abc"),
        ("FUSEC_CACHE_MAX_SIZE", "-5"),
        ("FUSEC_CACHE_MAX_SIZE", "9" * 400),
        ("FUSEC_BUILD_TIMEOUT", "abc"),
        ("FUSEC_BUILD_TIMEOUT", "-1"),
        ("FUSEC_BUILD_TIMEOUT", "nan"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, name, value):
    (tmp_path / "f.ir").write_text(VICTIM)
    env = {"FUSEC_CACHE_DIR": str(tmp_path / "cache"), name: value}
    for args in (["compile", str(tmp_path / "f.ir")], ["cache", "stats"]):
        out = fusec_cli(*args, env=env)
        assert out.returncode == 1, out.stderr
        assert out.stderr.startswith(f"fusec: error: {name}: invalid"), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and len(out.stderr) < 400
        assert "Traceback" not in out.stderr


def test_prune_with_a_huge_size_is_a_usage_error(tmp_path):
    out = fusec_cli("cache", "prune", "--max-size", "9" * 400,
                    env={"FUSEC_CACHE_DIR": str(tmp_path)})  # fmt: skip
    assert out.returncode == 2 and "larger than" in out.stderr and "Traceback" not in out.stderr
