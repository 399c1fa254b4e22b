"""File formats behind :mod:`camwarp.camera.io`: parsers and emitters of each format's fields.

Private: :mod:`camwarp.camera.io` holds the public readers and writers, the format table and the
conventions (``docs/camera_io.md``). Parsers return :class:`Camera` objects; emitters take plain
``dict`` entries from :func:`entries` (Python floats, OpenCV frame) and shift the principal point to
the file's frame themselves, in float64.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from ..errors import CameraFileError
from .model import Camera

__all__: list[str] = []

CAMWARP_TAG = "camwarp.camera/1"
# COLMAP models: parameter order as in InitializeParamsInfo() of colmap/src/colmap/sensor/models.h.
# "f" is one focal length (fx = fy); the parameters after cx, cy are the distortion coefficients in
# OpenCV's order (k1, k2, p1, p2, k3, k4, k5, k6), or (k1, k2, k3, k4) for OPENCV_FISHEYE.
COLMAP_MODELS: dict[str, tuple[tuple[str, ...], str]] = {
    "SIMPLE_PINHOLE": (("f", "cx", "cy"), "opencv"),
    "PINHOLE": (("fx", "fy", "cx", "cy"), "opencv"),
    "SIMPLE_RADIAL": (("f", "cx", "cy", "k"), "opencv"),
    "RADIAL": (("f", "cx", "cy", "k1", "k2"), "opencv"),
    "OPENCV": (("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"), "opencv"),
    "OPENCV_FISHEYE": (("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"), "fisheye"),
    "FULL_OPENCV": (("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"), "opencv"),
}
NS_KEYS = ("camera_model", "fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2")


def error(fn: str, path: object, message: str, line: int | None = None, field: str | None = None) -> CameraFileError:
    where = f"{path}" + (f", line {line}" if line is not None else "") + (f", field {field!r}" if field else "")
    return CameraFileError(f"{fn}: {where}: {message}")


def plain(t: torch.Tensor) -> list | float:
    """Tensor -> nested Python floats (the IO boundary: values go to the CPU). A float32/float16
    value becomes the shortest decimal that rounds back to it (``-0.00344584``, not
    ``-0.00344583997502923``), so reading the file in that dtype gives the same bits."""
    t = t.detach().cpu()
    if t.dtype in (torch.float32, torch.float16):
        a = t.numpy()
        t = torch.tensor([float(str(v)) for v in a.reshape(-1)], dtype=torch.float64).reshape(t.shape)
    return t.to(torch.float64).tolist()


def entries(fn: str, camera: Camera) -> list[dict]:
    """A camera's batch as a flat list of plain-float dicts, principal point in OpenCV's frame."""
    if not isinstance(camera, Camera):
        raise TypeError(f"{fn}: camera must be a camwarp.Camera, got {type(camera).__name__}")
    K = plain(camera.K.reshape(-1, 3, 3))
    dist = plain(camera.dist.reshape(len(K), camera.dist.shape[-1]))
    W, H = camera.size
    return [dict(fx=k[0][0], fy=k[1][1], cx=k[0][2], cy=k[1][2], skew=k[0][1], width=W, height=H, dist=d,
                 model=camera.model) for k, d in zip(K, dist)]


def build(fn: str, path: object, e: dict, dtype: torch.dtype, convention: str, line: int | None = None) -> Camera:
    """One Camera from a dict of plain values; the Camera's own checks become CameraFileErrors."""
    try:
        t = {k: torch.as_tensor(e[k], dtype=dtype) for k in ("fx", "fy", "cx", "cy", "skew")}
        dist = torch.as_tensor(e["dist"], dtype=dtype)
        return Camera(t["fx"], t["fy"], t["cx"], t["cy"], e["width"], e["height"], skew=t["skew"], dist=dist,
                      model=e["model"], convention=convention)
    except (TypeError, ValueError, RuntimeError) as err:
        raise error(fn, path, f"invalid camera: {err}", line) from None


def number(fn: str, path: object, text: object, field: str, line: int | None = None, integer: bool = False):
    try:
        value = float(text) if not isinstance(text, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if integer and (not math.isfinite(value) or value != int(value) or value <= 0):
        raise error(fn, path, f"expected a positive integer, got {text!r}", line, field)
    if not integer and not math.isfinite(value):
        raise error(fn, path, f"expected a finite number, got {text!r}", line, field)
    return int(value) if integer else value


def trim_dist(dist: list[float], n_max: int) -> list[float]:
    """``dist`` with zero coefficients past ``n_max`` dropped, or None when a non-zero one is there."""
    return None if any(d != 0 for d in dist[n_max:]) else list(dist[:n_max])


# ------------------------------------------------------------------------------------------- COLMAP
def parse_colmap(fn: str, path: Path, dtype: torch.dtype) -> dict[int, Camera]:
    """Parse a COLMAP cameras.txt (see ``read_colmap_cameras``)."""
    cameras: dict[int, Camera] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        tokens = raw.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) < 4:
            raise error(fn, path, f"expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]', got {raw.strip()!r}", lineno)
        if not re.fullmatch(r"\d+", tokens[0]):
            raise error(fn, path, f"expected a non-negative integer, got {tokens[0]!r}", lineno, "CAMERA_ID")
        cam_id, model = int(tokens[0]), tokens[1]
        if model not in COLMAP_MODELS:
            raise error(fn, path, f"unknown or unsupported camera model {model!r}; supported: "
                         f"{', '.join(COLMAP_MODELS)}", lineno, "MODEL")
        names, kind = COLMAP_MODELS[model]
        width = number(fn, path, tokens[2], "WIDTH", lineno, integer=True)
        height = number(fn, path, tokens[3], "HEIGHT", lineno, integer=True)
        if len(tokens) - 4 != len(names):
            raise error(fn, path, f"{model} takes {len(names)} parameters ({', '.join(names)}), got "
                         f"{len(tokens) - 4}", lineno, "PARAMS")
        p = {n: number(fn, path, t, n, lineno) for n, t in zip(names, tokens[4:])}
        fx, fy = (p["f"], p["f"]) if "f" in p else (p["fx"], p["fy"])
        dist = [p[n] for n in names if n not in ("f", "fx", "fy", "cx", "cy")]
        if cam_id in cameras:
            raise error(fn, path, f"duplicate camera id {cam_id}", lineno, "CAMERA_ID")
        entry = dict(fx=fx, fy=fy, cx=p["cx"], cy=p["cy"], skew=0.0, width=width, height=height, dist=dist,
                     model=kind)
        cameras[cam_id] = build(fn, path, entry, dtype, "colmap", lineno)
    return cameras


def colmap_line(fn: str, path: object, cam_id: int, e: dict, model: str | None) -> str:
    if e["skew"] != 0:
        raise error(fn, path, f"camera {cam_id}: COLMAP models have no skew, got skew={e['skew']!r}")
    dist, same_f = e["dist"], e["fx"] == e["fy"]
    if model is None:  # the smallest model that holds this camera exactly
        if e["model"] == "fisheye":
            model = "OPENCV_FISHEYE"
        else:
            nz = max((i + 1 for i, d in enumerate(dist) if d != 0), default=0)
            model = ("SIMPLE_PINHOLE" if same_f else "PINHOLE") if nz == 0 else (
                "SIMPLE_RADIAL" if nz == 1 and same_f else "RADIAL" if nz == 2 and same_f else
                "OPENCV" if nz <= 4 else "FULL_OPENCV")
    if model not in COLMAP_MODELS:
        raise ValueError(f"{fn}: model must be one of {', '.join(COLMAP_MODELS)} or None, got {model!r}")
    names, kind = COLMAP_MODELS[model]
    n_dist = len(names) - (3 if "f" in names else 4)
    kept = trim_dist(dist, n_dist)
    if kind != e["model"] or kept is None or ("f" in names and not same_f):
        raise error(fn, path, f"camera {cam_id} ({e['model']} model, fx={e['fx']!r}, fy={e['fy']!r}, "
                     f"dist={dist}) cannot be written exactly as COLMAP {model}", field="MODEL")
    kept += [0.0] * (n_dist - len(kept))
    # COLMAP's corner frame: the top-left pixel centre is (0.5, 0.5).
    focal = [e["fx"]] if "f" in names else [e["fx"], e["fy"]]
    params = focal + [e["cx"] + 0.5, e["cy"] + 0.5] + kept
    return f"{cam_id} {model} {e['width']} {e['height']} " + " ".join(map(repr, params))


def colmap_text(fn: str, path: object, items: list[tuple[int, dict]], model: str | None) -> str:
    lines = [colmap_line(fn, path, cam_id, e, model) for cam_id, e in items]
    header = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
              f"# Number of cameras: {len(lines)}"]
    return "\n".join(header + lines) + "\n"


# ------------------------------------------------------------------------------ OpenCV FileStorage
def cv_yaml_load(fn: str, path: Path) -> dict:
    """Parse what ``cv2.FileStorage`` writes as YAML; a matrix becomes ``{rows, cols, dt, data, line}``
    with ``data`` parsed from the raw text (``float('2220.')``), so no value goes through PyYAML's
    float resolver."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def matrix(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
        out = {"line": node.start_mark.line + 1}
        for key, value in node.value:
            if key.value == "data" and isinstance(value, yaml.SequenceNode):
                out["data"] = [{".inf": "inf", "-.inf": "-inf", ".nan": "nan"}.get(v.value.lower(), v.value)
                               for v in value.value]
            else:
                out[key.value] = loader.construct_object(value)
        return out

    for tag in ("tag:yaml.org,2002:opencv-matrix", "!opencv-matrix"):
        Loader.add_constructor(tag, matrix)
    # "%YAML:1.0" (OpenCV 3/4) is not valid YAML and "%YAML 1.2" (OpenCV 5) is newer than PyYAML
    # knows: blank the directive, keeping the line numbers.
    text = re.sub(r"\A%YAML[: ][^\n]*", "", path.read_text())
    try:
        data = yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise error(fn, path, f"malformed YAML: {getattr(err, 'problem', err)}",
                     None if mark is None else mark.line + 1) from None
    if not isinstance(data, dict):
        raise error(fn, path, "expected a mapping of OpenCV FileStorage nodes")
    return data


def cv_matrix(fn: str, path: object, data: dict, field: str, shapes: str) -> list[float] | None:
    node = data.get(field)
    if node is None:
        return None
    if not isinstance(node, dict) or "data" not in node or not {"rows", "cols"} <= set(node):
        raise error(fn, path, "expected an opencv-matrix (rows, cols, dt, data)", node_line(node), field)
    values = [number(fn, path, v, field, node_line(node)) for v in node["data"]]
    rows, cols = node["rows"], node["cols"]
    if not isinstance(rows, int) or not isinstance(cols, int) or rows * cols != len(values):
        raise error(fn, path, f"rows x cols = {rows} x {cols} does not match {len(values)} data values",
                     node_line(node), field)
    if shapes == "3x3" and (rows, cols) != (3, 3):
        raise error(fn, path, f"expected a 3x3 matrix, got {rows}x{cols}", node_line(node), field)
    if shapes == "vector" and min(rows, cols) > 1:
        raise error(fn, path, f"expected a row or column vector, got {rows}x{cols}", node_line(node), field)
    return values


def node_line(node: object) -> int | None:
    return node.get("line") if isinstance(node, dict) else None


def read_opencv(fn: str, path: Path, data: dict, dtype: torch.dtype) -> Camera:
    K = cv_matrix(fn, path, data, "camera_matrix", "3x3")
    dist = cv_matrix(fn, path, data, "distortion_coefficients", "vector") or []
    for name in ("camera_matrix", "image_width", "image_height"):
        if data.get(name) is None:
            raise error(fn, path, "missing field", field=name)
    width = number(fn, path, data["image_width"], "image_width", integer=True)
    height = number(fn, path, data["image_height"], "image_height", integer=True)
    if [K[3], K[6], K[7], K[8]] != [0.0, 0.0, 0.0, 1.0]:
        raise error(fn, path, f"a camera matrix has rows [fx s cx; 0 fy cy; 0 0 1], got {K}",
                     node_line(data["camera_matrix"]), "camera_matrix")
    label = str(data.get("distortion_model", "opencv")).lower()
    model = "fisheye" if label in ("fisheye", "equidistant") else "opencv"
    kept = trim_dist(dist, 4 if model == "fisheye" else 8)
    if kept is None:
        raise error(fn, path, f"{len(dist)} coefficients {dist}: camwarp's {model} model holds at most "
                     f"{4 if model == 'fisheye' else 8} (thin-prism and tilt terms are not supported)",
                     node_line(data["distortion_coefficients"]), "distortion_coefficients")
    entry = dict(fx=K[0], skew=K[1], cx=K[2], fy=K[4], cy=K[5], width=width, height=height, dist=kept, model=model)
    return build(fn, path, entry, dtype, "opencv")


def opencv_yaml_text(e: dict) -> str:
    def matrix(name: str, rows: int, cols: int, values: list[float]) -> str:
        data = ", ".join(map(repr, values))
        return (f"{name}: !!opencv-matrix\n   rows: {rows}\n   cols: {cols}\n   dt: d\n"
                f"   data: [{' ' + data + ' ' if data else ''}]\n")

    K = [e["fx"], e["skew"], e["cx"], 0.0, e["fy"], e["cy"], 0.0, 0.0, 1.0]
    text = f"%YAML:1.0\n---\nimage_width: {e['width']}\nimage_height: {e['height']}\n"
    text += matrix("camera_matrix", 3, 3, K) + matrix("distortion_coefficients", 1, len(e["dist"]), e["dist"])
    return text + ("distortion_model: fisheye\n" if e["model"] == "fisheye" else "")


def opencv_json_dict(e: dict) -> dict:
    def matrix(rows: int, cols: int, values: list[float]) -> dict:
        return {"type_id": "opencv-matrix", "rows": rows, "cols": cols, "dt": "d", "data": values}

    K = [e["fx"], e["skew"], e["cx"], 0.0, e["fy"], e["cy"], 0.0, 0.0, 1.0]
    out = {"image_width": e["width"], "image_height": e["height"], "camera_matrix": matrix(3, 3, K),
           "distortion_coefficients": matrix(1, len(e["dist"]), e["dist"])}
    return out | ({"distortion_model": "fisheye"} if e["model"] == "fisheye" else {})


# ------------------------------------------------------------------------- nerfstudio transforms.json
def read_transforms(fn: str, path: Path, data: dict, dtype: torch.dtype) -> Camera:
    """nerfstudio's cx, cy are in the corner frame: its rays go through pixel index + 0.5
    (``Cameras.get_image_coords(pixel_offset=0.5)``, then ``(x - cx) / fx``) and its COLMAP import
    copies COLMAP's cx unchanged (``process_data/colmap_utils.py: parse_colmap_camera_params``).
    Per-frame keys in ``frames[i]`` override the global ones (as nerfstudio's dataparser does)."""
    frames = data.get("frames") or []
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        raise error(fn, path, "expected a list of objects", field="frames")
    per_frame = [f for f in frames if any(k in f for k in NS_KEYS)]
    sources = [(data | f, f"frames[{i}].") for i, f in enumerate(frames)] if per_frame else [(data, "")]
    entries = [transforms_entry(fn, path, d, where) for d, where in sources]
    sizes = {(e["width"], e["height"]) for e in entries}
    if len(sizes) > 1 or len({e["model"] for e in entries}) > 1:
        raise error(fn, path, f"frames differ in size {sorted(sizes)} or camera_model; a Camera batch shares "
                     "one size and model", field="frames")
    if not per_frame:
        return build(fn, path, entries[0], dtype, "colmap")
    n = max(len(e["dist"]) for e in entries)
    batch = {k: [e[k] for e in entries] for k in ("fx", "fy", "cx", "cy", "skew")}
    batch["dist"] = [e["dist"] + [0.0] * (n - len(e["dist"])) for e in entries]
    return build(fn, path, batch | {"width": entries[0]["width"], "height": entries[0]["height"],
                                     "model": entries[0]["model"]}, dtype, "colmap")


def transforms_entry(fn: str, path: Path, d: dict, where: str) -> dict:
    label = d.get("camera_model", "OPENCV")
    if label not in ("OPENCV", "OPENCV_FISHEYE", "PINHOLE", "SIMPLE_PINHOLE"):
        raise error(fn, path, f"unsupported camera_model {label!r} (OPENCV, OPENCV_FISHEYE, PINHOLE, "
                     "SIMPLE_PINHOLE)", field=where + "camera_model")
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        if key not in d:
            raise error(fn, path, "missing field", field=where + key)
    e = {k: number(fn, path, d[n], where + n) for k, n in (("fx", "fl_x"), ("fy", "fl_y"), ("cx", "cx"),
                                                           ("cy", "cy"))}
    e |= {"width": number(fn, path, d["w"], where + "w", integer=True),
          "height": number(fn, path, d["h"], where + "h", integer=True), "skew": 0.0}
    fisheye = label == "OPENCV_FISHEYE"
    order = ("k1", "k2", "k3", "k4") if fisheye else ("k1", "k2", "p1", "p2", "k3")
    # nerfstudio's perspective k4 is an r^8 term of a polynomial, not OpenCV's rational k4.
    if not fisheye and number(fn, path, d.get("k4", 0.0), where + "k4") != 0:
        raise error(fn, path, "a non-zero perspective k4 (nerfstudio's r^8 term) has no OpenCV equivalent",
                     field=where + "k4")
    n = max((i + 1 for i, k in enumerate(order) if k in d), default=0)
    e["dist"] = [number(fn, path, d.get(k, 0.0), where + k) for k in order[:n]]
    return e | {"model": "fisheye" if fisheye else "opencv"}


def transforms_dict(fn: str, path: object, entries: list[dict], batched: bool) -> dict:
    def fields(e: dict) -> dict:
        if e["skew"] != 0:
            raise error(fn, path, f"transforms.json has no skew, got skew={e['skew']!r}", field="skew")
        fisheye = e["model"] == "fisheye"
        order = ("k1", "k2", "k3", "k4") if fisheye else ("k1", "k2", "p1", "p2", "k3")
        if len(e["dist"]) > len(order):
            raise error(fn, path, f"{len(e['dist'])} distortion coefficients; transforms.json holds "
                         f"{', '.join(order)}", field="dist")
        label = "OPENCV_FISHEYE" if fisheye else "OPENCV" if e["dist"] else "PINHOLE"
        out = {"camera_model": label, "fl_x": e["fx"], "fl_y": e["fy"], "cx": e["cx"] + 0.5,
               "cy": e["cy"] + 0.5, "w": e["width"], "h": e["height"]}  # corner frame, as nerfstudio
        return out | dict(zip(order, e["dist"]))

    if batched:
        return {"frames": [fields(e) for e in entries]}
    return fields(entries[0])


# ---------------------------------------------------------------------------------- camwarp JSON
def read_camwarp(fn: str, path: Path, data: dict, dtype: torch.dtype) -> Camera:
    if data.get("format") != CAMWARP_TAG:
        raise error(fn, path, f"unknown version {data.get('format')!r}, expected {CAMWARP_TAG!r}", field="format")
    for key in ("model", "width", "height", "fx", "fy", "cx", "cy"):
        if key not in data:
            raise error(fn, path, "missing field", field=key)
    convention = data.get("convention", "opencv")
    if convention not in ("opencv", "colmap"):
        raise error(fn, path, f"expected 'opencv' or 'colmap', got {convention!r}", field="convention")
    entry = {k: data[k] for k in ("model", "fx", "fy", "cx", "cy")} | {"skew": data.get("skew", 0.0),
                                                                     "dist": data.get("dist", [])}
    entry |= {k: number(fn, path, data[k], k, integer=True) for k in ("width", "height")}
    for key in ("fx", "fy", "cx", "cy", "skew", "dist"):
        if not is_numeric(entry[key]):
            raise error(fn, path, f"expected a number or a nested list of numbers, got {entry[key]!r}", field=key)
    return build(fn, path, entry, dtype, convention)


def is_numeric(value: object) -> bool:
    if isinstance(value, list):
        return all(is_numeric(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def camwarp_dict(camera: Camera) -> dict:
    K = camera.K
    W, H = camera.size
    return {"format": CAMWARP_TAG, "model": camera.model, "width": W, "height": H,
            "fx": plain(K[..., 0, 0]), "fy": plain(K[..., 1, 1]), "cx": plain(K[..., 0, 2]),
            "cy": plain(K[..., 1, 2]), "skew": plain(K[..., 0, 1]), "dist": plain(camera.dist),
            "convention": "opencv"}

