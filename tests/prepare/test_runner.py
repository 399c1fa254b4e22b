"""The job runner: kill -9 and resume == a clean run byte for byte, shards + merge == one run,
per-file errors, bounded in-flight queue, job-state checks, atomic writes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _faults import assert_same_tree

from camwarp.prepare import JobError, JobStateError, merge_shards, prepare, read_colmap_images
from camwarp.prepare import runner as runner_mod
from camwarp.prepare.atomic import atomic_write, sweep_temp_files, temp_path
from camwarp.prepare.state import STATE_DIR, JobState
from camwarp.prepare.synthetic import make_dataset
from camwarp.prepare.worker import Outcome, WorkerConfig

OPS = [("center_crop", (56, 40)), ("resize", (28, 20))]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ds") / "in", "colmap", n=9, size=(64, 48), image_format="png")


@pytest.fixture(scope="module")
def clean(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    result = prepare(dataset, out, OPS, workers=1)
    assert result.errors == [] and result.processed == 9
    return out


def test_kill_9_mid_run_then_resume_is_byte_identical(tmp_path):
    src = make_dataset(tmp_path / "in", "colmap", n=24, size=(128, 96), image_format="png")
    ops = [("center_crop", (120, 90)), ("resize", (60, 45))]
    want = tmp_path / "clean"
    prepare(src, want, ops, workers=1)
    out = tmp_path / "out"
    records = out / STATE_DIR / "records"
    cmd = [sys.executable, "-m", "camwarp", "prepare", str(src), str(out), "--center-crop", "120x90",
           "--resize", "60x45", "--workers", "2", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(cmd, start_new_session=True, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if records.is_dir() and sum(1 for _ in records.rglob("*.ok.json")) >= 4:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: parent and workers, mid-write
            break
        time.sleep(0.002)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {proc.stderr.read()!r}"
    done = sum(1 for _ in records.rglob("*.ok.json"))
    assert 4 <= done < 24 and not (out / "sparse").exists()
    result = prepare(src, out, ops, workers=2)
    assert result.errors == [] and result.skipped >= 4 and result.skipped + result.processed == 24
    assert_same_tree(out, want)


def test_interrupted_merge_then_resume_is_byte_identical(dataset, clean, tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls = []

    def crash(*args, **kwargs):  # die after cameras.txt was replaced, before images.txt
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr("camwarp.prepare.layouts.filter_points3d", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(dataset, out, OPS, workers=1)
    assert calls and (out / STATE_DIR).is_dir()
    monkeypatch.undo()
    result = prepare(dataset, out, OPS, workers=1)
    assert result.skipped == 9 and result.processed == 0
    assert_same_tree(out, clean)


def test_shards_then_merge_equal_one_run(dataset, clean, tmp_path):
    out = tmp_path / "out"
    totals = []
    for i in range(3):
        result = prepare(dataset, out, OPS, workers=1, shard=(i, 3))
        assert not result.merged and result.errors == []
        totals.append(result.total)
        if i == 0:
            with pytest.raises(JobStateError, match="6 of 9 images are not processed"):
                merge_shards(dataset, out)
    assert totals == [3, 3, 3]
    assert sorted(p.name for p in (out / STATE_DIR / "shards").iterdir()) == ["0-of-3.json", "1-of-3.json",
                                                                               "2-of-3.json"]
    assert merge_shards(dataset, out) == []
    assert_same_tree(out, clean)
    with pytest.raises(JobStateError, match="no unfinished"):
        merge_shards(dataset, out)


def test_per_file_errors_continue_and_are_retried(dataset, clean, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(dataset, src)
    broken = src / "images/frame_0002.png"
    good_bytes = broken.read_bytes()
    broken.write_bytes(b"not a png")
    small = src / "images/frame_0005.png"
    good_small = small.read_bytes()
    from PIL import Image

    Image.open(small).resize((32, 24)).save(small)
    out = tmp_path / "out"
    result = prepare(src, out, OPS, workers=2)
    names = sorted(name for name, _ in result.errors)
    assert names == ["frame_0002.png", "frame_0005.png"] and result.processed == 7 and result.merged
    messages = dict(result.errors)
    assert "cannot read" in messages["frame_0002.png"] and "32x24" in messages["frame_0005.png"]
    images = read_colmap_images(out / "sparse/0/images.txt")
    assert [im.name for im in images] == [f"frame_{k:04d}.png" for k in range(9) if k not in (2, 5)]
    dropped = {3, 6}  # their IMAGE_IDs: tracks that referenced them are gone
    for line in (out / "sparse/0/points3D.txt").read_text().splitlines():
        if not line.startswith("#"):
            assert not set(map(int, line.split()[8::2])) & dropped
    assert (out / STATE_DIR).is_dir()  # the failed files are retried by the next run
    broken.write_bytes(good_bytes)
    small.write_bytes(good_small)
    result = prepare(src, out, OPS, workers=1)
    assert result.errors == [] and result.processed == 2 and result.skipped == 7
    assert_same_tree(out, clean)


def test_another_jobs_state_is_refused(dataset, tmp_path):
    out = tmp_path / "out"
    prepare(dataset, out, OPS, workers=1, shard=(0, 2))
    with pytest.raises(JobStateError, match="other settings.*ops"):
        prepare(dataset, out, [("resize", (32, 24))], workers=1)
    with pytest.raises(JobStateError, match="other settings.*jpeg_quality"):
        prepare(dataset, out, OPS, workers=1, jpeg_quality=80)


def test_mirror_of_colmap_poses_fails_before_any_work(dataset, tmp_path):
    with pytest.raises(JobError, match="mirror"):
        prepare(dataset, tmp_path / "out", [("hflip", ())], workers=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs, error", [({"workers": 0}, ValueError), ({"shard": (3, 3)}, ValueError),
                                           ({"jpeg_quality": 101}, ValueError), ({"workers": 1.5}, TypeError),
                                           ({"png_compression": 10}, ValueError)])
def test_bad_arguments_are_named(dataset, tmp_path, kwargs, error):
    name = next(iter(kwargs)).split("_")[0]
    with pytest.raises(error, match=f"prepare: {name}"):
        prepare(dataset, tmp_path / "out", OPS, **kwargs)


def test_in_flight_items_are_bounded(dataset, tmp_path, monkeypatch):
    pulled, reported, most = [], [], []

    def items():
        for k in range(30):
            pulled.append(k)
            most.append(len(pulled) - len(reported))
            yield k

    monkeypatch.setattr(runner_mod, "process_item", _fake_process)
    runner_mod._run(items(), WorkerConfig(str(tmp_path)), 2, reported.append)
    assert len(reported) == 30 and max(most) <= 2 * 2 + 1


def _fake_process(item, config):  # module level: picklable for the worker processes
    time.sleep(0.005)
    return Outcome(item, str(item))


def test_atomic_write_leaves_old_content_on_failure(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    temp_path(path).write_bytes(b"stray")
    assert sweep_temp_files(tmp_path) == 1 and path.read_bytes() == b"old"


def test_state_records_and_retire(tmp_path):
    state = JobState(tmp_path)
    state.begin({"ops": [], "input_dir": "/a"})
    state.begin({"ops": [], "input_dir": "/moved"})  # the input folder may move
    state.write_error(3, "x.jpg", "boom")
    assert state.status(3) == "err" and state.status(4) is None
    state.write_ok(3, {"name": "x.jpg"})
    assert state.status(3) == "ok" and not state.path(3, "err").exists()
    state.retire()
    assert list(tmp_path.iterdir()) == []
