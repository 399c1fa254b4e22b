"""``camwarp camera`` and the shared op flags of ``camwarp.cli._ops``.

Oracles: the seed example's closed form (DESIGN.md), the Camera's own methods (``center_crop``,
``resize``, ``hflip``, ...), numpy slicing / ``np.rot90`` / ``np.pad`` of an image against
``cv2.warpAffine`` with the composed matrix, and the camera files read back.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from camwarp import Camera
from camwarp.camera import read_camera, write_camera, write_colmap_cameras
from camwarp.cli import ArgumentParser, main
from camwarp.cli._ops import add_op_arguments, apply_ops_to_camera, compose_ops, parse_ops

SEED = ["camera", "--fx", "2220", "--fy", "2220", "--cx", "1404", "--cy", "1064", "--width", "2880", "--height",
        "2160", "--dist", "-0.00344584,0.120934", "--center-crop", "1920x1080", "--resize", "640x360"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_seed_example_closed_form(capsys):
    code, out, err = run(capsys, *SEED)
    assert code == 0 and err == ""
    assert "640 x 360" in out and "fx       740\n" in out and "307.666666667" in out and "k1=-0.00344584" in out
    assert "R " not in out  # crop and resize keep the orientation
    cam = run_json(capsys, *SEED)["camera"]
    assert (cam["width"], cam["height"], cam["model"], cam["convention"]) == (640, 360, "opencv", "opencv")
    for key, want in [("fx", 740.0), ("fy", 740.0), ("cx", (924 + 0.5) / 3 - 0.5), ("cy", (524 + 0.5) / 3 - 0.5),
                      ("skew", 0.0)]:
        assert cam[key] == pytest.approx(want, rel=1e-15, abs=1e-12), key
    assert cam["dist"] == [-0.00344584, 0.120934]  # float64 from the command line: exact


def test_ops_follow_command_line_order(capsys):
    base = Camera(torch.tensor(500.0, dtype=torch.float64), 520.0, 300.25, 200.5, 640, 480,
                  dist=torch.tensor([0.1, -0.02, 0.003, -0.004], dtype=torch.float64))
    flags = ["--fx", "500", "--fy", "520", "--cx", "300.25", "--cy", "200.5", "--width", "640", "--height", "480",
             "--dist", "0.1,-0.02,0.003,-0.004"]
    chains = {("--crop", "10,-20,300,400", "--rot90", "1", "--pad", "1,2,3,4", "--vflip"):
              lambda c: c.crop(10, -20, 300, 400).rot90(1).pad(1, 2, 3, 4).vflip(),
              ("--rot90", "1", "--crop", "10,-20,300,400", "--hflip", "--resize", "150x100"):
              lambda c: c.rot90(1).crop(10, -20, 300, 400).hflip().resize(150, 100),
              ("--center-crop", "333x111", "--rot90", "-1"): lambda c: c.center_crop(333, 111).rot90(-1)}
    for ops, chain in chains.items():
        got, want = run_json(capsys, "camera", *flags, *ops), chain(base)
        assert (got["camera"]["width"], got["camera"]["height"]) == want.size
        np.testing.assert_allclose([got["camera"][k] for k in ("fx", "fy", "cx", "cy", "skew")],
                                   [getattr(want, k).item() for k in ("fx", "fy", "cx", "cy", "skew")], atol=1e-9)
        np.testing.assert_allclose(got["camera"]["dist"], want.dist.tolist(), atol=1e-15)
        assert not np.allclose(got["R"], np.eye(3))  # every chain turns or flips the camera
        code, out, _ = run(capsys, "camera", *flags, *ops)
        assert code == 0 and "R        (orientation changed" in out


def test_parse_ops_and_compose_match_numpy_image_ops():
    parser = ArgumentParser(prog="t")
    add_op_arguments(parser)
    args = parser.parse_args(["--crop", "3,2,9,7", "--rot90", "1", "--pad", "2,0,1,3", "--hflip", "--vflip",
                              "--rot90", "-3", "--center-crop", "6x5"])
    ops = parse_ops(args)
    assert ops == [("crop", (3, 2, 9, 7)), ("rot90", (1,)), ("pad", (2, 0, 1, 3)), ("hflip", ()), ("vflip", ()),
                   ("rot90", (-3,)), ("center_crop", (6, 5))]
    img = np.arange(13 * 11, dtype=np.float32).reshape(11, 13) + 1  # (H, W) = (11, 13)
    ref = img[2:9, 3:12]
    ref = np.rot90(ref, 1)
    ref = np.pad(ref, ((0, 3), (2, 1)))
    ref = np.rot90(ref[::-1, ::-1], -3)
    y0, x0 = (ref.shape[0] - 5) // 2, (ref.shape[1] - 6) // 2
    ref = ref[y0:y0 + 5, x0:x0 + 6]
    A, size = compose_ops(ops, (13, 11))
    assert size == (6, 5)
    out = cv2.warpAffine(img, A.numpy()[:2], size, flags=cv2.INTER_NEAREST, borderValue=0)
    np.testing.assert_array_equal(out, ref)


def test_apply_ops_to_camera_composes_R():
    cam = Camera(torch.tensor([400.0, 410.0], dtype=torch.float64), 420.0, 100.0, 80.0, 200, 160)
    new, R = apply_ops_to_camera(cam, [("hflip", ()), ("rot90", (1,)), ("resize", (80, 100))])
    want_R = torch.tensor([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]]) @ torch.diag(torch.tensor([-1.0, 1, 1]))
    X = torch.tensor([[0.3, -0.2, 2.0], [-0.1, 0.25, 1.5]], dtype=torch.float64)
    # the new camera sees R X where the old image, flipped, turned and resized, showed X
    A, _ = compose_ops([("hflip", ()), ("rot90", (1,)), ("resize", (80, 100))], (200, 160))
    old = cam.project(X[None].expand(2, 2, 3))
    moved = (A @ torch.cat([old, torch.ones_like(old[..., :1])], -1).transpose(-1, -2)).transpose(-1, -2)[..., :2]
    torch.testing.assert_close(new.project((R @ X.T).transpose(-1, -2)), moved)
    assert R.shape == (2, 3, 3) and new.size == (80, 100)
    torch.testing.assert_close(R[0].abs(), want_R.abs().double())


def test_file_input_override_and_out(capsys, tmp_path):
    cams = {3: Camera(torch.tensor(500.0, dtype=torch.float64), 500.0, 319.5, 239.5, 640, 480, dist=[0.1]),
            8: Camera(torch.tensor(300.0, dtype=torch.float64), 310.0, 99.5, 79.5, 200, 160)}
    write_colmap_cameras(tmp_path / "cameras.txt", cams)
    got = run_json(capsys, "camera", str(tmp_path / "cameras.txt"), "--resize", "100x80")
    assert set(got["cameras"]) == {"3", "8"} and got["cameras"]["8"]["camera"]["fx"] == 150.0
    got = run_json(capsys, "camera", str(tmp_path / "cameras.txt"), "--camera-id", "3", "--cx", "320",
                   "--convention", "colmap", "--fy", "501")
    assert (got["camera"]["cx"], got["camera"]["cy"], got["camera"]["fy"]) == (319.5, 239.5, 501.0)
    code, out, _ = run(capsys, "camera", str(tmp_path / "cameras.txt"), "--resize", "320x240", "--out",
                       str(tmp_path / "half.txt"))
    assert code == 0 and "wrote" in out
    for ext, extra in [("yaml", []), ("json", []), ("json", ["--format", "transforms"]), ("yml", ["--hflip"])]:
        out_path = tmp_path / f"out.{ext}"
        code, out, err = run(capsys, "camera", str(tmp_path / "cameras.txt"), "--camera-id", "3", "--crop",
                             "10,20,600,400", *extra, "--out", str(out_path))
        assert code == 0, err
        want = cams[3].crop(10, 20, 600, 400)
        want = want.hflip() if extra == ["--hflip"] else want
        back = read_camera(out_path)
        torch.testing.assert_close(back.K, want.K)
        torch.testing.assert_close(back.dist, want.dist)
        assert ("orientation changed" in out) == (extra == ["--hflip"])
    write_camera(tmp_path / "fish.json", Camera(200.0, 200.0, 50.0, 40.0, 100, 80, dist=[0.1, 0.01], model="fisheye"))
    got = run_json(capsys, "camera", str(tmp_path / "fish.json"), "--pad", "10,10,10,10")
    assert got["camera"]["model"] == "fisheye" and got["camera"]["cx"] == 60.0


@pytest.mark.parametrize("argv, flag", [
    (["--resize", "640"], "--resize"), (["--center-crop", "0x10"], "--center-crop"),
    (["--crop", "1,2,3"], "--crop"), (["--pad", "a,b,c,d"], "--pad"), (["--rot90", "1.5"], "--rot90"),
    (["--fx", "-3"], "--fx"), (["--dist", "0.1,x"], "--dist"), (["--width", "12.5"], "--width"),
    (["--model", "fov"], "--model"),
])
def test_malformed_flags_one_line_exit_2(capsys, argv, flag):
    with pytest.raises(SystemExit) as exc:
        main(["camera", "--fx", "1", "--cx", "0", "--cy", "0", "--width", "4", "--height", "4", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and f"argument {flag}" in err


@pytest.mark.parametrize("argv, text", [
    (["--fx", "1", "--cx", "0", "--width", "4", "--height", "4"], "missing --cy"),
    (["nofile.yaml"], "FILE 'nofile.yaml': no such file"),
    (["--fx", "1", "--cx", "0", "--cy", "0", "--width", "4", "--height", "4", "--camera-id", "2"], "--camera-id"),
    (["--fx", "1", "--cx", "0", "--cy", "0", "--width", "4", "--height", "4", "--pad", "-4,0,0,0"], "--pad -4,0,0,0"),
    (["--fx", "1", "--cx", "0", "--cy", "0", "--width", "4", "--height", "4", "--dist", "0,0,0,0,0,0,0,0",
      "--model", "fisheye"], "dist has 8 coefficients"),
])
def test_bad_values_one_line_exit_2(capsys, tmp_path, argv, text):
    code, out, err = run(capsys, "camera", *argv)
    assert code == 2 and out == "" and err.startswith("camwarp camera: error: ") and err.count("\n") == 1
    assert text in err


def test_bad_file_and_out(capsys, tmp_path):
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 64 48 5 5\n")
    code, _, err = run(capsys, "camera", str(tmp_path / "cameras.txt"))
    assert code == 2 and "line 1, field 'PARAMS'" in err and err.count("\n") == 1
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 64 48 5 5 3 2\n2 PINHOLE 32 48 5 5 3 2\n")
    code, _, err = run(capsys, "camera", str(tmp_path / "cameras.txt"), "--out", str(tmp_path / "o.yaml"))
    assert code == 2 and "2 cameras need a COLMAP .txt file" in err
    code, _, err = run(capsys, "camera", str(tmp_path / "cameras.txt"), "--camera-id", "5")
    assert code == 2 and "--camera-id 5" in err and "1, 2" in err
