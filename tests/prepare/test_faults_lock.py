"""``camwarp prepare`` against a second run: real processes on one output folder. A second run is
refused at once (exit 2, one line naming the state folder and the holder's PID), shards run side
by side, a merge waits for the shards, ``kill -9`` frees the lock, and the output is always
byte-identical to a clean run."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import signal
import time

import pytest
from _faults import assert_same_tree, signed_by, spawn, wait_for

from camwarp.prepare import JobLockedError, merge_shards, prepare
from camwarp.prepare import lock as lock_mod
from camwarp.prepare.lock import lock_state
from camwarp.prepare.state import STATE_DIR
from camwarp.prepare.synthetic import make_dataset

OPS = [("center_crop", (120, 90)), ("resize", (60, 45))]
FLAGS = ("--center-crop", "120x90", "--resize", "60x45")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # big enough that a run is still going when the test stops it (it is stopped right after locking)
    return make_dataset(tmp_path_factory.mktemp("lock") / "in", "colmap", n=16, size=(128, 96), image_format="png")


@pytest.fixture(scope="module")
def clean(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("lock-clean") / "out"
    assert prepare(dataset, out, OPS, workers=1).errors == []
    return out


def _stopped(proc) -> None:
    os.killpg(proc.pid, signal.SIGSTOP)  # the whole group: the run and its workers keep their locks


def _resume(proc) -> str:
    os.killpg(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return err


def test_a_second_run_exits_2_at_once_naming_the_folder_and_the_pid(dataset, clean, tmp_path):
    out = tmp_path / "out"
    first = spawn(str(dataset), str(out), *FLAGS, "--workers", "2")
    try:
        wait_for(signed_by(out / STATE_DIR / "lock", first.pid), first)
        _stopped(first)
        second = spawn(str(dataset), str(out), *FLAGS, "--workers", "1")
        _, err = second.communicate(timeout=180)
        lines = err.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, err
        assert str(out / STATE_DIR) in lines[0] and f"PID {first.pid} " in lines[0], err
        start = time.monotonic()
        with pytest.raises(JobLockedError, match=f"PID {first.pid} "):
            prepare(dataset, out, OPS, workers=1)
        assert time.monotonic() - start < 2  # at once, not after the first run
        with pytest.raises(JobLockedError, match=f"PID {first.pid} "):  # not "images are not processed yet"
            merge_shards(dataset, out)
        assert first.poll() is None
    finally:
        _resume(first)
    assert_same_tree(out, clean)


def test_two_runs_started_together_one_wins_and_the_output_is_clean(dataset, clean, tmp_path):
    out = tmp_path / "out"
    runs = [spawn(str(dataset), str(out), *FLAGS, "--workers", "1") for _ in range(2)]
    errs = [run.communicate(timeout=300)[1] for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) in ([0, 0], [0, 2]), errs  # [0, 0]: the second locked after the first had finished
    for run, err, other in zip(runs, errs, runs[::-1]):
        if run.returncode == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and f"PID {other.pid} " in lines[0] and str(out / STATE_DIR) in lines[0], err
    assert_same_tree(out, clean)


def test_shards_run_side_by_side_and_the_merge_waits_for_them(dataset, clean, tmp_path):
    out = tmp_path / "out"
    first = spawn(str(dataset), str(out), *FLAGS, "--workers", "1", "--shard", "0/2")
    try:
        wait_for(signed_by(out / STATE_DIR / "locks/shard-0-of-2.lock", first.pid), first)
        _stopped(first)
        result = prepare(dataset, out, OPS, workers=1, shard=(1, 2))  # beside the running shard 0/2
        assert result.errors == [] and result.processed == 8
        with pytest.raises(JobLockedError, match=f"shard 0/2 of .* PID {first.pid} "):
            prepare(dataset, out, OPS, workers=1, shard=(0, 2))
        held_by_shard = f"PID {first.pid} on .*--shard 0/2"
        with pytest.raises(JobLockedError, match=held_by_shard):  # a run over all shards
            prepare(dataset, out, OPS, workers=1)
        with pytest.raises(JobLockedError, match=held_by_shard):  # a merge before the shard is done
            merge_shards(dataset, out)
    finally:
        _resume(first)
    assert merge_shards(dataset, out) == []
    assert_same_tree(out, clean)


def test_kill_9_frees_the_lock_and_the_rerun_resumes(dataset, clean, tmp_path):
    out = tmp_path / "out"
    first = spawn(str(dataset), str(out), *FLAGS, "--workers", "2")
    wait_for(signed_by(out / STATE_DIR / "lock", first.pid), first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    result = prepare(dataset, out, OPS, workers=1)  # not refused: the kernel dropped the dead run's lock
    assert result.errors == [] and result.merged
    assert_same_tree(out, clean)


def test_a_lock_taken_on_a_folder_retired_meanwhile_is_taken_again_on_the_new_one(tmp_path, monkeypatch):
    root = tmp_path / STATE_DIR
    real_flock, retired = fcntl.flock, []

    def flock(fd, op):  # another run retires (renames) the folder between our open and our flock
        if not retired:
            retired.append(os.replace(root, tmp_path / "retired"))
        return real_flock(fd, op)

    monkeypatch.setattr(lock_mod.fcntl, "flock", flock)
    with lock_state(root) as held:
        assert retired and os.path.samestat(os.fstat(held.fds[0]), os.stat(root / "lock"))
    assert (tmp_path / "retired/lock").is_file()


def test_the_holder_of_an_in_process_lock_is_named(tmp_path):
    root = tmp_path / STATE_DIR
    with lock_state(root, (2, 3)):
        lock_state(root, (1, 3)).release()  # another shard: side by side
        with pytest.raises(JobLockedError, match=re.escape(f"shard 2/3 of {root} is in use by PID {os.getpid()} ")):
            lock_state(root, (2, 3))
        with pytest.raises(JobLockedError, match=f"PID {os.getpid()} on .*--shard 2/3"):
            lock_state(root)
    lock_state(root).release()


def test_a_file_system_without_flock_warns_and_runs(tmp_path, monkeypatch):
    def flock(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(lock_mod.fcntl, "flock", flock)
    with pytest.warns(UserWarning, match="without flock"), lock_state(tmp_path / STATE_DIR) as held:
        assert held.fds == []
