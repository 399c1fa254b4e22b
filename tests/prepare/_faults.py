"""Fault injection for the ``camwarp prepare`` tests: real processes, read-only folders, a full disk.

Each fault exists in an ``"os"`` form (a real read-only folder: ``chmod`` where the tests do not run
as root, else a read-only bind mount; a real full disk: a small tmpfs) where the machine allows it,
and a ``"patched"`` form that raises the same ``OSError`` from the OS calls camwarp's writers make
(``os.mkdir``, ``os.open``, ``os.replace``, and ``open`` as :mod:`camwarp.prepare.atomic` sees it).
Tests run both where they can, so the patched form (the only one on a machine without mounts) is
always exercised too.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from camwarp.prepare import atomic

ROOT = Path(__file__).resolve().parents[2]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) -> its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_tree(a: Path, b: Path) -> None:
    """The two folders hold the same files with the same bytes."""
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb), f"file sets differ: {sorted(set(ta) ^ set(tb))}"
    different = [name for name in ta if ta[name] != tb[name]]
    assert not different, f"files differ: {different}"


def spawn(*argv: str) -> subprocess.Popen:
    """Start ``python -m camwarp prepare ARGV`` in its own process group (stderr captured)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen([sys.executable, "-m", "camwarp", "prepare", *argv, "--no-progress"], env=env,
                            start_new_session=True, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Poll ``condition`` every 2 ms; fail if it stays false past ``timeout`` or ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the run ended first (exit {proc.returncode}): {proc.stderr.read()!r}")
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.002)


def signed_by(path: Path, pid: int) -> Callable[[], bool]:
    """A condition: the lock file ``path`` names ``pid`` as its holder."""
    def check() -> bool:
        try:
            return path.read_text().split()[:1] == [str(pid)]
        except OSError:
            return False
    return check


# --- real faults: mounts ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def chmod_works() -> bool:
    """Whether ``chmod a-w`` stops this process from writing (not for root, unless it dropped its
    CAP_DAC_OVERRIDE)."""
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o555)
        try:
            os.mkdir(os.path.join(d, "x"))
        except PermissionError:
            return True
        finally:
            os.chmod(d, 0o755)
    return False


@functools.lru_cache(maxsize=None)
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root in a container that allows it)."""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as d:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True).returncode:
            return False
        subprocess.run(["umount", d], check=True)
    return True


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Callable[[int], None]]:
    """Mount a tmpfs of ``size`` bytes on ``path``; yields ``resize(bytes)`` (``mount -o remount``)."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield lambda new: _mount("-o", f"remount,size={new}", str(path))
    finally:
        _umount(path)


@contextlib.contextmanager
def read_only_os(path: Path) -> Iterator[None]:
    """Make folder ``path`` read-only for real: ``chmod a-w`` where that stops this process, else a
    read-only bind mount (root)."""
    if chmod_works():  # everything under it too, as a read-only mount would be
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p, mode in modes.items():
            p.chmod(mode & ~0o222)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,ro,bind", str(path))
        yield
    finally:
        _umount(path)


def os_mode(*values: object):
    """``pytest.param("os", *values)``, skipped where no real read-only folder can be made."""
    real = chmod_works() or can_mount()
    return pytest.param("os", *values, marks=pytest.mark.skipif(not real, reason="root without mount: chmod does "
                                                                               "not stop root"))


def os_modes() -> list:
    """``["os", "patched"]`` (see :func:`os_mode`)."""
    return [os_mode(), "patched"]


# --- patched faults: the OS calls of the writers ----------------------------------------------------

def _under(path: object, root: Path) -> bool:
    if isinstance(path, int):
        return False
    p = Path(os.path.abspath(os.fsdecode(path)))
    return p == root or root in p.parents


@contextlib.contextmanager
def read_only_patched(monkeypatch: pytest.MonkeyPatch, root: Path, code: int = errno.EROFS) -> Iterator[None]:
    """Every create, write or rename under ``root`` fails with ``code`` (as on a read-only mount)."""
    root = Path(os.path.abspath(root))
    real_mkdir, real_open, real_replace = os.mkdir, os.open, os.replace

    def deny(path: object) -> None:
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    def mkdir(path, mode=0o777, *args, **kwargs):
        if _under(path, root):
            if os.path.lexists(path):  # what the kernel says first, read-only or not
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(path))
            deny(path)
        return real_mkdir(path, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if _under(path, root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            deny(path)
        return real_open(path, flags, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        if _under(src, root) or _under(dst, root):
            deny(src)
        return real_replace(src, dst, *args, **kwargs)

    def py_open(file, mode="r", *args, **kwargs):
        if _under(file, root) and set(mode) & set("wax+"):
            deny(file)
        return builtins.open(file, mode, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "mkdir", mkdir)
        m.setattr(os, "open", os_open)
        m.setattr(os, "replace", replace)
        m.setattr(atomic, "open", py_open, raising=False)
        yield


class _Budget:
    """Bytes left on a fake disk; None: unlimited (then it only counts)."""

    def __init__(self, left: int | None) -> None:
        self.left, self.used = left, 0


class _Full(io.RawIOBase):
    """A binary or text file whose writes draw on a :class:`_Budget` (ENOSPC once it is spent).

    ``fileno()`` is refused so that Pillow writes through ``write`` too (it would hand a real file's
    descriptor to its C encoder)."""

    def __init__(self, f, budget: _Budget, name: str) -> None:
        self._f, self._budget, self._name = f, budget, name

    def write(self, data) -> int:
        size = len(data.encode("utf-8")) if isinstance(data, str) else memoryview(data).nbytes
        budget = self._budget
        if budget.left is not None and size > budget.left:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._name)
        if budget.left is not None:
            budget.left -= size
        budget.used += size
        return self._f.write(data)

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._f.seekable()

    def seek(self, *args) -> int:
        return self._f.seek(*args)

    def tell(self) -> int:
        return self._f.tell()

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def close(self) -> None:
        self._f.close()
        super().close()


@contextlib.contextmanager
def disk_full_patched(monkeypatch: pytest.MonkeyPatch, left: int | None) -> Iterator[_Budget]:
    """Files written through :mod:`camwarp.prepare.atomic` share ``left`` bytes, then get ENOSPC.

    Yields the budget (``.used``: bytes written so far). Workers must run in this process.
    """
    budget = _Budget(left)

    def py_open(file, mode="r", *args, **kwargs):
        f = builtins.open(file, mode, *args, **kwargs)
        return _Full(f, budget, os.fsdecode(file)) if set(mode) & set("wax+") else f

    with monkeypatch.context() as m:
        m.setattr(atomic, "open", py_open, raising=False)
        yield budget
