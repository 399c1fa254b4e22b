"""Image, depth-map and mask files <-> tensors, with Pillow and NumPy, written back losslessly.

Each reader returns a tensor ``(C, H, W)`` and an *encoding* string that tells the matching writer
how to store the result in the input's own format: 8-bit images stay ``uint8`` tensors; 16-bit
(``I;16``), 32-bit integer (``I``) and float (``F``) images become float tensors (exact: the
integers fit the float mantissa) and are rounded back; palette and CMYK images are read as
RGB(A) (a palette cannot be resampled). Depth maps are 16-bit PNGs (millimetres, say), float
TIFFs or ``.npy`` arrays ``(H, W)``, ``(1, H, W)`` or ``(H, W, 1)`` of any real dtype; they are
returned as ``(1, H, W)`` float tensors and stored back with the original dtype and layout. EXR is
not read: no pure-Python wheel decodes it (convert to ``.npy``). Masks are read as ``uint8``
``(1, H, W)``; 1-bit masks are written back as 1-bit (threshold 128, no dithering).
Metadata (EXIF, ICC profiles) is not copied. JPEG quality and PNG compression are arguments.
Writes are atomic; a file-system error (an ``OSError`` with ``errno``: full disk, read-only folder)
propagates unchanged, for the caller to tell one bad path from a job that cannot go on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import CamwarpError
from .atomic import atomic_write

__all__ = ["MediaError", "image_size", "read_depth", "read_image", "read_mask", "write_depth",
           "write_image", "write_mask"]

_TO_RGB = {"CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"}
_INT_MODES = {"I;16": np.uint16, "I;16L": np.uint16, "I;16B": np.uint16, "I;16N": np.uint16, "I": np.int32}


class MediaError(CamwarpError):
    """A file that cannot be read or written as an image, depth map or mask (names the file)."""


def _open(path: Path, fn: str) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()  # decode now: a truncated or corrupt file fails here, with its name
    except FileNotFoundError:
        raise MediaError(f"{fn}: no such file: {path}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MediaError(f"{fn}: cannot read {path}: {err}") from None
    return im


def _format(path: Path, fn: str) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise MediaError(f"{fn}: unknown image extension {path.suffix!r} in {path}")
    return fmt


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return the size ``(W, H)`` of an image file without decoding its pixels.

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/a.png"; Image.new("L", (5, 3)).save(p)
        >>> image_size(p)
        (5, 3)
    """
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError) as err:
        raise MediaError(f"image_size: cannot read {path}: {err}") from None


def read_image(path: str | os.PathLike) -> tuple[Tensor, str]:
    """Read an image file into a ``(C, H, W)`` tensor and the encoding that writes it back.

    Args:
        path: any format Pillow reads (JPEG, PNG, TIFF, WebP, BMP, ...).

    Returns:
        ``(image, encoding)``: ``uint8`` ``(C, H, W)`` for 8-bit modes (``"L"``, ``"LA"``,
        ``"RGB"``, ``"RGBA"``); float32 (float64 for ``"I"``) ``(1, H, W)`` for ``"I;16"``, ``"I"``,
        ``"F"``. ``encoding`` is the Pillow mode to write back.

    Raises:
        MediaError: a missing, unreadable or truncated file (the message names it).

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/a.png"; Image.new("RGB", (5, 3)).save(p)
        >>> img, enc = read_image(p); tuple(img.shape), img.dtype, enc
        ((3, 3, 5), torch.uint8, 'RGB')
    """
    im = _open(Path(path), "read_image")
    mode = im.mode
    if mode in ("P", "PA"):
        keep_alpha = mode == "PA" or "transparency" in im.info
        im, mode = im.convert("RGBA" if keep_alpha else "RGB"), "RGBA" if keep_alpha else "RGB"
    elif mode in _TO_RGB:
        im, mode = im.convert("RGB"), "RGB"
    elif mode == "1":
        im = im.convert("L")
    array = np.array(im)
    if mode in _INT_MODES or mode == "F":
        dtype = np.float64 if mode == "I" else np.float32
        return torch.from_numpy(array.astype(dtype))[None], mode
    if array.dtype != np.uint8:
        raise MediaError(f"read_image: unsupported image mode {mode!r} in {path}")
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))), mode


def _to_pil(image: Tensor, encoding: str, fn: str) -> Image.Image:
    array = image.detach().cpu().numpy()
    if encoding in _INT_MODES:
        info = np.iinfo(_INT_MODES[encoding])
        array = np.clip(np.rint(array[0]), info.min, info.max).astype(_INT_MODES[encoding])
        return Image.fromarray(array)
    if encoding == "F":
        return Image.fromarray(array[0].astype(np.float32), mode="F")
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if encoding == "1":
        return Image.fromarray(np.where(array[0] >= 128, 255, 0).astype(np.uint8)).convert(
            "1", dither=Image.Dither.NONE)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(encoding)
    if channels is None or array.shape[0] != channels:
        raise MediaError(f"{fn}: cannot store a {array.shape[0]}-channel image as mode {encoding!r}")
    return Image.fromarray(array[0] if channels == 1 else np.ascontiguousarray(array.transpose(1, 2, 0)))


def write_image(path: str | os.PathLike, image: Tensor, encoding: str, jpeg_quality: int = 95,
                png_compression: int = 6, fsync: bool = False) -> Path:
    """Write a ``(C, H, W)`` tensor to ``path`` atomically, in the format of its extension.

    Float tensors are rounded and clamped to the encoding's range (``uint8`` for 8-bit modes).

    Args:
        path: target file; its extension picks the format.
        image: ``(C, H, W)`` tensor, as :func:`read_image` returns it.
        encoding: the Pillow mode from :func:`read_image`.
        jpeg_quality: JPEG/WebP quality 1..100 (default 95).
        png_compression: PNG zlib level 0..9 (default 6, Pillow's).
        fsync: see :func:`camwarp.prepare.atomic.atomic_write`.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        MediaError: an unknown extension or an image the format cannot hold.
        OSError: the file system's error (with ``errno``: a full disk, a read-only folder, ...).

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/a.png"
        >>> _ = write_image(p, torch.zeros(3, 2, 4, dtype=torch.uint8), "RGB"); image_size(p)
        (4, 2)
    """
    path = Path(path)
    fmt = _format(path, "write_image")
    pil = _to_pil(image, encoding, "write_image")
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = jpeg_quality
    elif fmt == "PNG":
        options["compress_level"] = png_compression
    try:
        return atomic_write(path, lambda f: pil.save(f, format=fmt, **options), fsync=fsync)
    except OSError as err:
        if err.errno is not None:  # the file system's error (full, read-only, ...): the caller decides
            raise
        raise MediaError(f"write_image: cannot write {path} as {fmt} (mode {pil.mode}): {err}") from None
    except (ValueError, KeyError) as err:
        raise MediaError(f"write_image: cannot write {path} as {fmt} (mode {pil.mode}): {err}") from None


def read_depth(path: str | os.PathLike) -> tuple[Tensor, str]:
    """Read a depth map into a ``(1, H, W)`` float tensor (values exact) and its encoding.

    Args:
        path: ``.npy`` (``(H, W)``, ``(1, H, W)`` or ``(H, W, 1)``, any real dtype) or an image
            (16-bit PNG, float TIFF, ...).

    Returns:
        ``(depth, encoding)``; float64 for ``.npy`` float64 and 32-bit integer data, float32 else.

    Raises:
        MediaError: a missing, unreadable or EXR file, or an array of another shape.

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/d.npy"; np.save(p, np.ones((2, 3)))
        >>> d, enc = read_depth(p); tuple(d.shape), d.dtype, enc
        ((1, 2, 3), torch.float64, 'npy:<f8:hw')
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".exr":
        raise MediaError(f"read_depth: EXR is not supported (no pure-Python EXR reader); "
                         f"convert {path} to .npy")
    if suffix != ".npy":
        image, mode = read_image(path)
        if image.shape[0] != 1:
            raise MediaError(f"read_depth: {path} has {image.shape[0]} channels; a depth map has 1")
        return (image.float() if image.dtype == torch.uint8 else image), mode
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise MediaError(f"read_depth: no such file: {path}") from None
    except (OSError, ValueError) as err:
        raise MediaError(f"read_depth: cannot read {path}: {err}") from None
    layouts = {"hw": array.ndim == 2, "1hw": array.ndim == 3 and array.shape[0] == 1,
               "hw1": array.ndim == 3 and array.shape[-1] == 1}
    layout = next((k for k, ok in layouts.items() if ok), None)
    if layout is None or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise MediaError(f"read_depth: {path} must hold a real (H, W) array, got {array.dtype} {array.shape}")
    wide = array.dtype == np.float64 or (np.issubdtype(array.dtype, np.integer) and array.dtype.itemsize > 2)
    plane = array.reshape(array.shape[1:] if layout == "1hw" else array.shape[:2])
    tensor = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float64 if wide else np.float32))[None]
    return tensor, f"npy:{array.dtype.str}:{layout}"


def write_depth(path: str | os.PathLike, depth: Tensor, encoding: str, png_compression: int = 6,
                fsync: bool = False) -> Path:
    """Write a ``(1, H, W)`` depth tensor atomically with the encoding :func:`read_depth` gave.

    Integer encodings round (depth values taken from the source are already integers).

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/d.npy"
        >>> _ = write_depth(p, torch.ones(1, 2, 3), "npy:<f4:hw"); np.load(p).dtype
        dtype('float32')
    """
    if not encoding.startswith("npy:"):
        return write_image(path, depth, encoding, png_compression=png_compression, fsync=fsync)
    _, dtype_str, layout = encoding.split(":")
    dtype = np.dtype(dtype_str)
    plane = depth.detach().cpu().numpy()[0]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        plane = np.clip(np.rint(plane), info.min, info.max)
    plane = plane.astype(dtype)
    array = {"hw": plane, "1hw": plane[None], "hw1": plane[..., None]}[layout]
    return atomic_write(path, lambda f: np.save(f, array, allow_pickle=False), fsync=fsync)


def read_mask(path: str | os.PathLike) -> tuple[Tensor, str]:
    """Read a mask into a ``uint8`` ``(1, H, W)`` tensor and its encoding (``"L"`` or ``"1"``).

    Colour masks are converted to grey (``L``); 1-bit masks read as 0/255.

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/m.png"; Image.new("1", (4, 2), 1).save(p)
        >>> m, enc = read_mask(p); tuple(m.shape), int(m.max()), enc
        ((1, 2, 4), 255, '1')
    """
    im = _open(Path(path), "read_mask")
    mode = "1" if im.mode == "1" else "L"
    array = np.array(im.convert("L"))
    return torch.from_numpy(np.ascontiguousarray(array))[None], mode


def write_mask(path: str | os.PathLike, mask: Tensor, encoding: str, jpeg_quality: int = 95,
               png_compression: int = 6, fsync: bool = False) -> Path:
    """Write a ``(1, H, W)`` mask atomically with the encoding :func:`read_mask` gave.

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/m.png"
        >>> _ = write_mask(p, torch.zeros(1, 2, 4, dtype=torch.uint8), "L"); image_size(p)
        (4, 2)
    """
    return write_image(path, mask, encoding, jpeg_quality=jpeg_quality, png_compression=png_compression,
                       fsync=fsync)
