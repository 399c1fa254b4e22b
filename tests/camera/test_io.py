"""Camera files: COLMAP, OpenCV FileStorage YAML/JSON, transforms.json, camwarp JSON.

Oracles: ``cv2.FileStorage`` (both directions), ``cv2.projectPoints``/``cv2.fisheye.projectPoints``
fed COLMAP's raw parameters (checks COLMAP's parameter order and its corner frame), the sample lines
of COLMAP's ``doc/format.rst``, and hypothesis round trips compared bit for bit.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from camwarp import Camera, CameraFileError
from camwarp.camera import (camera_from_dict, camera_to_dict, read_camera, read_colmap_cameras, write_camera,
                            write_colmap_cameras)

finite = st.floats(allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-300, max_value=1e300)
grid = st.integers(-(2**30), 2**30).map(lambda n: n / 64)  # cx + 0.5 is exact on this grid
corner = st.floats(min_value=0.25, max_value=2.0**40)      # file values whose -0.5 / +0.5 is exact


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("io")


def same(a: Camera, b: Camera) -> None:
    """Bit-for-bit equal cameras in ``b``'s dtype (distortion compared up to trailing zeros)."""
    assert (a.size, a.model, a.batch_shape) == (b.size, b.model, b.batch_shape)
    for k in ("fx", "fy", "cx", "cy", "skew"):
        assert torch.equal(getattr(a, k).to(b.dtype), getattr(b, k)), (k, getattr(a, k), getattr(b, k))
    n = max(a.dist.shape[-1], b.dist.shape[-1])
    pad = lambda d: torch.nn.functional.pad(d.to(b.dtype), (0, n - d.shape[-1]))  # noqa: E731
    assert torch.equal(pad(a.dist), pad(b.dist)), (a.dist, b.dist)


def flat(cam: Camera, i: int | None = None) -> Camera:
    """The batch flattened to ``(N,)`` (what COLMAP and transforms.json files hold), or its entry ``i``."""
    f = {k: getattr(cam, k).reshape(-1) for k in ("fx", "fy", "cx", "cy", "skew")}
    f["dist"] = cam.dist.reshape(len(f["fx"]), cam.dist.shape[-1])
    f = {k: v if i is None else v[i] for k, v in f.items()}
    return Camera(**f, width=cam.width, height=cam.height, model=cam.model)


@st.composite
def cameras(draw, pp=finite, skew=True, n_opencv=8, batch=False):
    model = draw(st.sampled_from(["opencv", "fisheye"]))
    shape = draw(st.sampled_from([(), (1,), (3,), (2, 2)])) if batch else ()
    size = int(np.prod(shape)) if shape else 1
    many = lambda s: torch.tensor(draw(st.lists(s, min_size=size, max_size=size)), dtype=torch.float64)  # noqa
    n = draw(st.integers(0, 4 if model == "fisheye" else n_opencv))
    dist = torch.tensor(draw(st.lists(finite, min_size=size * n, max_size=size * n)), dtype=torch.float64)
    f = [many(positive).reshape(shape) for _ in range(2)]
    c = [many(pp).reshape(shape) for _ in range(2)]
    s = many(finite).reshape(shape) if skew else 0.0
    return Camera(f[0], f[1], c[0], c[1], draw(st.integers(1, 10**5)), draw(st.integers(1, 10**5)), skew=s,
                  dist=dist.reshape(*shape, n), model=model)


# ----------------------------------------------------------------------------------------- COLMAP
DOC_LINES = """# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
# Number of cameras: 3
1 SIMPLE_PINHOLE 3072 2304 2559.81 1536 1152
2 PINHOLE 3072 2304 2560.56 2560.56 1536 1152
3 SIMPLE_RADIAL 3072 2304 2559.69 1536 1152 -0.0218531
"""


def test_colmap_doc_sample(tmp):
    (tmp / "doc.txt").write_text(DOC_LINES)
    cams = read_colmap_cameras(tmp / "doc.txt")
    assert list(cams) == [1, 2, 3]
    assert cams[1].K.tolist() == [[2559.81, 0, 1535.5], [0, 2559.81, 1151.5], [0, 0, 1]]
    assert cams[2].K.tolist() == [[2560.56, 0, 1535.5], [0, 2560.56, 1151.5], [0, 0, 1]]
    assert cams[3].dist.tolist() == [-0.0218531] and cams[3].size == (3072, 2304)
    assert all(c.dtype == torch.float64 and c.model == "opencv" for c in cams.values())
    write_colmap_cameras(tmp / "again.txt", cams)
    assert (tmp / "again.txt").read_text().splitlines()[3:] == [  # camera 2 has fx == fy: SIMPLE_PINHOLE
        "1 SIMPLE_PINHOLE 3072 2304 2559.81 1536.0 1152.0", "2 SIMPLE_PINHOLE 3072 2304 2560.56 1536.0 1152.0",
        "3 SIMPLE_RADIAL 3072 2304 2559.69 1536.0 1152.0 -0.0218531"]
    batch = read_camera(tmp / "doc.txt")  # one size and model: a batch in id order
    assert batch.batch_shape == (3,) and batch.dist[:, 0].tolist() == [0.0, 0.0, -0.0218531]


COLMAP_LINES = [
    "SIMPLE_PINHOLE 640 480 500.5 320.25 240.75",
    "PINHOLE 640 480 500.5 510.25 320.25 240.75",
    "SIMPLE_RADIAL 640 480 500.5 320.25 240.75 -0.1",
    "RADIAL 640 480 500.5 320.25 240.75 -0.1 0.02",
    "OPENCV 640 480 500.5 510.25 320.25 240.75 -0.1 0.02 0.001 -0.002",
    "FULL_OPENCV 640 480 500.5 510.25 320.25 240.75 -0.1 0.02 0.001 -0.002 0.003 0.01 -0.02 0.005",
    "OPENCV_FISHEYE 640 480 300.5 310.25 320.25 240.75 0.05 -0.01 0.002 -0.001",
]


@pytest.mark.parametrize("line", COLMAP_LINES)
def test_colmap_models_project_like_opencv_fed_colmap_params(tmp, line):
    """cv2 fed COLMAP's raw parameters gives COLMAP-frame pixels: camwarp's + 0.5, for every model."""
    (tmp / "m.txt").write_text(f"5 {line}\n")
    cam = read_colmap_cameras(tmp / "m.txt")[5]
    name, p = line.split()[0], [float(t) for t in line.split()[3:]]
    f, rest = (p[:1] * 2, p[1:]) if name.startswith(("SIMPLE", "RADIAL")) else (p[:2], p[2:])
    K = np.array([[f[0], 0, rest[0]], [0, f[1], rest[1]], [0, 0, 1]])
    X = np.random.default_rng(0).uniform([-0.5, -0.4, 1.0], [0.5, 0.4, 3.0], (20, 3))
    if name == "OPENCV_FISHEYE":
        ref, _ = cv2.fisheye.projectPoints(X[:, None], np.zeros(3), np.zeros(3), K, np.array(rest[2:]))
    else:
        dist = np.array(rest[2:] if name.endswith("OPENCV") else (rest[2:] + [0.0] * 2)[:2] + [0.0, 0.0])
        ref, _ = cv2.projectPoints(X, np.zeros(3), np.zeros(3), K, dist)
    uv = cam.project(torch.from_numpy(X)) + 0.5
    np.testing.assert_allclose(uv.numpy(), ref.reshape(-1, 2), rtol=0, atol=1e-9)
    write_colmap_cameras(tmp / "w.txt", {5: cam})  # the smallest exact model is the one read
    assert (tmp / "w.txt").read_text().splitlines()[-1].split()[1] == name


@given(st.lists(st.tuples(st.sampled_from(COLMAP_LINES), corner, corner, positive), min_size=1, max_size=4))
def test_colmap_text_round_trip_exact(tmp, rows):
    lines = []
    for i, (line, cx, cy, f) in enumerate(rows):
        t = line.split()
        nf = 1 if t[0].startswith(("SIMPLE", "RADIAL")) else 2
        t[3: 3 + nf + 2] = [repr(f), repr(2 * f)][:nf] + [repr(cx), repr(cy)]
        lines.append(f"{i * 3 + 1} " + " ".join(t))
    (tmp / "h.txt").write_text("\n".join(lines) + "\n")
    write_colmap_cameras(tmp / "h2.txt", read_colmap_cameras(tmp / "h.txt"))
    again = [ln.split() for ln in (tmp / "h2.txt").read_text().splitlines() if not ln.startswith("#")]
    assert [[*t[:4], *map(float, t[4:])] for t in again] == [[*t[:4], *map(float, t[4:])]
                                                               for t in map(str.split, lines)]


@given(cameras(pp=grid, skew=False, batch=True))
def test_colmap_camera_round_trip_exact(tmp, cam):
    write_camera(tmp / "b.txt", cam)  # a batch: one line per entry, ids 1..N
    cams = read_colmap_cameras(tmp / "b.txt")
    assert list(cams) == list(range(1, cam.fx.numel() + 1))
    for i, c in enumerate(cams.values()):
        same(c, flat(cam, i))


@pytest.mark.parametrize("cam, model", [
    (Camera(500.0, 500.0, 1.0, 2.0, 64, 48, dist=[0.0, 0.0, 0.0, 0.0]), "SIMPLE_PINHOLE"),
    (Camera(500.0, 501.0, 1.0, 2.0, 64, 48), "PINHOLE"),
    (Camera(500.0, 500.0, 1.0, 2.0, 64, 48, dist=[0.1, 0.0, 0.0]), "SIMPLE_RADIAL"),
    (Camera(500.0, 501.0, 1.0, 2.0, 64, 48, dist=[0.1]), "OPENCV"),
    (Camera(500.0, 500.0, 1.0, 2.0, 64, 48, dist=[0.1, 0.2]), "RADIAL"),
    (Camera(500.0, 500.0, 1.0, 2.0, 64, 48, dist=[0.1, 0.2, 0.0, 0.01, 0.0, 0.0]), "OPENCV"),
    (Camera(500.0, 500.0, 1.0, 2.0, 64, 48, dist=[0.1, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 1e-9]), "FULL_OPENCV"),
    (Camera(500.0, 500.0, 1.0, 2.0, 64, 48, model="fisheye"), "OPENCV_FISHEYE"),
])
def test_colmap_writer_picks_smallest_exact_model(tmp, cam, model):
    write_colmap_cameras(tmp / "s.txt", {1: cam})
    assert (tmp / "s.txt").read_text().splitlines()[-1].split()[1] == model
    same(read_colmap_cameras(tmp / "s.txt")[1], cam)


def test_colmap_writer_requested_model_and_refusals(tmp):
    cam = Camera(500.0, 500.0, 10.0, 20.0, 64, 48, dist=[0.1])
    write_colmap_cameras(tmp / "r.txt", {2: cam}, model="FULL_OPENCV")
    assert (tmp / "r.txt").read_text().splitlines()[-1] == ("2 FULL_OPENCV 64 48 500.0 500.0 10.5 20.5 "
                                                            + " ".join(["0.1"] + ["0.0"] * 7))
    for bad, model, text in [(cam, "PINHOLE", "cannot be written exactly as COLMAP PINHOLE"),
                             (cam.replace(fy=501.0), "SIMPLE_RADIAL", "SIMPLE_RADIAL"),
                             (cam, "OPENCV_FISHEYE", "OPENCV_FISHEYE"),
                             (cam.replace(skew=1.0), None, "no skew")]:
        with pytest.raises(CameraFileError, match=text):
            write_colmap_cameras(tmp / "r.txt", {1: bad}, model=model)
    with pytest.raises(ValueError, match="model must be one of"):
        write_colmap_cameras(tmp / "r.txt", {1: cam}, model="FOV")
    with pytest.raises(ValueError, match="batched"):
        write_colmap_cameras(tmp / "r.txt", {1: Camera(torch.ones(2), 1.0, 0.0, 0.0, 4, 4)})


@pytest.mark.parametrize("text, where", [
    ("1 THIN_PRISM_FISHEYE 64 48 1 2 3 4 5 6 7 8 9 10 11 12", "line 2, field 'MODEL'"),
    ("1 PINHOLE 64 48 500 500 32", "line 2, field 'PARAMS'"),
    ("1 PINHOLE 64 48 500 abc 32 24", "line 2, field 'fy'"),
    ("1 PINHOLE 64 48.5 500 500 32 24", "line 2, field 'HEIGHT'"),
    ("x PINHOLE 64 48 500 500 32 24", "line 2, field 'CAMERA_ID'"),
    ("1 PINHOLE 64", "line 2"),
    ("1 PINHOLE 64 48 -500 500 32 24", "line 2: invalid camera: Camera: fx must be positive"),
    ("1 PINHOLE 64 48 nan 500 32 24", "line 2, field 'fx'"),
])
def test_colmap_malformed_names_file_line_field(tmp, text, where):
    (tmp / "bad.txt").write_text(f"# comment\n{text}\n")
    with pytest.raises(CameraFileError, match=f"read_colmap_cameras: .*bad.txt, {where}"):
        read_colmap_cameras(tmp / "bad.txt")


def test_colmap_duplicate_id_and_mixed_sizes(tmp):
    (tmp / "dup.txt").write_text("1 PINHOLE 64 48 5 5 3 2\n1 PINHOLE 64 48 5 5 3 2\n")
    with pytest.raises(CameraFileError, match="line 2, field 'CAMERA_ID': duplicate"):
        read_colmap_cameras(tmp / "dup.txt")
    (tmp / "mix.txt").write_text("1 PINHOLE 64 48 5 5 3 2\n2 PINHOLE 32 48 5 5 3 2\n")
    assert len(read_colmap_cameras(tmp / "mix.txt")) == 2
    with pytest.raises(CameraFileError, match="use read_colmap_cameras"):
        read_camera(tmp / "mix.txt")


# ------------------------------------------------------------------------------ OpenCV FileStorage
def cv2_write(path, K, dist, size, header_v1=False):
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", size[0])
    fs.write("image_height", size[1])
    fs.write("camera_matrix", K)
    fs.write("distortion_coefficients", dist)
    fs.write("calibration_time", "Tue Nov 25 2025")
    fs.release()
    if header_v1:  # OpenCV 3/4 wrote "%YAML:1.0"
        path.write_text(path.read_text().replace("%YAML 1.2", "%YAML:1.0", 1))


@given(cam=cameras(n_opencv=8), ext=st.sampled_from(["yaml", "yml", "json"]), v1=st.booleans())
def test_opencv_files_written_by_cv2_read_exactly(tmp, cam, ext, v1):
    K, d = cam.K.numpy(), cam.dist.numpy()[None]
    path = tmp / f"cv.{ext}"
    cv2_write(path, K, d if d.size else np.zeros((1, 0)), cam.size, header_v1=v1 and ext != "json")
    if cam.model == "fisheye":
        fisheye_line = "distortion_model: fisheye\n" if ext != "json" else None
        if fisheye_line is None:
            data = json.loads(path.read_text())
            path.write_text(json.dumps(data | {"distortion_model": "fisheye"}))
        else:
            path.write_text(path.read_text() + fisheye_line)
    same(read_camera(path), cam)


@given(cam=cameras(n_opencv=8), fmt=st.sampled_from(["opencv-yaml", "opencv-json"]))
def test_opencv_files_written_by_camwarp_read_exactly_by_cv2(tmp, cam, fmt):
    path = tmp / ("mine.yaml" if fmt == "opencv-yaml" else "mine.json")
    write_camera(path, cam, format=fmt)
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    assert fs.isOpened()
    assert np.array_equal(fs.getNode("camera_matrix").mat(), cam.K.numpy())
    d = fs.getNode("distortion_coefficients").mat()
    assert np.array_equal(np.zeros((1, 0)) if d is None else d, cam.dist.numpy()[None])
    assert (int(fs.getNode("image_width").real()), int(fs.getNode("image_height").real())) == cam.size
    assert fs.getNode("distortion_model").string() == ("fisheye" if cam.model == "fisheye" else "")
    fs.release()
    same(read_camera(path, format=fmt), cam)


def test_opencv_malformed(tmp):
    good = tmp / "g.yaml"
    write_camera(good, Camera(5.0, 5.0, 3.0, 2.0, 8, 6, dist=[0.1]))
    text = good.read_text()
    cases = [(text.replace("image_width: 8\n", ""), "field 'image_width': missing field"),
             (text.replace("camera_matrix", "cam_matrix"), "field 'camera_matrix': missing field"),
             (text.replace("rows: 3", "rows: 2", 1), "line 5, field 'camera_matrix': rows x cols"),
             (text.replace("0.0, 0.0, 1.0", "0.0, 0.5, 1.0"), "line 5, field 'camera_matrix'"),
             (text.replace("[ 5.0,", "[ five,"), "line 5, field 'camera_matrix': expected a finite number"),
             (text.replace("image_height: 6", "image_height: [6"), "line 5: malformed YAML"),
             (text.replace("cols: 1", "cols: 9").replace("[ 0.1 ]", "[ 0,0,0,0,0,0,0,0,1 ]"),
              "line 10, field 'distortion_coefficients': 9 coefficients")]
    for bad, where in cases:
        (tmp / "b.yaml").write_text(bad)
        with pytest.raises(CameraFileError, match=f"b.yaml, {where}"):
            read_camera(tmp / "b.yaml")
    with pytest.raises(CameraFileError, match="holds one camera"):
        write_camera(tmp / "b.yaml", Camera(torch.ones(2), 1.0, 0.0, 0.0, 4, 4))


# ------------------------------------------------------------------------- nerfstudio transforms.json
def test_transforms_json_global_and_per_frame(tmp):
    meta = {"camera_model": "OPENCV", "fl_x": 500.0, "fl_y": 510.0, "cx": 320.0, "cy": 240.0, "w": 640,
            "h": 480, "k1": 0.1, "k2": -0.01, "p1": 0.001, "p2": 0.002,
            "frames": [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]}
    (tmp / "transforms.json").write_text(json.dumps(meta))
    cam = read_camera(tmp / "transforms.json")  # nerfstudio's cx is in the corner frame
    same(cam, Camera(500.0, 510.0, 320.0, 240.0, 640, 480, dist=[0.1, -0.01, 0.001, 0.002], convention="colmap"))
    meta["frames"] = [{"file_path": "a.png"}, {"file_path": "b.png", "fl_x": 600.0, "cx": 300.5}]
    (tmp / "transforms.json").write_text(json.dumps(meta))
    cam = read_camera(tmp / "transforms.json")
    assert cam.batch_shape == (2,) and cam.fx.tolist() == [500.0, 600.0] and cam.cx.tolist() == [319.5, 300.0]
    meta["frames"][1]["w"] = 320
    (tmp / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(CameraFileError, match="field 'frames': frames differ in size"):
        read_camera(tmp / "transforms.json")
    for key, value, where in [("fl_y", None, "field 'fl_y': missing"), ("k4", 0.5, "field 'k4'"),
                              ("camera_model", "EQUIRECTANGULAR", "field 'camera_model'")]:
        bad = {k: v for k, v in meta.items() if k not in ("frames", key)} | ({key: value} if value else {})
        (tmp / "t.json").write_text(json.dumps(bad))
        with pytest.raises(CameraFileError, match=where):
            read_camera(tmp / "t.json")
    (tmp / "t.json").write_text(json.dumps({"fl_x": 1.0, "frames": [{"fl_y": 2.0}]}))
    with pytest.raises(CameraFileError, match=r"field 'frames\[0\].cx': missing"):
        read_camera(tmp / "t.json")


@given(cam=cameras(pp=corner.map(lambda c: c - 0.5), skew=False, n_opencv=5, batch=True))
def test_transforms_round_trip_exact(tmp, cam):
    write_camera(tmp / "tr.json", cam, format="transforms")
    back = read_camera(tmp / "tr.json")
    same(back, flat(cam) if cam.batch_shape else cam)


# ---------------------------------------------------------------------------------- camwarp JSON
@given(cameras(batch=True))
def test_camwarp_json_round_trip_exact(tmp, cam):
    write_camera(tmp / "c.json", cam)
    same(read_camera(tmp / "c.json"), cam)
    same(camera_from_dict(json.loads(json.dumps(camera_to_dict(cam)))), cam)


def test_camwarp_json_float32_shortest_and_errors(tmp):
    cam = Camera(2220.0, 2220.0, 1404.0, 1064.0, 2880, 2160, dist=[-0.00344584, 0.120934])
    write_camera(tmp / "f.json", cam)
    assert json.loads((tmp / "f.json").read_text())["dist"] == [-0.00344584, 0.120934]
    same(read_camera(tmp / "f.json", dtype=torch.float32), cam)
    data = camera_to_dict(cam) | {"convention": "colmap"}
    assert camera_from_dict(data).cx.item() == 1403.5
    for change, where in [({"format": "camwarp.camera/9"}, "field 'format'"), ({"fx": "a"}, "field 'fx'"),
                          ({"width": 0}, "field 'width'"), ({"convention": "gl"}, "field 'convention'"),
                          ({"model": "fov"}, "invalid camera")]:
        with pytest.raises(CameraFileError, match=where):
            camera_from_dict(data | change)
    with pytest.raises(CameraFileError, match="field 'cy': missing"):
        camera_from_dict({k: v for k, v in data.items() if k != "cy"})


def test_dispatch(tmp):
    cam = Camera(5.0, 5.0, 3.0, 2.0, 8, 6)
    for fmt in ("opencv-json", "transforms", "camwarp"):
        write_camera(tmp / "d.json", cam, format=fmt)
        same(read_camera(tmp / "d.json"), cam)
    (tmp / "d.json").write_text("{\n  \"fx\": 1,\n")
    with pytest.raises(CameraFileError, match="d.json, line 3: malformed JSON"):
        read_camera(tmp / "d.json")
    (tmp / "d.json").write_text("{\"fx\": 1}")
    with pytest.raises(CameraFileError, match="not a camwarp camera"):
        read_camera(tmp / "d.json")
    with pytest.raises(ValueError, match="read_camera: cannot tell the format"):
        read_camera(tmp / "d.cam")
    with pytest.raises(ValueError, match="format must be one of"):
        write_camera(tmp / "d.json", cam, format="bin")
    with pytest.raises(TypeError, match="write_camera: camera must be a camwarp.Camera"):
        write_camera(tmp / "d.json", "cam")
    with pytest.raises(FileNotFoundError):
        read_camera(tmp / "missing.yaml")
