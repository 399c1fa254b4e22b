"""``camwarp prepare`` on a read-only output (or parent), with files in the way, on a full disk: one
line naming the path and the OS error, exit 1 (one file; the job goes on) or 2 (the job cannot
run), nothing half-written, and after the fault is gone the rerun finishes byte-identical to a
clean run. Each fault for real where the machine allows it (chmod, a read-only bind mount, a small
tmpfs) and through patched OS calls (always)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil

import pytest
from _faults import (assert_same_tree, can_mount, chmod_works, disk_full_patched, os_mode, os_modes, read_only_os,
                     read_only_patched, tmpfs, tree)

from camwarp.cli import main
from camwarp.prepare import prepare
from camwarp.prepare.atomic import TMP_SUFFIX
from camwarp.prepare.state import STATE_DIR
from camwarp.prepare.synthetic import make_dataset

OPS = [("center_crop", (56, 40)), ("resize", (28, 20))]
FLAGS = ("--center-crop", "56x40", "--resize", "28x20")
N = 6
PAGE = 4096


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("disk") / "in", "colmap", n=N, size=(64, 48), image_format="png")


@pytest.fixture(scope="module")
def clean(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("disk-clean") / "out"
    assert prepare(dataset, out, OPS, workers=1).errors == []
    return out


def _cli(capsys, src, out, *extra: str) -> tuple[int, list[str]]:
    code = main(["prepare", str(src), str(out), *FLAGS, "--no-progress", *(extra or ("--workers", "1"))])
    return code, capsys.readouterr().err.strip().splitlines()


def _assert_nothing_half_written(out, clean) -> None:
    """Every file outside the state folder is complete (the clean run's bytes); no temporary files."""
    want = tree(clean)
    for name, data in tree(out).items():
        assert not name.endswith(TMP_SUFFIX), name
        if not name.startswith(STATE_DIR + "/"):
            assert want.get(name) == data, f"{name} differs from the clean run's"


def _read_only(mode: str, path, monkeypatch, code: int = errno.EROFS):
    return read_only_os(path) if mode == "os" else read_only_patched(monkeypatch, path, code)


def _os_errno(mode: str, code: int = errno.EROFS) -> int:
    if mode == "patched":
        return code
    return errno.EACCES if chmod_works() else errno.EROFS  # chmod, or a read-only bind mount


def _names(line: str, path, code: int) -> bool:
    return re.search(re.escape(str(path)) + r"[^ ]*: " + re.escape(os.strerror(code)), line) is not None


@pytest.mark.parametrize("mode", os_modes())
@pytest.mark.parametrize("where", ["output", "parent"])
def test_read_only_output_or_parent_is_one_line_exit_2_then_resumes(dataset, clean, tmp_path, capsys, monkeypatch,
                                                                      mode, where):
    parent = tmp_path / "parent"
    parent.mkdir()
    out = parent / "out"
    if where == "output":
        out.mkdir()
    target = out if where == "output" else parent
    with _read_only(mode, target, monkeypatch):
        code, lines = _cli(capsys, dataset, out)
    assert code == 2 and len(lines) == 1, lines
    named = out / STATE_DIR if where == "output" else out
    assert _names(lines[0], named, _os_errno(mode)) and "run the same command again" in lines[0], lines
    assert list(target.iterdir()) == []
    code, lines = _cli(capsys, dataset, out)
    assert code == 0, lines
    assert_same_tree(out, clean)


@pytest.mark.parametrize("mode", os_modes())
def test_an_unfinished_job_on_a_read_only_output_resumes_once_writable(dataset, clean, tmp_path, capsys,
                                                                         monkeypatch, mode):
    out = tmp_path / "out"
    assert prepare(dataset, out, OPS, workers=1, shard=(0, 2)).errors == []  # half of the job is done
    before = tree(out)
    with _read_only(mode, out, monkeypatch):
        code, lines = _cli(capsys, dataset, out)
    assert code == 2 and len(lines) == 1 and _names(lines[0], out, _os_errno(mode)), lines
    _assert_nothing_half_written(out, clean)
    assert {k: v for k, v in tree(out).items() if not k.startswith(STATE_DIR)} == \
        {k: v for k, v in before.items() if not k.startswith(STATE_DIR)}
    code, lines = _cli(capsys, dataset, out)
    assert code == 0 and f"{N // 2} already done" in lines[-1], lines
    assert_same_tree(out, clean)


@pytest.mark.parametrize("mode, code", [os_mode(errno.EROFS), ("patched", errno.EROFS), ("patched", errno.EACCES)])
def test_a_read_only_images_folder_stops_the_job_or_fails_its_files(dataset, clean, tmp_path, capsys, monkeypatch,
                                                                      mode, code):
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    code = _os_errno(mode, code)
    with _read_only(mode, out / "images", monkeypatch, code):
        exit_code, lines = _cli(capsys, dataset, out)
    image = out / "images/frame_0000.png"
    if code == errno.EROFS:  # the whole file system: the job cannot go on
        assert exit_code == 2 and len(lines) == 1 and _names(lines[0], image, code), lines
    else:  # one folder: every image in it fails, the run goes on and lists them
        assert exit_code == 1 and f"camwarp prepare: {N} file(s) failed:" in lines, lines
        assert f"  frame_0000.png: cannot write {image}: {os.strerror(code)} [EACCES]" in lines, lines
    _assert_nothing_half_written(out, clean)
    exit_code, lines = _cli(capsys, dataset, out)
    assert exit_code == 0, lines
    assert_same_tree(out, clean)


def test_a_folder_in_the_way_of_one_output_file_fails_that_file_only(dataset, clean, tmp_path, capsys):
    out = tmp_path / "out"
    blocker = out / "images/frame_0002.png"
    (blocker / "sub").mkdir(parents=True)
    code, lines = _cli(capsys, dataset, out)
    assert code == 1 and "camwarp prepare: 1 file(s) failed:" in lines, lines
    assert f"  frame_0002.png: cannot write {blocker}: Is a directory [EISDIR]" in lines, lines
    assert "frame_0002.png" not in (out / "sparse/0/images.txt").read_text()  # merged without it
    shutil.rmtree(blocker)
    code, lines = _cli(capsys, dataset, out)
    assert code == 0 and f"1 image(s) written, {N - 1} already done" in lines[0], lines
    assert_same_tree(out, clean)


@pytest.mark.parametrize("blocked, exit_code, named", [(STATE_DIR, 2, STATE_DIR), ("sparse", 2, "sparse/0"),
                                                       ("depths", 1, "depths")])
def test_a_file_in_the_way_of_a_folder(dataset, clean, tmp_path, capsys, blocked, exit_code, named):
    out = tmp_path / "out"
    out.mkdir()
    (out / blocked).write_text("in the way")
    code, lines = _cli(capsys, dataset, out)
    assert code == exit_code, lines
    if exit_code == 2:  # the state folder (before any work) or the merged model (after it): the job stops
        assert len(lines) == 1 and f"{out / named}: " in lines[0] and "[ENOTDIR]" in lines[0], lines
    else:  # the depth maps' folder: each image with a depth map fails
        assert f"camwarp prepare: {N} file(s) failed:" in lines, lines
        assert f"{out / named}: a file is in the way of this folder [ENOTDIR]" in lines[-1], lines
    (out / blocked).unlink()
    code, lines = _cli(capsys, dataset, out)
    assert code == 0, lines
    assert_same_tree(out, clean)


def _pages(root) -> int:
    return sum(-(-p.stat().st_size // PAGE) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("mode", [pytest.param("tmpfs", marks=pytest.mark.skipif(not can_mount(),
                                                                                 reason="mount not permitted")),
                                  "patched"])
@pytest.mark.parametrize("fill", [0.05, 0.5, 0.95])
def test_a_full_disk_is_one_line_exit_2_and_the_rerun_after_freeing_space_is_clean(
        dataset, clean, tmp_path, capsys, monkeypatch, mode, fill):
    out = tmp_path / "out"
    with contextlib.ExitStack() as stack:
        if mode == "tmpfs":  # the records and state files: one page each, beside the outputs
            resize = stack.enter_context(tmpfs(out, max(PAGE, int(fill * (_pages(clean) + N + 2)) * PAGE)))
            code, lines = _cli(capsys, dataset, out, "--workers", "2")
        else:
            with disk_full_patched(monkeypatch, None) as budget:  # how many bytes a clean run writes
                prepare(dataset, tmp_path / "measure", OPS, workers=1)
            with disk_full_patched(monkeypatch, int(fill * budget.used)):
                code, lines = _cli(capsys, dataset, out)
        assert code == 2 and len(lines) == 1, lines
        assert _names(lines[0], out, errno.ENOSPC) and "[ENOSPC]" in lines[0], lines
        _assert_nothing_half_written(out, clean)
        if mode == "tmpfs":
            resize(64 << 20)  # space freed
        code, lines = _cli(capsys, dataset, out)
        assert code == 0, lines
        assert_same_tree(out, clean)


@pytest.mark.parametrize("layout", ["nerfstudio", "camera"])
def test_a_full_disk_at_the_last_write_in_the_other_layouts(tmp_path, capsys, monkeypatch, layout):
    src = make_dataset(tmp_path / "in", layout, n=3, size=(64, 48), image_format="png")
    clean = tmp_path / "clean"
    with disk_full_patched(monkeypatch, None) as budget:
        assert prepare(src, clean, OPS, workers=1).errors == []
    out = tmp_path / "out"
    with disk_full_patched(monkeypatch, budget.used - 1):  # the very last write fails
        code, lines = _cli(capsys, src, out)
    assert code == 2 and len(lines) == 1 and _names(lines[0], out, errno.ENOSPC), lines
    if layout == "nerfstudio":  # the merge (the camera file of the other is written by camwarp.camera.io)
        assert f"{out / 'transforms.json'}: " in lines[0], lines
    _assert_nothing_half_written(out, clean)
    code, lines = _cli(capsys, src, out)
    assert code == 0, lines
    assert_same_tree(out, clean)
