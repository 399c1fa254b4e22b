"""``camwarp camera``: print or convert camera intrinsics after a chain of image ops.

The camera comes from a FILE (COLMAP ``cameras.txt``, OpenCV YAML/JSON, transforms.json, camwarp
JSON) and/or flags (``--fx --fy --cx --cy --width --height --dist --model --convention``; flags
override the file's values). The image ops (``--center-crop --resize --crop --pad --hflip --vflip
--rot90``) run in command-line order; the result is printed as a table (or ``--json``) or written
(``--out FILE``, format by extension), with ``R`` when an op changed the orientation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from ..camera import Camera
from ..camera import io as camera_io
from ..camera.distortion import DIST_NAMES
from . import CliError
from ._args import finite_float, positive_float, positive_int
from ._ops import add_op_arguments, apply_ops_to_camera, parse_ops

__all__ = ["register", "run"]

_EXAMPLE = ("example: camwarp camera --fx 2220 --fy 2220 --cx 1404 --cy 1064 --width 2880 --height 2160 "
            "--dist -0.00344584,0.120934 --center-crop 1920x1080 --resize 640x360")


def _coefficients(text: str) -> list[float]:
    if not text.strip():
        return []
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        values = [math.nan]
    if not all(map(math.isfinite, values)) or len(values) > 8:
        raise argparse.ArgumentTypeError(f"expected up to 8 comma-separated numbers k1,k2,p1,p2,... "
                                         f"(fisheye: k1,k2,k3,k4), got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``camera`` sub-command to ``subparsers``."""
    text = __doc__.split("\n\n")[1].replace("``", "").replace("\n", " ")
    p = subparsers.add_parser("camera", help="print or convert camera intrinsics after a chain of image ops",
                              description=text, epilog=_EXAMPLE)
    p.add_argument("file", nargs="?", metavar="FILE", help="camera file: .txt COLMAP, .yaml/.yml OpenCV, "
                   ".json camwarp / OpenCV / transforms.json")
    p.add_argument("--camera-id", type=int, metavar="ID", help="pick one camera of a COLMAP file")
    g = p.add_argument_group("intrinsics (override FILE's values)")
    g.add_argument("--fx", type=positive_float, metavar="F", help="focal length in pixels along x")
    g.add_argument("--fy", type=positive_float, metavar="F", help="focal length along y (default: --fx)")
    g.add_argument("--cx", type=finite_float, metavar="F", help="principal point x (frame: --convention)")
    g.add_argument("--cy", type=finite_float, metavar="F", help="principal point y (frame: --convention)")
    g.add_argument("--skew", type=finite_float, metavar="F", help="K[0, 1] (default 0)")
    g.add_argument("--width", type=positive_int, metavar="W", help="image width in pixels")
    g.add_argument("--height", type=positive_int, metavar="H", help="image height in pixels")
    g.add_argument("--dist", type=_coefficients, metavar="K1,K2,...",
                   help="distortion: OpenCV order k1,k2,p1,p2,k3,... or fisheye k1,k2,k3,k4")
    g.add_argument("--model", choices=("opencv", "fisheye"), help="distortion model (default opencv)")
    g.add_argument("--convention", choices=("opencv", "colmap"), default="opencv",
                   help="frame of --cx/--cy: opencv (top-left pixel centre at 0,0; default) or colmap (0.5,0.5)")
    add_op_arguments(p)
    out = p.add_argument_group("output").add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON: {camera: camwarp camera JSON, R: 3x3}")
    out.add_argument("--out", metavar="FILE", help="write the camera (format by extension; .json = camwarp)")
    p.add_argument("--format", choices=camera_io.FORMATS, help="format of --out (default: from its extension; "
                   ".json means camwarp JSON)")
    p.set_defaults(func=run)
    return p


def _load(args: argparse.Namespace) -> dict[int | None, Camera]:
    """The input cameras: ``{camera_id: Camera}`` for a COLMAP file, else ``{None: Camera}``."""
    flags = {k: getattr(args, k) for k in ("fx", "fy", "cx", "cy", "skew", "width", "height", "dist", "model")}
    given = {k: v for k, v in flags.items() if v is not None}
    if args.file is None:
        if args.camera_id is not None:
            raise CliError("--camera-id needs a COLMAP FILE")
        missing = [f"--{k}" for k in ("fx", "cx", "cy", "width", "height") if k not in given]
        if missing:
            raise CliError(f"missing {', '.join(missing)}: give a camera FILE or all of --fx --cx --cy --width "
                           "--height")
        values = {k: torch.tensor(given.get(k, given["fx"] if k == "fy" else 0.0), dtype=torch.float64)
                  for k in ("fx", "fy", "cx", "cy", "skew")}
        dist = torch.tensor(given.get("dist", []), dtype=torch.float64)
        return {None: Camera(**values, width=given["width"], height=given["height"], dist=dist,
                             model=given.get("model", "opencv"), convention=args.convention)}
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"FILE {args.file!r}: no such file")
    if path.suffix.lower() == ".txt":
        cameras: dict[int | None, Camera] = dict(camera_io.read_colmap_cameras(path))
        if args.camera_id is not None:
            if args.camera_id not in cameras:
                raise CliError(f"--camera-id {args.camera_id}: {args.file} holds cameras "
                               f"{', '.join(map(str, cameras))}")
            cameras = {args.camera_id: cameras[args.camera_id]}
        if not cameras:
            raise CliError(f"FILE {args.file!r}: no camera lines")
    elif args.camera_id is not None:
        raise CliError("--camera-id applies to COLMAP cameras.txt files only")
    else:
        cameras = {None: camera_io.read_camera(path)}
    return {i: _override(c, given, args.convention) for i, c in cameras.items()} if given else cameras


def _override(camera: Camera, given: dict, convention: str) -> Camera:
    """``camera`` with the flags' values; a principal point is given whole, in ``convention``."""
    fields = {k: torch.tensor(v, dtype=camera.dtype) if k in ("fx", "fy", "skew", "dist") else v
              for k, v in given.items() if k not in ("cx", "cy")}
    if "cx" in given or "cy" in given:
        cx, cy = camera.principal_point(convention).unbind(-1)
        fields["cx"] = torch.tensor(given["cx"], dtype=camera.dtype) if "cx" in given else cx
        fields["cy"] = torch.tensor(given["cy"], dtype=camera.dtype) if "cy" in given else cy
        fields["convention"] = convention
    return camera.replace(**fields)


def _is_identity(R: torch.Tensor) -> bool:
    return bool(torch.allclose(R, torch.eye(3, dtype=R.dtype).expand_as(R), atol=1e-9, rtol=0))


def _fmt(x: float) -> str:
    return f"{x + 0.0:.12g}"


def _table(camera: Camera, R: torch.Tensor, title: str | None) -> str:
    rows = [] if title is None else [title]
    K = camera.K.reshape(-1, 3, 3).tolist()
    dist = camera.dist.reshape(len(K), camera.dist.shape[-1]).tolist()
    Rs = R.reshape(-1, 3, 3).tolist()
    names = DIST_NAMES[camera.model].split(", ")
    for i, (k, d) in enumerate(zip(K, dist)):
        if len(K) > 1:
            rows.append(f"[{i}]")
        rows += [f"  size     {camera.width} x {camera.height}", f"  model    {camera.model}",
                 f"  fx       {_fmt(k[0][0])}", f"  fy       {_fmt(k[1][1])}",
                 f"  cx       {_fmt(k[0][2]):<20}(corner frame: {_fmt(k[0][2] + 0.5)})",
                 f"  cy       {_fmt(k[1][2]):<20}(corner frame: {_fmt(k[1][2] + 0.5)})"]
        if k[0][1] != 0:
            rows.append(f"  skew     {_fmt(k[0][1])}")
        rows.append("  dist     " + (", ".join(f"{n}={_fmt(v)}" for n, v in zip(names, d)) or "none"))
        if not _is_identity(R):
            rows.append("  R        (orientation changed: the new camera sees R @ X)")
            rows += [f"           [{', '.join(f'{_fmt(v):>3}' for v in r)}]" for r in Rs[min(i, len(Rs) - 1)]]
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    """Run ``camwarp camera`` on parsed arguments; return the exit code."""
    cameras = _load(args)
    ops = parse_ops(args)
    results = {i: apply_ops_to_camera(c, ops) for i, c in cameras.items()}
    if args.out is not None:
        out = Path(args.out)
        keys = list(results)
        if keys == [None]:
            camera_io.write_camera(out, results[None][0], args.format)
        elif out.suffix.lower() == ".txt" and args.format in (None, "colmap"):
            camera_io.write_colmap_cameras(out, {i: c for i, (c, _) in results.items()})
        elif len(keys) == 1:
            camera_io.write_camera(out, results[keys[0]][0], args.format)
        else:
            raise CliError(f"--out {args.out}: {len(keys)} cameras need a COLMAP .txt file (or pick one with "
                           "--camera-id)")
        print(f"wrote {out}")
        for i, (_, R) in results.items():
            if not _is_identity(R):
                label = "" if i is None else f" (camera {i})"
                print(f"R{label} = {json.dumps(R.tolist())}  (orientation changed: the new camera sees R @ X)")
        return 0
    if args.json:
        dump = {i: {"camera": camera_io.camera_to_dict(c), "R": R.tolist()} for i, (c, R) in results.items()}
        one = next(iter(dump.values())) if len(dump) == 1 else {"cameras": {str(i): v for i, v in dump.items()}}
        print(json.dumps(one, indent=2))
        return 0
    blocks = [_table(c, R, None if i is None else f"camera {i}") for i, (c, R) in results.items()]
    print("\n".join(blocks))
    sys.stdout.flush()
    return 0
