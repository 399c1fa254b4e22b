"""Locks of a ``camwarp prepare`` state folder: one job per output folder, shards side by side.

Locks are ``flock`` locks on files of the state folder, so the kernel releases them when their
holder dies, ``kill -9`` included (and forked workers, which share the parent's lock, die with it).

* ``.camwarp-prepare/lock``: a run over all shards and :func:`~camwarp.prepare.merge_shards` hold
  it *exclusively* for the whole run, merge and retirement of the state folder included, so no
  other run adds, changes or reads a record meanwhile. A shard run holds it *shared*.
* ``.camwarp-prepare/locks/shard-<i>-of-<n>.lock``: a shard run holds its own one exclusively.

So shards of one job run side by side, while a second run of the same shard, a run over all
shards or a merge is refused at once with :class:`JobLockedError`, whose message names the state
folder and the holder (PID, host, what it runs; each holder writes that into its lock file).
Shards with different ``n`` (``0/2`` beside ``0/3``) may overlap: the shared images are then
written twice, with the same bytes. A lock is taken only on the folder that exists when the lock
is granted: a run that opened the lock file of a folder that another run retired meanwhile
(:meth:`~camwarp.prepare.state.JobState.retire` renames it) tries again on the new one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
import warnings
from pathlib import Path

from .atomic import ensure_dir
from .state import JobStateError

__all__ = ["JobLock", "JobLockedError", "lock_state"]

#: How long a refused lock is retried (seconds): covers a holder that is just finishing and a probe
#: (:func:`_holders`) that holds a shard lock for a few microseconds. Short enough to be "at once".
RETRY_S = 0.25

# File systems that do not implement flock (some FUSE and old NFS mounts).
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class JobLockedError(JobStateError):
    """Another run holds the state folder (or this shard of it); the message names it and its PID."""


class JobLock:
    """The locks a run holds (file descriptors); :meth:`release` (or the ``with`` block's end) frees them."""

    def __init__(self, fds: list[int]) -> None:
        self.fds = fds

    def release(self) -> None:
        """Release every lock (closing the file releases a ``flock`` lock)."""
        while self.fds:
            os.close(self.fds.pop())

    def __enter__(self) -> JobLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(path: Path, shared: bool, deadline: float) -> int | None:
    """Return an fd holding a lock on ``path`` (created), or None if another run holds it until ``deadline``."""
    op = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    while True:
        ensure_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, op)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)
            continue
        except OSError as err:
            os.close(fd)
            if err.errno not in _NO_LOCKS:
                raise
            warnings.warn(f"camwarp prepare: {path.parent} is on a file system without flock ({err.strerror}): "
                          "it is not locked; do not run two jobs on it at once", stacklevel=3)
            return -1
        try:  # the folder may have been retired (renamed away) between open and flock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _sign(fd: int, what: str) -> None:
    """Write who holds the lock into its file (best effort: a full disk must not hide the real error)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {what}\n".encode(), 0)


def _signature(path: Path) -> str:
    try:
        pid, host, what = path.read_text(encoding="utf-8").split(maxsplit=2)
    except (OSError, ValueError, UnicodeDecodeError):
        return "another process"
    return f"PID {pid} on {host} ({what.strip()})"


def _holders(root: Path) -> list[str]:
    """The signatures of the shard runs that hold their locks now (probed with a shared lock)."""
    found = []
    for path in sorted((root / "locks").glob("shard-*.lock")):
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                found.append(_signature(path))
            finally:
                os.close(fd)
    return found


def lock_state(root: str | os.PathLike, shard: tuple[int, int] | None = None, what: str = "camwarp prepare") -> JobLock:
    """Lock the state folder ``root`` for a run (creating it); see the module docstring.

    Args:
        root: the state folder, ``OUTPUT_DIR/.camwarp-prepare``.
        shard: ``(i, n)`` for a shard run (a shared lock on the folder, an exclusive one on the
            shard); None for a run over all shards or a merge (an exclusive lock on the folder).
        what: what the holder runs, for the message another run gets.

    Returns:
        :class:`JobLock`, to be released (``with lock_state(...):``).

    Raises:
        JobLockedError: another run holds what this one needs (names ``root`` and the holder's PID).
        OSError: the folder or the lock file cannot be created (read-only, full disk, a file in the way).

    Example:
        >>> import tempfile; root = tempfile.mkdtemp() + "/.camwarp-prepare"
        >>> with lock_state(root):
        ...     lock_state(root)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        camwarp.prepare.lock.JobLockedError: ... is in use by PID ...
    """
    root = Path(root)
    deadline = time.monotonic() + RETRY_S
    fd = _try_lock(root / "lock", shard is not None, deadline)
    if fd is None:
        holders = _holders(root) or [_signature(root / "lock")]
        raise JobLockedError(f"{root} is in use by {', '.join(holders)}: one run at a time per output folder "
                             "(shards side by side); run again once it has finished")
    lock = JobLock([fd] if fd >= 0 else [])
    if shard is None:
        if fd >= 0:
            _sign(fd, what)
        return lock
    i, n = shard
    try:
        path = root / "locks" / f"shard-{i}-of-{n}.lock"
        shard_fd = _try_lock(path, False, deadline)
        if shard_fd is None:
            raise JobLockedError(f"shard {i}/{n} of {root} is in use by {_signature(path)}; "
                                 "run it again once that run has finished")
    except BaseException:
        lock.release()
        raise
    if shard_fd >= 0:
        _sign(shard_fd, f"{what} --shard {i}/{n}")
        lock.fds.append(shard_fd)
    return lock
