"""camwarp prepare, per layout: the written cameras, poses, 2D points and pixels against oracles.

Oracles: ``Camera.center_crop().resize()`` (the camera contract) read back through camwarp's
readers; numpy slicing / ``np.rot90`` for pixels of exact ops; OpenCV (``getOptimalNewCameraMatrix``,
``undistortPoints``) for undistortion; projection of the 3D points through the new camera and pose
(``Camera.project`` = ``cv2.projectPoints``) against the moved 2D points.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from camwarp.camera.io import read_camera, read_colmap_cameras
from camwarp.geometry import crop_matrix, resize_matrix, rot90_matrix, transform_points
from camwarp.prepare import (LayoutError, detect_layout, iter_colmap_images, prepare, read_colmap_images,
                             rotate_pose)
from camwarp.prepare.colmap import ColmapImage, filter_points3d, qvec_to_rotmat, rotmat_to_qvec
from camwarp.prepare.items import UnsafePathError
from camwarp.prepare.synthetic import make_dataset

CROP_RESIZE = [("center_crop", (48, 40)), ("resize", (24, 20))]
A_CROP_RESIZE = resize_matrix((48, 40), (24, 20), dtype=torch.float64) @ crop_matrix(8, 4, dtype=torch.float64)


def _pixels(path) -> np.ndarray:
    return np.array(Image.open(path))


def _points3d(path) -> dict[int, np.ndarray]:
    out = {}
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            f = line.split()
            out[int(f[0])] = np.array([float(v) for v in f[1:4]])
    return out


@pytest.fixture(scope="module")
def colmap_in(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("colmap") / "in", "colmap", n=4, image_format="png")


def test_colmap_center_crop_resize_cameras_poses_points(colmap_in, tmp_path):
    out = tmp_path / "out"
    result = prepare(colmap_in, out, CROP_RESIZE, workers=1)
    assert result.errors == [] and result.merged and result.processed == 4
    cams_in = read_colmap_cameras(colmap_in / "sparse/0/cameras.txt")
    cams_out = read_colmap_cameras(out / "sparse/0/cameras.txt")
    assert cams_out.keys() == cams_in.keys()
    for cid, cam in cams_in.items():
        want = cam.center_crop(48, 40).resize(24, 20)
        got = cams_out[cid]
        assert got.size == (24, 20) and got.model == want.model
        torch.testing.assert_close(got.K, want.K, atol=1e-12, rtol=0)
        torch.testing.assert_close(got.dist, want.dist, atol=0, rtol=0)
    old, new = read_colmap_images(colmap_in / "sparse/0/images.txt"), read_colmap_images(out / "sparse/0/images.txt")
    assert [i.name for i in new] == [i.name for i in old]
    for a, b in zip(old, new):
        assert (b.qvec, b.tvec, b.camera_id, b.image_id) == (a.qvec, a.tvec, a.camera_id, a.image_id)  # R = I
        xy_old, ids_old = a.points()
        xy_new, ids_new = b.points()
        assert ids_new == ids_old
        want = transform_points(A_CROP_RESIZE, torch.from_numpy(xy_old - 0.5)).numpy() + 0.5
        np.testing.assert_allclose(xy_new, want, atol=1e-9)
    assert (out / "sparse/0/points3D.txt").read_bytes() == (colmap_in / "sparse/0/points3D.txt").read_bytes()
    for name in ("images/frame_0000.png", "depths/frame_0000.png", "masks/frame_0000.png"):
        assert Image.open(out / name).size == (24, 20)
    assert Image.open(out / "depths/frame_0000.png").mode == Image.open(colmap_in / "depths/frame_0000.png").mode
    assert not (out / ".camwarp-prepare").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".camwarp-tmp")]


def test_colmap_crop_moves_pixels_depth_masks_exactly(colmap_in, tmp_path):
    out = tmp_path / "out"
    prepare(colmap_in, out, [("crop", (5, 3, 40, 30))], workers=1)
    for kind in ("images", "depths", "masks"):
        src = _pixels(colmap_in / kind / "frame_0001.png")
        np.testing.assert_array_equal(_pixels(out / kind / "frame_0001.png"), src[3:33, 5:45])


def test_colmap_rot90_turns_poses_points_and_pixels(colmap_in, tmp_path):
    out = tmp_path / "out"
    prepare(colmap_in, out, [("rot90", (1,))], workers=1)
    cams = read_colmap_cameras(out / "sparse/0/cameras.txt")
    world = _points3d(colmap_in / "sparse/0/points3D.txt")
    A = rot90_matrix(1, (64, 48), dtype=torch.float64)
    for a, b in zip(read_colmap_images(colmap_in / "sparse/0/images.txt"),
                    read_colmap_images(out / "sparse/0/images.txt")):
        xy_new, ids = b.points()
        want = transform_points(A, torch.from_numpy(a.points()[0] - 0.5)).numpy() + 0.5
        np.testing.assert_allclose(xy_new, want, atol=1e-9)
        # The world points seen through the new pose and camera land on the moved 2D points.
        R, t = qvec_to_rotmat(b.qvec), np.array(b.tvec)
        X = np.stack([R @ world[int(i)] + t for i in ids])
        uv = cams[b.camera_id].project(torch.from_numpy(X)).numpy() + 0.5
        np.testing.assert_allclose(uv, xy_new, atol=1e-6)
        assert b.qvec[0] >= 0 and math.isclose(np.linalg.norm(b.qvec), 1.0, abs_tol=1e-12)
    for kind in ("images", "depths", "masks"):
        src = _pixels(colmap_in / kind / "frame_0002.png")
        np.testing.assert_array_equal(_pixels(out / kind / "frame_0002.png"), np.rot90(src, 1))


def test_colmap_undistort_matches_opencv(tmp_path):
    src = make_dataset(tmp_path / "in", "colmap", n=2, size=(80, 60), depth=None, mask=False)
    out = tmp_path / "out"
    assert prepare(src, out, [("undistort", (0.0,))], workers=1).errors == []
    cam = read_colmap_cameras(src / "sparse/0/cameras.txt")[1]
    new = read_colmap_cameras(out / "sparse/0/cameras.txt")[1]
    assert "PINHOLE" in (out / "sparse/0/cameras.txt").read_text().splitlines()[3] and not new.has_distortion
    K, dist = cam.K.numpy(), cam.dist.numpy()
    K_cv, _ = cv2.getOptimalNewCameraMatrix(K, dist, (80, 60), 0.0)
    np.testing.assert_allclose(new.K.numpy(), K_cv, atol=1e-6)
    im_in, im_out = (read_colmap_images(p / "sparse/0/images.txt")[0] for p in (src, out))
    assert im_in.camera_id == 1
    xy = im_in.points()[0] - 0.5
    want = cv2.undistortPoints(xy[:, None], K, dist, P=new.K.numpy(),
                               criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12))[:, 0]
    np.testing.assert_allclose(im_out.points()[0] - 0.5, want, atol=1e-6)


@pytest.fixture(scope="module")
def nerf_in(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("nerf") / "in", "nerfstudio", n=3, depth="npy")


def _project_c2w_gl(camera, c2w, X):
    """Pixel of world point X through a nerfstudio camera-to-world (OpenGL axes) and a Camera."""
    M = np.array(c2w)
    R_cv = M[:3, :3] @ np.diag([1.0, -1.0, -1.0])
    X_cam = R_cv.T @ (X - M[:3, 3])
    return camera.project(torch.from_numpy(X_cam[None]))[0].numpy()


@pytest.mark.parametrize("ops", [CROP_RESIZE, [("rot90", (1,)), ("resize", (24, 32))], [("hflip", ())]])
def test_nerfstudio_cameras_and_poses(nerf_in, tmp_path, ops):
    out = tmp_path / "out"
    assert prepare(nerf_in, out, ops, workers=1).errors == []
    cam_in = read_camera(nerf_in / "transforms.json", format="transforms")
    cam_out = read_camera(out / "transforms.json", format="transforms")
    A = torch.eye(3, dtype=torch.float64)
    size = cam_in.size
    for name, args in ops:  # the independent matrix of the chain
        step = {"center_crop": lambda: crop_matrix((size[0] - args[0]) // 2, (size[1] - args[1]) // 2,
                                                   dtype=torch.float64),
                "resize": lambda: resize_matrix(size, args, dtype=torch.float64),
                "rot90": lambda: rot90_matrix(args[0], size, dtype=torch.float64),
                "hflip": lambda: torch.tensor([[-1.0, 0, size[0] - 1], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)}
        A = step[name]() @ A
        size = tuple(args) if name in ("center_crop", "resize") else size[::-1] if name == "rot90" else size
    assert cam_out.size == size
    if ops == CROP_RESIZE:
        torch.testing.assert_close(cam_out.K, cam_in.center_crop(48, 40).resize(24, 20).K, atol=1e-12, rtol=0)
    old, new = (json.loads((d / "transforms.json").read_text())["frames"] for d in (nerf_in, out))
    X = np.array([0.3, -0.2, 5.0])
    for f_old, f_new in zip(old, new):
        assert f_new["file_path"] == f_old["file_path"] and f_new["depth_file_path"] == f_old["depth_file_path"]
        uv_old = _project_c2w_gl(cam_in, f_old["transform_matrix"], X)
        uv_new = _project_c2w_gl(cam_out, f_new["transform_matrix"], X)
        want = transform_points(A, torch.from_numpy(uv_old[None]))[0].numpy()
        np.testing.assert_allclose(uv_new, want, atol=1e-8)
        np.testing.assert_array_equal(np.array(f_new["transform_matrix"])[:3, 3], np.array(f_old["transform_matrix"])[:3, 3])
    depth = np.load(out / old[0]["depth_file_path"])
    assert depth.dtype == np.float32 and depth.shape == size[::-1]
    assert set(np.unique(depth)) <= set(np.unique(np.load(nerf_in / old[0]["depth_file_path"])))


def test_single_camera_file_layout(tmp_path):
    src = make_dataset(tmp_path / "in", "camera", n=3, depth=None)
    layout = detect_layout(src, tmp_path / "out")
    assert layout.kind == "camera" and list(layout.names()) == [f"frame_{k:04d}.jpg" for k in range(3)]
    assert prepare(src, tmp_path / "out", CROP_RESIZE, workers=1).errors == []
    want = read_camera(src / "camera.json").center_crop(48, 40).resize(24, 20)
    got = read_camera(tmp_path / "out/camera.json")
    torch.testing.assert_close(got.K, want.K, atol=1e-12, rtol=0)
    assert got.size == (24, 20) and sorted(p.name for p in (tmp_path / "out/images").iterdir()) == \
        [f"frame_{k:04d}.jpg" for k in range(3)]


def test_detect_layout_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="cannot tell the layout"):
        detect_layout(tmp_path / "empty", tmp_path / "o")
    with pytest.raises(LayoutError, match="must differ"):
        detect_layout(tmp_path / "empty", tmp_path / "empty")
    (tmp_path / "bin/sparse/0").mkdir(parents=True)
    (tmp_path / "bin/sparse/0/images.bin").write_bytes(b"\0")
    with pytest.raises(LayoutError, match="model_converter"):
        detect_layout(tmp_path / "bin", tmp_path / "o")
    src = make_dataset(tmp_path / "ns", "nerfstudio", n=1, depth=None, mask=False)
    data = json.loads((src / "transforms.json").read_text())
    data["frames"][0]["file_path"] = "../outside.jpg"
    (src / "transforms.json").write_text(json.dumps(data))
    with pytest.raises(UnsafePathError, match="outside.jpg"):
        list(detect_layout(src, tmp_path / "o").items())


def test_depth_and_mask_found_by_name(colmap_in):
    item = next(detect_layout(colmap_in, colmap_in.parent / "o").items())
    assert item.depth.endswith("depths/frame_0000.png") and item.mask.endswith("masks/frame_0000.png")
    assert item.out_depth == str(colmap_in.parent / "o/depths/frame_0000.png")


# ------------------------------------------------------------------------------ images.txt, poses
def test_images_txt_round_trip_and_streaming(tmp_path):
    p = tmp_path / "images.txt"
    p.write_text("# header\n\n7 1 0 0 0 1.5 2 3 4 a.jpg\n1.5 2.5 -1 3 4 12\n8 0.5 0.5 0.5 0.5 0 0 0 4 b.jpg\n\n")
    images = list(iter_colmap_images(p))
    assert [(i.image_id, i.name, i.line) for i in images] == [(7, "a.jpg", 3), (8, "b.jpg", 5)]
    assert images[0].points()[1] == ["-1", "12"] and images[1].points()[0].shape == (0, 2)
    p.write_text("1 2 3\n\n")
    with pytest.raises(ValueError, match="line 1"):
        list(iter_colmap_images(p))


@given(st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda q: np.linalg.norm(q) > 0.1))
def test_quaternion_round_trip_matches_rotation(q):
    R = qvec_to_rotmat(q)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(qvec_to_rotmat(rotmat_to_qvec(R)), R, atol=1e-12)


def test_rotate_pose_moves_world_points_with_the_camera():
    rng = np.random.default_rng(1)
    image = ColmapImage(1, tuple(rng.normal(size=4)), tuple(rng.normal(size=3)), 1, "a.jpg")
    R = qvec_to_rotmat(rng.normal(size=4))
    X = rng.normal(size=3)
    turned = rotate_pose(image, R)
    before = qvec_to_rotmat(image.qvec) @ X + np.array(image.tvec)
    after = qvec_to_rotmat(turned.qvec) @ X + np.array(turned.tvec)
    np.testing.assert_allclose(after, R @ before, atol=1e-12)
    assert rotate_pose(image, np.eye(3)) is image
    with pytest.raises(ValueError, match="reflection"):
        rotate_pose(image, np.diag([-1.0, 1.0, 1.0]))


def test_filter_points3d_drops_failed_images(tmp_path):
    import io

    p = tmp_path / "points3D.txt"
    p.write_text("# c\n1 0 0 0 1 2 3 0.1 1 0 2 5\n2 1 1 1 0 0 0 0.2 2 1\n3 1 1 1 0 0 0 0.2 1 4\n")
    out = io.StringIO()
    filter_points3d(p, out, {2})
    assert out.getvalue() == "# c\n1 0 0 0 1 2 3 0.1 1 0\n3 1 1 1 0 0 0 0.2 1 4\n"


def test_nerfstudio_per_frame_intrinsics_stay_per_frame(tmp_path):
    src = make_dataset(tmp_path / "in", "nerfstudio", n=3, depth=None, mask=False)
    data = json.loads((src / "transforms.json").read_text())
    shared = {k: data.pop(k) for k in list(data) if k != "frames"}
    for i, frame in enumerate(data["frames"]):
        frame |= shared | {"fl_x": shared["fl_x"] + i}
    (src / "transforms.json").write_text(json.dumps(data))
    assert prepare(src, tmp_path / "out", [("resize", (32, 24))], workers=1).errors == []
    out = json.loads((tmp_path / "out/transforms.json").read_text())
    assert list(out) == ["frames"] and all("fl_x" in f for f in out["frames"])
    want = read_camera(src / "transforms.json", format="transforms").resize(32, 24)
    torch.testing.assert_close(read_camera(tmp_path / "out/transforms.json", format="transforms").K, want.K,
                               atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------ file formats
def test_media_round_trips_keep_mode_dtype_and_values(tmp_path):
    from camwarp.prepare import MediaError, read_depth, read_image, read_mask, write_depth, write_image, write_mask

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img, enc = read_image(tmp_path / "a.png")
    assert enc == "RGBA" and img.shape == (4, 5, 7)
    write_image(tmp_path / "b.png", img, enc)
    np.testing.assert_array_equal(_pixels(tmp_path / "b.png"), rgba)
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png")[1] == "RGB"
    deep = rng.integers(0, 65536, (5, 7)).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    depth, enc = read_depth(tmp_path / "d.png")
    write_depth(tmp_path / "e.png", depth, enc)
    np.testing.assert_array_equal(_pixels(tmp_path / "e.png"), deep)
    np.save(tmp_path / "d.npy", deep[None].astype(np.float64))
    depth, enc = read_depth(tmp_path / "d.npy")
    write_depth(tmp_path / "e.npy", depth, enc)
    back = np.load(tmp_path / "e.npy")
    assert back.shape == (1, 5, 7) and back.dtype == np.float64 and np.array_equal(back[0], deep)
    Image.fromarray(deep > 30000).save(tmp_path / "m.png")
    mask, enc = read_mask(tmp_path / "m.png")
    write_mask(tmp_path / "n.png", mask, enc)
    assert Image.open(tmp_path / "n.png").mode == "1"
    np.testing.assert_array_equal(_pixels(tmp_path / "n.png"), deep > 30000)
    with pytest.raises(MediaError, match="EXR"):
        read_depth(tmp_path / "d.exr")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(MediaError, match="bad.jpg"):
        read_image(tmp_path / "bad.jpg")
