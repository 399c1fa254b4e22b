"""Atomic file writes: a temporary file in the target's directory, then ``os.replace``.

A process killed at any moment (``kill -9`` included) leaves either the old file or the new one
under the final name, never a half-written one: the bytes go to ``.<name>.<random>.camwarp-tmp``
beside the target and are renamed over it in one system call. The random part keeps concurrent
writers of one target (shards starting together write the same ``job.json``) apart;
:func:`sweep_temp_files` removes the strays a killed run leaves. With ``fsync=True`` the data and the
directory entry are also flushed to the disk (power-loss safety, at a cost in throughput).
A failed write (a full disk, a read-only folder) removes its temporary file and raises the
``OSError``, naming the file (:func:`os_error_message` makes it one line); :func:`is_disk_error`
tells an error of the whole file system from one of a path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

__all__ = ["TMP_SUFFIX", "atomic_path", "atomic_text", "atomic_write", "atomic_write_text", "ensure_dir",
           "is_disk_error", "os_error_message", "sweep_temp_files", "temp_path"]

TMP_SUFFIX = ".camwarp-tmp"
_TEMP_NAME = re.compile(r"^\.(.+)\.[0-9a-f]{16}" + re.escape(TMP_SUFFIX) + "$")

#: errno values that concern the whole file system, not one path: every further write would fail too.
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


def is_disk_error(err: BaseException) -> bool:
    """Whether ``err`` is an ``OSError`` of the whole file system (full, over quota, read-only, I/O error).

    Example:
        >>> is_disk_error(OSError(errno.ENOSPC, "No space left on device")), is_disk_error(PermissionError())
        (True, False)
    """
    return isinstance(err, OSError) and err.errno in DISK_ERRORS


def os_error_message(err: OSError) -> str:
    """One line for a file-system error: ``"<path>: <strerror> [<ERRNO>]"``, naming the final file.

    A temporary file of :func:`temp_path` is named by the file it stands for.

    Example:
        >>> tmp = "out/.a.png.0123456789abcdef.camwarp-tmp"
        >>> os_error_message(OSError(errno.ENOSPC, "No space left on device", tmp))
        'out/a.png: No space left on device [ENOSPC]'
    """
    if err.errno is None:
        return str(err)
    code = errno.errorcode.get(err.errno, str(err.errno))
    if err.filename is None:
        return f"{err.strerror} [{code}]"
    name = os.fsdecode(err.filename)
    match = _TEMP_NAME.match(os.path.basename(name))
    if match:  # also what os.replace(tmp, path) failed to replace: err.filename2 is that path
        name = os.path.join(os.path.dirname(name), match.group(1))
    return f"{name}: {err.strerror} [{code}]"


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create folder ``path`` and its parents; a file in the way is a ``NotADirectoryError`` naming it.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "f").write_text("")
        >>> ensure_dir(d / "f")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        NotADirectoryError: [Errno 20] a file is in the way of this folder: ...
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # exist_ok only forgives a folder
        raise NotADirectoryError(errno.ENOTDIR, "a file is in the way of this folder", str(path)) from None
    return path


def _named(err: OSError, path: Path) -> None:
    """Make ``err`` name ``path`` if it names no file (``write``/``close`` errors do not)."""
    if err.errno is not None and err.filename is None:
        err.filename = str(path)


def temp_path(path: str | os.PathLike) -> Path:
    """Return a fresh temporary path for writing ``path``: ``<dir>/.<name>.<random hex>.camwarp-tmp``.

    Example:
        >>> p = temp_path("out/images/a.jpg"); p.parent.as_posix(), p.name.startswith(".a.jpg.")
        ('out/images', True)
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:16]}{TMP_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], fsync: bool = False) -> Path:
    """Write a file atomically: ``write(f)`` fills a temporary file that then replaces ``path``.

    Parent directories are created. If ``write`` raises, the temporary file is removed and the
    error propagates; the previous content of ``path`` (if any) is untouched.

    Args:
        path: the final file name.
        write: a callable given the temporary file opened in binary write mode.
        fsync: flush data and directory entry to the disk before returning (default False: safe
            against a killed process, not against a power cut).

    Returns:
        ``path`` as a ``Path``.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> p = atomic_write(d + "/x.bin", lambda f: f.write(b"abc"))
        >>> p.read_bytes()
        b'abc'
    """
    def write_to(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return atomic_path(path, write_to, fsync=fsync)


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically; see :func:`atomic_write`.

    Example:
        >>> import tempfile
        >>> atomic_write_text(tempfile.mkdtemp() + "/a.txt", "hi\\n").read_text()
        'hi\\n'
    """
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data), fsync=fsync)


def atomic_path(path: str | os.PathLike, write_to: Callable[[Path], object], fsync: bool = False) -> Path:
    """Atomically create ``path`` with a writer that takes a file *name* (e.g. a library's ``save(path)``).

    Example:
        >>> import tempfile
        >>> p = atomic_path(tempfile.mkdtemp() + "/c.txt", lambda tmp: tmp.write_text("1 PINHOLE"))
        >>> p.read_text()
        '1 PINHOLE'
    """
    path = Path(path)
    ensure_dir(path.parent)
    tmp = temp_path(path)
    try:
        write_to(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        _named(err, path)
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    if fsync:
        _fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def atomic_text(path: str | os.PathLike, fsync: bool = False) -> Iterator[TextIO]:
    """Open a text file for atomic writing: the file appears under ``path`` when the block ends.

    If the block raises, the temporary file is removed and ``path`` is untouched.

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/a.txt"
        >>> with atomic_text(p) as f:
        ...     _ = f.write("line\\n")
        >>> open(p).read()
        'line\\n'
    """
    path = Path(path)
    ensure_dir(path.parent)
    tmp = temp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            _named(err, path)
        raise
    if fsync:
        _fsync_dir(path.parent)


def sweep_temp_files(root: str | os.PathLike) -> int:
    """Remove the temporary files (``.*.camwarp-tmp``) that killed runs left under ``root``.

    Only call it when no other process writes under ``root``.

    Returns:
        The number of files removed.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / ".a.png.camwarp-tmp").write_bytes(b"")
        >>> sweep_temp_files(d)
        1
    """
    removed = 0
    for directory, _, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(TMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, name))
                    removed += 1
    return removed
