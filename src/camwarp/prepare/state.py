"""The resumable state of a ``camwarp prepare`` job: ``OUTPUT_DIR/.camwarp-prepare/``.

* ``job.json``: what the job does (layout, ops, encoder settings, a SHA-256 of the input metadata
  files). A run that finds another job's state stops instead of mixing the two.
* ``records/<index // 1000>/<index>.ok.json``: one sidecar record per finished image, written
  atomically *after* the image's output files, so a record proves its files are complete. It holds
  what the final camera/pose files need (new camera, rotation ``R``, moved 2D points).
* ``records/.../<index>.err.json``: the error of a failed image (retried by the next run).

Once every image of every shard has a record, the layout's merge writes the final camera and pose
files (each atomically) and the state folder is retired: renamed to ``.camwarp-prepare.trash-*``
in one step, then deleted (a trash folder left by a kill is deleted by the next run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from ..errors import CamwarpError
from .atomic import atomic_write_text

__all__ = ["JobStateError", "JobState", "STATE_DIR", "file_digest"]

STATE_DIR = ".camwarp-prepare"
_TRASH = STATE_DIR + ".trash-"


class JobStateError(CamwarpError):
    """The output folder holds another job's state, or the job is not ready to merge."""


def file_digest(paths: Iterable[str | os.PathLike]) -> str:
    """Return the SHA-256 (hex) of the named files' contents, in order (names not included).

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/a"; _ = open(p, "w").write("x")
        >>> file_digest([p])[:12]
        '2d711642b726'
    """
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _canonical(job: dict) -> dict:
    return json.loads(json.dumps({k: v for k, v in job.items() if k != "input_dir"}))


class JobState:
    """The state folder of one output directory (see the module docstring).

    Args:
        output_dir: the job's ``OUTPUT_DIR``.
        fsync: flush records to the disk (power-loss safety).

    Example:
        >>> import tempfile; s = JobState(tempfile.mkdtemp())
        >>> s.begin({"ops": []}); s.write_ok(7, {"name": "a.jpg"}); s.status(7), s.read(7)["name"]
        ('ok', 'a.jpg')
    """

    def __init__(self, output_dir: str | os.PathLike, fsync: bool = False) -> None:
        self.output_dir = Path(output_dir)
        self.root = self.output_dir / STATE_DIR
        self.fsync = fsync

    @property
    def job_path(self) -> Path:
        return self.root / "job.json"

    def load_job(self) -> dict | None:
        """Return the job description, or None when there is no unfinished job."""
        try:
            return json.loads(self.job_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def begin(self, job: dict) -> None:
        """Start or resume ``job``; raise :class:`JobStateError` if another job's state is here."""
        self.clear_trash()
        found = self.load_job()
        if found is None:
            atomic_write_text(self.job_path, json.dumps(job, indent=2, sort_keys=True) + "\n", self.fsync)
            return
        if _canonical(found) != _canonical(job):
            diff = sorted(k for k in set(found) | set(job) if k != "input_dir" and
                          _canonical({k: found.get(k)}) != _canonical({k: job.get(k)}))
            raise JobStateError(f"{self.output_dir} holds an unfinished job with other settings ({', '.join(diff)}); "
                                f"re-run it with the same ops and flags, or delete {self.root}")

    def path(self, index: int, kind: str) -> Path:
        """Return the record file of item ``index``; ``kind`` is ``"ok"`` or ``"err"``."""
        return self.root / "records" / f"{index // 1000:06d}" / f"{index:09d}.{kind}.json"

    def status(self, index: int) -> str | None:
        """Return ``"ok"``, ``"err"`` or None (not processed) for item ``index``."""
        if self.path(index, "ok").is_file():
            return "ok"
        return "err" if self.path(index, "err").is_file() else None

    def read(self, index: int, kind: str = "ok") -> dict:
        """Return the record of item ``index``."""
        return json.loads(self.path(index, kind).read_text(encoding="utf-8"))

    def write_ok(self, index: int, record: dict) -> None:
        """Record item ``index`` as done (atomically), clearing an earlier error."""
        atomic_write_text(self.path(index, "ok"), json.dumps(record, separators=(",", ":")), self.fsync)
        with contextlib.suppress(FileNotFoundError):
            self.path(index, "err").unlink()

    def write_error(self, index: int, name: str, message: str) -> None:
        """Record that item ``index`` (file ``name``) failed with ``message``."""
        atomic_write_text(self.path(index, "err"), json.dumps({"name": name, "error": message}), self.fsync)

    def clear_trash(self) -> None:
        """Delete retired state folders that a killed run left behind."""
        for entry in self.output_dir.glob(_TRASH + "*"):
            shutil.rmtree(entry, ignore_errors=True)

    def retire(self) -> None:
        """Remove the state folder: one atomic rename, then deletion."""
        if not self.root.exists():
            return
        trash = self.output_dir / f"{_TRASH}{uuid.uuid4().hex}"
        os.replace(self.root, trash)
        shutil.rmtree(trash, ignore_errors=True)
