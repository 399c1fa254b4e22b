"""Dataset layouts that ``camwarp prepare`` reads and writes back in the same form.

* **COLMAP** (``colmap``): ``<in>/images/<NAME>``, ``<in>/sparse/0/cameras.txt`` + ``images.txt``
  (``sparse/`` also accepted), optional ``points3D.txt``. Written back: the moved images, a
  ``cameras.txt`` with each camera's smallest exact COLMAP model, an ``images.txt`` with the poses
  turned by the op's rotation and the 2D points moved with the image, ``points3D.txt`` copied
  (tracks of failed images removed). Other files of the model folder are not copied.
* **nerfstudio** (``nerfstudio``): ``<in>/transforms.json`` with global or per-frame intrinsics and
  ``frames[i].file_path`` / ``depth_file_path`` / ``mask_path``; ``transform_matrix`` (camera to
  world, OpenGL axes) is turned by the op's rotation; other keys are kept.
* **one camera file** (``camera``): ``<in>/camera.{json,yaml,yml,txt}`` (or ``--camera FILE``), any
  format :func:`camwarp.camera.io.read_camera` reads, for every image under ``<in>/images/`` (or
  ``<in>`` itself), in sorted order; written back in the same format.

Depth maps and masks are found by name (:func:`camwarp.prepare.items.find_aux`) unless the
metadata names them. Each layout lists its :class:`~camwarp.prepare.items.Item` s in a fixed order
(the index of a sidecar record and of a shard) and merges the records into its metadata files.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..camera import Camera
from ..camera.io import read_camera, read_colmap_cameras, write_camera, write_colmap_cameras
from ..errors import CamwarpError
from .atomic import atomic_path, atomic_text, atomic_write_text, ensure_dir, temp_path
from .colmap import (IMAGES_HEADER, ColmapImage, default_sparse_dir, filter_points3d, iter_colmap_images,
                     rotate_pose, write_images_to)
from .items import Item, camera_from_dict, camera_to_dict, find_aux, safe_join
from .state import JobState, JobStateError, file_digest

__all__ = ["CAMERA_FILES", "ColmapLayout", "IMAGE_EXTENSIONS", "Layout", "LayoutError", "NerfstudioLayout",
           "SingleCameraLayout", "detect_layout"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
CAMERA_FILES = ("camera.json", "camera.yaml", "camera.yml", "camera.txt")
_NS_KEYS = ("camera_model", "fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2")


class LayoutError(CamwarpError):
    """An input folder whose layout is unknown or inconsistent (names the folder and what is missing)."""


class Layout:
    """Base class: a dataset folder ``input_dir`` prepared into ``output_dir``."""

    kind = ""
    mirror_ok = True  # can the metadata hold a mirrored camera (det R = -1)?

    def __init__(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> None:
        self.input_dir, self.output_dir = Path(input_dir), Path(output_dir)

    def metadata_files(self) -> list[Path]:
        """The input files whose content defines the job (hashed into the job description)."""
        raise NotImplementedError

    def names(self) -> Iterator[str]:
        """The image names in item order (cheap: no file checks)."""
        raise NotImplementedError

    def items(self) -> Iterator[Item]:
        """The items in a fixed order, streamed."""
        raise NotImplementedError

    def merge(self, state: JobState, fsync: bool = False) -> list[tuple[str, str]]:
        """Write the final metadata files from the records; return the failed ``(name, error)`` s."""
        raise NotImplementedError

    def describe(self) -> dict:
        """The job-defining facts of the input: layout kind and a digest of its metadata."""
        return {"layout": self.kind, "metadata": [p.relative_to(self.input_dir).as_posix() if
                                                  p.is_relative_to(self.input_dir) else str(p)
                                                  for p in self.metadata_files()],
                "metadata_sha256": file_digest(self.metadata_files())}

    def _item(self, index: int, name: str, image_root: Path, aux_root: Path, camera: Camera | None,
              depth: str | None = None, mask: str | None = None, keypoints: list | None = None,
              find: bool = True) -> Item:
        """The item of image ``image_root/name``; depth and mask paths are relative to ``aux_root``
        (found by name there when ``find`` and not given). Outputs mirror the inputs under
        ``output_dir``."""
        if find:
            depth = depth or find_aux(aux_root, name, "depth")
            mask = mask or find_aux(aux_root, name, "mask")
        fn = "detect_layout"
        out_images = self.output_dir / image_root.relative_to(self.input_dir)
        out_aux = self.output_dir / aux_root.relative_to(self.input_dir)
        aux = {}
        for key, rel in (("depth", depth), ("mask", mask)):
            if rel:
                aux |= {key: str(safe_join(aux_root, rel, fn)), f"out_{key}": str(safe_join(out_aux, rel, fn))}
        return Item(index, name, str(safe_join(image_root, name, fn)), str(safe_join(out_images, name, fn)),
                    None if camera is None else camera_to_dict(camera), keypoints=keypoints,
                    mirror_ok=self.mirror_ok, **aux)

    @staticmethod
    def _collect(state: JobState, names: Iterable[str]) -> list[tuple[str, str]]:
        """Return the failed ``(name, error)`` s; raise if any image has no record yet."""
        errors: list[tuple[str, str]] = []
        missing: list[str] = []
        n_missing = total = 0
        for index, name in enumerate(names):
            total += 1
            status = state.status(index)
            if status is None:
                n_missing += 1
                missing += [name] if len(missing) < 3 else []
            elif status == "err":
                errors.append((name, state.read(index, "err")["error"]))
        if n_missing:
            raise JobStateError(f"{n_missing} of {total} images are not processed yet (first: {', '.join(missing)}); "
                                "finish every shard (or run without --shard) before merging")
        return errors


def _camera_table(records: dict, key: object, camera: dict, where: str) -> None:
    if records.setdefault(key, camera) != camera:
        raise JobStateError(f"merge: images of camera {key} got different cameras ({where}); "
                            "ops must not depend on the image")


class ColmapLayout(Layout):
    """COLMAP text model + ``images/`` (see the module docstring)."""

    kind = "colmap"
    mirror_ok = False  # quaternions hold rotations only

    def __init__(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike, sparse: Path) -> None:
        super().__init__(input_dir, output_dir)
        self.sparse = Path(sparse)
        self.cameras = read_colmap_cameras(self.sparse / "cameras.txt")

    def metadata_files(self) -> list[Path]:
        names = ("cameras.txt", "images.txt", "points3D.txt")
        return [self.sparse / n for n in names if (self.sparse / n).is_file()]

    def names(self) -> Iterator[str]:
        return (im.name for im in iter_colmap_images(self.sparse / "images.txt"))

    def items(self) -> Iterator[Item]:
        for index, im in enumerate(iter_colmap_images(self.sparse / "images.txt")):
            xy, _ = im.points()
            yield self._item(index, im.name, self.input_dir / "images", self.input_dir,
                             self.cameras.get(im.camera_id), keypoints=(xy - 0.5).tolist() if len(xy) else None)

    def merge(self, state: JobState, fsync: bool = False) -> list[tuple[str, str]]:
        errors = self._collect(state, self.names())
        out = ensure_dir(self.output_dir / self.sparse.relative_to(self.input_dir))
        body_path = temp_path(out / "images.txt")  # the image lines, before their count is known
        try:
            with open(body_path, "w", encoding="utf-8", newline="\n") as body:
                cameras, dropped, count, observations = self._moved_images(state, body)
            if not count:
                return errors
            cams = {cid: camera_from_dict(cameras[cid]) for cid in self.cameras if cid in cameras}
            atomic_path(out / "cameras.txt", lambda tmp: write_colmap_cameras(tmp, cams), fsync)
            with atomic_text(out / "images.txt", fsync) as f, open(body_path, encoding="utf-8") as src:
                f.write(IMAGES_HEADER + f"# Number of images: {count}, mean observations per image: "
                        f"{observations / count!r}\n")
                while block := src.read(1 << 20):
                    f.write(block)
            if (self.sparse / "points3D.txt").is_file():
                with atomic_text(out / "points3D.txt", fsync) as f:
                    filter_points3d(self.sparse / "points3D.txt", f, dropped)
        finally:
            body_path.unlink(missing_ok=True)
        return errors

    def _moved_images(self, state: JobState, body) -> tuple[dict, set[int], int, int]:
        """Write the moved image lines to ``body``; return the new cameras, the dropped image ids and
        the numbers of images and 2D points written."""
        cameras: dict[int, dict] = {}
        dropped: set[int] = set()

        def moved() -> Iterator[ColmapImage]:
            for index, im in enumerate(iter_colmap_images(self.sparse / "images.txt")):
                if state.status(index) != "ok":
                    dropped.add(im.image_id)
                    continue
                record = state.read(index)
                _camera_table(cameras, im.camera_id, record["camera"], im.name)
                im = rotate_pose(im, np.array(record["R"], dtype=np.float64))
                if record.get("keypoints") is not None:
                    im = im.with_points(np.array(record["keypoints"], dtype=np.float64) + 0.5, im.points()[1])
                yield im

        count, observations = write_images_to(body, moved())
        return cameras, dropped, count, observations


def _rotate_c2w_gl(matrix: list, R: np.ndarray) -> list:
    """Turn a camera-to-world matrix (OpenGL camera axes) by the camera rotation ``R``.

    ``c2w_cv = c2w_gl F`` with ``F = diag(1, -1, -1)``; the new camera sees ``R X_cv``, so
    ``c2w_cv' = c2w_cv R^T`` and ``c2w_gl' = c2w_gl (F R^T F)``; the centre (last column) is kept.
    """
    M = np.array(matrix, dtype=np.float64)
    F = np.diag([1.0, -1.0, -1.0])
    M[:3, :3] = M[:3, :3] @ (F @ R.T @ F)
    return (M + 0.0).tolist()


class NerfstudioLayout(Layout):
    """nerfstudio ``transforms.json`` (see the module docstring)."""

    kind = "nerfstudio"

    def __init__(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> None:
        super().__init__(input_dir, output_dir)
        self.path = self.input_dir / "transforms.json"
        self.data = json.loads(self.path.read_text(encoding="utf-8"))
        frames = self.data.get("frames")
        if not isinstance(frames, list) or not all(isinstance(f, dict) and "file_path" in f for f in frames):
            raise LayoutError(f"detect_layout: {self.path}: 'frames' must be a list of objects with a 'file_path'")
        self.frames = frames
        self.camera = read_camera(self.path, format="transforms")
        self.per_frame = tuple(self.camera.batch_shape) != ()

    def metadata_files(self) -> list[Path]:
        return [self.path]

    def names(self) -> Iterator[str]:
        return (f["file_path"] for f in self.frames)

    def items(self) -> Iterator[Item]:
        for index, frame in enumerate(self.frames):
            camera = self.camera[index] if self.per_frame else self.camera
            yield self._item(index, frame["file_path"], self.input_dir, self.input_dir, camera,
                             depth=frame.get("depth_file_path"), mask=frame.get("mask_path"), find=False)

    def merge(self, state: JobState, fsync: bool = False) -> list[tuple[str, str]]:
        errors = self._collect(state, self.names())
        frames, cameras = [], []
        for index, frame in enumerate(self.frames):
            if state.status(index) != "ok":
                continue
            record = state.read(index)
            frame = {k: v for k, v in frame.items() if k not in _NS_KEYS}
            R = np.array(record["R"], dtype=np.float64)
            if "transform_matrix" in frame and not np.array_equal(R, np.eye(3)):
                frame["transform_matrix"] = _rotate_c2w_gl(frame["transform_matrix"], R)
            frames.append(frame)
            cameras.append(record["camera"])
        if not frames:
            return errors
        shared = not self.per_frame and all(c == cameras[0] for c in cameras)
        fields = _transforms_fields(cameras[:1] if shared else cameras)
        data = dict(fields[0]) if shared else {}
        data |= {k: v for k, v in self.data.items() if k not in _NS_KEYS and k != "frames"}
        data["frames"] = frames if shared else [f | g for f, g in zip(frames, fields)]
        atomic_write_text(self.output_dir / "transforms.json", json.dumps(data, indent=4) + "\n", fsync)
        return errors


def _transforms_fields(cameras: list[dict]) -> list[dict]:
    """nerfstudio intrinsics keys of each camera, through camwarp's transforms.json writer."""
    cams = [camera_from_dict(c) for c in cameras]
    batch = cams[0] if len(cams) == 1 else Camera.from_K(
        torch.stack([c.K for c in cams]), *cams[0].size, model=cams[0].model, dist=torch.stack([c.dist for c in cams]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transforms.json"
        write_camera(path, batch, format="transforms")
        data = json.loads(path.read_text(encoding="utf-8"))
    return data["frames"] if len(cams) > 1 else [data]


def _camera_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return "camwarp" if "format" in data else "opencv-json" if "camera_matrix" in data else "transforms"
    return {".txt": "colmap", ".yaml": "opencv-yaml", ".yml": "opencv-yaml"}.get(suffix, "camwarp")


class SingleCameraLayout(Layout):
    """One camera file for every image (see the module docstring)."""

    kind = "camera"

    def __init__(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike, camera_file: Path) -> None:
        super().__init__(input_dir, output_dir)
        self.camera_file = Path(camera_file)
        self.camera = read_camera(self.camera_file)
        if tuple(self.camera.batch_shape) != ():
            raise LayoutError(f"detect_layout: {self.camera_file} holds {self.camera.batch_shape.numel()} "
                              "cameras; one camera file must hold one camera")
        self.root = self.input_dir / "images" if (self.input_dir / "images").is_dir() else self.input_dir

    def _walk(self) -> Iterator[str]:
        skip = {self.output_dir.resolve(), self.camera_file.resolve()}
        if self.root == self.input_dir:
            skip |= {(self.input_dir / d).resolve() for d in ("depths", "depth", "masks", "mask")}
        for directory, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(directory, d).resolve() not in skip)
            for name in sorted(files):
                path = Path(directory, name)
                if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".") and path.resolve() not in skip:
                    yield path.relative_to(self.root).as_posix()

    def metadata_files(self) -> list[Path]:
        return [self.camera_file]

    def describe(self) -> dict:
        listing = hashlib.sha256("\n".join(self._walk()).encode()).hexdigest()
        return super().describe() | {"listing_sha256": listing}

    def names(self) -> Iterator[str]:
        return self._walk()

    def items(self) -> Iterator[Item]:
        for index, rel in enumerate(self._walk()):
            yield self._item(index, rel, self.root, self.input_dir, self.camera)

    def merge(self, state: JobState, fsync: bool = False) -> list[tuple[str, str]]:
        errors = self._collect(state, self.names())
        table: dict[int, dict] = {}
        for index, name in enumerate(self.names()):
            if state.status(index) == "ok":
                _camera_table(table, 0, state.read(index)["camera"], name)
        if table:
            out = self.output_dir / (self.camera_file.relative_to(self.input_dir)
                                     if self.camera_file.is_relative_to(self.input_dir) else self.camera_file.name)
            out.parent.mkdir(parents=True, exist_ok=True)
            fmt = _camera_format(self.camera_file)
            atomic_path(out, lambda tmp: write_camera(tmp, camera_from_dict(table[0]), format=fmt), fsync)
        return errors


def detect_layout(input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                  camera: str | os.PathLike | None = None) -> Layout:
    """Return the layout of ``input_dir``: COLMAP, nerfstudio or one camera file (in that order).

    Args:
        input_dir: the dataset folder.
        output_dir: where the prepared dataset goes (must differ from ``input_dir``).
        camera: a camera file for every image; forces the one-camera layout.

    Raises:
        LayoutError: no known layout, a binary COLMAP model, or ``output_dir == input_dir``.

    Example:
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> write_camera(d + "/camera.json", Camera(100.0, 100.0, 31.5, 23.5, 64, 48))
        >>> detect_layout(d, d + "-out").kind
        'camera'
    """
    src, dst = Path(input_dir), Path(output_dir)
    if not src.is_dir():
        raise LayoutError(f"detect_layout: INPUT_DIR {src} is not a folder")
    if src.resolve() == dst.resolve():
        raise LayoutError("detect_layout: OUTPUT_DIR must differ from INPUT_DIR (inputs are never overwritten)")
    if camera is not None:
        return SingleCameraLayout(src, dst, Path(camera))
    sparse = default_sparse_dir(src)
    if sparse is not None:
        return ColmapLayout(src, dst, sparse)
    if any((src / d / "images.bin").is_file() for d in ("sparse/0", "sparse")):
        raise LayoutError(f"detect_layout: {src} has a binary COLMAP model; convert it with "
                          "`colmap model_converter --output_type TXT` (camwarp reads the text format)")
    if (src / "transforms.json").is_file():
        return NerfstudioLayout(src, dst)
    for name in CAMERA_FILES:
        if (src / name).is_file():
            return SingleCameraLayout(src, dst, src / name)
    raise LayoutError(f"detect_layout: cannot tell the layout of {src}: expected sparse/0/cameras.txt + "
                      f"images.txt (COLMAP), transforms.json (nerfstudio) or {'/'.join(CAMERA_FILES)} "
                      "(or pass --camera FILE)")
