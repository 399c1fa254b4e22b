"""Image-op flags shared by the sub-commands (``camwarp camera``, ``camwarp prepare``), kept in command-line order.

``add_op_arguments(parser)`` adds ``--center-crop WxH --resize WxH --crop x0,y0,w,h --pad l,t,r,b
--hflip --vflip --rot90 K``; each flag appends ``(name, params)`` to ``args.ops`` as it is parsed, so
``--resize 640x360 --hflip`` and ``--hflip --resize 640x360`` are different chains. An op becomes one
src->dst pixel matrix from :mod:`camwarp.geometry` (:func:`op_matrix`); the camera follows through
``Camera.transform`` (:func:`apply_ops_to_camera`). Other commands may register more ops with
:func:`add_op` (e.g. ``--undistort``) and handle them themselves.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import geometry
from ..camera import Camera
from . import CliError

__all__ = ["OPS", "add_op", "add_op_arguments", "parse_ops", "op_matrix", "compose_ops", "apply_ops_to_camera"]

Op = tuple[str, tuple]


def _ints(text: str, n: int, sep: str, what: str, positive: bool) -> tuple[int, ...]:
    parts = text.split(sep)
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != n or (positive and min(values) <= 0):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return values


def parse_wh(text: str) -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)``: a size ``WxH`` of positive ints."""
    return _ints(text.lower(), 2, "x", "WxH with positive integers (e.g. 640x360)", True)  # type: ignore[return-value]


def parse_crop(text: str) -> tuple[float | int, float | int, int, int]:
    """``"10,20,640,360"`` -> ``(10, 20, 640, 360)``: offsets (any finite numbers) and a positive size."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 4:
            raise ValueError
        x0, y0 = (int(p) if re.fullmatch(r"[-+]?\d+", p) else float(p) for p in parts[:2])
        w, h = int(parts[2]), int(parts[3])
        if w <= 0 or h <= 0 or not math.isfinite(x0) or not math.isfinite(y0):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x0,y0,w,h (offsets, then a positive size), got {text!r}") from None
    return x0, y0, w, h


def parse_pad(text: str) -> tuple[int, int, int, int]:
    """``"8,8,8,8"`` -> ``(8, 8, 8, 8)``: whole pixels left, top, right, bottom (negative crops)."""
    return _ints(text, 4, ",", "l,t,r,b with integers (e.g. 0,20,0,20)", False)  # type: ignore[return-value]


def parse_k(text: str) -> tuple[int]:
    """``"3"`` -> ``(3,)``: quarter turns counter-clockwise (negative: clockwise)."""
    return _ints(text, 1, ",", "an integer number of quarter turns", False)  # type: ignore[return-value]


#: name -> (flag, metavar, parser of the flag's text or None for a switch, help).
OPS: dict[str, tuple[str, str | None, Callable[[str], tuple] | None, str]] = {
    "center_crop": ("--center-crop", "WxH", parse_wh, "crop the centred WxH window (offsets floored)"),
    "resize": ("--resize", "WxH", parse_wh, "resize to WxH, edges to edges (as cv2.resize)"),
    "crop": ("--crop", "x0,y0,w,h", parse_crop, "crop the w x h window whose top-left pixel is (x0, y0)"),
    "pad": ("--pad", "l,t,r,b", parse_pad, "pad by whole pixels (negative values crop)"),
    "hflip": ("--hflip", None, None, "flip horizontally (changes the orientation: prints R)"),
    "vflip": ("--vflip", None, None, "flip vertically (changes the orientation: prints R)"),
    "rot90": ("--rot90", "K", parse_k, "turn K quarter turns counter-clockwise, as torch.rot90 (prints R)"),
}


class _AppendOp(argparse.Action):
    """Append ``(op name, params)`` to ``namespace.ops`` in command-line order."""

    def __init__(self, option_strings: Sequence[str], dest: str, op: str, parse: Callable | None = None,
                 **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0 if parse is None else None, **kwargs)
        self.op, self.parse = op, parse

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if self.parse is not None:
            try:
                values = self.parse(values)
            except argparse.ArgumentTypeError as err:
                raise argparse.ArgumentError(self, str(err)) from None
        ops = list(getattr(namespace, self.dest, None) or [])
        ops.append((self.op, tuple(values or ())))
        setattr(namespace, self.dest, ops)


def allow_negative_values(parser: argparse.ArgumentParser) -> None:
    """Let option values such as ``-0.0034,0.12`` or ``-1e-3`` through (Python < 3.13 takes any
    ``-``-prefixed word that is not a plain negative number for an unknown option)."""
    parser._negative_number_matcher = re.compile(r"^-\.?\d")  # noqa: SLF001 (no public hook)


def add_op(parser: argparse.ArgumentParser, name: str, flag: str, help: str, parse: Callable | None = None,
           metavar: str | None = None) -> None:
    """Add one op flag that appends ``(name, parse(text))`` (or ``(name, ())`` for a switch) to ``args.ops``."""
    parser.add_argument(flag, dest="ops", action=_AppendOp, op=name, parse=parse, metavar=metavar, help=help,
                        default=None)


def add_op_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the image-op flags of :data:`OPS` to ``parser`` (in an argument group, returned)."""
    allow_negative_values(parser)
    group = parser.add_argument_group("image ops (applied in the order given)")
    for name, (flag, metavar, parse, text) in OPS.items():
        add_op(group, name, flag, text, parse, metavar)  # type: ignore[arg-type]
    return group


def parse_ops(args: argparse.Namespace) -> list[Op]:
    """The ops of ``args`` in command-line order, e.g. ``[("center_crop", (1920, 1080)), ("resize", (640, 360))]``."""
    return list(getattr(args, "ops", None) or [])


def op_matrix(name: str, params: tuple, size: Sequence[int], *, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None) -> tuple[Tensor, tuple[int, int]]:
    """Return the src->dst pixel matrix ``(3, 3)`` of one op on a ``size = (W, H)`` image, and the new size.

    The matrices come from :mod:`camwarp.geometry` (OpenCV centre frame); a centre crop uses the
    offsets of :meth:`camwarp.Camera.center_crop`, ``((W - w) // 2, (H - h) // 2)``.

    Args:
        name, params: one op as :func:`parse_ops` gives it.
        size: the image size ``(W, H)`` before the op.
        dtype, device: of the matrix (float64 on the CPU by default).

    Returns:
        ``(A, (W', H'))``.

    Raises:
        CliError: an unknown op, or one that leaves no image (names the flag).

    Example:
        >>> op_matrix("center_crop", (1920, 1080), (2880, 2160))[0][:2, 2].tolist()
        [-480.0, -540.0]
    """
    W, H = size
    kw = {"dtype": dtype, "device": device}
    flag = OPS[name][0] if name in OPS else name
    if name == "center_crop":
        (w, h) = params
        return geometry.crop_matrix((W - w) // 2, (H - h) // 2, **kw), (w, h)
    if name == "crop":
        x0, y0, w, h = params
        return geometry.crop_matrix(x0, y0, **kw), (w, h)
    if name == "resize":
        return geometry.resize_matrix((W, H), params, **kw), tuple(params)  # type: ignore[return-value]
    if name == "pad":
        left, top, right, bottom = params
        new = (W + left + right, H + top + bottom)
        if min(new) <= 0:
            raise CliError(f"{flag} {','.join(map(str, params))}: the {W}x{H} image would become {new[0]}x{new[1]}")
        return geometry.pad_matrix(left, top, **kw), new
    if name == "hflip":
        return geometry.hflip_matrix(W, **kw), (W, H)
    if name == "vflip":
        return geometry.vflip_matrix(H, **kw), (W, H)
    if name == "rot90":
        (k,) = params
        return geometry.rot90_matrix(k, (W, H), **kw), ((W, H) if k % 2 == 0 else (H, W))
    raise CliError(f"{flag}: this command does not handle it (known ops: {', '.join(o[0] for o in OPS.values())})")


def compose_ops(ops: Sequence[Op], size: Sequence[int], *, dtype: torch.dtype = torch.float64,
                device: torch.device | str | None = None) -> tuple[Tensor, tuple[int, int]]:
    """Return the one matrix ``A = A_n @ ... @ A_1`` ``(3, 3)`` of a chain of ops, and the final size.

    Example:
        >>> A, size = compose_ops([("center_crop", (1920, 1080)), ("resize", (640, 360))], (2880, 2160))
        >>> size, [round(a, 9) for a in A[0].tolist()]
        ((640, 360), [0.333333333, 0.0, -160.333333333])
    """
    A = geometry.identity_matrix(dtype=dtype, device=device)
    size = tuple(size)
    for name, params in ops:
        step, size = op_matrix(name, params, size, dtype=dtype, device=device)
        A = step @ A
    return A, size  # type: ignore[return-value]


def apply_ops_to_camera(camera: Camera, ops: Sequence[Op]) -> tuple[Camera, Tensor]:
    """Apply a chain of ops to a :class:`camwarp.Camera`; return ``(camera, R)``.

    Each op is ``camera.transform(op_matrix(...), new_size)``; the orientation changes compose as
    ``R = R_n @ ... @ R_1`` ``(..., 3, 3)`` (identity for crops, resizes and pads): the new camera
    sees ``R X`` for a point ``X`` of the old camera's frame.

    Args:
        camera: any batch shape, dtype and device (the matrices follow it).
        ops: as :func:`parse_ops` gives them.

    Returns:
        ``(camera, R)`` with ``R`` ``(*camera.batch_shape, 3, 3)``.

    Raises:
        CliError: an op the camera cannot follow (e.g. an empty crop), naming the flag.

    Example:
        >>> cam, R = apply_ops_to_camera(Camera(100.0, 100.0, 49.5, 39.5, 100, 80), [("hflip", ())])
        >>> R.diagonal().tolist(), cam.cx.item()
        ([-1.0, 1.0, 1.0], 49.5)
    """
    R = torch.eye(3, dtype=camera.dtype, device=camera.device).expand(*camera.batch_shape, 3, 3)
    for name, params in ops:
        A, size = op_matrix(name, params, camera.size, dtype=camera.dtype, device=camera.device)
        try:
            camera, step = camera.transform(A, size)
        except (ValueError, TypeError) as err:
            raise CliError(f"{OPS[name][0]} {','.join(map(str, params))}: {err}") from None
        R = step @ R
    return camera, R


# ------------------------------------------------------------------- --undistort [ALPHA] (additive)
def parse_alpha(text: str) -> tuple[float]:
    """``"0.5"`` -> ``(0.5,)``: OpenCV's free scaling ``alpha`` in ``[0, 1]`` (0: only valid pixels)."""
    try:
        alpha = float(text)
    except ValueError:
        alpha = math.nan
    if not 0 <= alpha <= 1:
        raise argparse.ArgumentTypeError(f"expected ALPHA in [0, 1], got {text!r}")
    return (alpha,)


class _AppendOptionalOp(_AppendOp):
    """Like :class:`_AppendOp` for a flag whose value is optional (``nargs="?"``): ``(name, ())`` without it."""

    def __init__(self, option_strings: Sequence[str], dest: str, op: str, parse: Callable, **kwargs) -> None:
        argparse.Action.__init__(self, option_strings, dest, nargs="?", **kwargs)
        self.op, self.parse = op, parse

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        try:
            params = () if values is None else self.parse(values)
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentError(self, str(err)) from None
        setattr(namespace, self.dest, list(getattr(namespace, self.dest, None) or []) + [(self.op, params)])


def add_undistort_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--undistort [ALPHA]``: appends ``("undistort", (alpha,))`` (or ``("undistort", ())``, alpha 0)
    to ``args.ops`` in command-line order. The commands that take it resample through
    :class:`camwarp.transforms.Undistort` (``op_matrix`` has no matrix for it)."""
    parser.add_argument("--undistort", dest="ops", action=_AppendOptionalOp, op="undistort", parse=parse_alpha,
                        metavar="ALPHA", default=None,
                        help="undistort to a pinhole camera (cv2.getOptimalNewCameraMatrix's alpha in [0, 1], "
                             "default 0: only valid pixels)")
