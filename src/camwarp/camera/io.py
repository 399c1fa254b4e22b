"""Camera files: COLMAP ``cameras.txt``, OpenCV calibration YAML/JSON, nerfstudio ``transforms.json``
and camwarp's own JSON, read and written with exact floats.

Every reader returns :class:`~camwarp.camera.Camera` objects in float64 (``dtype=``) with the
principal point in OpenCV's centre frame; files that use the corner frame (COLMAP, nerfstudio) are
converted once, here (``cx_opencv = cx_file - 0.5``). Writers print floats with ``repr``, so a value
survives a round trip bit for bit; only the ``+-0.5`` shift of the corner-frame formats can round,
and it is exact for file values in ``[0.25, 2**52)`` (every real principal point). Bad files raise
:class:`camwarp.errors.CameraFileError` naming the file, the line (where there is one) and the field.
Formats and their fields: ``docs/camera_io.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from .. import _checks
from . import _io_formats as _f
from .model import Camera

__all__ = ["FORMATS", "camera_from_dict", "camera_to_dict", "read_camera", "read_colmap_cameras", "write_camera",
           "write_colmap_cameras"]

FORMATS = ("camwarp", "colmap", "opencv-yaml", "opencv-json", "transforms")
_EXTENSIONS = {".txt": "colmap", ".yaml": "opencv-yaml", ".yml": "opencv-yaml"}


def read_colmap_cameras(path: str | Path, *, dtype: torch.dtype = torch.float64) -> dict[int, Camera]:
    """Read a COLMAP ``cameras.txt``: one camera per line, ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]``.

    COLMAP's pixel frame puts the top-left pixel centre at ``(0.5, 0.5)`` (models.h: "the upper left
    pixel center has coordinate (0.5, 0.5)"), so ``cx = cx_colmap - 0.5`` (likewise ``cy``).
    Models: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV, FULL_OPENCV (camwarp model
    ``"opencv"``) and OPENCV_FISHEYE (``"fisheye"``). Lines starting with ``#`` are comments.

    Args:
        path: the text file.
        dtype: float dtype of the cameras, default float64 (exact).

    Returns:
        ``{camera_id: Camera}`` in file order; each camera unbatched.

    Raises:
        CameraFileError: unknown model, wrong parameter count, a value that is not a number, a
            duplicate id (the message names the file, line and field).

    Example:
        >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "cameras.txt")
        >>> _ = open(p, "w").write("1 SIMPLE_PINHOLE 3072 2304 2559.81 1536 1152\\n")
        >>> read_colmap_cameras(p)[1].K[0].tolist()
        [2559.81, 0.0, 1535.5]
    """
    return _f.parse_colmap("read_colmap_cameras", Path(path), dtype)


def write_colmap_cameras(path: str | Path, cameras: Mapping[int, Camera], model: str | None = None) -> None:
    """Write cameras to a COLMAP ``cameras.txt`` (principal points shifted to COLMAP's corner frame).

    ``cx_colmap = cx + 0.5`` (likewise ``cy``). With ``model=None`` each camera gets the smallest
    COLMAP model that holds it exactly (SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV,
    FULL_OPENCV; OPENCV_FISHEYE for fisheye cameras); a named ``model`` is used for every camera.

    Args:
        path: the text file (overwritten).
        cameras: ``{camera_id: Camera}`` with unbatched cameras (use :func:`write_camera` for a batch).
        model: a COLMAP model name, or None to choose per camera.

    Raises:
        CameraFileError: a camera that the model cannot hold exactly (skew, fx != fy for a
            single-focal model, distortion coefficients the model lacks, fisheye vs pinhole).
        ValueError: an unknown ``model``, a batched camera, a negative id.

    Example:
        >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "cameras.txt")
        >>> write_colmap_cameras(p, {7: Camera(500.0, 500.0, 319.5, 239.5, 640, 480)})
        >>> open(p).read().splitlines()[-1]
        '7 SIMPLE_PINHOLE 640 480 500.0 320.0 240.0'
    """
    fn = "write_colmap_cameras"
    items = []
    for cam_id, camera in cameras.items():
        cam_id = _checks.check_int(cam_id, fn, "camera id", minimum=0)
        entries = _f.entries(fn, camera)
        if tuple(camera.batch_shape) != ():
            raise ValueError(f"{fn}: camera {cam_id} is batched {tuple(camera.batch_shape)}; write one camera "
                             "per id (or pass the batch to write_camera)")
        items.append((cam_id, entries[0]))
    Path(path).write_text(_f.colmap_text(fn, path, items, model))


def camera_to_dict(camera: Camera) -> dict:
    """Return camwarp's JSON form of a camera (what ``write_camera(path.json)`` writes), OpenCV frame.

    ``{"format": "camwarp.camera/1", "model", "width", "height", "fx", "fy", "cx", "cy", "skew",
    "dist", "convention": "opencv"}``; a batched camera gives nested lists (``dist`` ``(..., n)``).
    Python floats: ``json.dumps`` writes them exactly.

    Example:
        >>> camera_to_dict(Camera(500.0, 500.0, 319.5, 239.5, 640, 480))["cx"]
        319.5
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera_to_dict: camera must be a camwarp.Camera, got {type(camera).__name__}")
    return _f.camwarp_dict(camera)


def camera_from_dict(data: Mapping, *, dtype: torch.dtype = torch.float64) -> Camera:
    """Build a camera from camwarp's JSON form (the inverse of :func:`camera_to_dict`).

    Raises:
        CameraFileError: a missing field, a wrong ``format`` tag, or values the Camera refuses.

    Example:
        >>> camera_from_dict(camera_to_dict(Camera(500.0, 500.0, 319.5, 239.5, 640, 480))).cx
        tensor(319.5000, dtype=torch.float64)
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"camera_from_dict: data must be a mapping, got {type(data).__name__}")
    return _f.read_camwarp("camera_from_dict", "<dict>", dict(data), dtype)


# ------------------------------------------------------------------------------------ dispatch
def _sniff(fn: str, path: Path, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"{fn}: format must be one of {', '.join(map(repr, FORMATS))} or None, got {format!r}")
        return format
    if path.suffix.lower() in _EXTENSIONS:
        return _EXTENSIONS[path.suffix.lower()]
    if path.suffix.lower() == ".json":
        return "json"
    raise ValueError(f"{fn}: cannot tell the format of {str(path)!r} from its extension (.txt COLMAP, "
                     f".yaml/.yml OpenCV, .json camwarp/OpenCV/transforms.json); pass format=")


def _load_json(fn: str, path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise _f.error(fn, path, f"malformed JSON: {err.msg}", err.lineno) from None
    if not isinstance(data, dict):
        raise _f.error(fn, path, "expected a JSON object")
    return data


def read_camera(path: str | Path, format: str | None = None, *, dtype: torch.dtype = torch.float64) -> Camera:
    """Read one camera (or a batch) from a file, principal point converted to OpenCV's centre frame.

    The format comes from ``format`` or the extension: ``.txt`` COLMAP ``cameras.txt``,
    ``.yaml``/``.yml`` OpenCV FileStorage YAML, ``.json`` sniffed from its keys (``"format":
    "camwarp.camera/1"``, OpenCV's ``camera_matrix``, or nerfstudio's ``fl_x``/``frames``). A COLMAP
    file with several cameras of one size and model gives a batch in id order (else use
    :func:`read_colmap_cameras`); a transforms.json with per-frame intrinsics gives one entry per frame.

    Args:
        path: the file.
        format: one of :data:`FORMATS`, or None to infer it.
        dtype: float dtype of the camera, default float64 (exact).

    Returns:
        Camera: unbatched, or batched ``(N,)`` as described above.

    Raises:
        CameraFileError: a malformed file (names the file, line and field).
        ValueError: an unknown ``format`` or extension.
        FileNotFoundError: no such file.

    Example:
        >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "cam.json")
        >>> write_camera(p, Camera(500.0, 500.0, 319.5, 239.5, 640, 480, dist=[0.1, -0.01]))
        >>> read_camera(p).dist.tolist()
        [0.1, -0.01]
    """
    fn, path = "read_camera", Path(path)
    kind = _sniff(fn, path, format)
    if kind == "colmap":
        cams = list(read_colmap_cameras(path, dtype=dtype).values())
        if not cams:
            raise _f.error(fn, path, "no camera lines")
        if len(cams) == 1:
            return cams[0]
        if len({(c.size, c.model) for c in cams}) > 1:
            raise _f.error(fn, path, f"{len(cams)} cameras of different sizes or models; use read_colmap_cameras")
        n = max(c.dist.shape[-1] for c in cams)
        dist = torch.stack([torch.nn.functional.pad(c.dist, (0, n - c.dist.shape[-1])) for c in cams])
        K = torch.stack([c.K for c in cams])
        return Camera.from_K(K, *cams[0].size, dist=dist, model=cams[0].model)
    if kind == "opencv-yaml":
        return _f.read_opencv(fn, path, _f.cv_yaml_load(fn, path), dtype)
    data = _load_json(fn, path)
    if kind == "json":
        kind = ("camwarp" if "format" in data else "opencv-json" if "camera_matrix" in data else
                "transforms" if {"fl_x", "frames", "camera_model"} & set(data) else None)
        if kind is None:
            raise _f.error(fn, path, "not a camwarp camera (no 'format'), OpenCV calibration (no 'camera_matrix') "
                         "or transforms.json (no 'fl_x'/'frames')")
    reader = {"camwarp": _f.read_camwarp, "opencv-json": _f.read_opencv, "transforms": _f.read_transforms}[kind]
    return reader(fn, path, data, dtype)


def write_camera(path: str | Path, camera: Camera, format: str | None = None) -> None:
    """Write a camera to a file, converting the principal point to the format's pixel frame.

    The format comes from ``format`` or the extension (``.json`` means camwarp's own JSON; pass
    ``format="opencv-json"`` or ``"transforms"`` for the others). Floats are written with ``repr``
    (exact). A batch is written as one COLMAP line per entry (ids 1..N), as one ``frames[i]`` per entry
    of a transforms.json (flattened to ``(N,)``), or as nested lists in camwarp JSON; OpenCV files
    hold one camera.

    Args:
        path: the file (overwritten).
        camera: the camera, any batch shape.
        format: one of :data:`FORMATS`, or None to infer it.

    Raises:
        CameraFileError: a camera the format cannot hold exactly (skew in COLMAP or transforms.json,
            a batch in an OpenCV file, unsupported coefficients).
        ValueError: an unknown ``format`` or extension.

    Example:
        >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "calib.yaml")
        >>> write_camera(p, Camera(500.0, 500.0, 319.5, 239.5, 640, 480))
        >>> open(p).readline()
        '%YAML:1.0\\n'
    """
    fn, path = "write_camera", Path(path)
    kind = _sniff(fn, path, format)
    kind = "camwarp" if kind == "json" else kind
    entries = _f.entries(fn, camera)
    batched = tuple(camera.batch_shape) != ()
    if kind == "camwarp":
        text = json.dumps(_f.camwarp_dict(camera), indent=2) + "\n"
    elif kind == "colmap":
        text = _f.colmap_text(fn, path, list(enumerate(entries, start=1)), None)
    elif kind == "transforms":
        text = json.dumps(_f.transforms_dict(fn, path, entries, batched), indent=2) + "\n"
    else:
        if batched:
            raise _f.error(fn, path, f"an OpenCV calibration file holds one camera, got batch shape "
                         f"{tuple(camera.batch_shape)}; write each entry to its own file")
        text = (_f.opencv_yaml_text(entries[0]) if kind == "opencv-yaml" else
                json.dumps(_f.opencv_json_dict(entries[0]), indent=4) + "\n")
    path.write_text(text)

