"""Small generated datasets in every layout ``camwarp prepare`` reads (tests, benchmark, demos).

:func:`make_dataset` writes images (smooth colour fields with discs, JPEG or PNG), 16-bit PNG or
float ``.npy`` depth maps, masks, and the metadata of one layout: COLMAP (``sparse/0`` with
``cameras.txt``, ``images.txt`` whose 2D points are the exact projections of the ``points3D.txt``
points, and tracks), nerfstudio (``transforms.json``, camera-to-world in OpenGL axes) or one camera
file. Everything is a function of ``seed``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..camera import Camera
from ..camera.io import write_camera, write_colmap_cameras
from .colmap import ColmapImage, qvec_to_rotmat, write_colmap_images

__all__ = ["LAYOUTS", "make_dataset"]

LAYOUTS = ("colmap", "nerfstudio", "camera")


def _camera(size: tuple[int, int], distorted: bool) -> Camera:
    W, H = size
    f = torch.tensor(0.9 * W, dtype=torch.float64)
    dist = torch.tensor([-0.05, 0.01, 0.001, -0.0005], dtype=torch.float64) if distorted else None
    return Camera(f, f * 1.01, torch.tensor(W / 2 - 0.3, dtype=torch.float64),
                  torch.tensor(H / 2 + 0.2, dtype=torch.float64), W, H, dist=dist)


def _picture(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    W, H = size
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.empty((H, W, 3))
    for c in range(3):
        a, b, p = rng.uniform(-1, 1, 3)
        img[..., c] = 127 + 80 * np.sin(a * u / W * 6 + b * v / H * 6 + p * 3)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(0.05, 0.2) * min(W, H)
        img[(u - cx) ** 2 + (v - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _pose(rng: np.random.Generator) -> tuple[tuple, tuple]:
    """A world-to-camera pose that looks at the point cloud around ``(0, 0, 5)`` (small rotation)."""
    q = np.concatenate([[1.0], rng.normal(0, 0.08, 3)])
    q = q / np.linalg.norm(q)
    return tuple(float(v) for v in q), tuple(float(v) for v in rng.uniform(-0.3, 0.3, 3) * [1, 1, 0.5])


def _aux(root: Path, stem: str, size: tuple[int, int], rng: np.random.Generator, depth: str | None,
         mask: bool) -> dict:
    W, H = size
    names = {}
    if depth is not None:
        z = rng.uniform(0.5, 10.0, (H, W))
        z[rng.random((H, W)) < 0.1] = 0.0  # holes
        (root / "depths").mkdir(exist_ok=True)
        if depth == "png":
            Image.fromarray(np.rint(z * 1000).astype(np.uint16)).save(root / "depths" / f"{stem}.png")
            names["depth"] = f"depths/{stem}.png"
        else:
            np.save(root / "depths" / f"{stem}.npy", z.astype(np.float32))
            names["depth"] = f"depths/{stem}.npy"
    if mask:
        (root / "masks").mkdir(exist_ok=True)
        m = (rng.random((H // 4 + 1, W // 4 + 1)) < 0.6).repeat(4, 0).repeat(4, 1)[:H, :W]
        Image.fromarray((m * 255).astype(np.uint8)).save(root / "masks" / f"{stem}.png")
        names["mask"] = f"masks/{stem}.png"
    return names


def make_dataset(root: str | os.PathLike, layout: str = "colmap", n: int = 6, size: tuple[int, int] = (64, 48),
                 seed: int = 0, image_format: str = "jpg", depth: str | None = "png", mask: bool = True,
                 distorted: bool = True, points: int = 40) -> Path:
    """Write a generated dataset of ``n`` images of ``size`` ``(W, H)`` under ``root``.

    Args:
        root: the dataset folder (created).
        layout: ``"colmap"``, ``"nerfstudio"`` or ``"camera"`` (``camera.json`` for all images).
        n: number of images.
        size: image size ``(W, H)``.
        seed: everything is a function of it.
        image_format: image extension, ``"jpg"`` or ``"png"``.
        depth: ``"png"`` (16-bit, millimetres), ``"npy"`` (float32 metres) or None.
        mask: write masks (``masks/<stem>.png``).
        distorted: give the (first) camera OpenCV distortion ``(k1, k2, p1, p2)``.
        points: number of 3D points (COLMAP).

    Returns:
        ``root`` as a ``Path``.

    Example:
        >>> import tempfile
        >>> d = make_dataset(tempfile.mkdtemp(), n=2)
        >>> sorted(p.name for p in (d / "sparse" / "0").iterdir())
        ['cameras.txt', 'images.txt', 'points3D.txt']
    """
    if layout not in LAYOUTS:
        raise ValueError(f"make_dataset: layout must be one of {', '.join(map(repr, LAYOUTS))}, got {layout!r}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cameras = {1: _camera(size, distorted), 2: _camera(size, False)} if layout == "colmap" else {
        1: _camera(size, distorted)}
    world = rng.uniform(-1, 1, (points, 3)) * [1.5, 1.0, 1.0] + np.array([0.0, 0.0, 5.0])
    frames, images, tracks = [], [], {k: [] for k in range(points)}
    for k in range(n):
        stem = f"frame_{k:04d}"
        name = f"{stem}.{image_format}"
        Image.fromarray(_picture(rng, size)).save(root / "images" / name, quality=95)
        aux = _aux(root, stem, size, rng, depth, mask)
        qvec, tvec = _pose(rng)
        camera_id = 1 + (k % len(cameras))
        R, t = qvec_to_rotmat(qvec), np.asarray(tvec)
        if layout == "colmap":  # 2D points: the exact projections of the world points
            X = world @ R.T + t  # (points, 3) camera frame
            uv = cameras[camera_id].project(torch.from_numpy(X)).numpy() + 0.5  # COLMAP frame
            W, H = size
            keep = [j for j in range(points) if 0 <= uv[j, 0] <= W and 0 <= uv[j, 1] <= H and rng.random() < 0.7]
            ids = []
            for idx, j in enumerate(keep):
                tracks[j].append((len(images) + 1, idx))
                ids.append(str(j + 1))
            images.append(ColmapImage(k + 1, qvec, tvec, camera_id, name).with_points(uv[keep], ids))
        else:
            c2w = np.eye(4)
            c2w[:3, :3] = R.T @ np.diag([1.0, -1.0, -1.0])  # OpenCV -> OpenGL camera axes
            c2w[:3, 3] = -R.T @ t
            frames.append({"file_path": f"images/{name}", "transform_matrix": c2w.tolist()}
                          | ({"depth_file_path": aux["depth"]} if "depth" in aux else {})
                          | ({"mask_path": aux["mask"]} if "mask" in aux else {}))
    if layout == "colmap":
        sparse = root / "sparse" / "0"
        sparse.mkdir(parents=True, exist_ok=True)
        write_colmap_cameras(sparse / "cameras.txt", cameras)
        write_colmap_images(sparse / "images.txt", images)
        with open(sparse / "points3D.txt", "w", encoding="utf-8") as f:
            f.write("# 3D point list with one line of data per point:\n")
            for j, track in tracks.items():
                if track:
                    xyz = " ".join(repr(float(v)) for v in world[j])
                    pairs = " ".join(f"{i} {p}" for i, p in track)
                    f.write(f"{j + 1} {xyz} 128 128 128 0.5 {pairs}\n")
    elif layout == "nerfstudio":
        write_camera(root / "intrinsics.json", cameras[1], format="transforms")
        data = json.loads((root / "intrinsics.json").read_text())
        (root / "intrinsics.json").unlink()
        (root / "transforms.json").write_text(json.dumps(data | {"frames": frames}, indent=4) + "\n")
    else:
        write_camera(root / "camera.json", cameras[1])
    return root
