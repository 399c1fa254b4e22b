"""``camwarp prepare`` on the command line: exit codes, one-line errors, per-file error listing,
shards and merge, op order and ``--undistort [ALPHA]``."""

from __future__ import annotations

import json

import pytest
import torch

from camwarp.camera.io import read_camera, read_colmap_cameras
from camwarp.cli import build_parser, main
from camwarp.cli._ops import parse_ops
from camwarp.prepare.synthetic import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cli") / "in", "colmap", n=4, depth=None)


def _run(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = main(["prepare", *argv])
    except SystemExit as exit_:  # argparse errors and --help
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--resize", "0x3"], "--resize: expected WxH"),
    (["--resize", "64x48", "--shard", "4/4"], "--shard: expected i/n"),
    (["--resize", "64x48", "--jpeg-quality", "0"], "--jpeg-quality: expected a JPEG quality in 1..100"),
    (["--resize", "64x48", "--png-compression", "10"], "--png-compression: expected a PNG compression"),
    (["--resize", "64x48", "--workers", "0"], "--workers: expected a number of workers"),
    (["--undistort", "1.5"], "--undistort: expected ALPHA in [0, 1]"),
    (["--resize", "64x48", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ([], "no ops given"),
    (["--merge-shards", "--shard", "0/2"], "drop --shard"),
])
def test_bad_flags_one_line_exit_2(dataset, tmp_path, capsys, flags, message):
    code, err = _run(capsys, str(dataset), str(tmp_path / "out"), *flags)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_missing_positional_and_bad_input_exit_2(tmp_path, capsys):
    code, err = _run(capsys, str(tmp_path))
    assert code == 2 and "OUTPUT_DIR" in err and len(err.strip().splitlines()) == 1
    code, err = _run(capsys, str(tmp_path), str(tmp_path / "o"), "--resize", "8x8")
    assert code == 2 and "cannot tell the layout" in err and len(err.strip().splitlines()) == 1


def test_mirror_of_colmap_poses_is_a_one_line_error(dataset, tmp_path, capsys):
    code, err = _run(capsys, str(dataset), str(tmp_path / "out"), "--hflip", "--no-progress")
    assert code == 2 and "mirror" in err and len(err.strip().splitlines()) == 1


def test_run_writes_the_dataset(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(capsys, str(dataset), str(out), "--center-crop", "48x40", "--resize", "24x20",
                     "--workers", "1", "--jpeg-quality", "80", "--no-progress")
    assert code == 0, err
    assert "4 image(s) written" in err
    cams = read_colmap_cameras(out / "sparse/0/cameras.txt")
    want = read_colmap_cameras(dataset / "sparse/0/cameras.txt")[1].center_crop(48, 40).resize(24, 20)
    torch.testing.assert_close(cams[1].K, want.K, atol=1e-12, rtol=0)


def test_per_file_errors_listed_with_exit_1(dataset, tmp_path, capsys):
    import shutil

    src = tmp_path / "in"
    shutil.copytree(dataset, src)
    (src / "images/frame_0001.jpg").write_bytes(b"\xff\xd8 truncated")
    (src / "images/frame_0003.jpg").unlink()
    code, err = _run(capsys, str(src), str(tmp_path / "out"), "--resize", "32x24", "--workers", "1", "--no-progress")
    assert code == 1
    listing = err[err.index("2 file(s) failed"):].splitlines()
    assert listing[1].startswith("  frame_0001.jpg: MediaError: read_image: cannot read")
    assert listing[2].startswith("  frame_0003.jpg: MediaError: read_image: no such file")
    assert "2 image(s) written" in err


def test_shards_and_merge_on_the_command_line(tmp_path, capsys):
    src = make_dataset(tmp_path / "in", "camera", n=5, depth=None, mask=False)
    out = tmp_path / "out"
    for i in range(2):
        code, err = _run(capsys, str(src), str(out), "--resize", "32x24", "--shard", f"{i}/2", "--no-progress")
        assert code == 0 and "--merge-shards" in err
    assert not (out / "camera.json").exists()
    code, err = _run(capsys, str(src), str(out), "--merge-shards")
    assert code == 0, err
    got = read_camera(out / "camera.json")
    torch.testing.assert_close(got.K, read_camera(src / "camera.json").resize(32, 24).K, atol=1e-12, rtol=0)
    code, err = _run(capsys, str(src), str(out), "--merge-shards")
    assert code == 2 and "no unfinished" in err


def test_ops_keep_command_line_order_with_undistort():
    parser = build_parser(["prepare"])
    args = parser.parse_args(["prepare", "a", "b", "--undistort", "--resize", "64x48", "--undistort", "0.25",
                              "--rot90", "1"])
    assert parse_ops(args) == [("undistort", ()), ("resize", (64, 48)), ("undistort", (0.25,)), ("rot90", (1,))]


def test_nerfstudio_undistort_writes_a_pinhole_camera(tmp_path, capsys):
    src = make_dataset(tmp_path / "in", "nerfstudio", n=2, depth=None, mask=False)
    code, err = _run(capsys, str(src), str(tmp_path / "out"), "--undistort", "0.5", "--workers", "1", "--no-progress")
    assert code == 0, err
    data = json.loads((tmp_path / "out/transforms.json").read_text())
    assert data["camera_model"] == "PINHOLE" and "k1" not in data and len(data["frames"]) == 2


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for flag in ("--workers", "--shard", "--merge-shards", "--jpeg-quality", "--png-compression", "--undistort",
                 "--center-crop", "--camera"):
        assert flag in out
